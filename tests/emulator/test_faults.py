"""One test per injected fault: `hil train` over the emulator either recovers and stores every batch
exactly once, or stops cleanly (sources at 0 V and off in the emulator's state, a checkpoint) and
`hil train --resume` finishes the run, again with every batch exactly once."""

from __future__ import annotations

import pytest
from hilep_emulator_helpers import RUN
from hilep_testing import hil, runs, wait_for

SMALL = ["--set", "data.train_subset=48", "--set", "data.test_subset=16", "--set", "train.checkpoint_every=1",
         "--set", "eval.batch_size=16"]
N_BATCHES = 6  # 48 images, batch 8


def train(emu, ws, *extra: str) -> int:
    return hil("train", str(RUN), "--station", str(emu.station_path), "--workspace", str(ws), "--quiet",
               *SMALL, *extra)


def assert_every_batch_once(run: dict) -> None:
    keys = [(b["epoch"], b["batch"]) for b in run["batches"]]
    assert keys == [(0, b) for b in range(N_BATCHES)], keys
    assert len(run["epochs"]) == 1


RECOVERED = [
    ("daq", "drop", {"on": r"READ\?", "after": 20}),
    # beyond the READ? timeout: timeout_s 1.0 + 1.5 x the modelled 42-channel scan (about 1.85 s)
    ("daq", "delay", {"on": r"READ\?", "after": 20, "delay_s": 3.0}),
    ("daq", "garble", {"on": r"READ\?", "after": 20}),
    ("daq", "truncate", {"on": r"READ\?", "after": 20}),
    ("board", "garble", {"on": r"G:GET\?", "after": 3}),
    ("board", "truncate", {"on": r"G:GET\?", "after": 3}),
    ("board", "drop", {"on": r"SYST:ERR\?", "after": 30}),
    # the nudge switched on (NUDG:G, NUDG:STAT ON, SYST:ERR?) and off goes through the same retries
    ("board", "drop", {"on": r"^NUDG:G", "after": 2}),
]


@pytest.mark.parametrize("instrument,kind,how", RECOVERED, ids=[f"{i}-{k}" for i, k, _ in RECOVERED])
def test_run_recovers_and_stores_every_batch_once(emulator, tmp_path, instrument, kind, how, caplog):
    fault = emulator.inject(instrument, kind, **how)
    assert train(emulator, tmp_path / "ws") == 0
    assert fault.fired == 1
    (run,) = runs(tmp_path / "ws")
    assert run["status"] == "completed"
    assert_every_batch_once(run)
    assert "reconnecting" in caplog.text
    assert all(emulator.wait_safe().values())


STOPPED = [
    # the instrument answers, and says in its error queue what went wrong: one line with its own words
    ("board", "error", {"on": r"^G:SET G1", "after": 3, "error": (-222, "Data out of range")},
     ["after 'G:SET G1", '-222, "Data out of range"', "refused a value", "then resume the run"]),
    ("board", "error", {"on": r"^NUDG:G", "after": 1, "error": (-113, "Undefined header")},
     # queued after NUDG:G, found in the queue read after the next command (NUDG:STAT ON)
     ["after 'NUDG:STAT ON'", '-113, "Undefined header"', "does not know a command", "hil instruments check"]),
    ("board", "trip", {"on": r"^SOUR:VOLT:BLK", "after": 40},
     ["after 'SOUR:VOLT:BLK", '310, "DAC current limit; outputs off"', "tripped",
      "compliance_a = 0.001 A", "the wiring", "the device under test", "then resume the run"]),
    ("board", "reboot", {"on": r"^SOUR:VOLT:BLK", "after": 40}, ["restarted while in use", "resume"]),
    ("daq", "reboot", {"on": r"READ\?", "after": 20}, ["restarted while in use", "resume"]),
]


@pytest.mark.parametrize("instrument,kind,how,said", STOPPED, ids=[f"{i}-{k}" for i, k, _, _ in STOPPED])
def test_run_stops_cleanly_then_resumes(emulator, tmp_path, instrument, kind, how, said, capsys):
    fault = emulator.inject(instrument, kind, **how)
    capsys.readouterr()
    assert train(emulator, tmp_path / "ws") == 2  # the user's to check: one line, exit 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    kinds = {"board": "conductance_board GBOARD-1578", "daq": "daq970a"}  # the model where the kind does not say it
    assert f"{emulator.station_path}: instruments.{instrument} ({kinds[instrument]} at " \
           f"{emulator.servers[instrument].address})" in line, line
    assert all(s in line for s in said), line
    assert fault.fired == 1
    # the safe state, as the instruments hold it: every DAC at 0 V, outputs and nudge off
    board = emulator.model("board")
    assert wait_for(lambda: not board.output and not board.nudge_on and not board.dac.any())
    (run,) = runs(tmp_path / "ws")
    assert run["status"] == "failed"
    done = [(b["epoch"], b["batch"]) for b in run["batches"]]
    assert done == [(0, b) for b in range(len(done))] and len(done) < N_BATCHES
    assert (tmp_path / "ws" / "runs" / run["id"] / "checkpoint.pt").exists() or not done
    # resumable: the same run finishes, every batch stored exactly once
    assert hil("train", "--resume", run["id"], "--workspace", str(tmp_path / "ws"), "--quiet") == 0
    (run,) = runs(tmp_path / "ws")
    assert run["status"] == "completed"
    assert_every_batch_once(run)
    assert all(emulator.wait_safe().values())


def _lines(sock, n: int) -> list[str]:
    buf = b""
    while buf.count(b"\n") < n:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode("latin-1").splitlines()


def test_a_late_reply_keeps_its_place_in_the_reply_order(emulator):
    """A slow instrument answers its queries in the order it got them: the late reply is not overtaken."""
    import socket

    emulator.inject("daq", "delay", on=r"\*IDN\?", delay_s=0.5)
    with socket.create_connection(("127.0.0.1", emulator.servers["daq"].port), timeout=10) as s:
        s.sendall(b"*IDN?\n*ESR?\n")
        idn, esr = _lines(s, 2)
    assert "DAQ970A" in idn
    assert int(esr) & 128  # the power-on bit: the reply to *ESR?, after the late one


def test_a_hung_instrument_reads_its_messages_and_answers_none(emulator):
    """`hang`: from the fault on, the instrument answers nothing, on this connection or a new one."""
    import socket

    fault = emulator.inject("daq", "hang", after=1, times=1000)
    port = emulator.servers["daq"].port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"*IDN?\n")
        assert "DAQ970A" in _lines(s, 1)[0]
        s.sendall(b"*IDN?\n")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(4096)
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"*ESR?\n")
        with pytest.raises(TimeoutError):
            s.recv(4096)
    assert fault.fired == 2
