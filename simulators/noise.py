"""Read-noise models: what a voltmeter adds to each sample of a node voltage.

Each model is a frozen pydantic model, so the config *is* the model and a
calibration file round-trips through YAML (`simulators/calibration.py`).
Additive models implement `sample(shape, t_s, generator, like, state)`
returning one noise draw per sample; models that transform the reading (ADC
quantization) implement `apply(values)`.  Every draw takes the crossbar's
generator: same seed, same noise.

Time-correlated models (`PinkRead`, `TelegraphRead`) are continuous in time:
they keep one state per node in the `state` dict that `ReadChain` owns (and
checkpoints), and advance it exactly from the previous sample time to each
sample time in `t_s`, however far apart.  The twin reads the rows of a batch
at the same timestamps, so they share a node's slow noise; white noise stays
independent per row.

The README (simulators/README.md) gives each model's theory: PSD, dwell
times, and how the mean of N samples shrinks.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, model_validator
from torch import Tensor

from hil.config import Strict


def _chunk_len(terms: int, nodes: int) -> int:
    """Samples per block of the exact Ornstein-Uhlenbeck update.

    A block of L samples costs one `(K, L, L) @ (K, L, nodes)` product plus a
    fixed Python overhead, so the cost per sample is about
    `overhead / L + K L nodes`: L ~ sqrt(overhead / (K nodes)), 128 for one
    node, 4 for a thousand.
    """
    return max(4, min(128, int(math.sqrt(2.5e5 / (terms * nodes)))))



class GaussianRead(Strict):
    """White Gaussian read noise, the paper's `V_samp = V_att + sigma dB_t`.

    Mean of N samples: standard deviation `sigma_v / sqrt(N)`.
    """

    model_config = ConfigDict(frozen=True)
    kind: Literal["gaussian"] = "gaussian"
    sigma_v: NonNegativeFloat = Field(description="standard deviation of one sample (V)")
    stateful: ClassVar[bool] = False

    def sample(
        self,
        shape: tuple[int, ...],
        t_s: Tensor,
        generator: torch.Generator,
        like: Tensor,
        state: dict[str, Any] | None = None,
    ) -> Tensor:
        return self.sigma_v * torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)

    def mean_variance(self, n: int, dt_s: float) -> float:
        """Variance of the mean of n samples spaced dt_s apart (V^2)."""
        return self.sigma_v**2 / n


class PinkRead(Strict):
    """1/f (flicker) noise: one-sided PSD `S(f) = amplitude_v^2 * (1 Hz / f)` between two corners.

    Below `corner_hz` the spectrum flattens (the slowest trap), which keeps the
    variance finite; above `f_max_hz` it falls as 1/f^2.  It is built, as in
    McWhorter's model, from `K` Ornstein-Uhlenbeck processes with rates spaced
    `per_decade` per decade from `2 pi corner_hz` to `2 pi f_max_hz`, each of
    variance `amplitude_v^2 * d` (d the spacing in ln f, trapezoid weights at
    both ends); each is advanced exactly between sample times.  Total variance
    about `amplitude_v^2 * ln(f_max_hz / corner_hz)`.

    `amplitude_v` is the square root of the PSD at 1 Hz (V/sqrt(Hz) times
    sqrt(Hz)); a 1/f corner `f_c` measured against a white floor `sigma` at
    sample period `dt` gives `amplitude_v^2 = 2 sigma^2 dt f_c`.
    """

    model_config = ConfigDict(frozen=True)
    kind: Literal["pink"] = "pink"
    amplitude_v: NonNegativeFloat = Field(description="sqrt of the one-sided PSD at 1 Hz (V)")
    corner_hz: PositiveFloat = Field(description="low-frequency corner below which the PSD is flat (Hz)")
    f_max_hz: PositiveFloat = Field(1e6, description="high-frequency corner above which the PSD falls as 1/f^2 (Hz)")
    per_decade: int = Field(3, ge=1, le=20, description="Ornstein-Uhlenbeck terms per decade (accuracy)")
    stateful: ClassVar[bool] = True

    @model_validator(mode="after")
    def _band(self) -> PinkRead:
        if self.f_max_hz <= self.corner_hz:
            raise ValueError(f"f_max_hz ({self.f_max_hz:g}) must exceed corner_hz ({self.corner_hz:g})")
        return self

    def terms(self) -> tuple[Tensor, Tensor]:
        """Rates (1/s) and variances (V^2) of the Ornstein-Uhlenbeck terms, float64."""
        span = math.log(self.f_max_hz / self.corner_hz)
        k = max(2, math.ceil(span / math.log(10.0) * self.per_decade) + 1)
        d = span / (k - 1)
        f = self.corner_hz * torch.exp(d * torch.arange(k, dtype=torch.float64))
        var = torch.full((k,), self.amplitude_v**2 * d, dtype=torch.float64)
        var[0] *= 0.5
        var[-1] *= 0.5
        return 2.0 * math.pi * f, var

    def psd(self, f_hz: Tensor) -> Tensor:
        """One-sided PSD of the continuous-time model (V^2/Hz), the sum of its Lorentzians."""
        rates, var = self.terms()
        w = 2.0 * math.pi * f_hz.to(torch.float64).unsqueeze(-1)
        return (4.0 * var * rates / (rates**2 + w**2)).sum(-1)

    def mean_variance(self, n: int, dt_s: float) -> float:
        """Variance of the mean of n samples spaced dt_s apart (V^2), exact for this model.

        For `1/(2 pi f_max) << n dt << 1/(2 pi corner)` it is about
        `amplitude_v^2 * ln(1 / (2 pi corner_hz n dt_s))`: it shrinks only
        logarithmically in n, not as 1/n, and never below the power under the corner.
        """
        rates, var = self.terms()
        return float((var * _ar1_mean_factor(torch.exp(-rates * dt_s), n)).sum())

    def sample(
        self,
        shape: tuple[int, ...],
        t_s: Tensor,
        generator: torch.Generator,
        like: Tensor,
        state: dict[str, Any] | None = None,
    ) -> Tensor:
        """Noise of shape `shape` (samples first, nodes last); rows in between share it."""
        dev = like.device
        rates, var = (t.to(dev) for t in self.terms())
        sd = var.sqrt()
        nodes = shape[-1]
        t = t_s.to(device=dev, dtype=torch.float64)
        state = {} if state is None else state
        if "x" not in state:
            state["x"] = sd.unsqueeze(1) * torch.randn(
                (len(rates), nodes), generator=generator, dtype=torch.float64, device=dev
            )
            state["t"] = torch.tensor(float(t[0]), dtype=torch.float64)
        x, t_prev = state["x"].to(dev), float(state["t"])
        out = []
        kernel, spacing = None, None
        chunk = _chunk_len(len(rates), nodes)
        for start in range(0, len(t), chunk):
            tc = t[start : start + chunk]
            dt = torch.diff(tc, prepend=tc.new_tensor([t_prev])).clamp_min(0.0)
            # exp(-rate (t_i - t_j)) for j <= i; evenly spaced chunks (the usual case) share it
            inner = dt[1:]
            if kernel is None or kernel.shape[-1] != len(tc) or not torch.allclose(inner, spacing, rtol=1e-9, atol=0):
                gap = tc.view(1, -1, 1) - tc.view(1, 1, -1)  # (1, L, L): t_i - t_j
                # j > i is the future: an infinite gap makes its weight exactly 0 (no tril, which is
                # slow for tiny tensors on a busy multi-threaded CPU)
                lower = torch.arange(len(tc), device=dev)
                gap = torch.where(lower.view(-1, 1) >= lower.view(1, -1), gap.clamp_min(0.0), math.inf)
                kernel = torch.exp(-rates.view(-1, 1, 1) * gap)  # (K, L, L)
                spacing = inner
            b = sd.view(-1, 1) * torch.sqrt(-torch.expm1(-2.0 * rates.view(-1, 1) * dt.view(1, -1)))  # (K, L)
            z = torch.randn((len(rates), len(tc), nodes), generator=generator, dtype=torch.float64, device=dev)
            decay = torch.exp(-rates.view(-1, 1) * (tc.view(1, -1) - t_prev).clamp_min(0.0))  # (K, L)
            xs = decay.unsqueeze(-1) * x.unsqueeze(1) + kernel @ (b.unsqueeze(-1) * z)  # (K, L, nodes)
            out.append(xs.sum(0))
            x, t_prev = xs[:, -1], float(tc[-1])
        state["x"], state["t"] = x, torch.tensor(t_prev, dtype=torch.float64)
        noise = torch.cat(out).to(like.dtype)  # (N, nodes)
        return noise.view(noise.shape[0], *([1] * (len(shape) - 2)), nodes).expand(shape)


class TelegraphRead(Strict):
    """Random telegraph noise: one trap per node, `+amplitude_v` while captured, 0 while empty.

    Empty -> captured at `capture_rate_hz`, captured -> empty at
    `emission_rate_hz`, so dwell times are exponential with means `1/capture`
    (empty) and `1/emission` (captured).  The two-state Markov chain is advanced
    exactly between sample times.  Stationary mean `amplitude_v p`,
    `p = capture / (capture + emission)`; list several entries for several traps.
    """

    model_config = ConfigDict(frozen=True)
    kind: Literal["telegraph"] = "telegraph"
    amplitude_v: float = Field(description="step of the reading while the trap is captured (V, signed)")
    capture_rate_hz: PositiveFloat = Field(description="rate of empty -> captured transitions (1/s)")
    emission_rate_hz: PositiveFloat = Field(description="rate of captured -> empty transitions (1/s)")
    stateful: ClassVar[bool] = True

    @property
    def occupancy(self) -> float:
        return self.capture_rate_hz / (self.capture_rate_hz + self.emission_rate_hz)

    def mean_variance(self, n: int, dt_s: float) -> float:
        """Variance of the mean of n samples spaced dt_s apart (V^2), exact.

        Correlation `exp(-(capture + emission) |tau|)`: like white noise (1/n) once
        `n dt >> 1/(capture + emission)`, but with variance inflated by the
        correlation time; no reduction at all while `n dt << 1/(capture + emission)`.
        """
        p = self.occupancy
        rho = torch.tensor([math.exp(-(self.capture_rate_hz + self.emission_rate_hz) * dt_s)], dtype=torch.float64)
        return float(self.amplitude_v**2 * p * (1 - p) * _ar1_mean_factor(rho, n)[0])

    def sample(
        self,
        shape: tuple[int, ...],
        t_s: Tensor,
        generator: torch.Generator,
        like: Tensor,
        state: dict[str, Any] | None = None,
    ) -> Tensor:
        """Noise of shape `shape` (samples first, nodes last); rows in between share it."""
        dev = like.device
        nodes = shape[-1]
        t = t_s.to(device=dev, dtype=torch.float64)
        p = self.occupancy
        state = {} if state is None else state
        if "s" not in state:
            state["s"] = torch.rand((nodes,), generator=generator, dtype=torch.float64, device=dev) < p
            state["t"] = torch.tensor(float(t[0]), dtype=torch.float64)
        s_prev, t_prev = state["s"].to(dev), float(state["t"])
        dt = torch.diff(t, prepend=t.new_tensor([t_prev])).clamp_min(0.0)
        decay = torch.exp(-(self.capture_rate_hz + self.emission_rate_hz) * dt).unsqueeze(1)  # (N, 1)
        stay = p + (1.0 - p) * decay  # P(captured at t_i | captured at t_{i-1})
        enter = p * (1.0 - decay)  # P(captured at t_i | empty at t_{i-1}); enter <= stay
        u = torch.rand((len(t), nodes), generator=generator, dtype=torch.float64, device=dev)
        # Each step maps the previous state through "set" (u < enter), "reset" (u >= stay) or
        # "keep"; the state is the value of the latest set/reset, or s_prev if none came yet.
        reset = (u < enter) | (u >= stay)
        idx = torch.arange(len(t), device=dev).unsqueeze(1).expand(len(t), nodes)
        last = torch.where(reset, idx, torch.full_like(idx, -1)).cummax(dim=0).values
        value = u < enter
        s = torch.where(last >= 0, value.gather(0, last.clamp_min(0)), s_prev.unsqueeze(0))
        state["s"], state["t"] = s[-1], torch.tensor(float(t[-1]), dtype=torch.float64)
        noise = (self.amplitude_v * s.to(like.dtype)).view(len(t), *([1] * (len(shape) - 2)), nodes)
        return noise.expand(shape)


class OffsetRead(Strict):
    """A fixed offset per node (a calibration error): drawn once, `N(0, sigma_v^2)` across nodes, then constant.

    No amount of averaging removes it (the mean of N reads keeps it whole), but
    it cancels exactly in any difference of two reads of the same node, so in
    both EP forms (centered and one-sided); `simulators/README.md` gives the
    second-order term that remains in the block update.  Kept in the chain's
    state, so a checkpoint holds it.
    """

    model_config = ConfigDict(frozen=True)
    kind: Literal["offset"] = "offset"
    sigma_v: NonNegativeFloat = Field(description="standard deviation of the offsets across nodes (V)")
    stateful: ClassVar[bool] = True

    def mean_variance(self, n: int, dt_s: float) -> float:
        """Variance of the mean of n reads across nodes (V^2): sigma_v^2 whatever n."""
        return self.sigma_v**2

    def sample(
        self,
        shape: tuple[int, ...],
        t_s: Tensor,
        generator: torch.Generator,
        like: Tensor,
        state: dict[str, Any] | None = None,
    ) -> Tensor:
        """The node offsets, the same at every sample and row."""
        state = {} if state is None else state
        if "c" not in state:
            state["c"] = self.sigma_v * torch.randn(
                (shape[-1],), generator=generator, dtype=torch.float64, device=like.device
            )
        c = state["c"].to(device=like.device, dtype=like.dtype)
        return c.view(*([1] * (len(shape) - 1)), shape[-1]).expand(shape)


class AdcQuantization(Strict):
    """An ADC of `bits` bits over `[v_min, v_max]`, applied to each sample before averaging.

    Mid-rise: a reading becomes the centre of its code's bin, step
    `q = (v_max - v_min) / 2^bits`; readings outside the range saturate at the
    first or last code (counted, never silent).  With input noise above about
    q/2 the error is uniform on `[-q/2, q/2]`, variance `q^2/12`, and averages
    away like white noise; on a noiseless input it is a fixed bias that no
    averaging removes.
    """

    model_config = ConfigDict(frozen=True)
    kind: Literal["adc"] = "adc"
    bits: int = Field(ge=1, le=32, description="resolution (bits)")
    v_min: float = Field(description="lowest input of the range (V)")
    v_max: float = Field(description="highest input of the range (V)")
    stateful: ClassVar[bool] = False

    @model_validator(mode="after")
    def _range(self) -> AdcQuantization:
        if self.v_max <= self.v_min:
            raise ValueError(f"v_max ({self.v_max:g}) must exceed v_min ({self.v_min:g})")
        return self

    @property
    def step_v(self) -> float:
        return (self.v_max - self.v_min) / 2**self.bits

    def apply(self, values: Tensor) -> Tensor:
        q = self.step_v
        code = torch.floor((values - self.v_min) / q).clamp(0, 2**self.bits - 1)
        return self.v_min + (code + 0.5) * q

    def saturated(self, values: Tensor) -> int:
        return int(((values < self.v_min) | (values > self.v_max)).sum().item())


ReadNoise = Annotated[
    GaussianRead | PinkRead | TelegraphRead | OffsetRead | AdcQuantization, Field(discriminator="kind")
]


def _ar1_mean_factor(rho: Tensor, n: int) -> Tensor:
    """Var(mean of n samples) / Var(one sample) for a stationary AR(1) of lag-one correlation rho."""
    m = torch.arange(1, n, dtype=torch.float64)
    return (1.0 / n + 2.0 / n**2 * ((n - m) * rho.unsqueeze(-1) ** m).sum(-1)).reshape(rho.shape)


class ReadChain:
    """The composed read path of one crossbar: additive models, then transforms.

    When every model is Gaussian the mean of N samples is drawn exactly as
    `N(V, sigma^2/N)` at O(1) cost in N, and its sample standard deviation
    from the chi distribution; otherwise N samples are drawn explicitly.
    Time-correlated models keep their per-node state here, under the key the
    caller passes (one per layer); `state_dict` checkpoints it.
    """

    def __init__(self, models: list[BaseModel]) -> None:
        self.models = [m for m in models if not (isinstance(m, GaussianRead) and m.sigma_v == 0.0)]
        self.state: dict[str, dict[str, Any]] = {}
        self.adc_saturated = 0

    def __repr__(self) -> str:
        return f"ReadChain({self.models!r})"

    @property
    def is_noiseless(self) -> bool:
        return not self.models

    @property
    def is_gaussian(self) -> bool:
        return all(isinstance(m, GaussianRead) for m in self.models)

    @property
    def sigma_v(self) -> float:
        """Total white-noise standard deviation of one sample (V)."""
        return math.sqrt(sum(m.sigma_v**2 for m in self.models if isinstance(m, GaussianRead)))

    def exact_mean(self, v: Tensor, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Mean and sample std of n Gaussian reads of v, without drawing the n reads."""
        sigma = self.sigma_v
        mean = v + (sigma / math.sqrt(n)) * torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
        if n == 1:
            return mean, torch.zeros_like(v)
        # (n-1) s^2 / sigma^2 ~ chi^2_{n-1}; Wilson-Hilferty's cube-of-normal form is
        # accurate to < 1e-3 in the quantiles for n >= 2 and costs one draw per node.
        k = n - 1
        z = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
        chi2_over_k = (1.0 - 2.0 / (9 * k) + z * math.sqrt(2.0 / (9 * k))).clamp_min(0.0) ** 3
        return mean, sigma * chi2_over_k.sqrt()

    def samples(self, v: Tensor, n: int, t_s: Tensor, generator: torch.Generator, key: str = "") -> Tensor:
        """n explicit reads of v, shape (n, *v.shape); `key` names v's nodes for time-correlated state."""
        out = v.unsqueeze(0).expand(n, *v.shape).clone()
        for i, m in enumerate(self.models):
            if hasattr(m, "sample"):
                state = self.state.setdefault(f"{i}:{key}", {}) if m.stateful else None
                out += m.sample(out.shape, t_s, generator, out, state)
        for m in self.models:
            if hasattr(m, "apply"):
                self.adc_saturated += m.saturated(out)
                out = m.apply(out)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": {k: {n: t.detach().cpu().clone() for n, t in s.items()} for k, s in self.state.items()},
            "adc_saturated": self.adc_saturated,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {k: {n: t.clone() for n, t in s.items()} for k, s in state.get("state", {}).items()}
        self.adc_saturated = int(state.get("adc_saturated", 0))
