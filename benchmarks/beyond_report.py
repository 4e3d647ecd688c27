"""Tables and figures of docs/results/beyond from the trials that benchmarks/beyond.py wrote.

    python benchmarks/beyond_report.py --out docs/results/beyond

Writes noise-types.{png,csv}, adaptive.{png,csv}, depth.{png,csv}, trace.{png,csv} and summary.json
next to the trial files; every number in docs/results/beyond/README.md comes from these.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from beyond_trace import windows  # noqa: E402  (benchmarks/ is the script's folder)

from hil.analysis.sweep_stats import bootstrap, stages  # noqa: E402
from hil.simulators.noise_theory import at_single_read_std, ep_sigma, mean_variance  # noqa: E402

DT = 1e-6  # the twin's sample period in these runs
ONSET_DROP = 0.05


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        w.writerows(rows)


def mean_sd(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else float("nan")


CLT_TRIALS = Path("docs/results/clt_sweep-small/fig4-trials.csv")  # same network, data and reads as SMALL


def white_curve(rows: list[dict[str, Any]], sigma: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean accuracy of white noise against its EP sigma (sigma / sqrt N), and the noiseless level.

    Pools the small CLT sweep (64 trials of the same 1568-256-10 recipe, explicit reads: every
    (sigma, N) lands at sigma / sqrt(N) on one factor-2 grid) with this experiment's white trials.
    """
    pts: dict[float, list[float]] = defaultdict(list)
    if CLT_TRIALS.exists():
        with CLT_TRIALS.open() as fh:
            for r in csv.DictReader(fh):
                if r["status"] == "completed":
                    pts[float(f"{float(r['sigma']) / math.sqrt(int(r['n_samples'])):.4g}")].append(
                        float(r["final_test_acc"]))
    for r in rows:
        if r["kind"] == "white" and r["form"] == "centered":
            pts[float(f"{sigma / math.sqrt(r['n']):.4g}")].append(r["final_test_acc"])
    xs = np.array(sorted(pts))
    ys = np.array([np.mean(pts[x]) for x in xs])
    none = [r["final_test_acc"] for r in rows if r["kind"] == "none" and r["form"] == "centered"]
    return xs, ys, float(np.mean(none)) if none else float("nan")


def predict(xs: np.ndarray, ys: np.ndarray, plateau: float, s: float) -> float:
    """Accuracy on the white curve at EP sigma s, log-interpolated; below the smallest white point, toward
    the noiseless level (reached at a tenth of it); beyond the largest, held."""
    if not len(xs):
        return float("nan")
    if s <= 0:
        return plateau
    lx = np.log(xs)
    if s < xs[0]:
        lo = np.log(xs[0] / 10)
        return float(np.interp(np.log(s), [lo, lx[0]], [plateau, ys[0]]))
    return float(np.interp(np.log(s), lx, ys))


def update_noise_ratio(out: Path) -> dict[tuple[str, int], float]:
    """Measured rms noise of the G1 (hidden-layer) gradient, relative to white noise at N = 1."""
    path = out / "update-noise.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["rows"]
    ref = next(r["rms_err_G1"] for r in rows if r["kind"] == "white" and r["n"] == 1)
    return {(r["kind"], r["n"]): r["rms_err_G1"] / ref for r in rows}


