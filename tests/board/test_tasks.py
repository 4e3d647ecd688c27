"""Board-sized tasks: shapes, scaling to [0, 1], splits, pooling, readouts, and clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from hil.config import RunConfig, validate_section
from hil.datasets import to_voltages
from hil.errors import ConfigError, DataError
from hil.protocols.train import check_biases, prepare_data, topology_for
from hil.readout import Readout
from hil.tasks import XOR1D_JITTER, XOR_TEST, XOR_TRAIN, load_task, pool


def cfg(**data) -> RunConfig:
    return validate_section(RunConfig, {"data": data, "network": {"hidden": [4]}}, "test.yaml")


def test_iris_is_a_stratified_split_scaled_on_the_training_part():
    train, test = load_task("iris", test_fraction=0.3, seed=0, size=None)
    assert train.images.shape == (105, 4) and test.images.shape == (45, 4)
    assert train.images.dtype == torch.float32
    # min-max on the training split: each feature spans exactly [0, 1] there; the test split is clipped
    assert torch.allclose(train.images.min(0).values, torch.zeros(4))
    assert torch.allclose(train.images.max(0).values, torch.ones(4))
    assert 0.0 <= test.images.min() and test.images.max() <= 1.0
    assert torch.bincount(test.labels).tolist() == [15, 15, 15]  # stratified: 50 flowers per class


def test_digits_pool_to_k_by_k_and_keep_the_mean():
    train, test = load_task("digits", test_fraction=0.3, seed=0, size=4)
    assert train.images.shape[1] == 16 and len(train) + len(test) == 1797
    full, _ = load_task("digits", test_fraction=0.3, seed=0, size=None)
    assert full.images.shape[1] == 64 and full.images.max() <= 1.0
    # average pooling 8x8 -> 4x4 keeps each image's mean intensity (same split: same seed)
    assert torch.allclose(full.images.mean(1), train.images.mean(1), atol=1e-6)


def test_xor_labels_are_the_xor_of_the_nearest_corner():
    train, test = load_task("xor", test_fraction=0.3, seed=3, size=None)
    assert len(train) == XOR_TRAIN and len(test) == XOR_TEST
    corner = (train.images > 0.5).long()
    # jitter std 0.1: a point crosses the 0.5 line with probability < 3e-7, so this holds for every point
    assert torch.equal(train.labels, corner[:, 0] ^ corner[:, 1])


def test_xor1d_codes_the_two_bits_as_four_levels_on_one_feature():
    train, test = load_task("xor1d", test_fraction=0.3, seed=0, size=None)
    assert train.images.shape == (XOR_TRAIN, 1) and test.images.shape == (XOR_TEST, 1)
    level = torch.round(train.images[:, 0] * 3).long()  # nearest of 0, 1/3, 2/3, 1: the bits 2 x1 + x2
    # jitter 0.04 against a half-spacing of 1/6 (4.2 sigma): P(any of 200 points rounds wrong) < 200 * 3e-5
    assert XOR1D_JITTER < (1 / 6) / 4
    assert torch.equal(train.labels, ((level >> 1) ^ (level & 1)))
    assert set(level.tolist()) == {0, 1, 2, 3}
    assert topology_for(cfg(dataset="xor1d", readout="binary"), 1).layers == (2, 4, 1)


def test_mnist_downsampled_from_the_embedded_subset_and_tiled():
    data = prepare_data(cfg(dataset="mnist", root="embedded", size=4, tile=2, train_subset=50, test_subset=20,
                            input_gain=0.5))
    assert data.train.images.shape == (50, 32) and data.test.images.shape == (20, 32)
    assert torch.equal(data.train.images[:, :16], data.train.images[:, 16:])
    x = data.inputs(data.train.images)
    assert x.shape == (50, 64) and x.abs().max() <= 0.5  # the input gain bounds every source
    assert topology_for(cfg(dataset="mnist", size=4, tile=2), 32).layers == (64, 4, 10)


def test_pooling_a_constant_image_keeps_the_constant():
    assert torch.allclose(torch.as_tensor(pool(torch.full((2, 64), 0.25).numpy(), 8, 3)), torch.tensor(0.25))


def test_float_features_are_volts_per_unit_and_pixels_per_255():
    assert torch.allclose(to_voltages(torch.tensor([[0.5, 1.0]]), 0.8), torch.tensor([[0.4, 0.8, -0.4, -0.8]]))
    assert torch.allclose(to_voltages(torch.tensor([[255]], dtype=torch.uint8), 2.0), torch.tensor([[2.0, -2.0]]))


def test_binary_readout_on_one_output_node():
    r = Readout("binary", 2, target_v=0.2)
    assert r.n_out == 1
    assert torch.allclose(r.target(torch.tensor([0, 1])), torch.tensor([[0.0], [0.2]]))
    assert r.predict(torch.tensor([[0.09], [0.11]])).tolist() == [0, 1]
    assert topology_for(cfg(dataset="xor", tile=2, readout="binary"), 4).layers == (8, 4, 1)
    one_hot = Readout("one-hot", 3, target_v=0.5)
    assert one_hot.target(torch.tensor([2])).tolist() == [[0.0, 0.0, 0.5]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataset": "iris", "size": 2}, "data: size: iris has no images to pool"),
        ({"dataset": "digits", "size": 9}, "data: size: 9 exceeds the 8 x 8 images of digits"),
        ({"dataset": "iris", "readout": "binary"}, "readout: binary needs two classes"),
        ({"dataset": "iris", "test_fraction": 1.5}, "data.test_fraction: Input should be less than 1"),
    ],
)
def test_bad_task_settings_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        cfg(**data)


def test_missing_scikit_learn_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    with pytest.raises(DataError, match=r"need scikit-learn .*pip install 'hil-ep\[tasks\]'"):
        load_task("iris", test_fraction=0.3, seed=0, size=None)


@pytest.mark.parametrize(
    ("config", "station"),
    [("xor-8-4-1", "board_daq970a_2450.yaml"), ("iris-8-4-3", "board_daq970a-8-4-3.yaml"),
     ("xor1d-2-2-1", "memristive_2600_707b.yaml"), ("digits-32-16-10", "board_daq970a-32-16-10.yaml"),
     ("mnist4-32-16-10", "board_daq970a-32-16-10.yaml")],
)
def test_each_board_config_fits_its_station(config, station):
    """The network a shipped config builds is the one its station is wired for (inputs, layers, nudges)."""
    from hilep_board_helpers import STATIONS

    from hil.config import load_config
    from hil.registry import check_crossbar

    cfg, _ = load_config(config)
    data = prepare_data(cfg)
    topology = topology_for(cfg, data.train.images.shape[1])
    lab = {"kind": "lab", "station": str(STATIONS / station)}
    check_crossbar(lab, config, topology)
    check_biases(cfg.model_copy(update={"crossbar": lab}), config)  # biases only where the station has sources
    # in float64, as the driver's limit check compares (0.3 in float32 is 0.300000012 > 0.3)
    assert float(data.inputs(data.train.images).double().abs().max()) <= load_station_vmax(STATIONS / station)


BOARD_CONFIGS = [("xor-8-4-1", "board_daq970a_2450.yaml"), ("iris-8-4-3", "board_daq970a-8-4-3.yaml"),
                 ("xor1d-2-2-1", "memristive_2600_707b.yaml"), ("digits-32-16-10", "board_daq970a-32-16-10.yaml"),
                 ("mnist4-32-16-10", "board_daq970a-32-16-10.yaml")]


@pytest.mark.parametrize(("config", "station"), BOARD_CONFIGS)
def test_config_beta_and_g_max_are_ones_the_board_accepts(config, station):
    """What the board checks at its first read, checked here: beta is a conductance the nudge can be (the
    fixed resistor, or inside the device range), and a cell at g_max with the config's largest input on
    one side and the opposite-signed one on the other (2 x input_gain volts) stays under cell_power_max_w.
    EP clips every block to g_max, so this holds for the whole run; the board's own power check
    (`Guard.check_power`) passes with every cell at g_max and the config's training inputs and targets."""
    from hilep_board_helpers import STATIONS

    from hil.config import load_config
    from hil.drivers.limits import Guard
    from hil.station import FixedConductance, load_station

    cfg, _ = load_config(config)
    st = load_station(STATIONS / station)
    g_unit, lim = st.scales.g_unit_s, st.limits
    beta_s = cfg.train.beta * g_unit
    cond = st.nudge.conductance
    if isinstance(cond, FixedConductance):
        assert beta_s == pytest.approx(cond.beta_s, rel=1e-6)
    else:
        assert lim.g_min_s <= beta_s <= lim.g_max_s
    assert lim.g_min_s <= cfg.network.g_min * g_unit and cfg.network.g_max * g_unit <= lim.g_max_s
    assert cfg.network.g_max * g_unit * (2 * cfg.data.input_gain) ** 2 < lim.cell_power_max_w
    data = prepare_data(cfg)
    topology = topology_for(cfg, data.train.images.shape[1])
    v_unit = st.scales.v_unit_v or cfg.network.v_unit  # null: the topology's own unit
    x = data.inputs(data.train.images).double().numpy() * v_unit
    t = data.readout.target(data.train.labels).double().numpy() * v_unit
    at_g_max = {name: np.full(shape, cfg.network.g_max * g_unit) for name, shape in topology.blocks.items()}
    Guard(lim).check_power(at_g_max, x, max(float(np.abs(x).max()), float(np.abs(t).max())))


