"""Statistics of measured noise: pure functions on arrays, no crossbar, no simulator.

What `hil characterize` and `hil calibrate` compute from the raw reads of a
board or of the twin: histograms, Allan deviation, power spectral density, fits
of white + 1/f read noise, telegraph detection, write noise vs conductance,
range, levels, drift, and the samples-per-read N that meets a noise target.

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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import signal
from scipy.ndimage import median_filter

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


# --- random telegraph noise -------------------------------------------------------------------
@dataclass
class TelegraphFit:
    """Two levels `low` and `low + amplitude`; captured = the `low + amplitude` level."""

    bimodal: bool
    separation: float  # Ashman's D = |mu1 - mu2| / sigma (equal widths); > 2 is bimodal
    low_v: float = 0.0
    amplitude_v: float = 0.0
    occupancy: float = 0.0
    capture_rate_hz: float = 0.0
    emission_rate_hz: float = 0.0
    transitions: int = 0
    state: np.ndarray | None = field(default=None, repr=False)

    @property
    def allan_terms(self) -> tuple[float, float] | None:
        """(variance, correlation time) for `adev_model`, or None without a telegraph."""
        rate = self.capture_rate_hz + self.emission_rate_hz
        if not self.bimodal or rate <= 0:
            return None
        return self.amplitude_v**2 * self.occupancy * (1.0 - self.occupancy), 1.0 / rate


def _two_gaussians(x: np.ndarray, iters: int = 200) -> tuple[np.ndarray, np.ndarray, float, float]:
    """EM for a mixture of two Gaussians of one common width: (means, weights, sigma, loglik gain vs one)."""
    lo, hi = np.percentile(x, [10, 90])
    mu = np.array([lo, hi], dtype=np.float64)
    wt = np.array([0.5, 0.5])
    sd = max(float(np.std(x)) / 2.0, 1e-300)
    for _ in range(iters):
        z = -0.5 * ((x[:, None] - mu[None, :]) / sd) ** 2 + np.log(np.maximum(wt, 1e-300))
        zmax = z.max(axis=1, keepdims=True)
        r = np.exp(z - zmax)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0)
        new_mu = (r * x[:, None]).sum(axis=0) / np.maximum(nk, 1e-300)
        new_sd = math.sqrt(max(float((r * (x[:, None] - new_mu[None, :]) ** 2).sum() / x.size), 1e-300))
        wt = nk / x.size
        done = np.allclose(new_mu, mu, rtol=0, atol=1e-6 * sd) and abs(new_sd - sd) < 1e-6 * sd
        mu, sd = new_mu, new_sd
        if done:
            break
    z = -0.5 * ((x[:, None] - mu[None, :]) / sd) ** 2 + np.log(np.maximum(wt, 1e-300)) - math.log(sd)
    zmax = z.max(axis=1, keepdims=True)
    ll2 = float((zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))).sum())
    ll1 = float(-0.5 * x.size - x.size * math.log(max(float(np.std(x)), 1e-300)))
    return mu, wt, sd, ll2 - ll1


def _has_dip(x: np.ndarray, mu: np.ndarray) -> bool:
    """Two peaks, not a skewed or wandering single one: the histogram dips between the two means."""
    counts, edges = np.histogram(x, bins=60)
    centres = 0.5 * (edges[1:] + edges[:-1])
    smooth = np.convolve(counts, np.ones(3) / 3.0, mode="same")
    i0, i1 = (int(np.argmin(np.abs(centres - m))) for m in mu)
    if i1 - i0 < 2:
        return False
    valley = smooth[i0 : i1 + 1].min()
    return bool(valley < 0.8 * min(smooth[i0], smooth[i1]))


def detect_telegraph(x: np.ndarray, dt_s: float, min_separation: float = 2.0) -> TelegraphFit:
    """Look for a bimodal histogram; if there is one, fit a two-level telegraph signal.

    Bimodal means: a two-Gaussian mixture beats one Gaussian by BIC, its means
    lie more than `min_separation` common widths apart (Ashman's D > 2), the
    rarer level holds at least 0.5 % of the samples, and the histogram dips
    between the two means (a skewed or drifting single peak does not).  The state sequence comes
    from a hysteresis threshold at 1/4 and 3/4 of the step on a 3-sample running
    median (so white noise does not make spurious transitions), the rates from the mean dwell times:
    capture = 1 / mean time at the low level, emission = 1 / mean time at the high one.
    """
    x = np.asarray(x, dtype=np.float64)
    sub = x[:: max(1, x.size // 50_000)]
    if not np.std(sub) > 0:
        return TelegraphFit(False, 0.0)
    mu, wt, sd, gain = _two_gaussians(sub)
    order = np.argsort(mu)
    mu, wt = mu[order], wt[order]
    sep = float(abs(mu[1] - mu[0]) / sd)
    bic_gain = 2.0 * gain - 2.0 * math.log(sub.size)  # two more free parameters than one Gaussian
    if not (sep > min_separation and wt.min() > 0.005 and bic_gain > 0 and _has_dip(sub, mu)):
        return TelegraphFit(False, sep)
    step = float(mu[1] - mu[0])
    lo_th, hi_th = mu[0] + step / 4.0, mu[0] + 3.0 * step / 4.0
    state = np.empty(x.size, dtype=bool)
    s = bool(x[0] > mu[0] + step / 2.0)
    # hysteresis on a 3-sample running median (one noisy sample is no transition), vectorised:
    # the state changes only where the series leaves the dead band
    xm = median_filter(x, size=3, mode="nearest")
    mark = np.where(xm > hi_th, 1, np.where(xm < lo_th, 0, -1))
    idx = np.where(mark >= 0, np.arange(x.size), -1)
    last = np.maximum.accumulate(idx)
    state[:] = np.where(last >= 0, mark[np.maximum(last, 0)] == 1, s)
    change = np.flatnonzero(np.diff(state.astype(np.int8)))
    bounds = np.concatenate([[0], change + 1, [x.size]])
    runs = np.diff(bounds)
    levels = state[bounds[:-1]]
    inner = slice(1, -1) if runs.size > 2 else slice(0, runs.size)  # first and last runs are cut off
    r_in, l_in = runs[inner], levels[inner]
    t_low = r_in[~l_in].mean() * dt_s if (~l_in).any() else math.inf
    t_high = r_in[l_in].mean() * dt_s if l_in.any() else math.inf
    low = float(x[~state].mean()) if (~state).any() else float(mu[0])
    high = float(x[state].mean()) if state.any() else float(mu[1])
    return TelegraphFit(
        bimodal=True,
        separation=sep,
        low_v=low,
        amplitude_v=high - low,
        occupancy=float(state.mean()),
        capture_rate_hz=1.0 / t_low if math.isfinite(t_low) else 0.0,
        emission_rate_hz=1.0 / t_high if math.isfinite(t_high) else 0.0,
        transitions=int(change.size),
        state=state,
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


# --- how many samples per read --------------------------------------------------------------------
@dataclass
class Recommendation:
    """The samples per read N that brings the noise of an EP difference below a target."""

    target_v: float
    reachable: bool
    n_samples: int
    sigma_eff_v: float  # predicted Allan deviation at tau = N dt
    floor_v: float  # where averaging stops helping: the measured Allan minimum (or the 1/f floor)
    n_at_floor: int  # N at the Allan minimum
    dt_s: float
    overhead_s: float  # dead time per measure() call (from gaps in the timestamps)
    time_per_read_s: float
    phases: int
    batch_size: int
    time_per_batch_s: float
    measured_sigma_eff_v: float | None  # Allan deviation measured at tau = N dt, when in range

    def text(self) -> str:
        head = (f"target {self.target_v:.3g} V: N = {self.n_samples} samples per read "
                f"(predicted {self.sigma_eff_v:.3g} V")
        if self.measured_sigma_eff_v is not None:
            head += f", measured {self.measured_sigma_eff_v:.3g} V"
        head += ")"
        if not self.reachable:
            head = (f"target {self.target_v:.3g} V is below the 1/f floor {self.floor_v:.3g} V: averaging stops "
                    f"helping at N = {self.n_at_floor}; best N = {self.n_samples} "
                    f"({self.sigma_eff_v:.3g} V)")
        return (f"{head}; {self.time_per_read_s * 1e3:.4g} ms per read, "
                f"{self.time_per_batch_s:.4g} s per batch of {self.batch_size} with {self.phases} phases")


def recommend_n(
    sigma_v: float,
    amplitude_v: float,
    dt_s: float,
    target_v: float,
    *,
    allan: Allan | None = None,
    telegraph: tuple[float, float] | None = None,
    overhead_s: float = 0.0,
    phases: int = 3,
    batch_size: int = 1,
    n_max: int = 10**9,
) -> Recommendation:
    """Smallest N with Allan deviation `sqrt(sigma^2/N + 2 ln2 A^2 [+ telegraph]) <= target`.

    Why the Allan deviation: an EP update uses the difference of a nudged and a
    free read taken one after the other, each the mean of N samples; the
    variance of that difference is exactly twice the Allan variance at
    `tau = N dt` (adjacent means).  White noise falls as 1/N; 1/f noise leaves
    the flat floor `2 ln2 A^2`, so averaging stops helping where the Allan
    deviation bottoms out.  The floor is the larger of the model's and the
    measured minimum (slower drifts that a finite run shows only at its end).
    Cost: a board reads the batch one example at a time, `phases` reads each
    (3 for centered EP), each `N dt` plus the dead time of one `measure()` call.
    A telegraph (`(variance, correlation time)`, see `telegraph_avar`) adds a hump
    near twice its correlation time, which N must get past.
    """
    floor_model = math.sqrt(LN2X2) * amplitude_v

    def model_at(n: int) -> float:
        return float(adev_model(np.array([n * dt_s]), sigma_v, amplitude_v, dt_s, telegraph)[0])

    def measured_at(n: int) -> float | None:
        if allan is None or not allan.tau_s.size or not allan.tau_s[0] <= n * dt_s <= allan.tau_s[-1]:
            return None
        log_adev = np.log(np.maximum(allan.adev_v, 1e-300))
        return float(np.exp(np.interp(np.log(n * dt_s), np.log(allan.tau_s), log_adev)))

    # where averaging stops helping: the measured Allan minimum when the curve turns up
    # before its end, else where the white part has fallen to a quarter of the 1/f floor
    genuine = allan is not None and allan.adev_v.size > 2 and int(np.argmin(allan.adev_v)) < allan.adev_v.size - 2
    if genuine:
        tau_min, adev_min = allan.minimum()
        floor, n_floor = max(adev_min, floor_model), max(1, round(tau_min / dt_s))
    elif floor_model > 0:
        floor, n_floor = floor_model, max(1, math.ceil(4.0 * sigma_v**2 / floor_model**2))
    else:
        floor, n_floor = 0.0, n_max
    reachable = target_v > floor
    if reachable:
        n = min(n_max, max(1, math.ceil(sigma_v**2 / (target_v**2 - floor_model**2))))
        while telegraph and n < n_max and model_at(n) > target_v:  # past the telegraph hump
            n = min(n_max, max(n + 1, math.ceil(n * 1.02)))
        # slower noise than the model holds shows in the measured curve: follow it up to the minimum
        while n < n_floor and (m := measured_at(n)) is not None and m > target_v:
            n = min(n_floor, math.ceil(n * 1.1))
        if (m := measured_at(n)) is not None and m > target_v * 1.05 or model_at(n) > target_v * 1.05:
            reachable = False
    else:
        n = min(n_floor, n_max)
    sigma_eff = model_at(n)
    measured = measured_at(n)
    t_read = n * dt_s + overhead_s
    return Recommendation(
        target_v=target_v, reachable=reachable, n_samples=int(n), sigma_eff_v=sigma_eff, floor_v=floor,
        n_at_floor=int(n_floor), dt_s=dt_s, overhead_s=overhead_s, time_per_read_s=t_read, phases=phases,
        batch_size=batch_size, time_per_batch_s=t_read * phases * batch_size, measured_sigma_eff_v=measured,
    )


# --- programming: range, write noise, levels, drift ---------------------------------------------------
@dataclass
class RangeFit:
    """Each cell's range from writes far below and far above it; nominal bounds and spread."""

    g_min: float
    g_max: float
    spread_rel: float
    upper_found: bool
    p_off: float  # fraction of cells stuck at their low bound (writes do not move them)
    p_on: float  # fraction stuck at their high bound
    lo_cell: np.ndarray = field(repr=False)
    hi_cell: np.ndarray = field(repr=False)
    stuck: np.ndarray = field(repr=False)  # bool per cell


def fit_range(lows: np.ndarray, highs: np.ndarray, low_req: float, high_req: float,
              high_is_bound: bool = False) -> RangeFit:
    """`lows`, `highs`: (repeats, cells) read-backs of writes of `low_req` and `high_req`.

    A write aimed outside a cell's range lands at its bound, or inside it by the
    write noise; the lowest (highest) of the repeats is that cell's bound.  The
    spread is the relative std of the bounds over cells (pooled over both bounds
    when g_min > 0), as in the twin's `range` model `g (1 + spread_rel z)`.
    """
    lo_cell = np.asarray(lows, dtype=np.float64).min(axis=0)
    hi_cell = np.asarray(highs, dtype=np.float64).max(axis=0)
    swing = hi_cell - lo_cell
    stuck = swing < 0.2 * np.median(swing)  # a cell that the writes do not move
    free = ~stuck if (~stuck).sum() >= 2 else np.ones_like(stuck)
    g_min, g_max = float(lo_cell[free].mean()), float(hi_cell[free].mean())
    at = 0.5 * (lo_cell + hi_cell)
    p_on = float((stuck & (at > 0.5 * (g_min + g_max))).mean())
    p_off = float(stuck.mean()) - p_on
    upper = high_is_bound or g_max < (1.0 - 1e-3) * high_req
    rel = [float(hi_cell[free].std(ddof=1) / g_max)] if g_max > 0 else []
    if g_min > 1e-12 * max(g_max, 1e-300):
        rel.append(float(lo_cell[free].std(ddof=1) / g_min))
    spread = math.sqrt(sum(r * r for r in rel) / len(rel)) if rel else 0.0
    return RangeFit(g_min, g_max, spread, bool(upper), p_off, p_on, lo_cell, hi_cell, stuck)


@dataclass
class WriteNoiseFit:
    """`std(g) = sqrt(sigma_abs^2 + (sigma_rel g)^2)` fitted to the std of repeated writes per target."""

    sigma_abs: float
    sigma_rel: float
    sigma_abs_err: float  # standard errors, from the chi-square spread of the pooled variances
    sigma_rel_err: float
    level_g: np.ndarray
    level_std: np.ndarray
    level_std_err: np.ndarray
    cells_used: int

    def std_at(self, g: np.ndarray) -> np.ndarray:
        return np.sqrt(self.sigma_abs**2 + (self.sigma_rel * np.asarray(g, dtype=np.float64)) ** 2)


def _fit_var(g: np.ndarray, var: np.ndarray, dof: np.ndarray) -> tuple[float, float, float, float]:
    """Weighted least squares of var = a2 + r2 g^2 (a2, r2 >= 0); weights dof / (2 var^2).

    Returns a2, r2 and their standard errors (a sample variance of `dof` degrees
    of freedom has relative std sqrt(2/dof)).
    """
    X = np.stack([np.ones_like(g), g**2], axis=1)
    model = var.copy()
    coef = np.zeros(2)
    for _ in range(10):
        w = np.sqrt(dof / 2.0) / np.maximum(model, 1e-300)
        coef, *_ = np.linalg.lstsq(X * w[:, None], var * w, rcond=None)
        if coef[0] < 0 or coef[1] < 0:  # one term only: keep the better of the two
            fits = []
            for j in (0, 1):
                c = np.zeros(2)
                xj = X[:, j] * w
                c[j] = max(0.0, float(xj @ (var * w) / max(xj @ xj, 1e-300)))
                fits.append((float(((X @ c - var) * w) @ ((X @ c - var) * w)), c))
            coef = min(fits, key=lambda f: f[0])[1]
        model = np.maximum(X @ coef, 1e-300)
    w = np.sqrt(dof / 2.0) / model
    cov = np.linalg.pinv((X * w[:, None]).T @ (X * w[:, None]))
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return float(coef[0]), float(coef[1]), float(err[0]), float(err[1])


def fit_write_noise(target: np.ndarray, reps: np.ndarray, level_of: np.ndarray, grid: np.ndarray,
                    lo_cell: np.ndarray | None = None, hi_cell: np.ndarray | None = None,
                    margin_sigmas: float = 4.0, exclude: np.ndarray | None = None) -> WriteNoiseFit:
    """Write noise vs g from `reps` (repeats, cells), cell i written to `target[i] = grid[level_of[i]]`.

    The std over the repeats of one cell is its write noise (cell-to-cell offsets,
    e.g. from levels, cancel); variances are pooled over the cells of a target.
    Cells whose target lies within `margin_sigmas` write stds of their own bound
    are left out (their writes are clipped, which shrinks the std), and so are
    the cells in `exclude` (stuck ones).
    """
    reps = np.asarray(reps, dtype=np.float64)
    r = reps.shape[0]
    var_cell = reps.var(axis=0, ddof=1)
    mean_cell = reps.mean(axis=0)
    keep_cells = np.ones(target.size, dtype=bool) if exclude is None else ~np.asarray(exclude, dtype=bool)
    use = keep_cells.copy()
    for _ in range(2):
        lv = np.array([var_cell[(level_of == k) & use].mean() if ((level_of == k) & use).any() else np.nan
                       for k in range(grid.size)])
        if lo_cell is None or hi_cell is None:
            break
        sd = np.sqrt(np.nan_to_num(lv, nan=np.nanmax(lv)))[level_of]
        use = keep_cells & (target - lo_cell > margin_sigmas * sd) & (hi_cell - target > margin_sigmas * sd)
    ok = np.array([((level_of == k) & use).sum() for k in range(grid.size)])
    keep = ok > 0
    lg = np.array([mean_cell[(level_of == k) & use].mean() for k in range(grid.size) if keep[k]])
    lvar = np.array([var_cell[(level_of == k) & use].mean() for k in range(grid.size) if keep[k]])
    dof = ok[keep] * (r - 1.0)
    a2, r2, a2_err, r2_err = _fit_var(lg, lvar, dof)
    lstd = np.sqrt(lvar)
    a, r_ = math.sqrt(a2), math.sqrt(r2)
    a_err = 0.5 * a2_err / a if a > 0 else math.sqrt(a2_err)  # d sqrt(v) = dv / (2 sqrt(v))
    r_err = 0.5 * r2_err / r_ if r_ > 0 else math.sqrt(r2_err)
    return WriteNoiseFit(a, r_, a_err, r_err, lg, lstd, lstd / np.sqrt(2.0 * dof), int(use.sum()))


@dataclass
class LevelsFit:
    """Number of evenly spaced levels of each cell's range that best explains the read-back offsets."""

    n_levels: int | None
    chi2_levels: float
    chi2_continuous: float
    points: int


def fit_levels(requested: np.ndarray, achieved_mean: np.ndarray, lo_cell: np.ndarray, hi_cell: np.ndarray,
               noise_std: np.ndarray, n_max: int = 1024) -> LevelsFit:
    """Compare "the cell holds the request" with "rounded to one of n levels of [lo, hi]", n = 2..n_max.

    `noise_std` is the std of `achieved_mean` from write noise alone.  Levels are
    reported when the best n explains the offsets at least four times better
    (in chi^2) than no levels, and the offsets are well above the noise.
    """
    req = np.asarray(requested, dtype=np.float64)
    inside = (req > lo_cell) & (req < hi_cell)
    req, ach, lo, hi = req[inside], np.asarray(achieved_mean)[inside], lo_cell[inside], hi_cell[inside]
    sd = np.maximum(np.asarray(noise_std, dtype=np.float64)[inside], 1e-12 * np.maximum(hi - lo, 1e-300))
    # the bounds themselves are known to within the write noise of one read: count it as noise too
    sd = np.sqrt(sd**2 + (1e-3 * (hi - lo)) ** 2)
    chi_inf = float((((ach - req) / sd) ** 2).sum())
    frac = (req - lo) / np.maximum(hi - lo, 1e-300)
    best_n, best = None, math.inf
    for n in range(2, n_max + 1):
        q = lo + np.round(frac * (n - 1)) / (n - 1) * (hi - lo)
        chi = float((((ach - q) / sd) ** 2).sum())
        if chi < best:
            best_n, best = n, chi
    found = req.size >= 8 and best < 0.25 * chi_inf and chi_inf > 4.0 * req.size
    return LevelsFit(best_n if found else None, best, chi_inf, int(req.size))


@dataclass
class DriftFit:
    """`g(t) = g_write (t / t0)^-nu` after t0, fitted to the mean ratio over cells."""

    nu: float | None
    nu_spread: float
    t0_s: float
    ratio: np.ndarray


def fit_drift(t_s: np.ndarray, g_write: np.ndarray, g_t: np.ndarray, tol: float = 1e-3) -> DriftFit:
    """`t_s` (H,) times after the write, `g_write` (cells,), `g_t` (H, cells).

    Points whose mean ratio differs from 1 by more than `tol` are fitted by a
    line in log-log (slope -nu, intercept nu log t0); nu_spread is the std of
    the per-cell slopes.  Fewer than two such points: no drift (nu None).
    """
    t = np.asarray(t_s, dtype=np.float64)
    g0 = np.asarray(g_write, dtype=np.float64)
    ok = g0 > 0
    ratio_cell = np.asarray(g_t, dtype=np.float64)[:, ok] / g0[ok]
    ratio = ratio_cell.mean(axis=1)
    moving = np.abs(ratio - 1.0) > tol
    if moving.sum() < 2:
        return DriftFit(None, 0.0, 1.0, ratio)
    lt = np.log(t[moving])
    slope, icpt = np.polyfit(lt, np.log(ratio[moving]), 1)
    nu = float(-slope)
    if nu <= 0:
        return DriftFit(None, 0.0, 1.0, ratio)
    t0 = float(math.exp(icpt / nu))
    lr = np.log(np.clip(ratio_cell[moving], 1e-300, None))
    lt_c = lt - lt.mean()
    slopes = (lt_c[:, None] * (lr - lr.mean(axis=0))).sum(axis=0) / (lt_c**2).sum()
    return DriftFit(nu, float(np.std(-slopes, ddof=1)) if slopes.size > 1 else 0.0, t0, ratio)
