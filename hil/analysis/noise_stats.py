"""Statistics of measured noise: pure functions on arrays, no crossbar, no simulator.

What `hil characterize` and `hil calibrate` compute from the raw reads of a
board or of the twin: histograms, Allan deviation, power spectral density, fits
of white + 1/f read noise, telegraph detection, write noise vs conductance,
range, levels, drift, and the samples-per-read N that meets a noise target.
This module holds the read-noise statistics; telegraph detection is in
`telegraph.py`, the choice of N in `averaging.py`, the programming fits in
`device_fits.py` (all in `hil.analysis`).

Conventions (the twin's calibration format uses the same, see simulators/README.md):

- a series `x` of one node, sampled every `dt_s` seconds;
- one-sided PSD `S(f)` in V^2/Hz, so white noise of standard deviation `sigma`
  per sample has `S = 2 sigma^2 dt_s`, and 1/f noise of amplitude `A` has
  `S = A^2 (1 Hz / f)`;
- overlapping Allan variance of the series taken as "frequency" data, so that
  `adev(m dt)` is the standard deviation of the difference of two adjacent
  means of m samples, divided by sqrt(2): `sigma^2 / m` for white noise and
  `2 ln 2 A^2` (flat, the flicker floor) for 1/f noise.
"""


from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import signal

from hil.analysis.telegraph import TelegraphFit, detect_telegraph

LN2X2 = 2.0 * math.log(2.0)  # Allan variance of 1/f noise per unit A^2


def _plain(obj: Any) -> Any:
    """Dataclass -> JSON-ready dict (numpy arrays to lists, numpy scalars to floats)."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def as_dict(result: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A result dataclass as plain JSON-ready data, without the fields named in `skip`."""
    return _plain({k: v for k, v in asdict(result).items() if k not in skip})


# --- basic statistics ----------------------------------------------------------------------
@dataclass
class Histogram:
    edges_v: np.ndarray
    counts: np.ndarray


def histogram(x: np.ndarray, bins: int = 80) -> Histogram:
    counts, edges = np.histogram(np.asarray(x, dtype=np.float64), bins=bins)
    return Histogram(edges, counts)


def sample_period(t_s: np.ndarray) -> tuple[float, float]:
    """Median sample period and the total dead time (gaps longer than 1.5 periods), both in s."""
    d = np.diff(np.asarray(t_s, dtype=np.float64))
    if d.size == 0:
        raise ValueError("need at least two timestamps")
    dt = float(np.median(d))
    if not dt > 0:
        raise ValueError("timestamps do not increase")
    gaps = d[d > 1.5 * dt]
    return dt, float((gaps - dt).sum())


# --- Allan deviation -----------------------------------------------------------------------
@dataclass
class Allan:
    tau_s: np.ndarray
    adev_v: np.ndarray
    err_v: np.ndarray
    n: np.ndarray

    def minimum(self) -> tuple[float, float]:
        """(tau, adev) where averaging stops helping: the smallest adev measured."""
        i = int(np.argmin(self.adev_v))
        return float(self.tau_s[i]), float(self.adev_v[i])


def allan_deviation(x: np.ndarray, dt_s: float, taus: str | np.ndarray = "octave") -> Allan:
    """Overlapping Allan deviation of a series of reads (allantools, "freq" data), in V."""
    import allantools

    tau, adev, err, n = allantools.oadev(np.asarray(x, dtype=np.float64), rate=1.0 / dt_s, data_type="freq",
                                         taus=taus)
    keep = n >= 8  # the last octaves rest on a handful of differences
    return Allan(np.asarray(tau)[keep], np.asarray(adev)[keep], np.asarray(err)[keep], np.asarray(n)[keep])


def telegraph_avar(tau_s: np.ndarray, var_v2: float, corr_s: float) -> np.ndarray:
    """Allan variance of a process with exponential autocorrelation (random telegraph noise).

    `var_v2 = A^2 p (1 - p)`, `corr_s = 1 / (capture + emission)`; with x = tau / corr_s,
    `AVAR = var (4 e^-x - e^-2x + 2x - 3) / x^2`: ~ (2/3) var x while tau << corr (no
    averaging gain), 2 var corr / tau beyond (white-like), the hump near tau ~ 2 corr.
    """
    tau = np.asarray(tau_s, dtype=np.float64)
    if var_v2 <= 0 or corr_s <= 0:
        return np.zeros_like(tau)
    x = np.maximum(tau / corr_s, 1e-12)
    small = x < 1e-3
    body = (4 * np.exp(-x) - np.exp(-2 * x) + 2 * x - 3) / np.where(small, 1.0, x) ** 2
    return var_v2 * np.where(small, 2.0 * x / 3.0, body)


