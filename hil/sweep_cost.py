"""What a sweep will cost: time per trial measured on finished trials, or modelled by a short calibration run."""

from __future__ import annotations

import itertools
import math
from typing import Any

from hil.config import RunConfig, apply_overrides, validate_section
from hil.packing import auto_pack_size, run_pack
from hil.sweep import Sweep
from hil.sweep_run import pending_trials

DATASET_SIZES = {"train": 60_000, "test": 10_000}  # MNIST, Fashion-MNIST and KMNIST share them


def _trial_work(cfg: RunConfig) -> tuple[float, float]:
    """(train samples, test samples) a trial processes, over all its epochs."""
    n_train = cfg.data.train_subset or DATASET_SIZES["train"]
    n_test = cfg.data.test_subset or DATASET_SIZES["test"]
    if cfg.data.root == "embedded":
        from hil.datasets import load_embedded

        tr, te = load_embedded()
        n_train, n_test = min(n_train, len(tr)), min(n_test, len(te))
    batches = math.ceil(n_train / cfg.train.batch_size)
    if cfg.train.max_batches:
        batches = min(batches, cfg.train.max_batches)
    return cfg.train.epochs * batches * cfg.train.batch_size, cfg.train.epochs * n_test


def _net_size(cfg: RunConfig) -> float:
    layers = [1568, *cfg.network.hidden, 10]
    return float(sum(a * b for a, b in itertools.pairwise(layers)))


def calibrate(cfg_raw: dict[str, Any], torch_threads: int = 1, batches: int = 60, pack: int = 1) -> dict[str, float]:
    """Seconds per training sample and per test sample of one trial's network, on the embedded MNIST subset.

    With `pack` > 1 the probe is a pack of that many trials (seeds 0, 1, ...) and the
    times are per trial, the pack's shared equally.
    """
    data = apply_overrides(cfg_raw, ["data.root=embedded", "data.dataset=mnist", "train.epochs=1",
                                     f"train.max_batches={batches}", "data.test_subset=512"], "calibration")
    probe = validate_section(RunConfig, data, "calibration")
    configs = [probe.model_copy(update={"seed": i}).model_dump(mode="json") for i in range(pack)]
    # A worker pays once what a process's first batches cost (allocation, hil.rank_update's choice:
    # up to a second), so a short run first keeps it out of the timed batches.
    warm = apply_overrides(configs[0], ["train.max_batches=5", "data.test_subset=1"], "calibration")
    run_pack([warm], None, torch_threads)
    res = run_pack(configs, None, torch_threads)[0]
    ep = res["epochs"][0]
    n_tr = batches * probe.train.batch_size
    eval_s = max(res["wall_s"] - ep["wall_s"], 1e-6)
    return {"train_s_per_sample": ep["wall_s"] / n_tr, "test_s_per_sample": eval_s / 512,
            "net_size": _net_size(probe), "batch_size": probe.train.batch_size, "pack": pack}


def estimate(sweep: Sweep, store: Any, workers: int, torch_threads: int = 1,
             where: list[str] | None = None, calibrate_anyway: bool = False, pack: int | None = 1) -> dict[str, Any]:
    """Projected cost: time per trial (measured on finished trials, or modelled by a short calibration).

    The calibration packs trials as `run_sweep(pack=pack)` would.
    """
    todo, skipped = pending_trials(sweep, store, where)
    done = [r for r in store.trials(sweep.id) if r["status"] == "completed" and r["wall_s"]]
    out: dict[str, Any] = {"sweep": sweep.id, "trials": len(sweep.trials), "pending": len(todo),
                           "finished": skipped, "workers": workers, "torch_threads": torch_threads}
    if not todo:
        out.update(per_trial_s=0.0, total_s=0.0, method="nothing to run")
        return out
    if done and not calibrate_anyway:
        per = [r["wall_s"] for r in done]
        mean = sum(per) / len(per)
        out.update(method=f"measured: mean of {len(per)} finished trials", per_trial_s=mean,
                   total_s=mean * len(todo) / workers)
        return out
    cal_cache: dict[tuple, dict[str, float]] = {}
    costs = []
    for t in todo:
        cfg = validate_section(RunConfig, t.config, "trial")
        size = pack or auto_pack_size(t.config)
        key = (tuple(cfg.network.hidden), cfg.train.batch_size, size)
        if key not in cal_cache:
            cal_cache[key] = calibrate(t.config, torch_threads, pack=size)
        cal = cal_cache[key]
        n_tr, n_te = _trial_work(cfg)
        costs.append(n_tr * cal["train_s_per_sample"] + n_te * cal["test_s_per_sample"])
    mean = sum(costs) / len(costs)
    out.update(method=f"modelled: {len(cal_cache)} calibration run(s) of 60 batches on the embedded subset",
               per_trial_s=mean, total_s=sum(costs) / workers, calibration=list(cal_cache.values()))
    return out
