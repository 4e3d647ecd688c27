"""Adaptive reads (`train.adaptive`): the EP controller picks N, and optionally beta, batch by batch.

Why: the hidden layer's EP signal |s(beta_2) - s(beta_1)| is small (1e-4 V in
the paper's network) and shrinks as training converges, while read noise
stays; the N that keeps the update above the noise is not known before a run
and changes during it.  From `Measurement`s only (so it runs on a board):

- noise: the N-sample std of each node (`Measurement.std`), pooled over the
  layer's nodes and rows; for white noise the difference of two N-sample
  means has variance `2 sigma^2 / N`.  This is why `n_min >= 2`: one read
  has no std.  Time-correlated noise (1/f, telegraph) makes the within-window
  std an underestimate; `hil characterize` measures the Allan deviation that
  tells how far (docs/characterization.md).
- signal: the rms of the difference over active nodes, with the noise's
  share subtracted (`rms^2 - noise^2`), per unit beta.
- update SNR = signal / noise; the rule `N = 2 (T sigma / S)^2` gives the
  smallest N with SNR >= T (target T) for the smoothed S and sigma of the
  previous batches.  If that exceeds `n_max`, N = n_max and beta rises (signal
  is proportional to beta to first order) up to `beta_max`; it returns to the
  configured beta when N fits again.

The state (smoothed signal and noise, current N and beta) is checkpointed with
the run, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from hil.interface import Measurement


class AdaptiveConfig(BaseModel):
    """`train.adaptive`: keep the hidden layers' EP update SNR above a target by choosing N per batch."""

    model_config = ConfigDict(extra="forbid")

    snr_target: PositiveFloat = Field(2.0, description="update SNR wanted on the worst hidden layer")
    n_min: PositiveInt = Field(2, ge=2, description="fewest reads per node (>= 2: the noise comes from their std)")
    n_max: PositiveInt = Field(64, description="most reads per node per phase")
    beta_max: PositiveFloat | None = Field(None, description="raise beta up to this when n_max is not enough")
    smoothing: float = Field(0.9, ge=0.0, lt=1.0, description="weight of the past in the running estimates")
    active_sigmas: PositiveFloat = Field(3.0, description="a node is active if |V| exceeds this many noise stds")

    @model_validator(mode="after")
    def _range(self) -> AdaptiveConfig:
        if self.n_max < self.n_min:
            raise ValueError(f"n_max ({self.n_max}) must be >= n_min ({self.n_min})")
        return self


@dataclass
class LayerSNR:
    """One layer's EP update: rms signal over active nodes, noise of the difference, their ratio."""

    signal_v: float
    noise_v: float
    read_sigma_v: float  # single-read std, pooled
    active: float  # fraction of (row, node) entries counted as active

    @property
    def snr(self) -> float:
        return self.signal_v / self.noise_v if self.noise_v > 0 else math.inf


def update_snr(m1: Measurement, m2: Measurement, layer: int, active_sigmas: float = 3.0) -> LayerSNR:
    """SNR of `s2 - s1` on layer `layer` (1-based), from the two reads of an EP update."""
    v1, v2 = m1.voltages[layer - 1].double(), m2.voltages[layer - 1].double()
    n = m2.n_samples
    read_var = 0.5 * float((m1.std[layer - 1].double() ** 2 + m2.std[layer - 1].double() ** 2).mean())
    noise_var = 2.0 * read_var / n
    d = v2 - v1
    active = (0.5 * (v1 + v2)).abs() > active_sigmas * math.sqrt(read_var / n)
    frac = float(active.double().mean())
    rms2 = float((d[active] ** 2).mean()) if frac > 0 else 0.0
    return LayerSNR(math.sqrt(max(rms2 - noise_var, 0.0)), math.sqrt(noise_var), math.sqrt(read_var), frac)


class AdaptiveReads:
    """The controller's read schedule: N and beta for the next batch, from the SNR of the previous ones."""

    def __init__(self, cfg: AdaptiveConfig, beta: float, n_start: int, hidden_layers: int) -> None:
        self.cfg = cfg
        self.beta_base = beta
        self.hidden = list(range(1, hidden_layers + 1))
        self.n_samples = min(max(n_start, cfg.n_min), cfg.n_max)
        self.beta = beta
        self.signal2_per_beta2: float | None = None  # smoothed signal^2 / beta^2 of the worst layer
        self.read_var: float | None = None  # smoothed single-read variance of that layer
        self.last: list[LayerSNR] = []

    def observe(self, m1: Measurement, m2: Measurement, beta_used: float) -> float:
        """Take in one update's reads; set N and beta for the next batch; returns this batch's worst SNR."""
        self.last = [update_snr(m1, m2, l, self.cfg.active_sigmas) for l in self.hidden]
        worst = min(self.last, key=lambda s: s.snr)
        a = self.cfg.smoothing
        s2 = (worst.signal_v / beta_used) ** 2
        r2 = worst.read_sigma_v**2
        self.signal2_per_beta2 = s2 if self.signal2_per_beta2 is None else a * self.signal2_per_beta2 + (1 - a) * s2
        self.read_var = r2 if self.read_var is None else a * self.read_var + (1 - a) * r2
        self._plan()
        return worst.snr

    def _plan(self) -> None:
        cfg = self.cfg
        assert self.signal2_per_beta2 is not None and self.read_var is not None
        signal2 = self.signal2_per_beta2 * self.beta_base**2
        need = 2.0 * cfg.snr_target**2 * self.read_var / signal2 if signal2 > 0 else math.inf
        if need <= cfg.n_max:
            self.n_samples, self.beta = max(cfg.n_min, math.ceil(need)), self.beta_base
            return
        self.n_samples = cfg.n_max
        if cfg.beta_max is not None:
            scale = math.sqrt(need / cfg.n_max) if math.isfinite(need) else math.inf
            self.beta = min(cfg.beta_max, max(self.beta_base, self.beta_base * scale))

    def state_dict(self) -> dict[str, float | int | None]:
        return {"n_samples": self.n_samples, "beta": self.beta, "signal2_per_beta2": self.signal2_per_beta2,
                "read_var": self.read_var}

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        self.n_samples = int(state["n_samples"])  # type: ignore[arg-type]
        self.beta = float(state["beta"])  # type: ignore[arg-type]
        self.signal2_per_beta2 = state["signal2_per_beta2"]  # type: ignore[assignment]
        self.read_var = state["read_var"]  # type: ignore[assignment]


def batch_reads(n_samples: int, centered: bool, batch: int) -> int:
    """Reads per node that one EP batch takes: N per phase, 3 phases centered (2 one-sided), each example."""
    return n_samples * (3 if centered else 2) * batch

