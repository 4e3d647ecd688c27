"""The shipped presets learn: the quickstart on embedded data, the paper's network on full MNIST.

These are the regression tests of the presets' expected accuracies (they run
the real training protocol on the twin, seeded, so the numbers are repeatable).
"""

from __future__ import annotations

import torch

from hil.config import load_config
from hil.protocols.train import prepare_data, topology_for, train
from hil.registry import open_crossbar
from tests.conftest import full_data_root, needs_full_data


def run(name: str, overrides: list[str], data_dir: str | None = None):
    cfg, _ = load_config(name, overrides)
    data = prepare_data(cfg, data_dir)
    xbar = open_crossbar(topology_for(cfg, 784), cfg.crossbar, seed=cfg.seed, source=name)
    return train(xbar, cfg, data), xbar


def test_quickstart_reaches_85_percent_on_the_embedded_test_subset():
    epochs, xbar = run("quickstart", ["train.epochs=2"])
    assert epochs[-1]["test_acc"] >= 0.85
    g = xbar.read_conductances()
    assert (g["G1"] >= 0).all() and (g["G2"] >= 0).all()  # clipped to the device range


def test_same_seed_same_run_bit_for_bit():
    overrides = ["train.epochs=1", "data.train_subset=400", "data.test_subset=100", "network.hidden=[32]",
                 "crossbar.sigma=1e-4", "train.n_samples=3"]
    (a, xa), (b, xb) = run("quickstart", overrides), run("quickstart", overrides)
    assert a[0]["test_acc"] == b[0]["test_acc"] and a[0]["train_loss"] == b[0]["train_loss"]
    ga, gb = xa.read_conductances(), xb.read_conductances()
    assert all(torch.equal(ga[k], gb[k]) for k in ga)


@needs_full_data
def test_paper_network_reaches_96_percent_after_one_epoch_of_full_mnist():
    epochs, _ = run("drn-1h-mnist", ["train.epochs=1"], str(full_data_root()))
    assert epochs[0]["test_acc"] >= 0.96
