"""Bad input: one clear line on stderr, exit code 2, no traceback, and no run created."""

from __future__ import annotations

import gzip

import pytest

from tests.conftest import REPO, run_hil

QUICK = str(REPO / "protocols" / "configs" / "quickstart.yaml")


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1, 2\n")
    assert_user_error(run_hil("train", str(bad), "--workspace", str(tmp_path)), "bad.yaml:", "malformed YAML")


def test_unknown_key_names_the_key_path(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    result = run_hil("train", str(bad), "--workspace", str(tmp_path))
    assert_user_error(result, "typo.yaml", "train.epoch", "unknown key")


@pytest.mark.parametrize(
    ("override", "key"),
    [("crossbar.sigma=-1e-5", "crossbar.sigma"), ("train.n_samples=0", "train.n_samples"),
     ("crossbar.sigmaa=1", "crossbar.sigmaa"), ("network.hidden=[33]", "network")],
)
def test_out_of_range_values_name_the_set_and_the_key_and_create_nothing(tmp_path, override, key):
    result = run_hil("train", QUICK, "--set", override, "--workspace", str(tmp_path / "ws"))
    assert_user_error(result, f"--set {override}:", key)
    assert not (tmp_path / "ws").exists()


def test_missing_data_directory(tmp_path):
    result = run_hil("train", QUICK, "--set", "data.root=null", "--data-dir", str(tmp_path / "nowhere"),
                     "--workspace", str(tmp_path))
    assert_user_error(result, "nowhere", "not a directory")


def test_truncated_idx_file(tmp_path):
    root = tmp_path / "data"
    from tests.core.test_datasets import make_root

    make_root(root, dataset="mnist")
    path = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as fh:
        fh.write(raw[: len(raw) // 2])
    result = run_hil("train", QUICK, "--set", f"data.root={root}", "--workspace", str(tmp_path))
    assert_user_error(result, "t10k-images-idx3-ubyte.gz", "truncated")


def test_missing_config_file_and_unknown_run(tmp_path):
    assert_user_error(run_hil("train", str(tmp_path / "none.yaml"), "--workspace", str(tmp_path)), "no such file")
    assert_user_error(run_hil("train", "--resume", "nope", "--workspace", str(tmp_path)), "no run store here")


@pytest.mark.parametrize("name", ["quickstart", "drn-1h-mnist"])
def test_shipped_configs_validate_including_their_crossbar(name):
    from hil.config import load_config
    from hil.registry import check_crossbar

    cfg, _ = load_config(name)
    check_crossbar(cfg.crossbar, name)
    assert cfg.network.hidden == [1024]


def test_station_that_does_not_fit_the_network_is_refused_before_a_run_exists(tmp_path):
    station = REPO / "tests" / "stations" / "sim_station.yaml"
    result = run_hil("train", QUICK, "--station", str(station), "--workspace", str(tmp_path))
    assert_user_error(result, "sim_station.yaml", "wiring.inputs", "1568 input nodes")
    assert not (tmp_path / "hil.db").exists()
