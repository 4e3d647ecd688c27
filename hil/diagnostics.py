"""EP signal diagnostics: how far the nudge moves each layer, against the read noise on it.

The EP update of a layer is built from `ds = s(beta_2) - s(beta_1)`, the difference of
its two measured states.  Read noise of standard deviation `sigma` per read, averaged
over N reads, adds `sigma / sqrt(N)` to every measured voltage; once that is larger
than the typical `|ds|` of a layer, the layer's update is mostly noise.  Per layer and
per epoch this records, from `Measurement`s only (so it runs unchanged on a board):

- `signal_median`: median of `|ds|` over active nodes (the median of the per-batch medians,
  so no epoch-sized buffer is kept), in volts;
- `signal_rms`: rms of `|ds|` over all active nodes of the epoch, in volts;
- `read_sigma`: the single-read noise: the pooled per-node sample std of the N reads when
  N > 1 ("measured"), else the crossbar's configured or calibrated `read_sigma_v`
  ("configured"); None when neither is known;
- `noise`: the noise on each measured voltage, `read_sigma / sqrt(N)`;
- `snr`: `signal_median / noise` (None when the noise is zero or unknown).  Pure noise
  gives `snr` of about 0.95 (the median of |N(0, 2)|), so snr <~ 1 means noise-dominated;
- `active_frac`: the fraction of node readings counted as active.

A hidden node is active in a reading when either phase reads it beyond 3 x `noise` from
zero (beyond 0 without noise): a diode-clamped node carries no EP signal, only noise.
Output nodes are linear and always active.  Nothing here draws random numbers or
touches the parameters, so a run's conductances do not depend on it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hil.interface import Measurement

ACTIVE_K = 3.0
#: Critical SNR of a layer's update for `predict_onset` (`hil diagnose`), set once from one
#: measurement: the hidden-layer signal of a noiseless MNIST run of the noise_sweep-small
#: recipe (3.19e-4 V) over that sweep's measured sigma_onset (4.41e-4 V).  How, and how well it
#: predicts other settings: docs/results/README.md ("Predicting the onset").
DEFAULT_SNR_CRIT = 0.73
#: the batch size of the sweep that set DEFAULT_SNR_CRIT (noise_sweep-small, drn-1h-mnist recipe)
REF_BATCH = 4
FIELDS = ("signal_median", "signal_rms", "read_sigma", "noise", "snr", "active_frac")


class SignalMonitor:
    """Accumulates the per-layer EP signal of one epoch, batch by batch."""

    def __init__(self, depth: int, read_sigma_v: float | None = None) -> None:
        self.depth = depth
        self.read_sigma_v = read_sigma_v
        self.reset()

    def reset(self) -> None:
        self._medians: list[list[float]] = [[] for _ in range(self.depth)]
        self._sumsq = [0.0] * self.depth
        self._active = [0] * self.depth
        self._total = [0] * self.depth
        self._var_sum = [0.0] * self.depth  # sum of per-node sample variances of the N reads
        self._var_count = [0] * self.depth
        self._n_samples = 1

    def add(self, s1: Measurement, s2: Measurement) -> None:
        """Record one batch's two nudged (or free and nudged) measurements."""
        n = s2.n_samples
        self._n_samples = n
        sigma = self._read_sigma_now(s1, s2)
        noise = (sigma or 0.0) / math.sqrt(n)
        for l, (v1, v2) in enumerate(zip(s1.voltages, s2.voltages, strict=True)):
            ds = (v2 - v1).abs()
            if l < self.depth - 1:  # hidden layer: only nodes the diodes let through
                mask = torch.maximum(v1.abs(), v2.abs()) > ACTIVE_K * noise
                a = ds[mask]
            else:
                a = ds.reshape(-1)
            self._total[l] += ds.numel()
            if a.numel():
                a64 = a.double()
                self._medians[l].append(batch_median(a64))
                self._sumsq[l] += float((a64**2).sum())
                self._active[l] += a.numel()

    def _read_sigma_now(self, s1: Measurement, s2: Measurement) -> float | None:
        """Single-read noise for this batch: pooled sample std of the N reads, else the configured value."""
        if s2.n_samples > 1:
            var = 0.0
            count = 0
            for m in (s1, s2):
                for l, sd in enumerate(m.std):
                    v = float((sd.double() ** 2).sum())
                    self._var_sum[l] += v
                    self._var_count[l] += sd.numel()
                    var += v
                    count += sd.numel()
            return math.sqrt(var / count) if count else None
        return self.read_sigma_v

    def summary(self) -> list[dict[str, Any]]:
        """One dict per layer (`layer` = 1..depth, then `FIELDS`, then `noise_source`)."""
        out = []
        for l in range(self.depth):
            med = _median(self._medians[l])
            rms = math.sqrt(self._sumsq[l] / self._active[l]) if self._active[l] else None
            if self._var_count[l]:
                sigma, source = math.sqrt(self._var_sum[l] / self._var_count[l]), "measured"
            else:
                sigma, source = self.read_sigma_v, "configured" if self.read_sigma_v is not None else "unknown"
            noise = sigma / math.sqrt(self._n_samples) if sigma is not None else None
            snr = med / noise if med is not None and noise else None
            out.append({
                "layer": l + 1, "signal_median": med, "signal_rms": rms, "read_sigma": sigma, "noise": noise,
                "snr": snr, "active_frac": self._active[l] / self._total[l] if self._total[l] else None,
                "noise_source": source,
            })
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain lists and floats, for a checkpoint in the middle of an epoch."""
        return {"medians": [list(m) for m in self._medians], "sumsq": list(self._sumsq),
                "active": list(self._active), "total": list(self._total), "var_sum": list(self._var_sum),
                "var_count": list(self._var_count), "n_samples": self._n_samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._medians = [list(m) for m in state["medians"]]
        self._sumsq, self._active, self._total = list(state["sumsq"]), list(state["active"]), list(state["total"])
        self._var_sum, self._var_count = list(state["var_sum"]), list(state["var_count"])
        self._n_samples = int(state["n_samples"])


def batch_median(t: Tensor) -> float:
    """`torch.quantile(t, 0.5)` to the bit (its order statistics and its lerp), by one partial sort.

    quantile sorts the whole batch (~100 us for 4,096 values, every batch of a run);
    `numpy.partition` finds the two middle values in a tenth of that.
    """
    arr = t.detach().cpu().numpy().ravel()
    n = arr.size
    pos = 0.5 * (n - 1)
    i = int(pos)
    j = min(i + 1, n - 1)
    if np.isnan(arr).any():  # quantile's rule: any NaN gives NaN
        return math.nan
    part = np.partition(arr, [i, j])
    lo, hi, w = float(part[i]), float(part[j]), pos - i
    if w == 0.0:
        return lo
    return lo + w * (hi - lo) if w < 0.5 else hi - (hi - lo) * (1.0 - w)  # ATen's lerp, both branches


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])


def layer_name(layer: int, depth: int) -> str:
    """'h1', 'h2', ... for hidden layers and 'out' for the output layer."""
    return "out" if layer == depth else f"h{layer}"


def summary_text(layers: list[dict[str, Any]]) -> str:
    """The epoch line's tail: `EP signal h1 1.2e-04 V (SNR 3.1), out 8.0e-03 V (SNR inf)`."""
    depth = len(layers)
    parts = []
    for r in layers:
        sig = "-" if r["signal_median"] is None else f"{r['signal_median']:.1e} V"
        snr = "-" if r["snr"] is None else f"{r['snr']:.3g}"
        if r["snr"] is None and r["noise"] == 0.0:
            snr = "inf"
        parts.append(f"{layer_name(r['layer'], depth)} {sig} (SNR {snr})")
    return "EP signal " + ", ".join(parts)


