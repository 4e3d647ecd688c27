"""Programming calibration fits: each cell's range, write noise vs conductance, levels, drift.

Pure functions on arrays of requested and read-back conductances (no crossbar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


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
