"""Calibration files: the measured read-noise and device models of one board, as YAML.

A calibration is data (STYLE.md section 4): a frozen pydantic model whose
`read_noise` and `devices` lists hold any mix of the models of
`simulators/noise.py` and `simulators/devices.py`, each tagged by `kind`.
`TwinConfig.calibration` points at such a file; the format is described, with
an example, in `simulators/README.md`, and `version` changes only when a
file that validated before would be read differently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, field_validator

from hil.config import Strict, parse_yaml, read_yaml, validate_section
from hil.simulators.devices import DeviceModel, check_unique
from hil.simulators.noise import ReadNoise

FORMAT_VERSION = 1


class Calibration(Strict):
    """What a characterization protocol measured on a board, for the twin to reproduce."""

    model_config = ConfigDict(frozen=True)
    version: Literal[1] = Field(FORMAT_VERSION, description="format version of the file")
    description: str = Field("", description="free text: which board, which protocol")
    meta: dict[str, Any] = Field(
        default_factory=dict, description="provenance: station, date, operator, protocol, code version, ..."
    )
    read_noise: list[ReadNoise] = Field(default_factory=list, description="read-noise models; their noise adds up")
    devices: list[DeviceModel] = Field(default_factory=list, description="device models, at most one per kind")

    @field_validator("devices")
    @classmethod
    def _one_per_kind(cls, models: list[Any]) -> list[Any]:
        return check_unique(models)

    def to_yaml(self) -> str:
        """The YAML text of this calibration, every field written out (defaults included)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<calibration>") -> Calibration:
        """Parse and validate YAML text; errors name `source` and the key."""
        data = parse_yaml(text.encode("utf-8"), source) or {}
        return validate_section(cls, data, source)


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration file; a ConfigError names the file and the key."""
    path = Path(path)
    return validate_section(Calibration, read_yaml(path), str(path))


def save_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write a calibration as YAML (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(calibration.to_yaml())
    return path