def noise_types(out: Path) -> dict[str, Any]:
    rows = load(out / "noise-types-trials.jsonl")
    if not rows:
        return {}
    sigma = next(r["sigma"] for r in rows if "sigma" in r)
    xs, ys, plateau = white_curve(rows, sigma)
    ratio = update_noise_ratio(out)
    groups: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in rows:
        if r["kind"] != "none":
            groups[(r["kind"], r["form"], r["n"])].append(r["final_test_acc"])
    table = []
    for (kind, form, n), accs in sorted(groups.items()):
        model = at_single_read_std(kind, sigma)
        s_ep = ep_sigma(model, n, DT)
        s_meas = sigma * ratio[(kind, n)] if (kind, n) in ratio else float("nan")
        m, sd = mean_sd(accs)
        table.append({"kind": kind, "form": form, "n": n, "seeds": len(accs), "mean_acc": round(m, 4),
                      "sd_acc": round(sd, 4), "accs": " ".join(f"{a:.4f}" for a in accs),
                      "ep_sigma_theory_v": s_ep, "ep_sigma_measured_v": s_meas,
                      "mean_sigma_v": math.sqrt(mean_variance(model, n, DT)),
                      "predicted_acc": round(predict(xs, ys, plateau, s_meas), 4)})
    write_csv(out / "noise-types.csv", table)
    fig, (ax, axt) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"white": "k", "pink": "tab:pink", "telegraph": "tab:blue", "offset": "tab:green"}
    ns_dense = np.unique(np.round(np.logspace(0, math.log10(64), 40)).astype(int))
    ns_meas = sorted({n for _, n in ratio})
    for kind, color in colors.items():
        model = at_single_read_std(kind, sigma)
        for form, style in (("centered", "-"), ("one-sided", ":")):
            pts = sorted((t["n"], t["mean_acc"], t["sd_acc"]) for t in table if t["kind"] == kind and t["form"] == form)
            if not pts:
                continue
            n, m, sd = (np.array(v, dtype=float) for v in zip(*pts))
            label = kind if form == "centered" else f"{kind} (one-sided EP)"
            ax.errorbar(n, m, yerr=np.nan_to_num(sd), fmt="o" + style, color=color, capsize=3, label=label)
        if ns_meas and kind != "white":
            th = [predict(xs, ys, plateau, sigma * ratio[(kind, k)]) for k in ns_meas]
            ax.plot(ns_meas, th, "--", color=color, alpha=0.7, lw=1.2)
        axt.plot(ns_dense, [ep_sigma(model, int(k), DT) / sigma for k in ns_dense], "-", color=color,
                 label=f"{kind}: theory, one node")
        axt.plot(ns_dense, [math.sqrt(mean_variance(model, int(k), DT)) / sigma for k in ns_dense], ":",
                 color=color, lw=0.8)
        if ns_meas:
            axt.plot(ns_meas, [max(ratio[(kind, k)], 1e-3) for k in ns_meas], "o", color=color, ms=4)
    ax.axhline(plateau, color="0.5", lw=0.8, label="noiseless")
    one = [r["final_test_acc"] for r in rows if r["kind"] == "none" and r["form"] == "one-sided"]
    if one:
        ax.axhline(float(np.mean(one)), color="0.5", lw=0.8, ls=":", label="noiseless (one-sided EP)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N reads averaged per node")
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"equal single-read std {sigma:g} V; dashed: predicted from the update noise", fontsize=9)
    ax.legend(fontsize=7)
    axt.set_xscale("log", base=2)
    axt.set_yscale("log")
    axt.set_ylim(1e-3, 2)
    axt.set_xlabel("N")
    axt.set_ylabel("noise / single-read std")
    axt.set_title("update noise: theory per node (solid), measured G1 gradient (dots);\n"
                  "dotted: one N-read mean (prediction); offset (0) drawn at 1e-3", fontsize=9)
    axt.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "noise-types.png", dpi=130)
    plt.close(fig)
    return {"sigma_v": sigma, "noiseless_acc": plateau, "rows": table}


def adaptive(out: Path, name: str = "adaptive") -> dict[str, Any]:
    """`name`.{png,csv}: accuracy against training reads, fixed N and adaptive; N chosen over training."""
    rows = load(out / f"{name}-trials.jsonl")
    if not rows:
        return {}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        key = f"fixed N={r['n']}" if r["mode"] == "fixed" else f"adaptive T={r['snr_target']:g}"
        if r.get("beta_max"):
            key += f", beta_max {r['beta_max']:g}"
        groups[key].append(r)
    epochs = len(rows[0]["epochs"])
    table = []
    for key, rs in groups.items():
        m, sd = mean_sd([r["final_test_acc"] for r in rs])
        reads = [sum(e["reads"] for e in r["epochs"]) for r in rs]
        row = {"mode": key, "seeds": " ".join(str(r["seed"]) for r in rs), "mean_acc": round(m, 4),
               "sd_acc": round(sd, 4), "accs": " ".join(f"{r['final_test_acc']:.4f}" for r in rs),
               "train_reads_per_node": int(np.mean(reads)), "mean_n": round(np.mean(reads) / (3 * 5000 * epochs), 2)}
        if epochs > 1:  # the accuracy after each earlier epoch, mean over seeds
            row.update({f"acc_epoch{e + 1}": round(float(np.mean([r["epochs"][e]["test_acc"] for r in rs])), 4)
                        for e in range(epochs - 1)})
        table.append(row)
    fixed = [t for t in table if t["mode"].startswith("fixed")]
    best = max(fixed, key=lambda t: t["mean_acc"]) if fixed else None
    for t in table:
        t["reads_vs_best_fixed"] = round(t["train_reads_per_node"] / best["train_reads_per_node"], 3) if best else None
        t["acc_minus_best_fixed"] = round(t["mean_acc"] - best["mean_acc"], 4) if best else None
    write_csv(out / f"{name}.csv", table)
    fig, (ax, axn) = plt.subplots(1, 2, figsize=(10, 4))
    for t in table:
        marker = "s" if t["mode"].startswith("fixed") else "*"
        ax.errorbar(t["train_reads_per_node"], t["mean_acc"], yerr=np.nan_to_num(t["sd_acc"]), fmt=marker,
                    ms=9 if marker == "*" else 6, capsize=3, label=t["mode"])
    ax.set_xscale("log")
    ax.set_xlabel(f"training reads per node (N x 3 phases x images x {epochs} epoch(s))")
    ax.set_ylabel("final test accuracy (eval N = 64)")
    ax.legend(fontsize=7)
    per_epoch = math.ceil(5000 / 4)
    for r in rows:
        if r["mode"] == "adaptive" and r.get("adaptive_rows") and r["seed"] == 0:  # one seed: a readable panel
            b = [a["epoch"] * per_epoch + a["batch"] for a in r["adaptive_rows"]]
            label = f"T={r['snr_target']:g}" + (f", beta_max {r['beta_max']:g}" if r.get("beta_max") else "")
            axn.plot(b, [a["n_samples"] for a in r["adaptive_rows"]], lw=0.8, label=label)
            if r.get("beta_max"):
                axn.plot(b, [16 * a["beta"] for a in r["adaptive_rows"]], ":", lw=0.8, label=f"16 x beta ({label})")
    axn.set_title("N chosen per batch, seed 0", fontsize=9)
    axn.set_xlabel("batch")
    axn.set_ylabel("N chosen")
    axn.set_yscale("log", base=2)
    axn.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=130)
    plt.close(fig)
    return {"rows": table, "best_fixed": best["mode"] if best else None}


