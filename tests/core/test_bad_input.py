"""Bad input, one class per test: one line on stderr, exit code 2, no traceback, nothing created.

The CLI runs in-process (`hil.cli.main`, the console script's own entry point) to keep these quick;
each refused case also checks that no workspace appeared.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.cli import main
from hil.datasets import write_idx
from tests.conftest import REPO

QUICK = str(REPO / "protocols" / "configs" / "quickstart.yaml")
TINY = ["--set", "data.train_subset=8", "--set", "data.test_subset=8", "--set", "network.hidden=[4]",
        "--set", "train.epochs=1", "--quiet"]


def hil(capsys, *args: str) -> tuple[int, str, str]:
    """Exit code, stderr and stdout of `hil ARGS`."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.err, out.out


def refused(capsys, *args: str, fragments: tuple[str, ...] = ()) -> str:
    code, err, _ = hil(capsys, *args)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def make_root(root, labels_dtype=np.uint8, corrupt=False):
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (12, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, 12).astype(labels_dtype))
    if corrupt:  # flip bytes inside the deflate stream, keep the gzip header
        path = folder / "train-images-idx3-ubyte.gz"
        raw = bytearray(path.read_bytes())
        for i in range(20, len(raw) - 12, 5):
            raw[i] ^= 0xFF
        path.write_bytes(bytes(raw))
    return root


def test_binary_config_and_calibration_files(tmp_path, capsys):
    binary = tmp_path / "random.yaml"
    binary.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)))
    ws = tmp_path / "ws"
    refused(capsys, "train", str(binary), "--workspace", str(ws), fragments=("random.yaml", "not a YAML text file"))
    refused(capsys, "train", QUICK, *TINY, "--set", f"crossbar.calibration={binary}", "--workspace", str(ws),
            fragments=("random.yaml", "not a YAML text file"))
    assert not ws.exists()


@pytest.mark.parametrize(("case", "fragment"), [("corrupt", "cannot read IDX file"), ("labels", "unsigned bytes")])
def test_corrupt_gzip_and_idx_labels_of_the_wrong_type(tmp_path, capsys, case, fragment):
    root = make_root(tmp_path / "data", labels_dtype=np.float64 if case == "labels" else np.uint8,
                     corrupt=case == "corrupt")
    ws = tmp_path / "ws"
    refused(capsys, "train", QUICK, *TINY, "--set", f"data.root={root}", "--workspace", str(ws),
            fragments=("mnist", fragment))
    assert not ws.exists()


@pytest.mark.parametrize("key", ["crossbar.sigma", "train.eta", "train.beta", "data.input_gain", "crossbar.tol_v"])
@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_infinite_or_nan_numbers_are_refused_at_their_key(tmp_path, capsys, key, value):
    line = refused(capsys, "train", QUICK, *TINY, "--set", f"{key}={value}", "--workspace", str(tmp_path / "ws"),
                   fragments=(f"--set {key}={value}:", key, "finite number"))
    assert "constrained" not in line
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(("override", "fragment"), [
    ("network.hidden=[1000000000000]", "network.hidden.0"),
    ("network.hidden=[1000000000]", "GiB"),  # within the integer bound, refused by the memory check
    ("seed=1000000000000000000000000000000", "seed"),
    ("train.batch_size=100000000000000000000", "train.batch_size"),
    ("train.update=fused", "replaced by crossbar.layout: column"),  # the option of an earlier release
    ("crossbar.layout=diagonal", "crossbar.layout"),
])
def test_absurd_sizes(tmp_path, capsys, override, fragment):
    refused(capsys, "train", QUICK, *TINY, "--set", override, "--workspace", str(tmp_path / "ws"),
            fragments=(f"--set {override}:", fragment))
    assert not (tmp_path / "ws").exists()


def test_messages_name_the_key_not_pydantic_internals(tmp_path, capsys):
    line = refused(capsys, "train", QUICK, "--set", "train.eta=[0.1,-1]", "--workspace", str(tmp_path))
    assert "train.eta.1: Input should be greater than 0" in line and "constrained" not in line and "more" not in line
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epochz: 3\n")
    refused(capsys, "train", str(typo), "--workspace", str(tmp_path), fragments=("typo.yaml", "train.epochz",
                                                                               "unknown key"))


