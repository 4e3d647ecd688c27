"""Crossbar kinds by name: `kind: twin` or `kind: lab` in a config, found through entry points.

`hil` never imports a driver or simulator module by name; each package that
provides a crossbar declares it in the `hil.crossbars` entry-point group.  The
class must offer `from_spec(topology, spec, *, seed, source)`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from hil.errors import ConfigError

if TYPE_CHECKING:
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


def open_packed(topology: Topology, specs: list[dict[str, Any]], *, seeds: list[int], source: str) -> Any:
    """T crossbars of one kind in lockstep (the twin's `PackedTwin`), or None where that kind cannot pack them.

    A crossbar class may offer `packed(topology, specs, seeds, source)`, returning None for
    sections off its packable path.
    """
    cls = _crossbar_class(specs[0], source)
    if any(s.get("kind", "twin") != specs[0].get("kind", "twin") for s in specs) or not hasattr(cls, "packed"):
        return None
    return cls.packed(topology, specs, seeds, source)
