"""Noise sweep (Peters & Talatchian 2025, Fig. 3): test accuracy vs read-noise sigma, per dataset.

The sweep file (`configs/noise_sweep-*.yaml`) gives the grid: `crossbar.sigma` (V per
sample, log grid), `data.dataset` and the seeds.  Per (dataset, sigma) this reports the
mean, spread and maximum of the final test accuracy over seeds, and the fraction of
trials that converged (final test accuracy >= `converged_acc`) with its Wilson interval.

Training collapses in two stages as sigma grows: first the read noise swamps the hidden
layer's EP signal and accuracy leaves its plateau (`sigma_onset`, the paper's critical
sigma_c); the output layer keeps learning on a shoulder; then accuracy falls to chance
(`sigma_collapse`, half-way from the plateau to chance).  Both are defined in
`hil.analysis.sweep_stats` (plateau at the lowest sigma; crossings interpolated on log
sigma; bootstrap intervals over seeds), with the onset drop `onset_drop` of the sweep file.
"""

from __future__ import annotations

from typing import Any

from hil.analysis.sweep_stats import bootstrap, group_stats, stages
from hil.sweep import SweepConfig


def _curve(groups: dict[float, list[float]]) -> tuple[list[float], list[float]]:
    sig = sorted(s for s, v in groups.items() if v)
    return sig, [sum(groups[s]) / len(groups[s]) for s in sig]


def analyze(table: list[dict[str, Any]], cfg: SweepConfig, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Summary rows per (dataset, sigma); the stages per dataset with bootstrap intervals; ratios to the first."""
    summary = group_stats(table, ["dataset", "sigma"], cfg.converged_acc)
    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    per_ds: dict[str, dict[float, list[float]]] = {}
    for r in table:
        if r["status"] == "completed" and r["final_test_acc"] is not None:
            per_ds.setdefault(r["dataset"], {}).setdefault(r["sigma"], []).append(r["final_test_acc"])
    result: dict[str, dict[str, Any]] = {}

    def stat(key: str):
        """The statistic `key` of a resampled curve; None unless its crossing was interpolated."""
        how = {"sigma_onset": "onset_how", "sigma_collapse": "collapse_how"}.get(key)

        def f(groups: dict[float, list[float]]) -> float | None:
            st = stages(*_curve(groups), cfg.chance_acc, cfg.onset_drop)
            return st[key] if how is None or st[how] == "interpolated" else None
        return f

    for ds in datasets:
        groups = per_ds.get(ds, {})
        if len([s for s in groups if s > 0]) < 2:
            continue
        st = stages(*_curve(groups), cfg.chance_acc, cfg.onset_drop)
        for key in ("sigma_onset", "sigma_collapse", "shoulder_acc"):
            st[f"{key}_ci"] = bootstrap(groups, stat(key), n_boot, seed)
        result[ds] = st
    ratios: dict[str, dict[str, Any]] = {}
    ref = datasets[0] if datasets else None
    for ds in datasets[1:]:
        if ds not in result or ref not in result:
            continue
        for key in ("sigma_onset", "sigma_collapse"):
            how = key.removeprefix("sigma_") + "_how"
            a, b = result[ds][key], result[ref][key]
            if not (a and b) or result[ds][how] != "interpolated" or result[ref][how] != "interpolated":
                continue
            pooled = {("a", s): v for s, v in per_ds[ds].items()} | {("b", s): v for s, v in per_ds[ref].items()}

            def ratio(groups, key=key):
                x = stat(key)({s: v for (t, s), v in groups.items() if t == "a"})
                y = stat(key)({s: v for (t, s), v in groups.items() if t == "b"})
                return x / y if x and y else None

            ratios[f"{key} {ds}/{ref}"] = {"ratio": a / b, "ci": bootstrap(pooled, ratio, n_boot, seed)}
    return {"summary": summary, "stages": result, "ratios": ratios, "onset_drop": cfg.onset_drop,
            "definition": (f"plateau: mean acc at the lowest sigma; sigma_onset: first sigma where mean acc < "
                           f"plateau - {cfg.onset_drop}; sigma_collapse: first sigma where mean acc < "
                           "(plateau + chance)/2; both log-interpolated; shoulder: mean acc at "
                           "sqrt(onset*collapse); intervals: 95 % percentile bootstrap over seeds")}
