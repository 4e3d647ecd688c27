"""Crossbar kinds by name: `kind: twin` or `kind: lab` in a config, found through entry points.

`hil` never imports a driver or simulator module by name; each package that
provides a crossbar declares it in the `hil.crossbars` entry-point group.  The
class must offer `from_spec(topology, spec, *, seed, source)`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from hil.errors import ConfigError
from hil.interface import Crossbar, Topology


def crossbar_kinds() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="hil.crossbars")}


def _crossbar_class(spec: dict[str, Any], source: str) -> Any:
    kinds = crossbar_kinds()
    kind = spec.get("kind", "twin")
    if kind not in kinds:
        raise ConfigError(f"{source}: crossbar.kind: unknown kind {kind!r}; expected one of {', '.join(sorted(kinds))}")
    return kinds[kind].load()


def check_crossbar(spec: dict[str, Any], source: str, topology: Topology | None = None) -> None:
    """Validate a `crossbar:` section (and its fit to `topology`) without opening anything.

    A crossbar class may offer `check_spec(spec, source[, topology])`; one that does not is
    checked when opened.
    """
    cls = _crossbar_class(spec, source)
    if hasattr(cls, "check_spec"):
        if topology is None:
            cls.check_spec(spec, source)
        else:
            cls.check_spec(spec, source, topology)


def open_crossbar(topology: Topology, spec: dict[str, Any], *, seed: int, source: str) -> Crossbar:
    """Build the crossbar that a config's `crossbar:` section names; unknown kinds name the choices."""
    return _crossbar_class(spec, source).from_spec(topology, spec, seed=seed, source=source)
