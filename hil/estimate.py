"""`hil train --estimate`: how long a batch and an epoch will take on a station, before anything is powered.

The numbers come from the instruments' timing models (`hil.drivers`, found through the
`hil.planners` entry point so that `hil` never imports a driver by name): a planner
returns, per part, the seconds one training batch and one test pass spend in it.
This module only assembles them per epoch and shows them, with each part's share.

Parts (what each second is spent on):

- `integration`: the A/D conversions themselves (NPLC at the line frequency, per reading);
- `autozero`: the extra zero conversions when autozero is on;
- `switching`: multiplexer relays and switch-matrix routes;
- `settling`: channel delays, trigger/source delays and the station's `wiring.settle_s`;
- `ramping`: waits between ramp steps of the sources (the station's `ramp_v_per_s`);
- `commands`: parsing and round trips of every write and query;
- `transfers`: readings and levels moving over the links;
- `programming`: writing (and verifying) the conductance blocks once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from rich.table import Table

from hil.errors import UserError

PARTS = ("integration", "autozero", "switching", "settling", "ramping", "commands", "transfers", "programming")


@dataclass
class Estimate:
    """Predicted seconds per part of one training batch and of the epoch's test pass."""

    station: str
    n_samples: int
    batch_size: int
    batches: int
    batch_parts: dict[str, float]
    eval_parts: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def batch_s(self) -> float:
        return sum(self.batch_parts.values())

    @property
    def eval_s(self) -> float:
        return sum(self.eval_parts.values())

    @property
    def epoch_s(self) -> float:
        return self.batches * self.batch_s + self.eval_s

    def epoch_parts(self) -> dict[str, float]:
        return {p: self.batches * self.batch_parts.get(p, 0.0) + self.eval_parts.get(p, 0.0) for p in PARTS}

    def summary(self) -> str:
        return (f"estimate on {self.station} at N = {self.n_samples}: {self.batch_s:.3g} s per batch of "
                f"{self.batch_size}, {_duration(self.epoch_s)} per epoch ({self.batches} batches + test pass "
                f"{_duration(self.eval_s)})")

    def table(self) -> Table:
        """Each part per batch and per epoch, with its share of the epoch."""
        epoch = self.epoch_parts()
        total = self.epoch_s or 1.0
        t = Table(title=self.summary(), title_justify="left")
        t.add_column("part")
        t.add_column("per batch (s)", justify="right")
        t.add_column("per epoch (s)", justify="right")
        t.add_column("share", justify="right")
        for part in PARTS:
            if epoch[part] > 0:
                t.add_row(part, f"{self.batch_parts.get(part, 0.0):.4g}", f"{epoch[part]:.4g}",
                          f"{100 * epoch[part] / total:.1f} %")
        t.add_row("total", f"{self.batch_s:.4g}", f"{self.epoch_s:.4g}", "100 %", style="bold")
        return t

    def to_dict(self) -> dict[str, Any]:
        return {"station": self.station, "n_samples": self.n_samples, "batch_size": self.batch_size,
                "batches": self.batches, "batch_s": self.batch_s, "eval_s": self.eval_s, "epoch_s": self.epoch_s,
                "batch_parts": self.batch_parts, "eval_parts": self.eval_parts}


class Planner(Protocol):
    """What a crossbar package offers for `--estimate` (entry point group `hil.planners`, by crossbar kind)."""

    def __call__(self, spec: dict[str, Any], source: str, plan: TrainingPlan) -> Estimate: ...


@dataclass
class TrainingPlan:
    """What one epoch does, in terms a planner can time: the level sequences of every measure() call.

    `train_inputs` / `train_targets` are the input and nudge-target voltages (v_unit) of every
    training example in epoch order (one row per example), `test_inputs` those of the test set.
    """

    layers: tuple[int, ...]
    batch_size: int
    n_samples: int
    eval_n_samples: int
    eval_batch_size: int
    nudged_phases: int
    beta: float
    train_inputs: Any
    train_targets: Any
    test_inputs: Any

    @property
    def batches(self) -> int:
        return -(-len(self.train_inputs) // self.batch_size)


def planner_for(kind: str, source: str) -> Planner:
    """The planner of a crossbar kind; a kind without one (the twin: no instruments) is a clear error."""
    found = {ep.name: ep for ep in entry_points(group="hil.planners")}
    if kind not in found:
        raise UserError(f"{source}: --estimate needs a station (--station STATION.yaml); crossbar kind {kind!r} "
                        "has no instruments to time")
    return found[kind].load()


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
