"""The paper's figures from a sweep's analysis (Peters & Talatchian 2025, Figs. 3, 4 and 5).

Each function takes the dict a protocol's `analyze` returns and writes
`<stem>.png` and `<stem>.pdf`; the command writes the CSV beside them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def fig3(analysis: dict[str, Any], stem: Path, title: str = "") -> list[Path]:
    """Top: mean (± std band, min..max bars) and max test accuracy vs sigma per dataset, sigma_onset (dotted,
    its bootstrap interval shaded) and sigma_collapse (dashed); bottom: converged fraction with Wilson intervals."""
    summary = [{**r, "curve": r.get("curve", r["dataset"])} for r in analysis["summary"]]
    stages = analysis.get("stages") or {}
    datasets = list(dict.fromkeys(r["curve"] for r in summary))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True, height_ratios=[3, 1.3],
                                  constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ds in enumerate(datasets):
        c = colors[i % len(colors)]
        rows = sorted((r for r in summary if r["curve"] == ds and r["sigma"] > 0), key=lambda r: r["sigma"])
        s = np.array([r["sigma"] for r in rows])
        mean = np.array([r["mean_acc"] for r in rows]) * 100
        std = np.array([r["std_acc"] for r in rows]) * 100
        lo = np.array([r["min_acc"] for r in rows]) * 100
        hi = np.array([r["max_acc"] for r in rows]) * 100
        ax.fill_between(s, mean - std, mean + std, color=c, alpha=0.18, lw=0)
        ax.errorbar(s, mean, yerr=[mean - lo, hi - mean], fmt="o-", color=c, ms=4, capsize=2, lw=1.3,
                    label=f"{ds}: mean (band ±1 std, bars min..max, n={rows[0]['n'] if rows else 0})")
        if len(datasets) <= 3:  # a scaling study's many curves: the mean only
            ax.plot(s, hi, "^--", color=c, ms=4, lw=1, label=f"{ds}: max")
        st = stages.get(ds, {})
        if st.get("onset_how") == "interpolated":
            ci = st.get("sigma_onset_ci") or {}
            if ci.get("lo") is not None:
                ax.axvspan(ci["lo"], ci["hi"], color=c, alpha=0.12, lw=0)
            ax.axvline(st["sigma_onset"], color=c, ls=":", lw=1.2)
            ax.annotate(f"σ_onset≈{st['sigma_onset']:.1e}", (st["sigma_onset"], 30 - 7 * i), color=c,
                        fontsize=7, xytext=(3, 0), textcoords="offset points", va="center")
        if st.get("collapse_how") == "interpolated":
            ax.axvline(st["sigma_collapse"], color=c, ls="--", lw=1.2)
            ax.annotate(f"σ_collapse≈{st['sigma_collapse']:.1e}", (st["sigma_collapse"], 16 - 7 * i), color=c,
                        fontsize=7, xytext=(3, 0), textcoords="offset points", va="center")
        pred = predicted(analysis, ds)
        if pred:
            ax.plot([pred], [97 - 4 * i], "v", color=c, ms=8, mec="k", mew=0.6,
                    label=f"{ds}: onset predicted from its EP signal ({pred:.1e} V)")
        frac = np.array([r["frac_converged"] for r in rows]) * 100
        clo = np.array([r.get("converged_lo", r["frac_converged"]) for r in rows]) * 100
        chi = np.array([r.get("converged_hi", r["frac_converged"]) for r in rows]) * 100
        ax2.errorbar(s * (1 + 0.04 * i), frac, yerr=[frac - clo, chi - frac], fmt="o-", color=c, ms=4, capsize=2,
                     label=ds)
    ax.axhline(10, color="0.5", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=6.5, loc="lower left")
    drop = analysis.get("onset_drop", 0.05)
    ax.set_title((title or "Fig. 3: test accuracy vs read noise")
                 + f"\ndotted: σ_onset (plateau - {100 * drop:.0f} pts; 95 % bootstrap shaded), "
                 "dashed: σ_collapse (half-way to chance)", fontsize=8)
    ax2.set_xscale("log")
    ax2.set_xlabel("read noise σ per sample (V)")
    ax2.set_ylabel("converged (%)\n95 % Wilson", fontsize=8)
    ax2.set_ylim(-5, 105)
    ax2.grid(True, which="both", alpha=0.25)
    return _save(fig, stem)


def predicted(analysis: dict[str, Any], curve: str) -> float | None:
    """The predicted onset of a curve: given with `--predicted`, else diagnosed from its lowest-sigma trials."""
    given = (analysis.get("predicted_onset") or {}).get(curve)
    if given:
        return given
    return ((analysis.get("diagnosed_onset") or {}).get(curve) or {}).get("sigma_onset")


def onsets(analysis: dict[str, Any], stem: Path, title: str = "") -> list[Path]:
    """Measured sigma_onset per curve (95 % bootstrap bars; a triangle for a bound off the grid) beside
    the onset predicted from its EP signal: the table of a scaling study as a figure."""
    stages = analysis.get("stages") or {}
    curves = list(stages)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(curves) + 1.6), constrained_layout=True)
    for i, c in enumerate(curves):
        st = stages[c]
        y = len(curves) - 1 - i
        if st["onset_how"] == "interpolated":
            ci = st.get("sigma_onset_ci") or {}
            lo, hi = ci.get("lo") or st["sigma_onset"], ci.get("hi") or st["sigma_onset"]
            ax.errorbar([st["sigma_onset"]], [y], xerr=[[st["sigma_onset"] - lo], [hi - st["sigma_onset"]]],
                        fmt="o", color="C0", capsize=3, label="measured σ_onset (95 % bootstrap)" if i == 0 else None)
        elif st["sigma_onset"]:
            ax.plot([st["sigma_onset"]], [y], ">", color="C0", mfc="none")
        d = (analysis.get("diagnosed_onset") or {}).get(c)
        if d:
            ci = d.get("ci") or {}
            lo, hi = ci.get("lo") or d["sigma_onset"], ci.get("hi") or d["sigma_onset"]
            ax.errorbar([d["sigma_onset"]], [y - 0.2], xerr=[[d["sigma_onset"] - lo], [hi - d["sigma_onset"]]],
                        fmt="v", color="C3", capsize=3, label="predicted from EP signal" if i == 0 else None)
    ax.set_yticks(range(len(curves)), list(reversed(curves)), fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.0e}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("σ_onset (V per sample)")
    ax.grid(True, which="both", axis="x", alpha=0.25)
    ax.legend(fontsize=7)
    ax.set_title(title or "σ_onset per curve", fontsize=8)
    return _save(fig, stem)


def fig4(analysis: dict[str, Any], stem: Path, title: str = "") -> list[Path]:
    """Left: mean accuracy vs sigma per N; right: sigma_max(N) on log-log axes with the fit and slope 1/2."""
    summary = analysis["summary"]
    target = analysis["target_acc"]
    ns = sorted({r["n_samples"] for r in summary})
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    for i, n in enumerate(ns):
        c = cmap(i / max(len(ns) - 1, 1))
        rows = sorted((r for r in summary if r["n_samples"] == n and r["sigma"] > 0), key=lambda r: r["sigma"])
        s = np.array([r["sigma"] for r in rows])
        mean = np.array([r["mean_acc"] for r in rows]) * 100
        std = np.array([r["std_acc"] for r in rows]) * 100
        ax.fill_between(s, mean - std, mean + std, color=c, alpha=0.15, lw=0)
        ax.plot(s, mean, "o-", color=c, ms=3.5, label=f"N = {n}")
    ax.axhline(100 * target, color="k", lw=0.8, ls="--", label=f"target {100 * target:.0f} %")
    ax.set_xscale("log")
    ax.set_xlabel("read noise σ per sample (V)")
    ax.set_ylabel("mean test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    ax.set_title(title or "Fig. 4: accuracy vs σ for N reads averaged", fontsize=9)
    smax = analysis["sigma_max"]
    fit = analysis["fit"]
    pts = [(int(n), v["sigma_max"]) for n, v in smax.items() if v["how"] == "interpolated"]
    bounds = [(int(n), v["sigma_max"]) for n, v in smax.items() if v["how"] == "never below"]
    if pts:
        ax2.loglog([p[0] for p in pts], [p[1] for p in pts], "o", color="C0", label="σmax(N) (interpolated)")
    if bounds:
        ax2.loglog([p[0] for p in bounds], [p[1] for p in bounds], "^", color="C1", mfc="none",
                   label="lower bound (never below target)")
    if fit.get("slope") is not None:
        xs = np.array([min(ns), max(ns)], dtype=float)
        err = fit["stderr"] if fit["stderr"] is not None else float("nan")
        ax2.loglog(xs, 10 ** (fit["intercept"] + fit["slope"] * np.log10(xs)), "-", color="C0",
                   label=f"fit: slope {fit['slope']:.3f} ± {err:.3f}")
        n0 = pts[0][0]
        ax2.loglog(xs, pts[0][1] * np.sqrt(xs / n0), "--", color="0.4", label="theory: slope 1/2")
    ax2.set_xlabel("reads averaged per node N")
    ax2.set_ylabel(f"σmax (V) at mean acc {100 * target:.0f} %")
    ax2.grid(True, which="both", alpha=0.25)
    ax2.legend(fontsize=7)
    return _save(fig, stem)


def fig5(analysis: dict[str, Any], stem: Path, title: str = "") -> list[Path]:
    """Heat maps of the fraction of converged trials over beta x eta_eff, one panel per sigma."""
    summary = analysis["summary"]
    sigmas = sorted({r["sigma"] for r in summary})
    betas = sorted({r["beta"] for r in summary})
    etas = sorted({r["eta_eff"] for r in summary})
    ncol = len(sigmas)
    fig, axes = plt.subplots(1, ncol, figsize=(3.2 * ncol + 0.8, 3.2), constrained_layout=True, squeeze=False)
    tile = analysis.get("default_tile") or {}
    im = None
    for ax, sigma in zip(axes[0], sigmas, strict=True):
        grid = np.full((len(etas), len(betas)), np.nan)
        for r in summary:
            if r["sigma"] == sigma:
                grid[etas.index(r["eta_eff"]), betas.index(r["beta"])] = 100 * r["frac_converged"]
        im = ax.imshow(grid, origin="lower", cmap="magma", vmin=0, vmax=100, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="w" if v < 60 else "k")
        ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas], fontsize=7)
        ax.set_yticks(range(len(etas)), [f"{e:g}" for e in etas], fontsize=7)
        ax.set_xlabel("β (S)")
        ax.set_title(f"σ = {sigma:g} V", fontsize=9)
        b0, e0 = tile.get("beta", tile.get("train.beta")), tile.get("eta_eff")
        if b0 is not None and e0 is not None:
            bi = int(np.argmin([abs(math.log(b / b0)) for b in betas]))
            ei = int(np.argmin([abs(math.log(e / e0)) for e in etas]))
            ax.add_patch(plt.Rectangle((bi - 0.5, ei - 0.5), 1, 1, fill=False, ec="c", lw=2.2))
    axes[0][0].set_ylabel("η_eff = η / β")
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), label="converged (%)", shrink=0.9)
    fig.suptitle(title or "Fig. 5: convergence over β x η_eff (cyan: default tile)", fontsize=9)
    return _save(fig, stem)


FIGURES = {"fig3": ("noise_sweep", fig3), "fig4": ("clt_sweep", fig4), "fig5": ("hyperparam_map", fig5)}
