"""Figures of a noise characterization and a programming calibration (PNG, matplotlib Agg).

They take the results of `hil.analysis.noise_stats` (and the calibrate protocol's
arrays), never a crossbar, so a board's run and the twin's look the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from hil.analysis import noise_stats as ns  # noqa: E402
from hil.analysis.averaging import Recommendation  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _log_axes(ax: Any, positive: bool) -> None:
    """Log-log axes, unless nothing is positive (constant reads): then say so on linear axes."""
    ax.set_xscale("log")
    if positive:
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no noise measured (constant reads)", transform=ax.transAxes, ha="center")


def allan_figure(nodes: list[ns.NodeNoise], rec: Recommendation | None, path: Path) -> Path:
    """Overlapping Allan deviation per node, the white-noise -1/2 slope, the fitted model and the target."""
    fig, ax = plt.subplots(figsize=(5.6, 4.0), constrained_layout=True)
    for n in nodes:
        a = n.allan
        ax.errorbar(a.tau_s, a.adev_v, yerr=a.err_v, fmt="o", ms=3, capsize=0, label=f"node {n.name}")
    n0 = nodes[0]
    tau = np.logspace(np.log10(n0.allan.tau_s[0]), np.log10(n0.allan.tau_s[-1]), 100)
    ax.plot(tau, n0.fit.sigma_v * np.sqrt(n0.dt_s / tau), "k--", lw=1,
            label=r"white only: slope $-1/2$ ($\sigma/\sqrt{N}$)")
    tel = n0.telegraph.allan_terms
    ax.plot(tau, ns.adev_model(tau, n0.fit.sigma_v, n0.fit.amplitude_v, n0.dt_s, tel), "r-", lw=1,
            label=r"fit: white + 1/f (floor $\sqrt{2\ln 2}\,A$)" + (" + telegraph" if tel else ""))
    if rec is not None:
        ax.axhline(rec.target_v, color="g", lw=1, ls=":", label=f"target {rec.target_v:.2g} V")
        ax.axvline(rec.n_samples * rec.dt_s, color="g", lw=1, ls="-.", label=f"N = {rec.n_samples}")
    _log_axes(ax, any(np.any(n.allan.adev_v > 0) for n in nodes))
    ax.set_xlabel(r"averaging time $\tau = N\,dt$ (s)")
    ax.set_ylabel("Allan deviation (V)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Allan deviation of single-sample reads", fontsize=9)
    return _save(fig, path)


def psd_figure(nodes: list[ns.NodeNoise], path: Path) -> Path:
    """Welch PSD per node with its white + 1/f fit."""
    fig, ax = plt.subplots(figsize=(5.6, 4.0), constrained_layout=True)
    for n in nodes:
        f, s, _ = ns.log_bin(n.spectrum.f_hz, n.spectrum.psd_v2_hz, per_decade=30)
        (line,) = ax.plot(f, s, ".", ms=3, label=f"node {n.name}")
        ax.plot(f, n.fit.model(f), "-", lw=1, color=line.get_color(),
                label=rf"fit: $\sigma$={n.fit.sigma_v:.3g} V, A={n.fit.amplitude_v:.3g} V")
    _log_axes(ax, any(np.any(n.spectrum.psd_v2_hz > 0) for n in nodes))
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(r"one-sided PSD (V$^2$/Hz)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(r"PSD (Welch) and fit $S = 2\sigma^2 dt + A^2/f$", fontsize=9)
    return _save(fig, path)


def histogram_figure(nodes: list[ns.NodeNoise], path: Path) -> Path:
    """Histogram of each node's reads around its mean, with the Gaussian of the same std."""
    k = len(nodes)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k + 0.6, 3.0), constrained_layout=True, squeeze=False)
    for ax, n in zip(axes[0], nodes, strict=True):
        e, c = (n.hist.edges_v - n.mean_v) * 1e6, n.hist.counts  # in uV
        w = np.diff(e)
        ax.bar(e[:-1], c / (c.sum() * w), width=w, align="edge", alpha=0.6, label="reads")
        v = np.linspace(e[0], e[-1], 200)
        s = n.std_v * 1e6
        if s > 0:
            ax.plot(v, np.exp(-0.5 * (v / s) ** 2) / (s * np.sqrt(2 * np.pi)), "k-", lw=1, label="Gaussian, same std")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
        title = f"node {n.name}: std {n.std_v:.3g} V"
        if n.telegraph.bimodal:
            title += "\nbimodal: telegraph"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(r"read - mean ($\mu$V)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(r"density (1/$\mu$V)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def write_noise_figure(cal: dict[str, Any], path: Path) -> Path:
    """Write noise (std of repeated writes) vs target conductance, with the fitted std(g)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), constrained_layout=True)
    g = np.asarray(cal["grid_g"])
    std = np.asarray(cal["grid_std"])
    err = np.asarray(cal["grid_std_err"])
    ax = axes[0]
    ax.errorbar(g, std, yerr=err, fmt="o", ms=4, label="measured (pooled over cells)")
    gg = np.linspace(0, max(g.max(), 1e-30) * 1.05, 200)
    fit = np.sqrt(cal["sigma_abs"] ** 2 + (cal["sigma_rel"] * gg) ** 2)
    ax.plot(gg, fit, "r-", lw=1,
            label=rf"fit $\sqrt{{a^2 + (r g)^2}}$: a={cal['sigma_abs']:.3g}, r={cal['sigma_rel']:.3g}")
    ax.set_xlabel("target conductance g (g_unit)")
    ax.set_ylabel("write noise std (g_unit)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("write noise vs g", fontsize=9)
    ax = axes[1]
    ax.plot(cal["ramp_requested"], cal["ramp_achieved"], ".", ms=2, alpha=0.5, label="cells (one write each)")
    ax.axhline(cal["g_min"], color="k", ls="--", lw=1, label=f"g_min {cal['g_min']:.3g}")
    ax.axhline(cal["g_max"], color="k", ls=":", lw=1, label=f"g_max {cal['g_max']:.3g}")
    ax.set_xlabel("requested g")
    ax.set_ylabel("read back g")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("range (ramp across it)", fontsize=9)
    return _save(fig, path)


def drift_figure(cal: dict[str, Any], path: Path) -> Path:
    """Mean g(t)/g(t_write) after a write, and the fitted power law."""
    fig, ax = plt.subplots(figsize=(5.0, 3.6), constrained_layout=True)
    t = np.asarray(cal["drift_t_s"])
    r = np.asarray(cal["drift_ratio"])
    ax.semilogx(t, r, "o", label="mean over cells")
    if cal.get("nu") is not None and t.size:
        tt = np.logspace(np.log10(t.min()), np.log10(t.max()), 50)
        label = rf"fit $(t/t_0)^{{-\nu}}$, $\nu$={cal['nu']:.3g}, $t_0$={cal['t0_s']:.3g} s"
        ax.semilogx(tt, (tt / cal["t0_s"]) ** -cal["nu"], "r-", lw=1, label=label)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if t.size:
        ax.set_xticks(t, [f"{v:.3g}" for v in t])
    ax.set_xlabel("time after write (s)")
    ax.set_ylabel("g(t) / g(write)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("drift over the hold", fontsize=9)
    return _save(fig, path)
