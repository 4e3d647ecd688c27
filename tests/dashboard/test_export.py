"""Data out: `hil.open_workspace` tables and `hil runs export` files read back to the same numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hilep_testing import hil as in_process

import hil
from hil.errors import UserError
from hil.store import Store
from tests.conftest import REPO

QUICK = str(REPO / "protocols" / "configs" / "quickstart.yaml")
TINY = ["--set", "data.train_subset=96", "--set", "data.test_subset=50", "--set", "network.hidden=[16]",
        "--set", "train.epochs=2", "--set", "train.batch_size=8", "--quiet"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One tiny training run, one characterization of the twin and one sweep with two recorded trials."""
    ws = tmp_path_factory.mktemp("ws")
    assert in_process("train", QUICK, *TINY, "--workspace", str(ws)) == 0
    assert in_process("characterize", "--config", "twin", "--workspace", str(ws), "--out", str(ws / "char"),
                      "--set", "read.n_reads=2048", "--set", "read.nperseg=512", "--quiet") == 0
    with Store(ws) as store:
        store.create_run("tiny", {"grid": {"crossbar.sigma": [0.0, 1.0]}}, kind="sweep", run_id="sweep-tiny")
        for i, sigma in enumerate([0.0, 1.0]):
            store.put_trial({"sweep_id": "sweep-tiny", "trial_id": f"t{i}", "idx": i,
                             "point": {"crossbar.sigma": sigma, "data.dataset": "mnist"}, "config": {},
                             "status": "completed" if i == 0 else "failed",
                             "result": {"final_test_acc": 0.5} if i == 0 else None,
                             "error": None if i == 0 else "RuntimeError: boom"})
    return ws


def _ids(ws):
    with hil.open_workspace(ws) as w:
        runs = w.runs()
    return {k: runs.loc[runs.kind == k, "id"].item() for k in ("train", "characterize", "sweep")}


def test_tables_hold_what_the_store_holds(workspace):
    ids = _ids(workspace)
    with hil.open_workspace(workspace) as w, Store(workspace) as store:
        runs = w.runs(kind="train")
        assert list(runs.status) == ["completed"] and runs.epochs.item() == 2
        ep = w.epochs(ids["train"])
        assert list(ep.epoch) == [0, 1]
        assert ep.test_acc.tolist() == [e["test_acc"] for e in store.epochs(ids["train"])]
        b = w.batches(ids["train"])
        assert len(b) == 2 * 12 and b["size"].sum() == 2 * 96  # 96 images / batch 8, 2 epochs
        assert np.allclose(b.acc, b.correct / b["size"])
        tr = w.trials("sweep-tiny")
        assert tr["crossbar.sigma"].tolist() == [0.0, 1.0] and tr.status.tolist() == ["completed", "failed"]
        s = w.samples(ids["characterize"])
        assert s.reads.shape == (2048, 3) and s.reads.attrs["units"] == "V"
        assert list(s.node.values) == ["1:0", "1:3", "2:1"] and np.all(np.diff(s.time.values) > 0)
        nodes = store.artifacts(ids["characterize"])["summary"]["read"]["nodes"]
        # the analysis removes a linear trend but keeps the mean: the stored raw reads give the same means
        assert s.reads.mean("time").values == pytest.approx([n["mean_v"] for n in nodes], rel=1e-9)


def test_open_workspace_refuses_a_folder_without_a_store(tmp_path):
    with pytest.raises(UserError, match="no run store here"):
        hil.open_workspace(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()  # nothing created


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trip_tables(workspace, tmp_path, fmt):
    ids = _ids(workspace)
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    with hil.open_workspace(workspace) as w:
        for kind, run in ids.items():
            assert in_process("runs", "export", run, "--format", fmt, "--out", str(tmp_path), "--workspace",
                              str(workspace)) == 0
            meta = json.loads((tmp_path / f"{run}-run.json").read_text())
            assert meta["id"] == run and meta["kind"] == kind
        pd.testing.assert_frame_equal(read(tmp_path / f"{ids['train']}-epochs.{fmt}"), w.epochs(ids["train"]),
                                      check_dtype=False)
        pd.testing.assert_frame_equal(read(tmp_path / f"{ids['train']}-batches.{fmt}"), w.batches(ids["train"]),
                                      check_dtype=False)
        back = read(tmp_path / f"sweep-tiny-trials.{fmt}")
        assert back["crossbar.sigma"].tolist() == [0.0, 1.0] and back["final_test_acc"].iloc[0] == 0.5
        samples = read(tmp_path / f"{ids['characterize']}-samples.{fmt}")
        assert np.array_equal(samples.reads.to_numpy(), w.samples(ids["characterize"]).reads.values.ravel())


def test_export_round_trip_netcdf(workspace, tmp_path):
    ids = _ids(workspace)
    with hil.open_workspace(workspace) as w:
        for run in ids.values():
            assert in_process("runs", "export", run, "--format", "netcdf", "--out", str(tmp_path), "--workspace",
                              str(workspace)) == 0
        with xr.open_dataset(tmp_path / f"{ids['train']}.nc") as ds:
            assert np.array_equal(ds.epochs_test_acc.values, w.epochs(ids["train"]).test_acc.to_numpy())
            assert np.array_equal(ds.batches_loss.values, w.batches(ids["train"]).loss.to_numpy())
            assert json.loads(ds.attrs["run_json"])["config"]["train"]["epochs"] == 2
        with xr.open_dataset(tmp_path / f"{ids['characterize']}.nc") as ds:
            xr.testing.assert_equal(ds.samples_reads.rename("reads"), w.samples(ids["characterize"]).reads)
        with xr.open_dataset(tmp_path / "sweep-tiny.nc") as ds:
            assert ds.trials_status.values.tolist() == ["completed", "failed"]


def test_export_refuses_an_unknown_format(workspace, tmp_path, capsys):
    assert in_process("runs", "export", "sweep-tiny", "--format", "xlsx", "--out", str(tmp_path / "o"),
                      "--workspace", str(workspace)) == 2
    assert "--format 'xlsx': expected one of csv, parquet, netcdf" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
