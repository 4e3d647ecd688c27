"""Milliseconds per training sample of noise_sweep-paper's first trial, after a warm-up in the same process.

That trial is drn-1h-mnist (1568-1024-10, batch 4, centered EP) at sigma = 1e-8 V; it runs on
the embedded MNIST subset here, 150 batches three times, so it needs no data and no store.
This is what `hil sweep --estimate` models a trial from, measured more than once.
Runs under any checkout's environment since round 1 (`benchmarks/bench_trees.sh` uses it):

    OMP_NUM_THREADS=1 python benchmarks/trial_cost.py [KEY=VALUE ...]     (e.g. crossbar.layout=column)

Prints one JSON line.
"""

from __future__ import annotations

import json
import sys

import torch

import hil
from hil.config import load_config
from hil.protocols.train import prepare_data, topology_for, train
from hil.registry import open_crossbar


def ms_per_sample(batches: int, extra: list[str]) -> float:
    cfg, _ = load_config("drn-1h-mnist", ["data.root=embedded", "train.epochs=1", f"train.max_batches={batches}",
                                          "data.test_subset=512", "crossbar.sigma=1e-8", *extra])
    xbar = open_crossbar(topology_for(cfg, 784), cfg.crossbar, seed=0, source="trial cost")
    epochs = train(xbar, cfg, prepare_data(cfg))
    return epochs[0]["wall_s"] / (batches * cfg.train.batch_size) * 1e3


def main() -> None:
    torch.set_num_threads(1)
    extra = sys.argv[1:]
    ms_per_sample(5, extra)  # warm-up: first-batch costs, hil.rank_update's choice
    runs = [round(ms_per_sample(150, extra), 4) for _ in range(3)]
    print(json.dumps({"package": hil.__file__, "set": extra, "train_ms_per_sample": runs}))


if __name__ == "__main__":
    main()
