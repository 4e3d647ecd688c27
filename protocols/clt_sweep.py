"""CLT sweep (Peters & Talatchian 2025, Fig. 4): accuracy vs sigma for N reads averaged per node.

Averaging N reads of white noise gives an effective noise sigma / sqrt(N), so the
largest tolerable sigma should grow as sqrt(N).  The grid is `train.n_samples` (N)
x `crossbar.sigma` x seeds.  sigma_max(N) is the largest sigma at which the mean
final test accuracy still reaches `target_acc` (0.9 in the paper): the crossing of
`target_acc` going up in sigma, interpolated linearly in log sigma between the two
grid points around it.  N whose accuracy never drops below the target on the grid
(sigma_max beyond the grid) or never reaches it are left out of the fit and flagged.

The slope of log10 sigma_max vs log10 N is fitted by least squares; its uncertainty
is the fit's standard error and, separately, a bootstrap over seeds (trials
resampled with replacement within each grid point, the whole analysis redone): its
standard deviation and 95 % percentile interval (replicates where fewer than two N cross
the target are left out and counted).

On the twin with the `exact` read path the mean of N reads is drawn as
N(V, sigma^2 / N), so a slope of 1/2 is the model's own assumption; the sweep
checks the pipeline and the estimator, and becomes a test of the physics on a
board, or on the twin with non-white read noise (`read_path: explicit`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hil.analysis.sweep_stats import finite, group_stats, log_crossing
from hil.sweep import SweepConfig


def sigma_max_by_n(summary: list[dict[str, Any]], target: float) -> dict[int, dict[str, Any]]:
    out = {}
    for n in sorted({r["n_samples"] for r in summary}):
        rows = sorted((r for r in summary if r["n_samples"] == n and r["sigma"] > 0), key=lambda r: r["sigma"])
        x, how = log_crossing([r["sigma"] for r in rows], [r["mean_acc"] for r in rows], target)
        out[n] = {"sigma_max": x, "how": how}
    return out


def fit_slope(smax: dict[int, dict[str, Any]]) -> dict[str, Any]:
    pts = [(n, v["sigma_max"]) for n, v in smax.items() if v["how"] == "interpolated" and finite(v["sigma_max"])]
    if len(pts) < 2:
        return {"slope": None, "stderr": None, "intercept": None, "n_points": len(pts)}
    x = np.log10([p[0] for p in pts])
    y = np.log10([p[1] for p in pts])
    a = np.vstack([x, np.ones_like(x)]).T
    (slope, intercept), *_ = np.linalg.lstsq(a, y, rcond=None)
    stderr = None
    if len(pts) > 2:
        resid = y - (slope * x + intercept)
        s2 = float(resid @ resid) / (len(pts) - 2)
        stderr = math.sqrt(s2 / float(((x - x.mean()) ** 2).sum()))
    return {"slope": float(slope), "stderr": stderr, "intercept": float(intercept), "n_points": len(pts)}


def analyze(table: list[dict[str, Any]], cfg: SweepConfig, n_boot: int = 300, seed: int = 0) -> dict[str, Any]:
    """Summary per (N, sigma), sigma_max(N), the log-log slope with its standard error and bootstrap spread."""
    summary = group_stats(table, ["n_samples", "sigma"], cfg.converged_acc)
    smax = sigma_max_by_n(summary, cfg.target_acc)
    fit = fit_slope(smax)
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in table:
        if r["status"] != "pending":
            groups.setdefault((r["n_samples"], r["sigma"]), []).append(r)
    slopes = []
    for _ in range(n_boot if fit["slope"] is not None else 0):
        boot = []
        for rows in groups.values():
            boot += [rows[i] for i in rng.integers(0, len(rows), len(rows))]
        f = fit_slope(sigma_max_by_n(group_stats(boot, ["n_samples", "sigma"], cfg.converged_acc), cfg.target_acc))
        if f["slope"] is not None:
            slopes.append(f["slope"])
    fit["bootstrap_std"] = float(np.std(slopes, ddof=1)) if len(slopes) > 1 else None
    fit["bootstrap_n"] = len(slopes)
    lo, hi = np.quantile(slopes, [0.025, 0.975]) if len(slopes) > 1 else (None, None)
    fit["bootstrap_lo"], fit["bootstrap_hi"] = (float(lo), float(hi)) if lo is not None else (None, None)
    return {"summary": summary, "sigma_max": smax, "fit": fit, "target_acc": cfg.target_acc,
            "definition": "sigma_max(N): crossing of target_acc by the mean acc, log-interpolated"}