def depth(out: Path) -> dict[str, Any]:
    rows = load(out / "depth-trials.jsonl")
    if not rows:
        return {}
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    table, curves = [], {}
    for arch in archs:
        rs = [r for r in rows if r["arch"] == arch]
        by_sigma: dict[float, list[float]] = defaultdict(list)
        for r in rs:
            by_sigma[r["sigma"]].append(r["final_test_acc"])
        if 0.0 not in by_sigma:
            continue
        sigmas = sorted(by_sigma)
        means = [float(np.mean(by_sigma[x])) for x in sigmas]
        st = stages(sigmas, means, chance=0.1, onset_drop=ONSET_DROP)
        plateau, onset = st["plateau_acc"], st["sigma_onset"] if st["onset_how"] == "interpolated" else None
        xs, ys = sigmas[1:], means[1:]

        def onset_of(boot: dict[float, list[float]]) -> float | None:
            b = stages(sorted(boot), [float(np.mean(boot[x])) for x in sorted(boot)], 0.1, ONSET_DROP)
            return b["sigma_onset"] if b["onset_how"] == "interpolated" else None

        ci = bootstrap(by_sigma, onset_of)  # over seeds, within each sigma (as the sweep analysis)
        # per-layer signal: mean over seeds of each noiseless run's signal
        plateau_rows = [r for r in rs if r["sigma"] == 0.0]
        sig = [{"median_v": float(np.mean([r["signals"][i]["median_v"] for r in plateau_rows]))}
               for i in range(len(plateau_rows[0]["signals"]))]
        row = {"arch": arch, "seeds": len(plateau_rows), "noiseless_acc": round(plateau, 4), "sigma_onset_v": onset,
               "onset_below_v": xs[0] if st["onset_how"] == "below at the first point" else None,
               "onset_lo_v": ci["lo"], "onset_hi_v": ci["hi"], "onset_boot_valid": f"{ci['n_valid']}/{ci['n_boot']}",
               **{f"acc@{x:g}": round(y, 4) for x, y in zip(xs, ys)}}
        for l, sl in enumerate(sig[:-1], start=1):
            row[f"h{l}_signal_median_v"] = sl["median_v"]
            row[f"h{l}_snr_at_onset"] = sl["median_v"] / onset if onset else None  # hil/diagnostics.py convention
        row["out_signal_median_v"] = sig[-1]["median_v"]
        table.append(row)
        noisy_sig = [[float(np.mean([r["signals"][i]["median_v"] for r in rs if r["sigma"] == x]))
                      for i in range(len(sig))] for x in xs]
        curves[arch] = (xs, ys, plateau, noisy_sig, sig)
    write_csv(out / "depth.csv", table)
    fig, (ax, axs) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (arch, (xs, ys, plateau, sigs, sig0)) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(xs, ys, "o-", color=color, label=arch)
        ax.axhline(plateau, color=color, lw=0.6, ls=":")
        onset = next(t["sigma_onset_v"] for t in table if t["arch"] == arch)
        if onset:
            ax.axvline(onset, color=color, lw=0.8, ls="--")
        for l in range(len(sig0) - 1):
            snr = [s[l] / x for s, x in zip(sigs, xs)]
            axs.plot(xs, snr, "o-" if l == 0 else "s--", color=color, label=f"{arch} hidden {l + 1}")
    ax.set_xscale("log")
    ax.set_xlabel("read noise sigma (V), N = 1")
    ax.set_ylabel("final test accuracy")
    ax.set_title("dashed: sigma_onset (5 points below noiseless)", fontsize=10)
    ax.legend(fontsize=7)
    axs.set_xscale("log")
    axs.set_yscale("log")
    axs.axhline(1.0, color="0.5", lw=0.8)
    axs.set_xlabel("read noise sigma (V), N = 1")
    axs.set_ylabel("update SNR: median |dh| / sigma")
    axs.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "depth.png", dpi=130)
    plt.close(fig)
    return {"rows": table}


