"""Noise sweep (Peters & Talatchian 2025, Fig. 3): test accuracy vs read-noise sigma, per dataset.

The sweep file (`configs/noise_sweep-*.yaml`) gives the grid: `crossbar.sigma` (V per
sample, log grid), `data.dataset` and the seeds.  Per (dataset, sigma) this reports the
mean, spread and maximum of the final test accuracy over seeds, and the fraction of
trials that converged (final test accuracy >= `converged_acc` of the sweep file).

sigma_c, the noise at which mean accuracy collapses, is estimated per dataset as the
sigma where the mean accuracy first falls below half-way between its value at the
smallest sigma of the grid (the low-noise plateau) and chance (0.1), interpolated
linearly in log sigma between the two grid points around the crossing.  The onset of
the collapse, sigma_onset, is where the mean first falls 5 points below the plateau.
"""

from __future__ import annotations

from typing import Any

from hil.sweep import SweepConfig, group_stats, log_crossing

ONSET_DROP = 0.05


def analyze(table: list[dict[str, Any]], cfg: SweepConfig) -> dict[str, Any]:
    """Summary rows per (dataset, sigma) and sigma_c per dataset, with the ratio to the first dataset."""
    summary = group_stats(table, ["dataset", "sigma"], cfg.converged_acc)
    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    sigma_c: dict[str, dict[str, Any]] = {}
    for ds in datasets:
        rows = sorted((r for r in summary if r["dataset"] == ds), key=lambda r: r["sigma"])
        rows = [r for r in rows if r["sigma"] > 0]
        if not rows:
            continue
        plateau = rows[0]["mean_acc"]
        level = cfg.chance_acc + 0.5 * (plateau - cfg.chance_acc)
        xs, ys = [r["sigma"] for r in rows], [r["mean_acc"] for r in rows]
        x, how = log_crossing(xs, ys, level)
        onset, onset_how = log_crossing(xs, ys, plateau - ONSET_DROP)
        sigma_c[ds] = {"sigma_c": x, "how": how, "plateau_acc": plateau, "level": level,
                       "sigma_onset": onset, "onset_how": onset_how}
    ratios = {}
    if len(sigma_c) >= 2:
        ref = datasets[0]
        for ds in datasets[1:]:
            a, b = sigma_c.get(ds, {}).get("sigma_c"), sigma_c.get(ref, {}).get("sigma_c")
            if a and b:
                ratios[f"{ds}/{ref}"] = a / b
            a, b = sigma_c.get(ds, {}).get("sigma_onset"), sigma_c.get(ref, {}).get("sigma_onset")
            if a and b:
                ratios[f"onset {ds}/{ref}"] = a / b
    return {"summary": summary, "sigma_c": sigma_c, "ratios": ratios,
            "definition": "sigma_c: first sigma where mean acc < (plateau + chance)/2, log-interpolated; "
                          "sigma_onset: first sigma where mean acc < plateau - 0.05"}
