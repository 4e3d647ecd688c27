"""Device models for the conductances of the twin: what a resistive cell does when written and read.

Each model is a frozen pydantic model with a `kind` (the config *is* the
model, and a calibration file round-trips through YAML); `DeviceArray` holds
what they need per cell (drawn once, from the crossbar's generator) and
applies them.  They act on the conductance blocks `G1..GL` only: the biases
are current sources, programmed exactly.  Conductances are in the topology's
`g_unit`, times on the twin's clock (s).

`program()` of one block, in order: clip the request to each cell's
`[g_min, g_max]` (counted as clipped), round it to the nearest of `n_levels`
levels of that range, write it with write noise (the result stays inside the
range), rewrite cells outside the verify tolerance (with `verify=True`), and
leave stuck cells where they are (counted as failed when that is not what was
asked).  Drift `g(t) = g0 ((t - t_write) / t0)^-nu` is applied when the
solver reads the conductances; read disturb moves each cell toward a bound by
a fraction per read.  `pulse()` changes cells by one programming pulse each,
as a function of their state, for write-verify loops run from outside.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    model_validator,
)
from torch import Tensor

from hil.config import Strict
from hil.errors import ConfigError
from hil.interface import Topology

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class _Model(Strict):
    model_config = ConfigDict(frozen=True)


class WriteNoise(_Model):
    """Programming noise: a write of target g lands at `g + std(g) z`, z ~ N(0, 1).

    `std(g) = sqrt(sigma_abs^2 + (sigma_rel g)^2 + poly(g)^2)` with
    `poly(g) = poly[0] + poly[1] g + poly[2] g^2 + ...`; use whichever terms fit.
    """

    kind: Literal["write_noise"] = "write_noise"
    sigma_abs: NonNegativeFloat = Field(0.0, description="absolute std of a write (g_unit)")
    sigma_rel: NonNegativeFloat = Field(0.0, description="std of a write relative to its target")
    poly: list[float] = Field(default_factory=list, description="std as a polynomial in g, constant term first")

    def std(self, g: Tensor) -> Tensor:
        var = self.sigma_abs**2 + (self.sigma_rel * g) ** 2
        if self.poly:
            p = torch.zeros_like(g)
            for c in reversed(self.poly):
                p = p * g + c
            var = var + p**2
        return torch.sqrt(var)


class Levels(_Model):
    """A cell holds one of `n_levels` evenly spaced values of its own `[g_min, g_max]`."""

    kind: Literal["levels"] = "levels"
    n_levels: int = Field(ge=2, description="number of programmable levels")


class DeviceRange(_Model):
    """Per-cell conductance range with device-to-device spread.

    Each cell's bounds are `g_min (1 + spread_rel z1)` and `g_max (1 + spread_rel z2)`,
    drawn once (z ~ N(0, 1)), with `0 <= g_min_cell <= g_max_cell`.
    """

    kind: Literal["range"] = "range"
    g_min: NonNegativeFloat = Field(description="nominal lowest conductance (g_unit)")
    g_max: PositiveFloat = Field(description="nominal highest conductance (g_unit)")
    spread_rel: NonNegativeFloat = Field(0.0, description="relative std of each cell's bounds")

    @model_validator(mode="after")
    def _order(self) -> DeviceRange:
        if self.g_max <= self.g_min:
            raise ValueError(f"g_max ({self.g_max:g}) must exceed g_min ({self.g_min:g})")
        return self


class StuckAt(_Model):
    """Cells stuck at their own `g_min` (off) or `g_max` (on), drawn once; writes do not move them."""

    kind: Literal["stuck"] = "stuck"
    p_off: float = Field(0.0, ge=0.0, le=1.0, description="fraction of cells stuck at g_min")
    p_on: float = Field(0.0, ge=0.0, le=1.0, description="fraction of cells stuck at g_max")

    @model_validator(mode="after")
    def _total(self) -> StuckAt:
        if self.p_off + self.p_on > 1.0:
            raise ValueError("p_off + p_on must not exceed 1")
        return self


class Drift(_Model):
    """Conductance drift `g(t) = g0 ((t - t_write) / t0)^-nu` for `t - t_write > t0` (g0 before).

    Each cell's exponent is `nu + nu_spread z`, drawn once, clamped at 0.
    """

    kind: Literal["drift"] = "drift"
    nu: NonNegativeFloat = Field(description="drift exponent")
    nu_spread: NonNegativeFloat = Field(0.0, description="device-to-device std of the exponent")
    t0_s: PositiveFloat = Field(1.0, description="time after a write at which drift starts (s)")


class ReadDisturb(_Model):
    """Each read moves every cell a fraction `rate_per_read` of its distance to a bound.

    One `measure()` of a batch of B inputs with N samples is B * N reads.
    """

    kind: Literal["read_disturb"] = "read_disturb"
    rate_per_read: float = Field(ge=0.0, lt=1.0, description="fraction of the distance to the bound per read")
    toward: Literal["g_min", "g_max"] = Field("g_min", description="the bound that reads push cells toward")


class PulseResponse(_Model):
    """State-dependent response to one programming pulse (soft bounds).

    A SET pulse (polarity +1) adds `alpha_set s (g_max - g)`, a RESET pulse
    (polarity -1) removes `alpha_reset s (g - g_min)`, where
    `s = max(0, (|amplitude| - v_threshold_v) / (v_ref_v - v_threshold_v))`;
    each step is scaled by `1 + noise_rel z` (cycle-to-cycle noise).
    """

    kind: Literal["pulse"] = "pulse"
    alpha_set: float = Field(gt=0.0, le=1.0, description="fraction of the distance to g_max per SET pulse at v_ref")
    alpha_reset: float = Field(gt=0.0, le=1.0, description="fraction of the distance to g_min per RESET pulse at v_ref")
    v_threshold_v: NonNegativeFloat = Field(0.0, description="pulses below this amplitude do nothing (V)")
    v_ref_v: PositiveFloat = Field(1.0, description="amplitude at which the alphas apply (V)")
    noise_rel: NonNegativeFloat = Field(0.0, description="relative std of each pulse's step")

    @model_validator(mode="after")
    def _amplitudes(self) -> PulseResponse:
        if self.v_ref_v <= self.v_threshold_v:
            raise ValueError("v_ref_v must exceed v_threshold_v")
        return self


DeviceModel = Annotated[
    WriteNoise | Levels | DeviceRange | StuckAt | Drift | ReadDisturb | PulseResponse, Field(discriminator="kind")
]


def check_unique(models: list[Any]) -> list[Any]:
    """At most one device model of each kind (a validator for the lists that hold them)."""
    kinds = [m.kind for m in models]
    dup = sorted({k for k in kinds if kinds.count(k) > 1})
    if dup:
        raise ValueError(f"at most one device model of each kind, got several of: {', '.join(dup)}")
    return models


class VerifyPolicy(_Model):
    """How `program(verify=True)` rewrites cells that missed: tolerance and passes."""

    tol_abs: NonNegativeFloat = 0.0
    tol_rel: NonNegativeFloat = 0.02
    max_passes: int = Field(3, ge=0)


@runtime_checkable
class SupportsPulses(Protocol):
    """A crossbar that can apply programming pulses to chosen cells of a block (optional ability)."""

    def pulse(self, name: str, cells: Tensor, polarity: int, amplitude_v: float, n: int = 1) -> None: ...

    def read_conductances(self) -> dict[str, Tensor]: ...


class DeviceArray:
    """Per-cell state of every conductance block and the models that act on it."""

    def __init__(
        self,
        models: list[BaseModel],
        topology: Topology,
        generator: torch.Generator,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        verify: VerifyPolicy | None = None,
    ) -> None:
        self.models = list(check_unique(list(models)))
        by_kind = {m.kind: m for m in self.models}
        self.write: WriteNoise | None = by_kind.get("write_noise")
        self.levels: Levels | None = by_kind.get("levels")
        self.range: DeviceRange | None = by_kind.get("range")
        self.stuck: StuckAt | None = by_kind.get("stuck")
        self.drift: Drift | None = by_kind.get("drift")
        self.disturb: ReadDisturb | None = by_kind.get("read_disturb")
        self.pulses: PulseResponse | None = by_kind.get("pulse")
        self.verify = verify or VerifyPolicy()
        self.topology = topology
        self.generator = generator
        self.dtype, self.device = dtype, torch.device(device)
        needs_finite = [k for k in ("levels", "stuck", "pulse", "read_disturb") if k in by_kind]
        if needs_finite and self.range is None and math.isinf(topology.g_max):
            raise ConfigError(
                f"crossbar.devices: {', '.join(needs_finite)} need a finite g_max: add a 'range' model "
                "or set network.g_max"
            )
        self.lo: dict[str, Tensor] = {}
        self.hi: dict[str, Tensor] = {}
        self.stuck_code: dict[str, Tensor] = {}  # 0 free, 1 stuck at lo, 2 stuck at hi
        self.nu: dict[str, Tensor] = {}
        self.t_write: dict[str, Tensor] = {}
        self.g0: dict[str, Tensor] = {}
        for name, shape in topology.blocks.items():
            self._draw(name, shape)

    def __repr__(self) -> str:
        return f"DeviceArray({self.models!r}, verify={self.verify!r})"

    @property
    def time_varying(self) -> bool:
        """Whether conductances change without being written (drift, read disturb)."""
        return self.drift is not None or self.disturb is not None

    def _randn(self, shape: tuple[int, ...]) -> Tensor:
        return torch.randn(shape, generator=self.generator, dtype=self.dtype, device=self.device)

    def _draw(self, name: str, shape: tuple[int, int]) -> None:
        if self.range is not None:
            r = self.range
            lo = (r.g_min * (1.0 + r.spread_rel * self._randn(shape))).clamp_min(0.0)
            hi = torch.maximum(r.g_max * (1.0 + r.spread_rel * self._randn(shape)), lo)
            t_lo, t_hi = self.topology.g_min, self.topology.g_max
            lo, hi = lo.clamp(t_lo, t_hi), hi.clamp(t_lo, t_hi)
        else:
            lo = torch.full(shape, self.topology.g_min, dtype=self.dtype, device=self.device)
            hi = torch.full(shape, self.topology.g_max, dtype=self.dtype, device=self.device)
        self.lo[name], self.hi[name] = lo, hi
        code = torch.zeros(shape, dtype=torch.int8, device=self.device)
        if self.stuck is not None:
            u = torch.rand(shape, generator=self.generator, dtype=torch.float64, device=self.device)
            code[u < self.stuck.p_off] = 1
            code[(u >= self.stuck.p_off) & (u < self.stuck.p_off + self.stuck.p_on)] = 2
        self.stuck_code[name] = code
        if self.drift is not None:
            self.nu[name] = (self.drift.nu + self.drift.nu_spread * self._randn(shape)).clamp_min(0.0)
            self.t_write[name] = torch.zeros(shape, dtype=torch.float64, device=self.device)
        self.g0[name] = self._stuck(name, lo.clone())

    def _stuck(self, name: str, g: Tensor) -> Tensor:
        code = self.stuck_code[name]
        if self.stuck is None:
            return g
        return torch.where(code == 1, self.lo[name], torch.where(code == 2, self.hi[name], g))

    def quantize(self, name: str, g: Tensor) -> Tensor:
        """Round g (already inside the cell's range) to the nearest level of that range."""
        if self.levels is None:
            return g
        lo, hi = self.lo[name], self.hi[name]
        span = (hi - lo).clamp_min(torch.finfo(self.dtype).tiny)
        k = self.levels.n_levels - 1
        return lo + torch.round((g - lo) / span * k) / k * (hi - lo)

    def _write(self, name: str, target: Tensor) -> Tensor:
        """One write of every cell in `target` (no stuck cells handled here)."""
        if self.write is None:
            return target.clone()
        g = target + self.write.std(target) * self._randn(tuple(target.shape))
        return torch.minimum(torch.maximum(g, self.lo[name]), self.hi[name])

    def _missed(self, name: str, g: Tensor, target: Tensor) -> Tensor:
        tol = self.verify.tol_abs + self.verify.tol_rel * target.abs()
        return (g - target).abs() > tol

    def program(self, name: str, value: Tensor, clock_s: float, *, verify: bool) -> tuple[Tensor, int, int, int]:
        """Write `value` into block `name`; returns (stored g0, clipped, failed, write passes)."""
        lo, hi = self.lo[name], self.hi[name]
        value = value.to(device=self.device, dtype=self.dtype)
        outside = (value < lo) | (value > hi)
        clipped = int(outside.sum().item())
        target = self.quantize(name, torch.minimum(torch.maximum(value, lo), hi))
        g = self._write(name, target)
        passes = 1
        if verify and self.write is not None:
            for _ in range(self.verify.max_passes):
                miss = self._missed(name, g, target)
                if self.stuck is not None:
                    miss &= self.stuck_code[name] == 0
                if not bool(miss.any()):
                    break
                g = torch.where(miss, self._write(name, target), g)
                passes += 1
        g = self._stuck(name, g)
        failed = 0
        if verify or self.stuck is not None:  # without verify only stuck cells are known to fail
            miss = self._missed(name, g, target)
            failed = int((miss if verify else miss & (self.stuck_code[name] != 0)).sum().item())
        self.g0[name] = g
        if self.drift is not None:
            self.t_write[name].fill_(clock_s)
        return g, clipped, failed, passes

    def effective(self, name: str, clock_s: float) -> Tensor:
        """Conductances of block `name` as the circuit sees them at `clock_s` (drift applied)."""
        g0 = self.g0[name]
        if self.drift is None:
            return g0
        age = (clock_s - self.t_write[name]) / self.drift.t0_s
        factor = torch.where(age > 1.0, age.clamp_min(1.0) ** (-self.nu[name].to(torch.float64)), 1.0)
        return g0 * factor.to(self.dtype)

    def apply_reads(self, n_reads: int) -> None:
        """Read disturb after `n_reads` reads of every cell."""
        if self.disturb is None or n_reads <= 0 or self.disturb.rate_per_read == 0.0:
            return
        keep = (1.0 - self.disturb.rate_per_read) ** n_reads
        for name, g0 in self.g0.items():
            bound = self.lo[name] if self.disturb.toward == "g_min" else self.hi[name]
            self.g0[name] = self._stuck(name, bound + (g0 - bound) * keep)

    def pulse(self, name: str, cells: Tensor, polarity: int, amplitude_v: float, n: int, clock_s: float) -> None:
        """Apply n pulses of one polarity and amplitude to the cells selected by the boolean mask `cells`."""
        if self.pulses is None:
            raise ConfigError("crossbar.devices: pulse programming needs a 'pulse' device model")
        if polarity not in (1, -1):
            raise ValueError(f"polarity must be +1 (SET) or -1 (RESET), got {polarity}")
        p = self.pulses
        mask = cells.to(device=self.device, dtype=torch.bool)
        if mask.shape != self.g0[name].shape:
            raise ValueError(f"cells must be a boolean mask of shape {tuple(self.g0[name].shape)}")
        s = max(0.0, (abs(amplitude_v) - p.v_threshold_v) / (p.v_ref_v - p.v_threshold_v))
        lo, hi, g = self.lo[name], self.hi[name], self.g0[name].clone()
        free = mask if self.stuck is None else mask & (self.stuck_code[name] == 0)
        for _ in range(n):
            step = p.alpha_set * s * (hi - g) if polarity > 0 else -p.alpha_reset * s * (g - lo)
            if p.noise_rel:
                step = step * (1.0 + p.noise_rel * self._randn(tuple(g.shape)))
            g = torch.where(free, torch.minimum(torch.maximum(g + step, lo), hi), g)
        self.g0[name] = g
        if self.drift is not None:
            self.t_write[name][mask] = clock_s

    def state_dict(self) -> dict[str, Any]:
        fields = ("lo", "hi", "stuck_code", "nu", "t_write", "g0")
        return {f: {k: v.detach().cpu().clone() for k, v in getattr(self, f).items()} for f in fields}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for f, tensors in state.items():
            setattr(self, f, {k: v.to(self.device).clone() for k, v in tensors.items()})


def write_verify(
    xbar: SupportsPulses,
    name: str,
    target: Tensor,
    *,
    tol: float,
    amplitude_v: float = 1.0,
    max_pulses: int = 100,
) -> tuple[Tensor, int]:
    """Reference write-verify loop by pulses: read, pulse every cell outside `tol` toward its target, repeat.

    Returns the final conductances of block `name` and the number of rounds used.
    Works on any crossbar with `pulse()` (the twin, or a board whose driver has it).
    """
    target = target.detach()
    for rounds in range(max_pulses + 1):
        g = xbar.read_conductances()[name].to(target)
        err = target - g
        miss = err.abs() > tol
        if rounds == max_pulses or not bool(miss.any()):
            return g, rounds
        if bool((miss & (err > 0)).any()):
            xbar.pulse(name, miss & (err > 0), +1, amplitude_v)
        if bool((miss & (err < 0)).any()):
            xbar.pulse(name, miss & (err < 0), -1, amplitude_v)
    return g, max_pulses