TRACE_STYLE = {"white-centered-N1": ("k", ":"), "white-centered-N64": ("k", "-"),
               "pink-centered-N64": ("tab:pink", "-"), "telegraph-centered-N1": ("tab:blue", ":")}


def trace(out: Path) -> dict[str, Any]:
    """trace.png / trace.csv: per traced run, accuracy and the update's error and clip state over training."""
    rows = load(out / "trace-trials.jsonl")
    if not rows:
        return {}
    panels = [("clean_test_acc", "test accuracy, clean reads (1,000 images)"),
              ("cos_G1", "cos(noisy, exact EP gradient), G1"), ("along_G1", "error along the exact gradient, G1"),
              ("err_G1", "|error| / |exact gradient|, G1"), ("at_gmin_G1", "fraction of G1 at g_min"),
              ("along_all", "error along the exact gradient, all parameters")]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    table = []
    for r in rows:
        key = r["label"].rsplit("-s", 1)[0]
        color, ls = TRACE_STYLE.get(key, ("0.5", "--"))
        pts, bs = r["trace_points"], r["trace_batches"]
        acc = [p["clean_test_acc"] for p in pts]
        best = int(np.argmax(acc))
        row = {"run": r["label"], "final_test_acc": r["final_test_acc"], "clean_test_acc": r["clean_test_acc"],
               "peak_clean_acc_1000": acc[best], "peak_batch": pts[best]["batch"], "final_clean_acc_1000": acc[-1],
               "last500_mean_clean_acc": float(np.mean(acc[-20:])),  # the last 20 snapshots: 500 batches
               "last500_sd_clean_acc": float(np.std(acc[-20:], ddof=1)),
               "last500_min_clean_acc": min(acc[-20:]), "last500_max_clean_acc": max(acc[-20:])}
        for k in ("cos_G1", "along_G1", "err_G1", "along_G2", "along_all"):
            w = windows(bs, k)
            row[f"{k}_first"], row[f"{k}_last"] = w[0][1], w[-1][1]
            row[f"{k}_last_se"] = w[-1][2]
            row[f"{k}_mean"] = float(np.mean([b[k] for b in bs]))
        for k in ("at_gmin_G1", "at_gmin_G2", "rms_b1"):
            row[f"{k}_start"], row[f"{k}_end"] = pts[0][k], pts[-1][k]
        table.append(row)
        for ax, (k, title) in zip(axes.flat, panels):
            if k in pts[0]:
                ax.plot([p["batch"] for p in pts], [p[k] for p in pts], ls, color=color, label=key)
            else:
                w = np.array(windows(bs, k))
                ax.errorbar(w[:, 0], w[:, 1], yerr=w[:, 2], fmt="o" + ls, color=color, ms=3, capsize=2, label=key)
            ax.set_title(title, fontsize=9)
        run_acc = np.array(windows([{"a": b["correct"] / 4} for b in bs], "a"))
        axes.flat[0].plot(run_acc[:, 0], run_acc[:, 1], ls, color=color, lw=0.6, alpha=0.6)
    for ax in axes.flat:
        ax.set_xlabel("batch")
    axes.flat[0].legend(loc="lower right", fontsize=7, title_fontsize=6,
                        title="thin: train acc (noisy free phase, 125-batch windows)")
    axes.flat[3].set_yscale("log")
    for ax in (axes.flat[2], axes.flat[5]):
        ax.axhline(0.0, color="0.5", lw=0.8)
    fig.suptitle("traces at single-read std 4e-3 V (seed 0); gradient panels: 125-batch means +- 1 se", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "trace.png", dpi=120)
    plt.close(fig)
    write_csv(out / "trace.csv", table)
    return {"rows": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/results/beyond"))
    args = ap.parse_args()
    summary = {"noise_types": noise_types(args.out), "adaptive": adaptive(args.out),
               "adaptive_long": adaptive(args.out, "adaptive-long"), "depth": depth(args.out),
               "trace": trace(args.out)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    for name, part in summary.items():
        for row in part.get("rows", []):
            print(name, {k: v for k, v in row.items() if k not in ("accs",)})


if __name__ == "__main__":
    main()