def test_unknown_station_key_is_named_with_the_key_it_replaced(tmp_path):
    from hil.errors import ConfigError
    from hil.station import load_station

    text = (REPO / "tests" / "stations" / "sim_station.yaml").read_text().replace("v_abs_max:", "v_abs_maxx:")
    station = tmp_path / "station.yaml"
    station.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_station(station)
    assert "limits.v_abs_maxx: unknown key (did you mean 'v_abs_max'?)" in str(err.value)
    assert "Field required" not in str(err.value)


def test_data_check_on_a_missing_folder(tmp_path, capsys):
    refused(capsys, "data", "check", "--data-dir", str(tmp_path / "nowhere"), fragments=("nowhere", "not a directory"))
    root = make_root(tmp_path / "data", corrupt=True)
    code, err, _ = hil(capsys, "data", "check", "--data-dir", str(root))
    assert code == 2 and "cannot read mnist" in err, err


def test_sweep_options_out_of_range_and_where_off_the_grid(tmp_path, capsys):
    ws = tmp_path / "ws"
    for option in (["--workers", "0"], ["--threads", "-1"]):
        refused(capsys, "sweep", "noise_sweep-small", *option, "--workspace", str(ws),
                fragments=(option[0], "greater than or equal to 1", "hil sweep --help"))
    refused(capsys, "sweep", "noise_sweep-small", "--where", "crossbar.sigma=0.123", "--estimate",
            "--workspace", str(ws), fragments=("--where crossbar.sigma=0.123", "no trial has this value",
                                               "crossbar.sigma takes"))
    assert not ws.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory"])
def test_damaged_run_store(tmp_path, capsys, damage):
    from hil.store import Store

    ws = tmp_path / "ws"
    with Store(ws) as store:
        for i in range(30):
            store.create_run(f"run{i}", {"pad": "x" * 2000})
    db = ws / "hil.db"
    for extra in ("hil.db-wal", "hil.db-shm"):
        (ws / extra).unlink(missing_ok=True)
    if damage == "garbage":
        db.write_bytes(b"not a database at all\n" * 100)
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    else:
        db.unlink()
        db.mkdir()
    for args in (["runs", "list"], ["train", QUICK, *TINY]):
        refused(capsys, *args, "--workspace", str(ws), fragments=("hil.db",))


def test_help_shows_no_python_types_and_imports_no_torch(capsys):
    import subprocess
    import sys

    code = ("import sys; from hil.cli import main\ntry: main(['train', '--help'])\nexcept SystemExit: pass\n"
            "print([m for m in ('torch', 'scipy', 'matplotlib') if m in sys.modules], file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"COLUMNS": "150"},
                         timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
    assert "--set" in out.stdout and "<" not in out.stdout, out.stdout


def test_plot_command_names_match_the_figures():
    from hil.analysis.sweep_plots import FIGURES
    from hil.commands.plot import FIGURE_NAMES

    assert set(FIGURE_NAMES) == set(FIGURES)


def test_finite_floats_everywhere_a_config_is_read():
    """The base model refuses inf and NaN for every float field of every config model, nested ones included."""
    from pydantic import ValidationError

    from hil.simulators.noise import PinkRead

    with pytest.raises(ValidationError):
        PinkRead(amplitude_v=math.inf, corner_hz=1.0)


SHIPPED = sorted((REPO / "protocols" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_validates(path):
    """A shipped config that no longer matches the schema would fail a user's first command."""
    from hil.config import load_config
    from hil.sweep import load_sweep

    if "protocol:" in path.read_text():
        assert load_sweep(path.stem).trials
    elif path.stem.startswith("characterize-"):
        from hil.protocols.characterize_noise import load_characterize_config

        cfg, _, _ = load_characterize_config(path)
        assert cfg.name == path.stem
    else:
        cfg, _ = load_config(path.stem)
        assert cfg.name == path.stem
