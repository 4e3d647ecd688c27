"""Board tasks train: on the twin to their stated accuracy, and over the emulated shipped station.

The twin test runs the shipped config as is (fixed seed), so the number it asserts is the
number the config's header states.  The end-to-end test trains the same config through
`LabCrossbar` over `hil emulate`'s loopback instruments (the shipped 8-4-1 station, whose
physics is a twin with the config's twin section and seed) on a subset, and the twin on
the same subset.  With sigma = 0 both see the same deterministic equilibria; they differ
only by the DAQ's ASCII readings (9 significant digits) and the board's float32 blocks, so
the two runs must predict the same classes up to a point or two near the decision line.
"""

from __future__ import annotations

from hilep_board_helpers import CONFIGS, STATIONS, emulated_station
from hilep_testing import hil, runs

XOR = CONFIGS / "xor-8-4-1.yaml"
XOR1D = CONFIGS / "xor1d-2-2-1.yaml"
IRIS = CONFIGS / "iris-8-4-3.yaml"


def test_xor_on_the_twin_reaches_the_stated_accuracy(tmp_path):
    assert hil("train", str(XOR), "--workspace", str(tmp_path), "--quiet") == 0
    (run,) = runs(tmp_path)
    assert run["epochs"][-1]["test_acc"] >= 0.95  # the header of xor-8-4-1.yaml states >= 95 %


def test_iris_on_the_twin_ends_at_the_stated_accuracy(tmp_path):
    """At the END of the run, not its best epoch: the earlier recipe reached 97.8 % once and ended at 66.7 %
    (the middle class never predicted).  The last five epochs must hold it too, so a lucky last epoch fails."""
    assert hil("train", str(IRIS), "--workspace", str(tmp_path), "--quiet") == 0
    (run,) = runs(tmp_path)
    acc = [e["test_acc"] for e in run["epochs"]]
    assert acc[-1] >= 0.90 and min(acc[-5:]) >= 0.88  # iris-8-4-3.yaml states >= 90 %; 0.88 = 40 of 45 flowers


def test_xor1d_on_the_memristive_twin_reaches_the_stated_accuracy(tmp_path):
    """XOR's two bits on one feature (the 2-2-1 station's single input pair): no threshold separates the
    classes (the best threshold puts three of the four levels on one side: 75 % expected), so >= 95 % means
    the two diodes bend the output up and down again."""
    assert hil("train", str(XOR1D), "--workspace", str(tmp_path), "--quiet") == 0
    (run,) = runs(tmp_path)
    assert run["epochs"][-1]["test_acc"] >= 0.95  # the header of xor1d-2-2-1.yaml states >= 95 %


def test_xor_over_the_emulated_shipped_station_matches_the_twin(tmp_path, capsys):
    subset = ["--set", "data.train_subset=48", "--set", "data.test_subset=40", "--set", "train.epochs=3",
              "--quiet"]
    with emulated_station(XOR, "board_daq970a_2450.yaml", tmp_path) as (emu, emulated):
        assert hil("train", str(XOR), "--station", str(emulated), "--workspace", str(tmp_path / "lab"), *subset) == 0
        reads = emu.world.reads
    assert hil("train", str(XOR), "--workspace", str(tmp_path / "twin"), *subset) == 0
    (lab,), (twin,) = runs(tmp_path / "lab"), runs(tmp_path / "twin")
    assert lab["crossbar"] == "lab" and twin["crossbar"] == "twin"
    acc_lab = [e["test_acc"] for e in lab["epochs"]]
    acc_twin = [e["test_acc"] for e in twin["epochs"]]
    with capsys.disabled():
        print(f"\nxor-8-4-1 test accuracy per epoch: twin {acc_twin}, emulated 8-4-1 station {acc_lab}")
    assert all(abs(a - b) <= 2 / 40 + 1e-9 for a, b in zip(acc_lab, acc_twin))
    # every training example was read in both phases, every test example once per epoch
    assert reads >= 3 * (48 * 2 + 40)


def test_xor1d_trains_over_the_emulated_memristive_station_without_biases(tmp_path):
    """The shipped config on its shipped station, cells programmed by pulses through the 707B: before, the
    first batch stopped (`bias b1 needs up to nan A`).  A threshold on the one feature gets at most 75 %."""
    subset = ["--set", "data.train_subset=20", "--set", "data.test_subset=40", "--set", "train.epochs=1", "--quiet"]
    with emulated_station(XOR1D, "memristive_2600_707b.yaml", tmp_path) as (emu, emulated):
        assert hil("train", str(XOR1D), "--station", str(emulated), "--workspace", str(tmp_path / "lab"), *subset) == 0
        pulses = emu.world.pulses
        assert {n: list(m.errors) for n, m in emu.models.items() if m.errors} == {}
    (run,) = runs(tmp_path / "lab")
    assert run["status"] == "completed" and pulses > 0
    assert run["epochs"][-1]["test_acc"] > 0.75


def test_a_config_with_biases_is_refused_on_a_station_without_bias_sources(tmp_path, capsys):
    """Before: accepted, and over the emulator the first batch stopped with `program: bias b1 needs up to nan A`
    (the memristive station writes no biases, and the ones it did not write came back as NaN)."""
    import yaml

    raw = yaml.safe_load(XOR1D.read_text())
    raw["network"] = {k: v for k, v in raw["network"].items() if k != "biases"} | {"init_hidden_bias": 0.048}
    raw["train"] = raw["train"] | {"eta_bias": 0.03}
    raw["data"] = {k: v for k, v in raw["data"].items() if k != "input_offsets"}
    cfg = tmp_path / "xor1d-biases.yaml"  # the config as it was: hidden biases learned
    cfg.write_text(yaml.safe_dump(raw))
    station = STATIONS / "memristive_2600_707b.yaml"
    ws = tmp_path / "ws"
    assert hil("train", str(cfg), "--station", str(station), "--workspace", str(ws)) == 2
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and f"{cfg}: network.biases: {station} has no bias sources" in lines[0], lines
    assert "Traceback" not in captured.err and not ws.exists()  # nothing created, nothing opened
