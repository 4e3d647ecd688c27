"""The training trace of docs/results/beyond (benchmarks/beyond_trace.py): it observes a run without changing it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from hil.config import RunConfig, validate_section
from hil.protocols.train import TrainHooks, prepare_data, topology_for, train
from hil.simulators.noise_theory import at_single_read_std
from hil.simulators.twin import TwinCrossbar

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from beyond_trace import run_trace  # noqa: E402


def setup(crossbar: dict):
    cfg = validate_section(RunConfig, {
        "data": {"root": "embedded", "train_subset": 40, "test_subset": 20},
        "network": {"hidden": [16]}, "crossbar": {"kind": "twin", **crossbar},
        "train": {"epochs": 1, "batch_size": 4, "checkpoint_every": 1000},
    }, "test")
    data = prepare_data(cfg)
    return cfg, data, lambda: TwinCrossbar.from_spec(topology_for(cfg, data.train.images.shape[1]), cfg.crossbar,
                                                     seed=cfg.seed, source="test")


def test_trace_leaves_a_slow_noise_run_bit_identical():
    """Telegraph noise keeps state between reads: one extra or missing read would change every later update."""
    model = at_single_read_std("telegraph", 4e-3).model_dump(mode="json")
    cfg, data, make = setup({"read_noise": [model], "read_path": "explicit"})
    plain = make()
    train(plain, cfg, data, TrainHooks())
    traced = make()
    result = run_trace(cfg, data, traced)
    for name, g in plain.read_conductances().items():
        assert torch.equal(traced.read_conductances()[name], g), name
    assert len(result["trace_batches"]) == 10
    assert [p["batch"] for p in result["trace_points"]] == [0]  # every 25 batches: the start only
    # N = 1: the two nudged reads are adjacent samples, so a node's error is nonzero only where its
    # trap switched in between (probability ~1/8 per node at an 8-sample correlation time); when one
    # does, its 4e-3 / 0.5 V step swamps this small net's signal
    errs = [b["err_all"] for b in result["trace_batches"]]
    assert max(errs) > 0.1 and min(errs) < max(errs) / 10


def test_trace_of_a_noiseless_run_finds_the_exact_gradient():
    """No noise: the estimate is the exact gradient up to the solver's tolerance.

    The two twins converge from different starts (the trained one from its free state) to within
    1e-6 V, on EP signals of ~1e-3 V: relative errors below ~1e-3 (measured: at most 3.5e-4).
    """
    cfg, data, make = setup({"sigma": 0.0})
    result = run_trace(cfg, data, make())
    for b in result["trace_batches"]:
        assert b["cos_all"] == pytest.approx(1.0, abs=1e-6)
        assert abs(b["along_all"]) < 1e-3 and b["err_all"] < 1e-3
