"""The twin's training step stays bit-for-bit what it was: stored reference runs, compared exactly.

Each case trains a tiny network on the embedded MNIST subset with a fixed seed
and the default solver mode (tolerance), and compares a sha256 of every final
conductance and bias with `data/bit_identity.json`, recorded before the twin's
step was made leaner (issue 17).  An optimisation that reorders one float
operation changes the hash, so this is the check that "faster" kept "same".

Bit-identity holds for one BLAS on one CPU kind: the JSON holds one recording
per platform, each made from the code before issue 17 (commit cc61a2b).  On a
platform with no recording the hashes cannot be expected to match, so the test
compares the first recording's summary values instead, to a tolerance (1e-4
relative: a few hundred float32 rounding steps of a different summation order,
far below one learning step's change of ~1e-3).

Record this platform (from a checkout of cc61a2b with this file copied in; or,
after a deliberate change of results, from this tree):
    .venv/bin/python -m tests.core.test_bit_identity
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import pytest
import torch

from hil.config import load_config
from hil.protocols.train import prepare_data, topology_for, train
from hil.registry import open_crossbar

REFERENCE = Path(__file__).parent / "data" / "bit_identity.json"
COMMON = ["train.epochs=1", "data.train_subset=96", "data.test_subset=64", "eval.batch_size=32",
          "train.batch_size=4", "network.hidden=[32]", "data.input_gain=100"]
CASES = {
    "noiseless": [],
    "noisy": ["crossbar.sigma=0.01", "train.n_samples=3"],
    "explicit-reads": ["crossbar.sigma=0.003", "train.n_samples=2", "crossbar.read_path=explicit"],
    "deep-clipped-uncentered": ["network.hidden=[16,16]", "network.g_max=0.02", "crossbar.sigma=0.001",
                                "train.centered=false"],
    "fixed-sweeps": ["crossbar.fixed_iterations=4", "crossbar.sigma=0.001"],
    # the paper's 1568x1024 block: where hil.rank_update pads the batch-4 update (when that pays)
    "wide": ["network.hidden=[1024]", "crossbar.sigma=0.0001", "data.train_subset=48"],
}
PICKS = (0, 1, 7, 100, 1000, -1)  # flat indices of the stored sample values


def platform_key() -> str:
    return f"{platform.machine()} torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}"


def run_case(overrides: list[str]) -> dict:
    """Train one case single-threaded (thread count changes BLAS summation order) and summarise it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg, _ = load_config("quickstart", [*COMMON, *overrides])
        xbar = open_crossbar(topology_for(cfg, 784), cfg.crossbar, seed=cfg.seed, source="bit identity")
        epochs = train(xbar, cfg, prepare_data(cfg))
        g = xbar.read_conductances()
    finally:
        torch.set_num_threads(threads)
    return {
        "sha256": {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in g.items()},
        "sum": {k: float(v.double().sum()) for k, v in g.items()},
        "values": {k: [float(v.flatten()[i]) for i in PICKS if v.numel() > abs(i)] for k, v in g.items()},
        "train_loss": epochs[-1]["train_loss"],
        "test_acc": epochs[-1]["test_acc"],
    }


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def recording_for(reference: dict, case: str) -> tuple[dict, bool]:
    """This platform's recording of `case` (exact), else the first that has it (to tolerance)."""
    have = [r for r in reference["recordings"] if case in r["cases"]]
    mine = [r for r in have if r["platform"] == platform_key()]
    return (mine or have)[0]["cases"][case], bool(mine)


@pytest.mark.parametrize("case", list(CASES))
def test_final_conductances_equal_the_stored_reference(case: str, reference: dict) -> None:
    want, exact = recording_for(reference, case)
    got = run_case(CASES[case])
    if exact:
        assert got["sha256"] == want["sha256"]
        assert got["train_loss"] == want["train_loss"] and got["test_acc"] == want["test_acc"]
    else:  # another BLAS or CPU kind: summary values to float32 tolerance (see the module docstring)
        for name, values in want["values"].items():
            assert got["values"][name] == pytest.approx(values, rel=1e-4, abs=1e-7), name
            assert got["sum"][name] == pytest.approx(want["sum"][name], rel=1e-4, abs=1e-6), name


if __name__ == "__main__":
    import subprocess

    REFERENCE.parent.mkdir(exist_ok=True)
    old = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {"recordings": []}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    mine = {"platform": platform_key(), "commit": commit, "cases": {n: run_case(o) for n, o in CASES.items()}}
    others = [r for r in old["recordings"] if r["platform"] != platform_key()]
    REFERENCE.write_text(json.dumps({"recordings": [*others, mine]}, indent=1) + "\n")
    print(f"wrote {REFERENCE} for {platform_key()} at {commit}", file=sys.stderr)
