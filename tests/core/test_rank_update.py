"""The EP update of a block: the padded BLAS update keeps the bits, the fused one stays within rounding.

`rank_update_` may pad a small-rank update with zero rows (hil/rank_update.py);
it must give the plain `addmm_`'s bytes, whichever way it chose.  The fused
kernel (`train.update: fused`) sums the K products in another order, so it is
held to the float32 error bound of a K-term sum instead: with u = eps/2, a sum
of K products in any order is within gamma_K * sum|l_k r_k| (gamma_K ~ K u) of
the exact one, and the scaling by alpha and the addition to G add one rounding
each, so |got - exact| <= (K + 2) u (|G| + |alpha| sum_k |l_k r_k|) elementwise;
the clip is monotone and exact, so it adds nothing.  The test allows 2x that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import torch

from hil import rank_update
from hil.config import load_config
from hil.protocols.train import prepare_data, topology_for, train
from hil.rank_update import rank_update_, update_and_clip_
from hil.registry import open_crossbar

needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                                    reason="train.update: fused needs torch.compile's C++ compiler (g++)")


def operands(n_pre: int, n_post: int, k: int, dtype=torch.float32, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    g = torch.rand(n_pre, n_post, generator=gen, dtype=dtype) * 0.05
    left = torch.rand(k, n_pre, generator=gen, dtype=dtype)
    right = torch.randn(k, n_post, generator=gen, dtype=dtype) * 1e-3
    return g, left, right


@pytest.mark.parametrize("k", [1, 5, 9, 15, 16, 33])
@pytest.mark.parametrize("shape", [(1568, 1024), (784, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_update_gives_the_plain_blas_bytes_whichever_way_it_runs(k, shape, dtype) -> None:
    g, left, right = operands(*shape, k, dtype)
    want, got = g.clone(), g.clone()
    want.addmm_(left.T, right, alpha=-0.37)
    rank_update_(got, left, right, -0.37)
    assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))


@pytest.mark.parametrize("shape", [(2, 1568, 1024), (2, 1568, 256)])
def test_a_packed_update_gives_the_batched_blas_bytes(shape) -> None:
    gen = torch.Generator().manual_seed(1)
    g = torch.rand(*shape, generator=gen) * 0.05
    left, right = torch.rand(shape[0], 5, shape[1], generator=gen), torch.randn(shape[0], 5, shape[2], generator=gen)
    want, got = g.clone(), g.clone()
    want.baddbmm_(left.transpose(1, 2), right, alpha=-0.37)
    rank_update_(got, left, right, -0.37)
    assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))


def test_padding_is_decided_once_per_shape_and_thread_count() -> None:
    g, left, right = operands(1568, 1024, 5)
    rank_update_(g, left, right, 0.1)
    key = ((1568, 1024), 5, torch.float32, torch.get_num_threads())
    assert isinstance(rank_update._pads[key], bool)


def exact_and_bound(g, left, right, alpha, lo, hi):
    gd, ld, rd = g.double(), left.double(), right.double()
    exact = (gd + alpha * ld.T @ rd).clamp(lo, hi)
    u = torch.finfo(torch.float32).eps / 2
    bound = (left.shape[0] + 2) * u * (gd.abs() + abs(alpha) * ld.abs().T @ rd.abs())
    return exact, 2.0 * bound


@needs_compiler
@pytest.mark.parametrize("k,hi", [(5, None), (9, 0.06), (17, None)])
def test_the_fused_update_is_within_float32_rounding_of_the_exact_update(k, hi) -> None:
    g, left, right = operands(1568, 1024, k)
    alpha, lo = -2.5, 0.01  # moves many cells across both bounds
    exact, bound = exact_and_bound(g, left, right, alpha, lo, hi)
    fused = g.clone()
    update_and_clip_(fused, left, right, alpha, lo, hi)
    assert bool(((fused.double() - exact).abs() <= bound).all())
    lo32, hi32 = torch.tensor(lo), torch.tensor(hi if hi is not None else torch.inf)  # the bounds in float32
    assert bool(fused.amin() >= lo32) and bool(fused.amax() <= hi32)
    clipped = (exact == lo).sum().item()
    assert clipped > 1000  # the bound is tested where the clip acts too
    again = g.clone()
    update_and_clip_(again, left, right, alpha, lo, hi)
    assert torch.equal(again, fused)  # same inputs, same bits


def train_wide(update: str) -> tuple[str, float, float]:
    """The bit-identity test's 1568x1024 case (12 batches of 4): G1's hash and sum, and test accuracy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg, _ = load_config("quickstart", [
            "train.epochs=1", "data.train_subset=48", "data.test_subset=64", "eval.batch_size=32",
            "train.batch_size=4", "network.hidden=[1024]", "crossbar.sigma=0.0001", f"train.update={update}"])
        xbar = open_crossbar(topology_for(cfg, 784), cfg.crossbar, seed=cfg.seed, source="rank update test")
        epochs = train(xbar, cfg, prepare_data(cfg))
        g1 = xbar.read_conductances()["G1"]
    finally:
        torch.set_num_threads(threads)
    return hashlib.sha256(g1.numpy().tobytes()).hexdigest(), float(g1.double().sum()), epochs[-1]["test_acc"]


@needs_compiler
def test_a_fused_run_repeats_bit_for_bit_and_stays_within_rounding_of_the_blas_run() -> None:
    blas, fused, fused_again = train_wide("blas"), train_wide("fused"), train_wide("fused")
    assert fused == fused_again
    assert fused[0] != blas[0]  # other roundings: the option is not a no-op
    assert fused[1] == pytest.approx(blas[1], rel=1e-5)  # 12 updates of ~1e-3 each, rounding at ~1e-7
    assert fused[2] == blas[2]


@needs_compiler
def test_fused_is_refused_up_front_where_torch_compile_cannot_build(tmp_path) -> None:
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "ind")}
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "hil", "train", "quickstart", "--set", "train.update=fused",
                           "--workspace", str(ws), "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "train.update" in last and "use train.update: blas" in last and "Traceback" not in proc.stderr
    assert not ws.exists()
