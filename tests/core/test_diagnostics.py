"""EP signal diagnostics: the numbers they report, the noise they measure, and that they change nothing."""

from __future__ import annotations

import math

import pytest
import torch

from hil.diagnostics import SignalMonitor, predict_onset, summary_text
from hil.ep import EPController
from hil.interface import Measurement, Topology
from hil.simulators.twin import TwinConfig, TwinCrossbar


def meas(voltages: list[torch.Tensor], std: list[torch.Tensor] | None = None, n: int = 1) -> Measurement:
    return Measurement(voltages, std or [torch.zeros_like(v) for v in voltages], n, torch.zeros(n))


def test_median_rms_and_active_nodes_of_a_known_batch():
    # hidden layer of 4 nodes (2 clamped >= 0, 2 <= 0), 3 outputs; node 1 and 3 clamped at 0 in both phases
    h1 = torch.tensor([[0.10, 0.0, -0.20, 0.0]])
    h2 = torch.tensor([[0.13, 0.0, -0.21, 0.0]])  # |dh| on active nodes: 0.03, 0.01
    y1 = torch.tensor([[0.0, 1.0, 2.0]])
    y2 = torch.tensor([[0.1, 1.2, 2.4]])  # |dy|: 0.1, 0.2, 0.4
    mon = SignalMonitor(depth=2, read_sigma_v=0.01)
    mon.add(meas([h1, y1]), meas([h2, y2]))
    h, out = mon.summary()
    assert h["signal_median"] == pytest.approx(0.02)  # median of {0.01, 0.03}
    assert h["signal_rms"] == pytest.approx(math.sqrt((0.03**2 + 0.01**2) / 2))
    assert h["active_frac"] == 0.5
    assert out["signal_median"] == pytest.approx(0.2) and out["active_frac"] == 1.0
    assert h["noise_source"] == "configured" and h["noise"] == 0.01
    assert h["snr"] == pytest.approx(2.0) and out["snr"] == pytest.approx(20.0)
    assert "h1 2.0e-02 V (SNR 2)" in summary_text([h, out])


def test_nodes_within_three_noise_std_of_zero_do_not_count_as_active():
    h1 = torch.tensor([[0.02, 0.5, -0.02, -0.5]])
    mon = SignalMonitor(depth=2, read_sigma_v=0.01)  # N = 1: threshold 3 x 0.01
    mon.add(meas([h1, torch.zeros(1, 1)]), meas([h1 + 0.001, torch.zeros(1, 1)]))
    assert mon.summary()[0]["active_frac"] == 0.5


def test_read_noise_is_measured_from_the_n_reads_of_the_twin():
    # Pooled sample variance over k node readings with N - 1 = 15 dof each: relative sd of the
    # variance sqrt(2 / (15 k)); with k = 2 phases x 4 batches x 16 x (32 + 10) = 5376 that is 0.45 %,
    # so the std is within 0.22 % (1 sd); 1 % is over 4 sd.  The chi draw of the twin is approximate
    # (Wilson-Hilferty), with a bias far below that.
    topo = Topology((20, 32, 10))
    xbar = TwinCrossbar(topo, TwinConfig(sigma=1e-3), seed=0)
    g = torch.Generator().manual_seed(1)
    xbar.program({"G1": torch.rand(20, 32, generator=g) * 0.3, "G2": torch.rand(32, 10, generator=g) * 0.3,
                  "b1": torch.zeros(32), "b2": torch.zeros(10)})
    ctl = EPController(xbar, beta=0.5, centered=True, n_samples=16, eta_w=[0.01, 0.01], eta_b=[0.01, 0.01],
                       monitor=SignalMonitor(2, xbar.read_sigma_v))
    for _ in range(4):
        x = torch.rand(16, 20, generator=g)
        labels = torch.randint(0, 10, (16,), generator=g)
        ctl.step(x, torch.nn.functional.one_hot(labels, 10).float(), labels)
    for layer in ctl.monitor.summary():
        assert layer["noise_source"] == "measured"
        assert layer["read_sigma"] == pytest.approx(1e-3, rel=0.01)
        assert layer["noise"] == pytest.approx(1e-3 / 4, rel=0.01)


