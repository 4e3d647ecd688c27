"""The scaling of sigma_onset with hidden width and training length, from the sweeps in docs/results.

    python benchmarks/onset_scaling.py --out docs/results/onset_scaling

Every point is a measured sigma_onset (plateau - 5 points, log-interpolated; hil.analysis.sweep_stats)
of MNIST at batch 4 (drn-1h-mnist recipe), read from the files `hil plot fig3` (or
benchmarks/beyond_report.py) wrote, with the onset the EP signal predicts where the sweep
recorded it.  Fit per width: log10 sigma_onset = a + b log10(updates); the interval on b and
on the projection is Monte Carlo (each onset drawn log-normal from its 95 % interval, 4,000
draws).  Projected to the paper-size schedules: 5 epochs of 60,000 images (noise_sweep-paper,
75,000 updates) and the reference DRN's 50 epochs (750,000 updates).

Writes scaling.csv (the points), scaling.json (fits, projections) and scaling.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

R = Path(__file__).resolve().parent.parent / "docs" / "results"
SNR_CRIT = 0.73  # hil.diagnostics.DEFAULT_SNR_CRIT
PAPER_UPDATES = {"paper sweep: 5 epochs x 60k, batch 4": 75_000, "reference DRN: 50 epochs x 60k, batch 4": 750_000}
Z95 = 1.959963984540054


def _from_fig3(path: Path, curve: str, width: int, images: int, epochs: int, batch: int, source: str,
               seeds: int) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    a = json.loads(path.read_text())
    st = (a.get("stages") or {}).get(curve)
    if not st or st.get("onset_how") != "interpolated":
        return None
    ci = st.get("sigma_onset_ci") or {}
    pred = ((a.get("diagnosed_onset") or {}).get(curve) or {}).get("sigma_onset")
    return {"source": source, "width": width, "batch": batch, "images": images, "epochs": epochs,
            "updates": images * epochs // batch, "seeds": seeds, "plateau": st["plateau_acc"],
            "sigma_onset": st["sigma_onset"], "lo": ci.get("lo"), "hi": ci.get("hi"), "predicted": pred,
            "interval": "95 % bootstrap over seeds"}


def points() -> list[dict[str, Any]]:
    """Every measured onset of MNIST at batch 4 in docs/results."""
    pts = []
    with open(R / "beyond" / "depth.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["arch"] in ("256", "1024"):
                sig = float(r["h1_signal_median_v"])
                pts.append({"source": "beyond/depth.csv (issue 14)", "width": int(r["arch"]), "batch": 4,
                            "images": 1500, "epochs": 1, "updates": 375, "seeds": 1,
                            "plateau": float(r["noiseless_acc"]), "sigma_onset": float(r["sigma_onset_v"]),
                            "lo": float(r["onset_lo_v"]), "hi": float(r["onset_hi_v"]), "predicted": sig / SNR_CRIT,
                            "interval": "test-set binomial only (1 seed)"})
    small = [
        (R / "onset_scaling" / "clt-small" / "fig3.json", "mnist n_samples=1", 256, 5000, 1,
         "clt_sweep-small, N = 1", 2),
        (R / "noise_sweep-small" / "fig3.json", "mnist", 256, 20000, 1, "noise_sweep-small (sets SNR_crit)", 4),
        (R / "noise_sweep-medium" / "fig3.json", "mnist", 1024, 10000, 1, "noise_sweep-medium", 6),
    ]
    for path, curve, width, images, epochs, source, seeds in small:
        p = _from_fig3(path, curve, width, images, epochs, 4, source, seeds)
        if p:
            pts.append(p)
    scaling = R / "onset_scaling-medium" / "fig3.json"
    if scaling.is_file():
        for curve in json.loads(scaling.read_text()).get("stages", {}):
            kv = dict(part.split("=", 1) for part in curve.split()[1:])
            p = _from_fig3(scaling, curve, int(kv["hidden"].strip("[]")), 5000, int(kv["epochs"]),
                           int(kv["batch_size"]), "onset_scaling-medium", 2)
            if p:
                pts.append(p)
    return pts


def fit(pts: list[dict[str, Any]], rng: np.random.Generator, draws: int = 4000) -> dict[str, Any] | None:
    """log10 onset = a + b log10 updates over points of one width; Monte Carlo interval on b and projections."""
    if len({p["updates"] for p in pts}) < 2:
        return None
    x = np.log10([p["updates"] for p in pts])
    y = np.log10([p["sigma_onset"] for p in pts])
    sd = np.array([(math.log10(p["hi"]) - math.log10(p["lo"])) / (2 * Z95) if p["lo"] and p["hi"] else 0.1
                   for p in pts])
    b, a = np.polyfit(x, y, 1)
    ys = y + sd * rng.standard_normal((draws, len(pts)))
    bs, as_ = np.polyfit(x, ys.T, 1)
    proj = {}
    for name, n in PAPER_UPDATES.items():
        v = 10 ** (as_ + bs * math.log10(n))
        proj[name] = {"updates": n, "sigma_onset": float(10 ** (a + b * math.log10(n))),
                      "lo": float(np.quantile(v, 0.025)), "hi": float(np.quantile(v, 0.975))}
    return {"slope": float(b), "slope_lo": float(np.quantile(bs, 0.025)), "slope_hi": float(np.quantile(bs, 0.975)),
            "intercept": float(a), "n_points": len(pts), "projection": proj}


def plot(pts: list[dict[str, Any]], fits: dict[int, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for i, width in enumerate(sorted({p["width"] for p in pts})):
        c = f"C{i}"
        mine = sorted((p for p in pts if p["width"] == width and p["batch"] == 4), key=lambda p: p["updates"])
        u = np.array([p["updates"] for p in mine], dtype=float)
        s = np.array([p["sigma_onset"] for p in mine])
        lo = np.array([p["lo"] or p["sigma_onset"] for p in mine])
        hi = np.array([p["hi"] or p["sigma_onset"] for p in mine])
        ax.errorbar(u, s, yerr=[s - lo, hi - s], fmt="o", color=c, capsize=3, label=f"1568-{width}-10, measured")
        pred = [(p["updates"], p["predicted"]) for p in mine if p["predicted"]]
        if pred:
            ax.plot(*zip(*pred, strict=True), "v", color=c, mfc="none", ms=8,
                    label=f"{width}: predicted from EP signal")
        f = fits.get(width)
        if f:
            xs = np.logspace(math.log10(u.min()), math.log10(max(PAPER_UPDATES.values())), 50)
            ax.plot(xs, 10 ** (f["intercept"] + f["slope"] * np.log10(xs)), "--", color=c, lw=1,
                    label=f"{width}: fit slope {f['slope']:.2f} [{f['slope_lo']:.2f}, {f['slope_hi']:.2f}]")
            for pr in f["projection"].values():
                ax.errorbar([pr["updates"]], [pr["sigma_onset"]], yerr=[[pr["sigma_onset"] - pr["lo"]],
                            [pr["hi"] - pr["sigma_onset"]]], fmt="s", color=c, mfc="none", capsize=3)
    for n in PAPER_UPDATES.values():
        ax.axvline(n, color="0.6", lw=0.8, ls=":")
    ax.axhline(5e-5, color="k", lw=0.8, ls="--", label="paper's σ_c ≈ 5e-5 V")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("EP updates (images x epochs / batch)")
    ax.set_ylabel("σ_onset (V per sample), MNIST, batch 4")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=6.5)
    ax.set_title("σ_onset vs training length and width; open squares: projections (dotted: paper schedules)",
                 fontsize=8)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=R / "onset_scaling")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pts = points()
    rng = np.random.default_rng(0)
    widths = sorted({p["width"] for p in pts})
    fits = {w: fit([p for p in pts if p["width"] == w and p["batch"] == 4], rng) for w in widths}
    fits = {w: f for w, f in fits.items() if f}
    with open(args.out / "scaling.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(pts[0]))
        w.writeheader()
        w.writerows({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in p.items()} for p in pts)
    ratio_375 = [p for p in pts if p["updates"] == 375]
    width_exp = None
    if len(ratio_375) == 2:
        a, b = sorted(ratio_375, key=lambda p: p["width"])
        width_exp = math.log(b["sigma_onset"] / a["sigma_onset"]) / math.log(b["width"] / a["width"])
    out = {"fits_by_width": fits, "width_exponent_at_375_updates": width_exp, "snr_crit": SNR_CRIT,
           "definition": __doc__}
    (args.out / "scaling.json").write_text(json.dumps(out, indent=1) + "\n")
    plot(pts, fits, args.out / "scaling.png")
    for p in pts:
        pr = f"{p['predicted']:.2e}" if p["predicted"] else "-"
        print(f"{p['width']:>5} B{p['batch']:<2} {p['updates']:>6} updates: onset {p['sigma_onset']:.2e} "
              f"[{p['lo']:.2e}, {p['hi']:.2e}] predicted {pr}  ({p['source']})")
    for width, f in fits.items():
        print(f"width {width}: slope {f['slope']:.3f} [{f['slope_lo']:.3f}, {f['slope_hi']:.3f}]; " + "; ".join(
            f"{k}: {v['sigma_onset']:.2e} [{v['lo']:.2e}, {v['hi']:.2e}]" for k, v in f["projection"].items()))
    if width_exp is not None:
        print(f"width exponent at 375 updates: {width_exp:.2f}")
    print(f"wrote {args.out}/scaling.csv, scaling.json, scaling.png")


if __name__ == "__main__":
    main()
