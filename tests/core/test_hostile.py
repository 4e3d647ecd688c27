"""The hostile cases: path traversal, a crafted checkpoint, two processes on one run, a full disk,
a read-only workspace, and what a resume must not ignore (--set, other data)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hil.datasets import write_idx
from hil.errors import UserError
from hil.store import Store
from tests.core.test_bad_input import QUICK, TINY, hil, make_root, refused


def train_tiny(capsys, ws, *extra) -> str:
    code, err, _ = hil(capsys, "train", QUICK, *TINY, "--workspace", str(ws), *extra)
    assert code == 0, err
    with Store(ws, create=False) as store:
        (run,) = store.runs()
    return run["id"]


def test_run_name_cannot_leave_the_workspace(tmp_path, capsys):
    ws = tmp_path / "a" / "b" / "ws"
    refused(capsys, "train", QUICK, *TINY, "--set", "name=x/../../../ESCAPED", "--workspace", str(ws),
            fragments=("--set name=x/../../../ESCAPED", "name:", "letters, digits"))
    with Store(ws) as store, pytest.raises(UserError, match="run id"):
        store.create_run("x/../../../ESCAPED", {})  # the store's own guard, whatever a caller lets through
    assert list(tmp_path.rglob("*ESCAPED*")) == []


def test_crafted_checkpoint_runs_no_code_and_corrupt_one_is_refused(tmp_path, capsys):
    ws = tmp_path / "ws"
    run_id = train_tiny(capsys, ws)
    with Store(ws) as store:
        store.set_status(run_id, "interrupted")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = ws / "runs" / run_id / "checkpoint.pt"
    torch.save({"epoch": 0, "batch": 0, "params": {}, "crossbar": {}, "tally": {}, "x": Payload()}, ckpt)
    refused(capsys, "train", "--resume", run_id, "--workspace", str(ws),
            fragments=("checkpoint.pt", "refused", "could run code"))
    assert not marker.exists()
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    refused(capsys, "train", "--resume", run_id, "--workspace", str(ws), fragments=("checkpoint.pt", "unreadable"))


def test_resume_says_where_refuses_set_and_checks_the_data(tmp_path, capsys):
    root = make_root(tmp_path / "data")
    ws = tmp_path / "ws"
    run_id = train_tiny(capsys, ws, "--set", "data.root=null", "--data-dir", str(root))
    with Store(ws) as store:
        assert store.artifacts(run_id)["data"]["root"] == str(root.resolve())
        store.set_status(run_id, "interrupted")
    refused(capsys, "train", "--resume", run_id, "--set", "train.epochs=3", "--workspace", str(ws),
            fragments=("--resume", "--set", "cannot change it"))
    code, err, out = hil(capsys, "train", "--resume", run_id, "--workspace", str(ws))  # no --data-dir: stored root
    assert code == 0 and "resumed at epoch 2, batch 0" in out, (err, out)
    with Store(ws) as store:
        store.set_status(run_id, "interrupted")
    write_idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz", np.arange(12, dtype=np.uint8) % 10)  # other labels
    refused(capsys, "train", "--resume", run_id, "--workspace", str(ws),
            fragments=("t10k-labels-idx1-ubyte.gz", "not the file run", "sha256"))


def test_data_dir_beside_an_embedded_config_says_which_wins(tmp_path, capsys):
    ws = tmp_path / "ws"
    code, err, out = hil(capsys, "train", QUICK, *TINY, "--data-dir", str(tmp_path), "--workspace", str(ws))
    assert code == 0, err
    assert f"the config's data.root (embedded) is used, not --data-dir {tmp_path}" in " ".join(out.split())


def test_sweep_data_dir_beside_an_embedded_config_says_which_wins(tmp_path, capsys):
    """`hil sweep` says so as `hil train` does (issue 16): its trials read the config's data.root too."""
    sweep = Path(__file__).parents[1] / "sweeps" / "tiny.yaml"  # base quickstart: data.root embedded
    code, err, out = hil(capsys, "sweep", str(sweep), "--set", "network.hidden=[4]", "--data-dir", str(tmp_path),
                         "--estimate", "--workspace", str(tmp_path / "ws"))
    assert code == 0, err
    assert f"the config's data.root (embedded) is used, not --data-dir {tmp_path}" in " ".join(out.split())