TOL_SHARE = 0.1  # a solver tolerance above this share of a layer's EP signal makes the update inexact


def tolerance_warning(layers: list[dict[str, Any]], tol_v: float) -> str | None:
    """A warning when the twin's solver tolerance is a sizeable share of some layer's EP signal.

    The solver stops when no node moves by more than tol_v in a sweep, so each phase's
    equilibrium is off by about that much; the EP update is a difference of two phases, and a
    recipe whose signal is only ~10 tolerances (small boards at mV targets) learns partly from
    the solver's rounding (digits-32-16-10 at the default 1e-6 V: its 1e-5 V hidden signal).
    """
    depth = len(layers)
    weak = [(r, r["signal_median"]) for r in layers if r["signal_median"] is not None
            and 0.0 < r["signal_median"] < tol_v / TOL_SHARE]
    if not weak:
        return None
    r, sig = min(weak, key=lambda t: t[1])
    return (f"crossbar.tol_v = {tol_v:.3g} V is {tol_v / sig:.0%} of the {layer_name(r['layer'], depth)} EP signal "
            f"({sig:.2g} V): the twin's equilibria are that inexact for this recipe; set crossbar.tol_v to "
            f"{sig * TOL_SHARE / 100:.0e} or less (a few more sweeps per phase)")


def predict_onset(signal_v: float, snr_crit: float, n_samples: int = 1, batch_size: int = REF_BATCH) -> float:
    """Read noise per sample at which a layer's update SNR falls to `snr_crit`.

    signal / snr_crit * sqrt(N) * sqrt(B / REF_BATCH): an update averages the noise of N reads
    of each of B samples, while the signal (the mean gradient) does not shrink with either.
    """
    return signal_v / snr_crit * math.sqrt(n_samples * batch_size / REF_BATCH)