def test_diagnostics_leave_conductances_and_random_streams_bit_identical():
    topo = Topology((20, 16, 10))
    g = torch.Generator().manual_seed(2)
    init = {"G1": torch.rand(20, 16, generator=g) * 0.3, "G2": torch.rand(16, 10, generator=g) * 0.3,
            "b1": torch.zeros(16), "b2": torch.zeros(10)}
    xs = [torch.rand(4, 20, generator=g) for _ in range(5)]
    ys = [torch.randint(0, 10, (4,), generator=g) for _ in range(5)]
    finals = []
    for monitor in (None, SignalMonitor(2, 1e-3)):
        xbar = TwinCrossbar(topo, TwinConfig(sigma=1e-3), seed=3)
        xbar.program({k: v.clone() for k, v in init.items()})
        ctl = EPController(xbar, beta=1.0, centered=True, n_samples=1, eta_w=[0.05, 0.05], eta_b=[0.05, 0.05],
                           monitor=monitor)
        for x, y in zip(xs, ys, strict=True):
            ctl.step(x, torch.nn.functional.one_hot(y, 10).float(), y)
        finals.append((xbar.read_conductances(), xbar.generator.get_state()))
    (ga, sa), (gb, sb) = finals
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert torch.equal(sa, sb)


def test_checkpointed_monitor_state_round_trips():
    mon = SignalMonitor(2, None)
    mon.add(meas([torch.ones(2, 4), torch.zeros(2, 3)]), meas([torch.ones(2, 4) * 1.5, torch.ones(2, 3)]))
    other = SignalMonitor(2, None)
    other.load_state_dict(mon.state_dict())
    assert other.summary() == mon.summary()
    assert mon.summary()[0]["noise_source"] == "unknown" and mon.summary()[0]["snr"] is None


def test_onset_prediction_scales_with_sqrt_n():
    assert predict_onset(1e-4, 2.0) == pytest.approx(5e-5)
    assert predict_onset(1e-4, 2.0, 16) == pytest.approx(2e-4)


def layer(layer: int, signal: float | None) -> dict:
    return {"layer": layer, "signal_median": signal, "snr": None, "noise": 0.0}


def test_a_solver_tolerance_over_a_tenth_of_a_layer_signal_is_named_with_the_key_and_a_value():
    from hil.diagnostics import tolerance_warning

    assert tolerance_warning([layer(1, 1.1e-5), layer(2, 1e-4)], 1e-6) is None  # 9 %: quiet
    assert tolerance_warning([layer(1, None), layer(2, 1e-4)], 1e-6) is None  # no active node: nothing to judge
    msg = tolerance_warning([layer(1, 9.5e-6), layer(2, 1e-4)], 1e-6)
    assert msg is not None and msg.startswith("crossbar.tol_v = 1e-06 V is 11% of the h1 EP signal")
    assert "set crossbar.tol_v to 1e-08 or less" in msg


def test_hil_train_warns_once_when_the_twin_solver_is_too_loose_for_the_recipe(tmp_path, capsys):
    # digits-32-16-10 has a ~1e-5 V hidden signal: 3e-6 V is ~30 % of it (warned after epoch 1, not again)
    from hilep_testing import hil

    assert hil("train", "digits-32-16-10", "--workspace", str(tmp_path), "--set", "crossbar.tol_v=3e-6",
               "--set", "train.epochs=2", "--set", "data.train_subset=200", "--quiet") == 0
    assert capsys.readouterr().out.count("warning: crossbar.tol_v = 3e-06 V") == 1


@pytest.mark.parametrize("name", ["digits-32-16-10", "mnist4-32-16-10"])
def test_board_recipes_with_1e_5_v_signals_ship_a_solver_tolerance_far_below_it(name):
    # their hidden EP signal is ~1e-5 V (docs/board.md); the default 1e-6 V would be 10 % of it
    from hil.config import load_config

    cfg, _ = load_config(name)
    assert cfg.crossbar["tol_v"] <= 1e-8  # the crossbar section is validated by its kind (TwinConfig)


def test_batch_median_is_torch_quantile_to_the_bit():
    """The monitor's per-batch median replaced torch.quantile(., 0.5); recorded signals must not move."""
    import math

    from hil.diagnostics import batch_median

    gen = torch.Generator().manual_seed(0)
    for case in range(600):
        n = int(torch.randint(1, 5000, (1,), generator=gen))
        a = torch.rand(n, generator=gen, dtype=torch.float64) * 10.0 ** float(torch.randint(-8, 2, (1,), generator=gen))
        if case % 3 == 0:
            a = a.float().double()  # the monitor's values: float32 voltage differences
        if case % 50 == 0:
            a[: n // 3] = 0.0  # ties, as for nodes that did not move
        assert batch_median(a) == float(torch.quantile(a, 0.5)), (case, n)
    assert math.isnan(batch_median(torch.tensor([1.0, math.nan, 2.0], dtype=torch.float64)))
