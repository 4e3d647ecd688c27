"""Experiments of docs/results/beyond: noise types x N, adaptive vs fixed N, depth.

Each experiment is a list of trials (one training run of the twin each: a base
config plus overrides); a trial's result is appended to `<out>/<experiment>-trials.jsonl`
as soon as it finishes, and a re-run skips the trials already there, so a killed
run resumes.  One process, one torch thread: the machine is shared.

    python benchmarks/beyond.py noise-types --out docs/results/beyond [--seeds 2]
    python benchmarks/beyond.py adaptive    --out docs/results/beyond
    python benchmarks/beyond.py depth       --out docs/results/beyond
    python benchmarks/beyond.py adaptive-long --out docs/results/beyond --seeds 2   # 2 epochs, beta_max
    python benchmarks/beyond.py trace --out docs/results/beyond --seeds 1   # per-batch trace (beyond_trace.py)
    python benchmarks/beyond.py update-noise --out docs/results/beyond   # EP gradient noise, no training
    python benchmarks/beyond_report.py --out docs/results/beyond     # tables and figures
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from beyond_trace import TRACED, run_trace  # noqa: E402  (benchmarks/ is the script's folder)

from hil.config import RunConfig, apply_overrides, load_config, validate_section
from hil.datasets import one_hot
from hil.ep import ep_gradient, initial_conductances
from hil.interface import Nudge
from hil.protocols.train import TrainHooks, prepare_data, topology_for, train
from hil.registry import open_crossbar
from hil.simulators.noise_theory import at_single_read_std
from hil.simulators.twin import TwinConfig, TwinCrossbar

NS = (1, 4, 16, 64)
SIGMA_TYPES = 4e-3  # single-read std of every noise type (V): white N = 1 is far past the onset here
SMALL = ["network.hidden=[256]", "train.epochs=1", "data.train_subset=5000", "data.test_subset=5000",
         "train.checkpoint_every=100000", "crossbar.read_path=explicit"]


def noise_entry(kind: str, sigma: float) -> list[str]:
    """Overrides that put `kind` read noise of single-read std `sigma` on the twin."""
    if kind == "none":
        return ["crossbar.sigma=0.0"]
    if kind == "white":
        return [f"crossbar.sigma={sigma!r}"]
    model = at_single_read_std(kind, sigma).model_dump(mode="json")
    return ["crossbar.sigma=0.0", "crossbar.read_noise=" + json.dumps([model])]


def noise_types(seeds: int) -> list[tuple[str, dict[str, Any], list[str]]]:
    trials = []
    for seed in range(seeds):
        for centered in (True, False):
            form = "centered" if centered else "one-sided"
            base = [*SMALL, f"seed={seed}", f"train.centered={str(centered).lower()}"]
            trials.append((f"none-{form}-N1-s{seed}", {"kind": "none", "form": form, "n": 1, "seed": seed},
                           base + noise_entry("none", 0.0)))
            kinds = ("white", "pink", "telegraph", "offset") if centered else ("offset", "white")
            for kind in kinds:
                for n in NS if centered else (1, 64):  # one-sided: the two ends only (CPU budget)
                    point = {"kind": kind, "form": form, "n": n, "seed": seed, "sigma": SIGMA_TYPES}
                    trials.append((f"{kind}-{form}-N{n}-s{seed}", point,
                                   base + noise_entry(kind, SIGMA_TYPES) + [f"train.n_samples={n}"]))
    return trials


SIGMA_ADAPTIVE = 2e-3  # above the white onset of the small net (about 5e-4 at N = 1)


def adaptive(seeds: int) -> list[tuple[str, dict[str, Any], list[str]]]:
    trials = []
    small = [o for o in SMALL if "read_path" not in o]  # white noise: the exact N-sample mean
    for seed in range(seeds):
        base = [*small, f"seed={seed}", f"crossbar.sigma={SIGMA_ADAPTIVE!r}", "eval.n_samples=64"]
        for n in NS:
            trials.append((f"fixed-N{n}-s{seed}", {"mode": "fixed", "n": n, "seed": seed},
                           base + [f"train.n_samples={n}"]))
        for target in (2.0, 1.0, 0.5):
            ad = {"snr_target": target, "n_min": 2, "n_max": 64}
            trials.append((f"adaptive-T{target:g}-s{seed}", {"mode": "adaptive", "snr_target": target, "seed": seed},
                           base + ["train.n_samples=2", "train.adaptive=" + json.dumps(ad)]))
    return trials


LONG_EPOCHS = 2


def adaptive_long(seeds: int) -> list[tuple[str, dict[str, Any], list[str]]]:
    """Adaptive vs fixed N over LONG_EPOCHS epochs (the EP signal keeps shrinking), and one `beta_max` run.

    Ordered so that a run stopped early has the pairs that matter: per seed, the best fixed
    N of one epoch (16, 64) and the reachable targets first.
    """
    trials = []
    small = [o for o in SMALL if "read_path" not in o and "epochs" not in o]
    for seed in range(seeds):
        base = [*small, f"train.epochs={LONG_EPOCHS}", f"seed={seed}", f"crossbar.sigma={SIGMA_ADAPTIVE!r}",
                "eval.n_samples=64"]
        runs: list[tuple[str, dict[str, Any], list[str]]] = []
        for n in (16, 64):
            runs.append((f"long-fixed-N{n}-s{seed}", {"mode": "fixed", "n": n}, [f"train.n_samples={n}"]))
        for target, beta_max in ((1.0, None), (0.5, None), (1.0, 2.0), (2.0, None), (2.0, 2.0)):
            ad = {"snr_target": target, "n_min": 2, "n_max": 64, **({"beta_max": beta_max} if beta_max else {})}
            tag = f"-bmax{beta_max:g}" if beta_max else ""
            runs.append((f"long-adaptive-T{target:g}{tag}-s{seed}",
                         {"mode": "adaptive", "snr_target": target, "beta_max": beta_max},
                         ["train.n_samples=2", "train.adaptive=" + json.dumps(ad)]))
        runs.append((f"long-fixed-N4-s{seed}", {"mode": "fixed", "n": 4}, ["train.n_samples=4"]))
        trials += [(label, {**point, "seed": seed, "epochs": LONG_EPOCHS}, base + extra)
                   for label, point, extra in runs]
    return trials


DEPTH_ARCHS = {"256": "[256]", "1024": "[1024]", "1024-1024": "[1024, 1024]"}
# the two-hidden-layer recipe: the reference DRN-2H (fast-drn drn.py): input gain 2000, lr 0.002/0.006/0.018
DEPTH_2H = ["data.input_gain=2000.0", "train.eta=[0.002, 0.006, 0.018]"]


def depth(seeds: int) -> list[tuple[str, dict[str, Any], list[str]]]:
    """Noiseless and 1e-3 first, then down to the onset (3e-4, 1e-4), then up: a cut-short run still brackets it."""
    trials = []
    for seed in range(seeds):
        for sigma in (0.0, 1e-3, 3e-4, 1e-4, 3e-5, 3e-3, 1e-2):
            for arch, hidden in DEPTH_ARCHS.items():
                if sigma == 3e-5 and arch != "1024-1024":  # only the deep net's first layer is that weak
                    continue
                extra = DEPTH_2H if arch == "1024-1024" else []
                base = ["train.epochs=1", "data.train_subset=1500", "data.test_subset=1000",
                        "train.checkpoint_every=100000", f"network.hidden={hidden}", f"seed={seed}", *extra]
                trials.append((f"{arch}-sigma{sigma:g}-s{seed}", {"arch": arch, "sigma": sigma, "seed": seed},
                               base + [f"crossbar.sigma={sigma!r}"]))
    return trials


def _gradient_errors(data_dir: str, kinds: tuple[str, ...], ns: tuple[int, ...], batches: int):
    """Per (kind, N): the noisy and the exact EP gradient of each of `batches` consecutive batches of 4.

    On the initial 1568-256-10 network of seed 0 and the first MNIST batches, each type at the
    same single-read std as the training runs; the ideal twin gives the exact gradient. The free
    phase is read as in training (it advances the noise's clock), so rows share the slow noise.
    """
    _, raw = load_config("drn-1h-mnist")
    cfg = validate_section(RunConfig, apply_overrides(raw, SMALL, "beyond"), "beyond")
    data = prepare_data(cfg, data_dir)
    topo = topology_for(cfg, data.train.images.shape[1])
    g = initial_conductances(topo, [1.0, 1.0], torch.Generator().manual_seed(0))
    ideal = TwinCrossbar(topo, TwinConfig(ideal=True), seed=0)
    ideal.program(g)
    for kind in kinds:
        for n in ns:
            spec = {"read_path": "explicit", **({"sigma": SIGMA_TYPES} if kind == "white" else
                    {"read_noise": [at_single_read_std(kind, SIGMA_TYPES).model_dump(mode="json")]})}
            xbar = TwinCrossbar(topo, TwinConfig.model_validate(spec), seed=1)
            xbar.program(g)
            pairs = []
            for b in range(batches):
                x = data.inputs(data.train.images[4 * b : 4 * b + 4])
                t = one_hot(data.train.labels[4 * b : 4 * b + 4], 10)
                xbar.measure(x, n_samples=n)
                lo, hi = (xbar.measure(x, nudge=Nudge(beta, t), n_samples=n) for beta in (-1.0, 1.0))
                ilo, ihi = (ideal.measure(x, nudge=Nudge(beta, t)) for beta in (-1.0, 1.0))
                pairs.append((ep_gradient(x, lo.voltages, hi.voltages, 2.0, topo),
                              ep_gradient(x, ilo.voltages, ihi.voltages, 2.0, topo)))
            yield kind, n, pairs


def update_noise(out: Path, data_dir: str, batches: int = 12) -> None:
    """The EP gradient's noise per type and N, without training: rms(grad_noisy - grad_ideal) per block."""
    rows = []
    for kind, n, pairs in _gradient_errors(data_dir, ("white", "pink", "telegraph", "offset"),
                                           (1, 2, 4, 8, 16, 32, 64), batches):
        err2: dict[str, float] = defaultdict(float)
        ref2: dict[str, float] = defaultdict(float)
        for noisy, exact in pairs:
            for k in noisy:
                err2[k] += float(((noisy[k] - exact[k]) ** 2).mean())
                ref2[k] += float((exact[k] ** 2).mean())
        rows.append({"kind": kind, "n": n, **{f"rms_err_{k}": math.sqrt(v / batches) for k, v in err2.items()},
                     **{f"rms_grad_{k}": math.sqrt(v / batches) for k, v in ref2.items()}})
        print(kind, n, {k: f"{math.sqrt(v / batches):.3g}" for k, v in err2.items()}, flush=True)
    (out / "update-noise.json").write_text(json.dumps({"sigma_v": SIGMA_TYPES, "batches": batches, "rows": rows},
                                                      indent=1))


def update_memory(out: Path, data_dir: str, batches: int = 48) -> None:
    """Whether the update's noise is correlated from one batch to the next: R(K) = |sum_k e_k|^2 / sum_k |e_k|^2.

    e_k is batch k's gradient error (noisy minus exact EP gradient) on a fixed network. For
    errors independent between batches E[R(K)] = 1 at every K; a noise that persists across
    batches (a slow 1/f or telegraph level that one update's difference does not remove) makes
    K updates add up coherently, R(K) > 1: after K steps the parameters carry sqrt(R(K)) times
    the noise that the one-step level predicts.
    """
    rows = []
    for kind, n, pairs in _gradient_errors(data_dir, ("white", "pink", "telegraph"), (1, 64), batches):
        total: dict[str, torch.Tensor] = {}
        sq: dict[str, float] = defaultdict(float)
        ratio: dict[str, list[float]] = defaultdict(list)
        for noisy, exact in pairs:
            for k in noisy:
                e = (noisy[k] - exact[k]).double()
                total[k] = total[k] + e if k in total else e
                sq[k] += float((e**2).sum())
                ratio[k].append(float((total[k] ** 2).sum()) / sq[k])
        rows.append({"kind": kind, "n": n, "R": dict(ratio)})
        print(kind, n, {k: f"R({batches})={v[-1]:.2f}" for k, v in ratio.items()}, flush=True)
    (out / "update-memory.json").write_text(json.dumps({"sigma_v": SIGMA_TYPES, "batches": batches, "rows": rows}))


def noise_clean(seeds: int) -> list[tuple[str, dict[str, Any], list[str]]]:
    """The noise-types trials at the two ends of N, re-run to score each trained network on clean reads too.

    A slow-noise run is tested with reads of the same noise, and a single N-read mean of
    1/f or telegraph noise keeps most of its std (0.82 and 0.47 sigma at N = 64) where white
    falls to sigma / 8: this separates what the noise did to training from what it does to the test.
    """
    keep = {"white", "pink", "telegraph"}
    return [t for t in noise_types(seeds)
            if t[1]["kind"] in keep and t[1]["form"] == "centered" and t[1]["n"] in (1, 64)]


def trace(seeds: int) -> list[tuple[str, dict[str, Any], list[str]]]:
    """The noise-types trials of `beyond_trace.TRACED`, re-run with a per-batch trace (benchmarks/beyond_trace.py)."""
    return [t for t in noise_types(seeds) if t[0].rsplit("-s", 1)[0] in TRACED]


EXPERIMENTS = {"noise-types": noise_types, "noise-clean": noise_clean, "adaptive": adaptive, "depth": depth,
               "trace": trace, "adaptive-long": adaptive_long}


class _Rows(TrainHooks):
    """Keeps every 10th batch row of an adaptive run (N, beta, SNR over training)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def batch(self, row: dict[str, Any], running_acc: float, samples_per_s: float) -> None:
        if "n_samples" in row and row["batch"] % 10 == 0:
            self.rows.append({k: row[k] for k in ("epoch", "batch", "n_samples", "beta", "snr")})


def layer_signals(xbar: Any, cfg: RunConfig, data: Any, n_images: int = 200) -> list[dict[str, float]]:
    """Per free layer: median and rms of |s(+beta) - s(-beta)| over active nodes of the trained network, noiseless.

    Read on an ideal twin holding the trained conductances (the signal without the
    noise, so that SNR = signal / (sigma sqrt(2 / N)) can be formed for any sigma, N).
    """
    ideal = TwinCrossbar(xbar.topology, TwinConfig(ideal=True, dtype="float64"), seed=0)
    ideal.program({k: v.double() for k, v in xbar.read_conductances().items()})
    x = data.inputs(data.test.images[:n_images]).double()
    t = one_hot(data.test.labels[:n_images], 10).double()
    beta = cfg.train.beta
    lo, hi = (ideal.measure(x, nudge=Nudge(b, t)) for b in (-beta, beta))
    out = []
    for v1, v2 in zip(lo.voltages, hi.voltages):
        d = (v2 - v1).abs()
        active = (v1 != 0) | (v2 != 0)
        da = d[active]
        out.append({"median_v": float(da.median()) if da.numel() else 0.0,
                    "rms_v": float(da.pow(2).mean().sqrt()) if da.numel() else 0.0,
                    "active": float(active.double().mean())})
    return out


def clean_test_acc(xbar: Any, cfg: RunConfig, data: Any, batch: int = 500) -> float:
    """Test accuracy of the trained conductances read on an ideal (noiseless) twin."""
    ideal = TwinCrossbar(xbar.topology, TwinConfig(ideal=True), seed=0)
    ideal.program(xbar.read_conductances())
    correct = 0
    for i in range(0, len(data.test), batch):
        m = ideal.measure(data.inputs(data.test.images[i : i + batch]))
        correct += int((data.readout.predict(m.output) == data.test.labels[i : i + batch]).sum())
    return correct / len(data.test)


def run_one(overrides: list[str], data_dir: str, traced: bool = False) -> dict[str, Any]:
    _, raw = load_config("drn-1h-mnist")
    cfg = validate_section(RunConfig, apply_overrides(raw, overrides, "beyond"), "beyond")
    data = prepare_data(cfg, data_dir)
    if traced:
        with open_crossbar(topology_for(cfg, data.train.images.shape[1]), cfg.crossbar, seed=cfg.seed,
                           source="beyond") as xbar:
            return {**run_trace(cfg, data, xbar), "clean_test_acc": clean_test_acc(xbar, cfg, data)}
    t0 = time.perf_counter()
    hooks = _Rows()
    with open_crossbar(topology_for(cfg, data.train.images.shape[1]), cfg.crossbar, seed=cfg.seed,
                       source="beyond") as xbar:
        epochs = train(xbar, cfg, data, hooks)
        signals = layer_signals(xbar, cfg, data)
        clean = clean_test_acc(xbar, cfg, data)
    rows = [{k: v for k, v in e.items() if k != "pending"} for e in epochs]
    return {"final_test_acc": rows[-1]["test_acc"], "epochs": rows, "wall_s": time.perf_counter() - t0,
            "signals": signals, "adaptive_rows": hooks.rows, "clean_test_acc": clean}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", choices=[*sorted(EXPERIMENTS), "update-noise", "update-memory"])
    ap.add_argument("--out", type=Path, default=Path("docs/results/beyond"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--data-dir", default=os.environ.get("HIL_DATA_DIR", "../shared/datasets"))
    ap.add_argument("--only", default="", help="run only trials whose label contains one of these (comma-separated)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.experiment in ("update-noise", "update-memory"):
        (update_noise if args.experiment == "update-noise" else update_memory)(args.out, args.data_dir)
        return
    path = args.out / f"{args.experiment}-trials.jsonl"
    done = {json.loads(line)["label"] for line in path.read_text().splitlines()} if path.exists() else set()
    only = args.only.split(",")
    todo = [t for t in EXPERIMENTS[args.experiment](args.seeds) if t[0] not in done and any(o in t[0] for o in only)]
    print(f"{args.experiment}: {len(todo)} trials to run ({len(done)} done) -> {path}", flush=True)
    for i, (label, point, overrides) in enumerate(todo, 1):
        result = run_one(overrides, args.data_dir, traced=args.experiment == "trace")
        row = {"label": label, **point, "overrides": overrides, **result}
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"[{i}/{len(todo)}] {label}: acc {result['final_test_acc']:.4f} ({result['wall_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