def _start(ws, *extra):
    return subprocess.Popen([sys.executable, "-m", "hil", "train", QUICK, "--set", "data.train_subset=4000",
                             "--set", "network.hidden=[8]", "--set", "train.checkpoint_every=5",
                             "--set", "train.epochs=50", "--quiet", "--workspace", str(ws), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_one_process_per_run_and_a_dead_run_shows_interrupted(tmp_path, capsys):
    ws = tmp_path / "ws"
    proc = _start(ws)
    try:
        deadline = time.monotonic() + 240
        while not list(ws.glob("runs/*/checkpoint.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        run_id = next(ws.glob("runs/*/checkpoint.pt")).parent.name
        line = refused(capsys, "train", "--resume", run_id, "--workspace", str(ws),
                       fragments=(run_id, "already running", f"process {proc.pid}"))
        with Store(ws, create=False) as store:
            assert store.run(run_id)["status"] == "running", line
    finally:
        proc.kill()  # SIGKILL: no cleanup, the status row still says running
        proc.wait()
    with Store(ws, create=False) as store:
        assert store.run(run_id)["status"] == "interrupted"
        store.lock(run_id)  # the dead process left no stuck lock


def _can_mount_tmpfs() -> bool:
    """Whether this machine lets the test mount a tmpfs (root on Linux, and no container policy against it)."""
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True).returncode:
            return False
        subprocess.run(["umount", d])
    return True


CAN_MOUNT_TMPFS = _can_mount_tmpfs()


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_leaves_no_temp_file_and_no_running_status(tmp_path):
    """RLIMIT_FSIZE caps every file the process writes: the ~400 kB checkpoint fails, the small database does not."""
    ws = tmp_path / "ws"
    out = subprocess.run([sys.executable, "-m", "hil", "train", QUICK, *TINY, "--set", "network.hidden=[64]",
                          "--workspace", str(ws)], capture_output=True, text=True, timeout=300,
                         preexec_fn=_limit_file_size(200_000), env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "checkpoint.pt: cannot write (File too large)" in lines[0]
    assert list(ws.rglob("*.tmp")) == []
    with Store(ws, create=False) as store:
        (run,) = store.runs()
    assert run["status"] in ("failed", "interrupted")


@pytest.mark.skipif(not CAN_MOUNT_TMPFS, reason="mounting a tmpfs needs root on Linux and a machine that allows it")
def test_full_disk_on_a_real_tiny_file_system(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    try:
        out = subprocess.run([sys.executable, "-m", "hil", "train", QUICK, *TINY, "--set", "network.hidden=[64]",
                              "--workspace", str(mnt / "ws")], capture_output=True, text=True, timeout=300)
        lines = [x for x in out.stderr.splitlines() if x.strip()]
        assert out.returncode == 2 and len(lines) == 1, out.stderr
        assert "No space left on device" in lines[0] or "database or disk is full" in lines[0], lines[0]
        assert list(mnt.rglob("*.tmp")) == []
    finally:
        subprocess.run(["umount", str(mnt)])


@pytest.mark.skipif(os.geteuid() == 0 and not CAN_MOUNT_TMPFS,
                    reason="root ignores permission bits, so a read-only workspace needs a read-only tmpfs mount")
def test_read_only_workspace(tmp_path, capsys):
    ws = tmp_path / "ro"
    ws.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits: use a read-only mount
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ws)], check=True)
    else:
        ws.chmod(0o555)
    try:
        refused(capsys, "train", QUICK, *TINY, "--workspace", str(ws / "sub"), fragments=("sub", "cannot open"))
        refused(capsys, "train", QUICK, *TINY, "--workspace", str(ws), fragments=("hil.db",))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ws)])
        else:
            ws.chmod(0o755)

