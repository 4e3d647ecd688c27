"""A packed trial is its solo run: T trials in lockstep on a `PackedTwin` give each trial's solo
epoch rows and final conductances bit for bit (seeds, read noise and schedule as a sweep varies them)."""

from __future__ import annotations

import pytest
import torch

from hil.config import load_config
from hil.protocols.train import prepare_data, topology_for, train
from hil.protocols.train_packed import train_packed
from hil.registry import open_crossbar
from hil.simulators.packed import PackedTwin

COMMON = ["train.epochs=2", "data.train_subset=64", "data.test_subset=48", "eval.batch_size=32",
          "train.batch_size=4", "network.hidden=[32]", "data.input_gain=100", "train.n_samples=2"]
TRIALS = [["seed=0"], ["seed=1", "crossbar.sigma=0.01"], ["seed=2", "crossbar.sigma=0.003",
                                                          "crossbar.read_path=explicit"]]
TIMES = ("wall_s", "samples_per_s")


def solo(overrides):
    cfg, _ = load_config("quickstart", overrides)
    xbar = open_crossbar(topology_for(cfg, 784), cfg.crossbar, seed=cfg.seed, source="solo")
    return train(xbar, cfg, prepare_data(cfg)), xbar.read_conductances()


@pytest.mark.parametrize("shape", [[], ["network.hidden=[16,16]", "network.g_max=0.02", "train.centered=false"]],
                         ids=["1h-centered", "2h-clipped-uncentered"])
def test_each_packed_trial_equals_its_solo_run_bit_for_bit(shape):
    cfgs = [load_config("quickstart", [*COMMON, *shape, *t])[0] for t in TRIALS]
    topology = topology_for(cfgs[0], 784)
    packed = PackedTwin.from_specs(topology, [c.crossbar for c in cfgs], [c.seed for c in cfgs], "packed")
    rows = train_packed(packed, cfgs, [prepare_data(c) for c in cfgs])
    for t, overrides in enumerate(TRIALS):
        want_rows, want_g = solo([*COMMON, *shape, *overrides])
        strip = [[{k: v for k, v in r.items() if k not in TIMES} for r in rs] for rs in (rows[t], want_rows)]
        assert strip[0] == [{k: v for k, v in r.items() if k != "pending"} for r in strip[1]]
        got_g = packed.trial_conductances(t)
        assert all(torch.equal(got_g[k], want_g[k]) for k in want_g), t
    assert len({r[-1]["test_loss"] for r in rows}) == len(TRIALS)  # the trials did differ


def test_a_twin_off_the_fast_path_is_not_packed():
    cfg = load_config("quickstart", [*COMMON, "crossbar.diode=shockley"])[0]
    with pytest.raises(ValueError, match="fast path"):
        PackedTwin.from_specs(topology_for(cfg, 784), [cfg.crossbar], [0], "packed")


def test_the_sweep_packs_by_shape_and_schedule_and_a_bad_trial_fails_alone():
    from pathlib import Path

    from hil.packing import pack_trials, run_pack
    from hil.sweep import load_sweep
    from hil.sweep_run import run_trial

    sweep = load_sweep(Path(__file__).parent / "tiny.yaml", ["data.train_subset=64", "data.test_subset=32",
                                                             "network.hidden=[16]"])
    assert [len(p) for p in pack_trials(sweep.trials, 4)] == [4, 2]  # 6 trials of one shape
    assert [len(p) for p in pack_trials(sweep.trials, 1)] == [1] * 6
    configs = [t.config for t in sweep.trials[:2]]
    bad = {**configs[1], "data": {**configs[1]["data"], "dataset": "fashion-mnist"}}  # embedded data: MNIST only
    packed = run_pack([configs[0], bad, configs[1]], None, 1)
    assert "MNIST subset" in packed[1]["error"] and packed[0]["packed"] == 2
    for got, cfg in zip((packed[0], packed[2]), configs, strict=True):
        want = run_trial(cfg, None, 1)
        strip = [[{k: v for k, v in r.items() if k not in TIMES} for r in res["epochs"]] for res in (got, want)]
        assert strip[0] == strip[1] and got["final_test_acc"] == want["final_test_acc"]


def test_column_layout_trials_run_solo_in_a_pack_and_equal_their_solo_runs():
    """A batched column-major product is not the solo one's bits, so such trials are not packed: each runs alone."""
    from pathlib import Path

    from hil.packing import auto_pack_size, run_pack
    from hil.sweep import load_sweep
    from hil.sweep_run import run_trial

    sweep = load_sweep(Path(__file__).parent / "tiny.yaml", ["data.train_subset=32", "data.test_subset=32",
                                                             "network.hidden=[256]", "crossbar.layout=column"])
    configs = [t.config for t in sweep.trials[:2]]
    assert auto_pack_size(configs[0]) == 1
    packed = run_pack(configs, None, 1)
    for got, cfg in zip(packed, configs, strict=True):
        want = run_trial(cfg, None, 1)
        assert "packed" not in got or got["packed"] == 1
        strip = [[{k: v for k, v in r.items() if k not in TIMES} for r in res["epochs"]] for res in (got, want)]
        assert strip[0] == strip[1] and got["final_test_acc"] == want["final_test_acc"]
