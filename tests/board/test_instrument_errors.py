"""An SMU that trips during `hil train` (compliance, its output switched off by itself) ends the run in one
line that names the station, the instrument, the command and the instrument's own error, and says what to
check; exit 2, every source at 0 V and off, and the run resumes once the cause is fixed."""

from __future__ import annotations

from hilep_board_helpers import CONFIGS, emulated_station
from hilep_testing import hil, runs

XOR = CONFIGS / "xor-8-4-1.yaml"
XOR1D = CONFIGS / "xor1d-2-2-1.yaml"
SUBSET = ["--set", "data.train_subset=16", "--set", "data.test_subset=8", "--set", "train.epochs=1",
          "--set", "train.checkpoint_every=1", "--quiet"]


def test_an_smu_compliance_trip_stops_the_run_in_one_line_then_it_resumes(tmp_path, capsys):
    ws = tmp_path / "ws"
    with emulated_station(XOR, "board_daq970a_2450.yaml", tmp_path) as (emu, emulated):
        fault = emu.inject("smu", "trip", on=r"^:SOUR:VOLT ", after=6)  # the nudge source, in a nudged phase
        capsys.readouterr()
        assert hil("train", str(XOR), "--station", str(emulated), "--workspace", str(ws), *SUBSET) == 2
        err = capsys.readouterr().err
        assert fault.fired == 1
        assert "Traceback" not in err, err
        (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert f"{emulated}: instruments.smu (keithley2450 at {emu.servers['smu'].address})" in line, line
        for said in ("after ':SOUR:VOLT ", '5074, "Output tripped; compliance, output off"', "tripped",
                     "compliance_a = 0.0001 A", "the wiring", "the device under test", "then resume the run"):
            assert said in line, line
        assert all(emu.wait_safe().values())
        (run,) = runs(ws)
        assert run["status"] == "failed"
        assert hil("train", "--resume", run["id"], "--workspace", str(ws), "--quiet") == 0
    (run,) = runs(ws)
    assert run["status"] == "completed"
    assert [(b["epoch"], b["batch"]) for b in run["batches"]] == [(0, b) for b in range(len(run["batches"]))]


def _memristive_trip(tmp_path, capsys, instrument: str, on: str, after: int) -> str:
    """Train xor1d over the emulated memristive station with a `trip` on `instrument`; the one error line."""
    with emulated_station(XOR1D, "memristive_2600_707b.yaml", tmp_path) as (emu, emulated):
        fault = emu.inject(instrument, "trip", on=on, after=after)
        capsys.readouterr()
        assert hil("train", str(XOR1D), "--station", str(emulated), "--workspace", str(tmp_path / "ws"),
                   "--set", "data.train_subset=20", "--set", "data.test_subset=8", "--set", "train.epochs=1",
                   "--quiet") == 2
        err = capsys.readouterr().err
        assert fault.fired == 1 and "Traceback" not in err, err
        (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert f"instruments.{instrument} (keithley2600 2636B at {emu.servers[instrument].address})" in line, line
        assert all(emu.wait_safe().values())
    return line


def test_a_2600_overload_trip_of_an_input_source_stops_the_memristive_run_in_one_line(tmp_path, capsys):
    """The 2602B/2636B's 5062 "SMU overload. Automatic OUTPUT off." (the emulator's `trip`) on the input SMU."""
    line = _memristive_trip(tmp_path, capsys, "smu_in", r"levelv", 10)
    for said in ('5062, "SMU overload. Automatic OUTPUT off."', "after 'smua.source.levelv=", "tripped",
                 "the device under test", "then resume the run"):
        assert said in line, line


def test_a_trip_during_pulse_programming_stops_in_one_line_with_the_smus_own_error_and_its_level_at_0v(tmp_path,
                                                                                                       capsys):
    """Pulses are not retried (a retry would pulse twice).  After the trip, the read-verify's TSP line stops at
    `measure.i()` (output off): no print, no reply, a timeout.  Before: a raw VisaIOError traceback, and the
    read level (0.1 V) left programmed on the channel.  Now the error queue, read on a fresh session, says why."""
    line = _memristive_trip(tmp_path, capsys, "smu_prog", r"delay\(", 30)  # a pulse, in the first program()
    for said in ('5062, "SMU overload. Automatic OUTPUT off."', "print(smub.measure.i())", "tripped",
                 "the device under test", "then resume the run"):
        assert said in line, line