def load_station_vmax(path) -> float:
    from hil.station import load_station

    return load_station(path).limits.v_abs_max


def test_offset_inputs_put_each_line_at_zero_at_its_own_feature():
    v = to_voltages(torch.tensor([[0.0], [0.5], [1.0]]), 0.4, offsets=(0.25, 0.75))
    torch.testing.assert_close(v, torch.tensor([[-0.1, 0.3], [0.1, 0.1], [0.3, -0.1]]))


@pytest.mark.parametrize(
    ("section", "message"),
    [({"network": {"biases": False, "init_hidden_bias": 0.05}}, "network.init_hidden_bias: a network without biases"),
     ({"network": {"biases": False}, "train": {"eta_bias": 0.03}}, "train.eta_bias: a network without biases")],
)
def test_a_network_without_biases_refuses_bias_settings(section, message):
    with pytest.raises(ConfigError, match=message):
        validate_section(RunConfig, section, "test.yaml")


def test_a_network_without_biases_keeps_them_at_zero():
    from hil.protocols.train import train
    from hil.simulators.twin import TwinCrossbar

    c = validate_section(RunConfig, {"data": {"dataset": "xor1d", "readout": "binary", "target_v": 0.05,
                                              "target_off_v": -0.05, "input_gain": 0.4, "input_offsets": [0.25, 0.75],
                                              "train_subset": 8, "test_subset": 8},
                                     "network": {"hidden": [2], "g_min": 0.01, "g_max": 5.0, "biases": False},
                                     "train": {"epochs": 1, "batch_size": 4, "eta": 0.5}}, "test.yaml")
    data = prepare_data(c)
    xbar = TwinCrossbar(topology_for(c, 1))
    train(xbar, c, data)
    g = xbar.read_conductances()
    assert torch.equal(g["b1"], torch.zeros(2)) and torch.equal(g["b2"], torch.zeros(1))
