"""The seam between what EP does and what carries it out: a board or its twin.

Everything above this module (the EP controller, every protocol) talks to a
`Crossbar`; everything below it (drivers, simulators) implements one.  Keep this
file free of imports from `hil.drivers` and `hil.simulators`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass(frozen=True)
class Topology:
    """Layer sizes and device ranges of a layered resistive network.

    `layers[0]` is the number of input sources (already doubled, `[+x, -x]`),
    `layers[-1]` the number of linear output nodes, everything between hidden
    layers whose first half of nodes is clamped `>= 0` by diodes and second half
    `<= 0`.  Block `G{l}` (l = 1..L) connects layer l-1 to layer l and has shape
    `(layers[l-1], layers[l])`; bias `b{l}` is a current source on each node of
    layer l.  Conductances are in `g_unit` siemens and voltages in `v_unit` volts,
    so the paper's normalised network maps onto a physical one.
    """

    layers: tuple[int, ...]
    g_min: float = 0.0
    g_max: float = float("inf")
    g_unit: float = 1.0
    v_unit: float = 1.0

    def __post_init__(self) -> None:
        if len(self.layers) < 2 or any(n < 1 for n in self.layers):
            raise ValueError(f"layers must hold at least two positive sizes, got {self.layers}")
        for n in self.layers[1:-1]:
            if n % 2:
                raise ValueError(f"hidden layers need an even size (half >= 0, half <= 0), got {n}")
        if not self.g_min <= self.g_max:
            raise ValueError(f"g_min ({self.g_min}) must not exceed g_max ({self.g_max})")

    @property
    def n_in(self) -> int:
        return self.layers[0]

    @property
    def n_out(self) -> int:
        return self.layers[-1]

    @property
    def depth(self) -> int:
        """Number of conductance blocks (= number of free layers)."""
        return len(self.layers) - 1

    @property
    def blocks(self) -> dict[str, tuple[int, int]]:
        return {f"G{l}": (self.layers[l - 1], self.layers[l]) for l in range(1, self.depth + 1)}

    @property
    def biases(self) -> dict[str, int]:
        return {f"b{l}": self.layers[l] for l in range(1, self.depth + 1)}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of every programmable quantity: blocks, then biases."""
        return {**self.blocks, **{k: (n,) for k, n in self.biases.items()}}


@dataclass(frozen=True)
class Nudge:
    """Tie each output node to a source at `target` through a conductance `beta`.

    This adds exactly `beta/2 * |y - target|^2` to the energy, so it is physical on
    a board and exact in the twin.  `beta < 0` (centered EP) is allowed.
    """

    beta: float
    target: Tensor


@dataclass
class Measurement:
    """Node voltages of the free layers at equilibrium, as read.

    `voltages[l-1]` is the mean of `n_samples` reads of layer l, shape `(B, n_l)`;
    `std` the per-node sample standard deviation (zeros when `n_samples == 1`);
    `timestamps_s` the time of each of the N samples (seconds on the crossbar's
    clock); `samples[l-1]` the raw `(N, B, n_l)` reads, only when asked for.
    `info` carries crossbar-specific diagnostics (solver iterations, ...).
    """

    voltages: list[Tensor]
    std: list[Tensor]
    n_samples: int
    timestamps_s: Tensor
    samples: list[Tensor] | None = None
    info: dict[str, float] = field(default_factory=dict)

    @property
    def output(self) -> Tensor:
        return self.voltages[-1]


@dataclass
class ProgramReport:
    """What `program()` was asked for and what the device ended up holding.

    `achieved` may be the very tensors that were requested when the device
    reproduced them exactly (the ideal twin keeps them as its own, uncopied);
    callers must not write into it, except to program the result right after
    (the EP controller's in-place update).
    """

    requested: dict[str, Tensor]
    achieved: dict[str, Tensor]
    writes: int = 0
    clipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def n_clipped(self) -> int:
        return sum(self.clipped.values())

    @property
    def n_failed(self) -> int:
        return sum(self.failed.values())


@runtime_checkable
class Crossbar(Protocol):
    """A resistive network that can be programmed and read: a board or its twin."""

    topology: Topology

    def program(self, g: dict[str, Tensor], *, verify: bool = True) -> ProgramReport: ...

    def read_conductances(self) -> dict[str, Tensor]: ...

    def measure(
        self,
        inputs: Tensor,
        *,
        nudge: Nudge | None = None,
        n_samples: int = 1,
        keep_samples: bool = False,
    ) -> Measurement: ...

    def safe_state(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Crossbar: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class SupportsState(Protocol):
    """A crossbar whose hidden state (random generators) can be checkpointed.

    The twin has one; a board has none worth saving, so resuming on a board
    reprograms the conductances and carries on.
    """

    def state_dict(self) -> dict[str, object]: ...

    def load_state_dict(self, state: dict[str, object]) -> None: ...


@runtime_checkable
class SupportsDescribe(Protocol):
    """A crossbar that can say what it is: a board's station, instrument identities, limits, last levels.

    Answered from what the crossbar already knows (no instrument traffic), so a run can
    record it often; the dashboard shows it on the run's page.
    """

    def describe(self) -> dict[str, object]: ...


def hidden_bounds(n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Lower and upper voltage bounds that the diodes impose on a hidden layer of n nodes."""
    inf = torch.full((n,), float("inf"), dtype=dtype, device=device)
    lo, hi = -inf.clone(), inf.clone()
    lo[: n // 2] = 0.0
    hi[n // 2 :] = 0.0
    return lo, hi