def adev_model(tau_s: np.ndarray, sigma_v: float, amplitude_v: float, dt_s: float,
               telegraph: tuple[float, float] | None = None) -> np.ndarray:
    """Allan deviation of white (sigma per sample) plus 1/f (amplitude A) plus telegraph noise.

    `telegraph` is `(A^2 p (1 - p), 1 / (capture + emission))`, see `telegraph_avar`.
    """
    tau = np.asarray(tau_s, dtype=np.float64)
    tel = telegraph_avar(tau, *telegraph) if telegraph else 0.0
    return np.sqrt(sigma_v**2 * dt_s / tau + LN2X2 * amplitude_v**2 + tel)


# --- power spectral density ------------------------------------------------------------------
@dataclass
class Spectrum:
    f_hz: np.ndarray
    psd_v2_hz: np.ndarray
    segments: int


def psd(x: np.ndarray, dt_s: float, nperseg: int = 4096) -> Spectrum:
    """One-sided Welch PSD (Hann window, half overlap, mean removed per segment), V^2/Hz."""
    x = np.asarray(x, dtype=np.float64)
    nperseg = int(min(nperseg, x.size))
    f, s = signal.welch(x, fs=1.0 / dt_s, nperseg=nperseg, detrend="constant", scaling="density")
    segments = max(1, (x.size - nperseg) // (nperseg // 2) + 1)
    return Spectrum(f[1:], s[1:], segments)  # drop DC


def log_bin(f: np.ndarray, s: np.ndarray, per_decade: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average a spectrum in log-spaced frequency bins: (centre f, mean S, bins averaged)."""
    edges = np.logspace(np.log10(f[0]), np.log10(f[-1]) + 1e-9, int(np.log10(f[-1] / f[0]) * per_decade) + 2)
    idx = np.digitize(f, edges)
    fc, sc, nc = [], [], []
    for i in np.unique(idx):
        m = idx == i
        fc.append(np.exp(np.log(f[m]).mean()))
        sc.append(s[m].mean())
        nc.append(m.sum())
    return np.array(fc), np.array(sc), np.array(nc)


@dataclass
class WhitePinkFit:
    """`S(f) = 2 sigma^2 dt + A^2 / f` fitted to a Welch spectrum."""

    sigma_v: float
    amplitude_v: float
    sigma_rel_err: float
    amplitude_rel_err: float
    corner_1f_hz: float  # where the 1/f part equals the white floor
    f_lo_hz: float
    f_hi_hz: float
    dt_s: float

    def model(self, f_hz: np.ndarray) -> np.ndarray:
        return 2.0 * self.sigma_v**2 * self.dt_s + self.amplitude_v**2 / np.asarray(f_hz)


def fit_white_pink(spec: Spectrum, dt_s: float, f_hi_hz: float | None = None) -> WhitePinkFit:
    """Weighted least squares of `S = w + a/f` on the Welch estimate, iterated (IRLS).

    A Welch bin is a mean of about `segments` independent periodograms, so its
    relative error is about `1/sqrt(segments)` whatever the level: weights
    `1/model^2` make this a fit in relative error, where white and 1/f bins count
    alike.  The fitted `w` and `a` are clipped at zero (no 1/f -> amplitude 0).
    """
    f, s = spec.f_hz, spec.psd_v2_hz
    keep = f <= (f_hi_hz or f[-1])
    f, s = f[keep], s[keep]
    if not np.any(s > 0):  # constant reads: no noise to fit
        return WhitePinkFit(0.0, 0.0, math.inf, 0.0, math.inf, float(f[0]), float(f[-1]), dt_s)
    X = np.stack([np.ones_like(f), 1.0 / f], axis=1)
    coef = np.array([np.median(s), 0.0])
    for _ in range(20):
        model = np.maximum(X @ coef, 1e-300)
        w = 1.0 / model
        new, *_ = np.linalg.lstsq(X * w[:, None], s * w, rcond=None)
        new = np.maximum(new, 0.0)
        if np.allclose(new, coef, rtol=1e-9, atol=0):
            coef = new
            break
        coef = new
    model = np.maximum(X @ coef, 1e-300)
    Xw = X / model[:, None]
    # each bin: relative variance 1/segments (Welch with half overlap: ~ 1/(0.95 * segments) for Hann)
    cov = np.linalg.pinv(Xw.T @ Xw) / (0.95 * spec.segments)
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    wh, a = coef
    if a < 2.0 * err[1]:  # 1/f not significant at two standard errors: report none
        a, err[1] = 0.0, 0.0
    sigma = math.sqrt(wh / (2.0 * dt_s))
    amp = math.sqrt(a)
    return WhitePinkFit(
        sigma_v=sigma,
        amplitude_v=amp,
        sigma_rel_err=0.5 * err[0] / wh if wh > 0 else math.inf,
        amplitude_rel_err=0.5 * err[1] / a if a > 0 else 0.0,
        corner_1f_hz=a / wh if wh > 0 else math.inf,
        f_lo_hz=float(f[0]),
        f_hi_hz=float(f[-1]),
        dt_s=dt_s,
    )



# --- quantization ------------------------------------------------------------------------------
def quantization_step(x: np.ndarray, max_levels: int = 4096) -> float | None:
    """The ADC step if the reads take few distinct values on a regular grid, else None."""
    u = np.unique(np.asarray(x, dtype=np.float64))
    if u.size < 3 or u.size > max_levels or u.size > x.size // 4:
        return None
    d = np.diff(u)
    q = float(np.min(d))
    if q <= 0 or np.max(np.abs(d / q - np.round(d / q))) > 0.05:
        return None
    return q


# --- one node, all of the above -----------------------------------------------------------------
@dataclass
class NodeNoise:
    """Everything `hil characterize` reports about one node."""

    name: str
    n: int
    dt_s: float
    mean_v: float
    std_v: float
    hist: Histogram
    allan: Allan
    spectrum: Spectrum
    fit: WhitePinkFit
    telegraph: TelegraphFit
    quant_step_v: float | None

    def summary(self) -> dict[str, Any]:
        tau_min, adev_min = self.allan.minimum()
        out = {
            "node": self.name, "n": self.n, "dt_s": self.dt_s, "mean_v": self.mean_v, "std_v": self.std_v,
            "white_sigma_v": self.fit.sigma_v, "white_sigma_rel_err": self.fit.sigma_rel_err,
            "pink_amplitude_v": self.fit.amplitude_v, "pink_amplitude_rel_err": self.fit.amplitude_rel_err,
            "corner_1f_hz": self.fit.corner_1f_hz, "allan_min_tau_s": tau_min, "allan_min_v": adev_min,
            "bimodal": self.telegraph.bimodal, "quant_step_v": self.quant_step_v,
        }
        if self.telegraph.bimodal:
            out.update(telegraph_amplitude_v=self.telegraph.amplitude_v,
                       telegraph_capture_rate_hz=self.telegraph.capture_rate_hz,
                       telegraph_emission_rate_hz=self.telegraph.emission_rate_hz)
        return out


def analyze_node(name: str, x: np.ndarray, dt_s: float, nperseg: int = 4096) -> NodeNoise:
    """Histogram, Allan deviation, PSD, white + 1/f fit and telegraph detection of one node's reads.

    Where the histogram is bimodal, the fitted telegraph steps are subtracted
    before the white + 1/f fit, so that its Lorentzian does not pass for 1/f noise;
    the Allan deviation is of the reads as they are (everything EP would see).
    """
    x = np.asarray(x, dtype=np.float64)
    tel = detect_telegraph(x, dt_s)
    rest = x - tel.amplitude_v * tel.state if tel.bimodal and tel.state is not None else x
    spec = psd(x, dt_s, nperseg)
    fit = fit_white_pink(psd(rest, dt_s, nperseg) if tel.bimodal else spec, dt_s)
    return NodeNoise(
        name=name, n=int(x.size), dt_s=dt_s, mean_v=float(x.mean()), std_v=float(x.std(ddof=1)),
        hist=histogram(x), allan=allan_deviation(x, dt_s), spectrum=spec, fit=fit, telegraph=tel,
        quant_step_v=quantization_step(x),
    )


def combine(nodes: list[NodeNoise]) -> dict[str, float]:
    """One read-noise figure for the station: the median over nodes of each fitted parameter."""
    def med(vals: list[float]) -> float:
        return float(np.median(vals)) if vals else 0.0

    out = {
        "white_sigma_v": med([n.fit.sigma_v for n in nodes]),
        "pink_amplitude_v": med([n.fit.amplitude_v for n in nodes]),
        "dt_s": med([n.dt_s for n in nodes]),
    }
    tel = [n.telegraph for n in nodes if n.telegraph.bimodal]
    if tel and len(tel) * 2 >= len(nodes):
        out.update(telegraph_amplitude_v=med([t.amplitude_v for t in tel]),
                   telegraph_capture_rate_hz=med([t.capture_rate_hz for t in tel]),
                   telegraph_emission_rate_hz=med([t.emission_rate_hz for t in tel]))
    return out
