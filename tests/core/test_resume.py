"""A killed run resumes to exactly the conductances of an uninterrupted one.

Real processes, real signals: SIGKILL leaves no chance to clean up, so only the
atomic checkpoint and the idempotent metric rows carry the run over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hil.store import Store
from tests.conftest import REPO, run_hil

QUICK = str(REPO / "protocols" / "configs" / "quickstart.yaml")
SMALL = ["--set", "data.train_subset=400", "--set", "data.test_subset=100", "--set", "network.hidden=[32]",
         "--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.checkpoint_every=15",
         "--set", "crossbar.sigma=1e-3", "--set", "train.n_samples=2", "--quiet"]


def final_params(store: Store, run_id: str) -> dict[str, torch.Tensor]:
    return store.load_checkpoint(run_id)["params"]


def start(workspace, *extra):
    return subprocess.Popen([sys.executable, "-m", "hil", "train", QUICK, *SMALL, "--workspace", str(workspace),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(workspace, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = list((workspace / "runs").glob("*/checkpoint.pt")) if (workspace / "runs").exists() else []
        if hits:
            return hits[0].parent.name
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")


# a column-major run resumes to the same bits too; hidden 128 puts G1 on the transposed input product
COLUMN = ["--set", "crossbar.layout=column", "--set", "network.hidden=[128]"]


@pytest.mark.parametrize("extra", [[], COLUMN], ids=["row", "column"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, extra):
    ref = run_hil("train", QUICK, *SMALL, *extra, "--workspace", str(tmp_path / "ref"), timeout=300)
    assert ref.returncode == 0, ref.stderr
    ref_store = Store(tmp_path / "ref")
    (ref_run,) = ref_store.runs()

    work = tmp_path / "killed"
    proc = start(work, *extra)
    run_id = wait_for_checkpoint(work, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    store = Store(work)
    assert store.run(run_id)["status"] == "interrupted"  # its row says running, but no live process holds its lock
    ckpt = store.load_checkpoint(run_id)
    assert (ckpt["epoch"], ckpt["batch"]) < (2, 0)  # killed before the end

    resumed = run_hil("train", "--resume", run_id, "--workspace", str(work), "--quiet", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    ours, theirs = final_params(store, run_id), final_params(ref_store, ref_run["id"])
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    # no lost or duplicated batch, and the same metrics as the uninterrupted run
    assert store.batches(run_id) == [dict(r, run_id=run_id) for r in ref_store.batches(ref_run["id"])]
    ref_epochs = [{k: v for k, v in e.items() if k not in ("run_id", "wall_s", "samples_per_s")}
                  for e in ref_store.epochs(ref_run["id"])]
    our_epochs = [{k: v for k, v in e.items() if k not in ("run_id", "wall_s", "samples_per_s")}
                  for e in store.epochs(run_id)]
    assert our_epochs == ref_epochs
    # the EP signal diagnostics carry over a kill too (their accumulators are checkpointed)
    assert [dict(r, run_id="") for r in store.layer_signal(run_id)] == \
        [dict(r, run_id="") for r in ref_store.layer_signal(ref_run["id"])]
    assert store.run(run_id)["status"] == "completed"


def test_sigterm_stops_at_a_checkpoint_with_exit_143_and_resumes(tmp_path):
    proc = start(tmp_path)
    run_id = wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert f"hil train --resume {run_id}" in out
    store = Store(tmp_path)
    assert store.run(run_id)["status"] == "interrupted"
    # the stop itself wrote a checkpoint at the batch it stopped after, not only the periodic ones
    ckpt = store.load_checkpoint(run_id)
    assert len(store.batches(run_id)) == ckpt["epoch"] * 100 + ckpt["batch"]
    resumed = run_hil("train", "--resume", run_id, "--workspace", str(tmp_path), "--quiet", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(store.epochs(run_id)) == 2
