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

A sweep with further axes (`network.hidden`, `train.batch_size`, `train.epochs`: the onset
scaling study) gets one curve per dataset and combination of their values.  Each curve's
measured onset comes with the onset predicted from the EP signal of its lowest-sigma
trials (`hil diagnose`'s rule), so a sweep checks its own prediction.
"""

from __future__ import annotations

import math
from typing import Any

from hil.analysis.sweep_stats import bootstrap, extra_axes, finite, group_stats, stages
from hil.sweep import SweepConfig

#: hil.diagnostics.DEFAULT_SNR_CRIT and REF_BATCH, repeated so that the analysis imports no torch (a test
#: checks they agree)
SNR_CRIT = 0.73
REF_BATCH = 4


def _curve(groups: dict[float, list[float]]) -> tuple[list[float], list[float]]:
    sig = sorted(s for s, v in groups.items() if v)
    return sig, [sum(groups[s]) / len(groups[s]) for s in sig]


def curve_axes(table: list[dict[str, Any]]) -> list[str]:
    """What tells a table's curves apart beyond the dataset: its further grid axes, and N if it varies."""
    varies = len({r["n_samples"] for r in table}) > 1
    return extra_axes(table) + (["n_samples"] if varies else [])


def curve_label(row: dict[str, Any], axes: list[str]) -> str:
    """One curve per dataset and combination of the further axes: `mnist`, `mnist hidden=[256] epochs=3`."""
    parts = [row["dataset"], *(f"{a.rsplit('.', 1)[-1]}={_text(row.get(a))}" for a in axes)]
    return " ".join(parts)


def _text(v: Any) -> str:
    return "[" + ", ".join(map(str, v)) + "]" if isinstance(v, list) else str(v)


def predicted_onsets(table: list[dict[str, Any]], snr_crit: float = SNR_CRIT, n_boot: int = 1000,
                     seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per curve: the onset `hil diagnose` predicts from the EP signal of its lowest-sigma trials.

    sigma_onset = mean signal_v / snr_crit * sqrt(B / REF_BATCH) (N = 1, batch B), with a 95 %
    bootstrap interval over those trials (seeds); curves whose trials carry no signal are left out.
    A table without a batch column (a CSV written before it) is taken at REF_BATCH.
    """
    axes = curve_axes(table)
    lowest: dict[str, float] = {}
    done = [r for r in table if r["status"] == "completed"]
    for r in done:
        c = curve_label(r, axes)
        lowest[c] = min(lowest.get(c, math.inf), r["sigma"])
    out = {}
    for c, low in lowest.items():
        rows = [r for r in done if curve_label(r, axes) == c and r["sigma"] == low and finite(r.get("signal_v"))]
        if not rows:
            continue
        sig = [r["signal_v"] for r in rows]
        batch = int(rows[0].get("batch_size") or rows[0].get("train.batch_size") or REF_BATCH)
        scale = math.sqrt(batch / REF_BATCH) / snr_crit
        ci = bootstrap({0: sig}, lambda g, k=scale: sum(g[0]) / len(g[0]) * k, n_boot, seed)
        out[c] = {"sigma_onset": sum(sig) / len(sig) * scale, "ci": ci, "signal_v": sum(sig) / len(sig),
                  "from_sigma": low, "n": len(sig), "snr_crit": snr_crit, "batch_size": batch}
    return out


def analyze(table: list[dict[str, Any]], cfg: SweepConfig, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Summary rows per (curve, sigma); the stages per curve with bootstrap intervals; ratios to the first curve.

    A curve is one dataset, or, when the sweep has further axes (width, batch size, epochs:
    a scaling study), one dataset and combination of their values (`curve_label`).  Beside
    each measured onset, the onset predicted from its lowest-sigma trials' EP signal.
    """
    axes = curve_axes(table)
    diagnosed = predicted_onsets(table, n_boot=n_boot, seed=seed)
    table = [{**r, "curve": curve_label(r, axes)} for r in table]
    summary = group_stats(table, ["curve", "sigma"], cfg.converged_acc)
    first = {}
    for r in table:
        first.setdefault(r["curve"], r)
    for r in summary:
        r.update({"dataset": first[r["curve"]]["dataset"], **{a: first[r["curve"]].get(a) for a in axes}})
    curves = list(dict.fromkeys(r["curve"] for r in table))
    per_ds: dict[str, dict[float, list[float]]] = {}
    for r in table:
        if r["status"] == "completed" and r["final_test_acc"] is not None:
            per_ds.setdefault(r["curve"], {}).setdefault(r["sigma"], []).append(r["final_test_acc"])
    result: dict[str, dict[str, Any]] = {}

    def stat(key: str):
        """The statistic `key` of a resampled curve; None unless its crossing was interpolated."""
        how = {"sigma_onset": "onset_how", "sigma_collapse": "collapse_how"}.get(key)

        def f(groups: dict[float, list[float]]) -> float | None:
            st = stages(*_curve(groups), cfg.chance_acc, cfg.onset_drop)
            return st[key] if how is None or st[how] == "interpolated" else None
        return f

    for ds in curves:
        groups = per_ds.get(ds, {})
        if len([s for s in groups if s > 0]) < 2:
            continue
        st = stages(*_curve(groups), cfg.chance_acc, cfg.onset_drop)
        for key in ("sigma_onset", "sigma_collapse", "shoulder_acc"):
            st[f"{key}_ci"] = bootstrap(groups, stat(key), n_boot, seed)
        result[ds] = st
    ratios: dict[str, dict[str, Any]] = {}
    ref = curves[0] if curves else None
    for ds in curves[1:]:
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
    return {"summary": summary, "stages": result, "ratios": ratios, "onset_drop": cfg.onset_drop, "axes": axes,
            "diagnosed_onset": diagnosed,
            "definition": (f"plateau: mean acc at the lowest sigma; sigma_onset: first sigma where mean acc < "
                           f"plateau - {cfg.onset_drop}; sigma_collapse: first sigma where mean acc < "
                           "(plateau + chance)/2; both log-interpolated; shoulder: mean acc at "
                           "sqrt(onset*collapse); intervals: 95 % percentile bootstrap over seeds; "
                           f"diagnosed_onset: mean EP signal of the lowest-sigma trials / SNR_crit {SNR_CRIT}")}
