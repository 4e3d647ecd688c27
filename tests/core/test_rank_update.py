"""The EP update of a block: the padded BLAS update keeps the plain BLAS update's bytes.

`rank_update_` may pad a small-rank update with zero rows (hil/rank_update.py);
it must give the plain `addmm_`'s bytes, whichever way it chose, for row-major
and column-major blocks (`crossbar.layout`) alike.
"""

from __future__ import annotations

import pytest
import torch

from hil import rank_update
from hil.rank_update import rank_update_


def operands(n_pre: int, n_post: int, k: int, dtype=torch.float32, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    g = torch.rand(n_pre, n_post, generator=gen, dtype=dtype) * 0.05
    left = torch.rand(k, n_pre, generator=gen, dtype=dtype)
    right = torch.randn(k, n_post, generator=gen, dtype=dtype) * 1e-3
    return g, left, right


@pytest.mark.parametrize("k", [1, 5, 9, 15, 16, 33])
@pytest.mark.parametrize("shape", [(1568, 1024), (784, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["row", "column"])
def test_the_update_gives_the_plain_blas_bytes_whichever_way_it_runs(k, shape, dtype, layout) -> None:
    g, left, right = operands(*shape, k, dtype)
    if layout == "column":
        g = g.mT.contiguous().mT
    want, got = g.clone(), g.clone()
    want.addmm_(left.T, right, alpha=-0.37)
    rank_update_(got, left, right, -0.37)
    assert torch.equal(got.contiguous().view(torch.uint8), want.contiguous().view(torch.uint8))
    assert got.stride() == want.stride()


@pytest.mark.parametrize("shape", [(2, 1568, 1024), (2, 1568, 256)])
def test_a_packed_update_gives_the_batched_blas_bytes(shape) -> None:
    gen = torch.Generator().manual_seed(1)
    g = torch.rand(*shape, generator=gen) * 0.05
    left, right = torch.rand(shape[0], 5, shape[1], generator=gen), torch.randn(shape[0], 5, shape[2], generator=gen)
    want, got = g.clone(), g.clone()
    want.baddbmm_(left.transpose(1, 2), right, alpha=-0.37)
    rank_update_(got, left, right, -0.37)
    assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))


def test_padding_is_decided_once_per_shape_layout_and_thread_count() -> None:
    g, left, right = operands(1568, 1024, 5)
    col = g.mT.contiguous().mT
    rank_update_(g, left, right, 0.1)
    rank_update_(col, left, right, 0.1)
    for strides in ((1024, 1), (1, 1568)):  # a choice made for one layout is never applied to the other
        key = ((1568, 1024), strides, 5, torch.float32, torch.get_num_threads())
        assert isinstance(rank_update._pads[key], bool)
    assert col.stride() == (1, 1568)  # updated in place, in its layout
