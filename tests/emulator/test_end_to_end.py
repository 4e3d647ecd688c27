"""End to end: `hil train` through LabCrossbar over the emulator reaches the twin's test accuracy.

The same run config (1568-32-10, 400 training and 200 test images of the embedded
MNIST subset, one epoch, white read noise sigma = 5e-5 V, seed 0) trains the twin
directly and a LabCrossbar over `hil emulate`'s loopback instruments, whose physics is
a twin with the same config and seed.  The noise draws differ (the twin draws the
N-sample mean of a whole batch at once, the emulated DAQ every reading), so the two
runs agree statistically, not bit for bit.
"""

from __future__ import annotations

from hilep_emulator_helpers import RUN
from hilep_testing import hil, runs


def test_lab_over_the_emulator_matches_the_twin_within_one_point(emulator, tmp_path, capsys):
    assert hil("train", str(RUN), "--workspace", str(tmp_path / "twin"), "--quiet") == 0
    assert hil("train", str(RUN), "--station", str(emulator.station_path), "--workspace", str(tmp_path / "lab"),
               "--quiet") == 0
    (twin,), (lab,) = runs(tmp_path / "twin"), runs(tmp_path / "lab")
    assert twin["crossbar"] == "twin" and lab["crossbar"] == "lab"
    acc_twin, acc_lab = twin["epochs"][0]["test_acc"], lab["epochs"][0]["test_acc"]
    with capsys.disabled():
        print(f"\ntest accuracy: twin {acc_twin:.3f}, LabCrossbar over the emulator {acc_lab:.3f}")
    assert acc_twin > 0.2  # it learned something (chance is 0.1)
    assert abs(acc_twin - acc_lab) <= 0.01 + 1e-9
    assert [b["batch"] for b in lab["batches"]] == list(range(50))
    # the emulated DAQ was really read, once per sample and phase, and the run left the sources safe
    assert emulator.world.reads >= 400 * 2 + 200
    assert all(emulator.wait_safe().values())
