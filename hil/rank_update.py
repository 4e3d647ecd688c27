"""The EP update of a block, `G += alpha * left^T @ right`, past the BLAS's small-rank cliff.

The update's rank K is the batch size plus one or two (hil/ep.py), so at batch 4
it is 5.  MKL's float32 GEMM takes a slow path for K below 16 on the CPUs this
project runs on: a 1568x1024 block updates in about 1 ms at K = 5 and in 0.55 ms
at K = 16.  Zero rows added to `left` and `right` leave every product's sum
unchanged (they add exact zeros), and on those kernels the result is bit for
bit the same, so the update pads K up to 16 where that pays.

Whether it pays, and whether the bits really are the same, depends on the BLAS,
the CPU and the thread count, so neither is assumed: the first update of each
shape is run both ways on copies of the block, and padding is kept only when
the two results are equal bit for bit and the padded one is faster.

A column-major block (`crossbar.layout: column`, simulators/blocks.py) has no
such cliff here: its rank-5 update takes ~0.09 ms, so the first measurement
finds no gain and leaves it unpadded.  The layout is part of the shape's key.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

PAD_RANK = 16  # the smallest K on MKL's fast float32 path (docs/results/packing.md, section 0)
_TRIALS = 3  # timed runs of each way at the first update of a shape

_pads: dict[tuple, bool] = {}  # (shape, strides, K, dtype, threads) -> pad or not, decided once per process


def rank_update_(block: Tensor, left: Tensor, right: Tensor, alpha: float) -> None:
    """In place: `block += alpha * left^T @ right` for `left (K, n_pre)`, `right (K, n_post)`.

    Packed trials (simulators/packed.py) carry a leading trial dimension on all three.
    """
    if right.shape[-2] < PAD_RANK and block.device.type == "cpu" and _pad_pays(block, left, right, alpha):
        left, right = _padded(left), _padded(right)
    _update(block, left, right, alpha)


def _update(block: Tensor, left: Tensor, right: Tensor, alpha: float) -> None:
    if block.ndim == 3:
        block.baddbmm_(left.transpose(-1, -2), right, alpha=alpha)
    else:
        block.addmm_(left.T, right, alpha=alpha)


def _padded(rows: Tensor) -> Tensor:
    """`rows (..., K, n)` with zero rows added up to PAD_RANK."""
    pad = rows.new_zeros(*rows.shape[:-2], PAD_RANK - rows.shape[-2], rows.shape[-1])
    return torch.cat([rows, pad], dim=-2)


def _pad_pays(block: Tensor, left: Tensor, right: Tensor, alpha: float) -> bool:
    key = (tuple(block.shape), block.stride(), right.shape[-2], block.dtype, torch.get_num_threads())
    if key not in _pads:
        _pads[key] = _measure(block, left, right, alpha)
    return _pads[key]


def _measure(block: Tensor, left: Tensor, right: Tensor, alpha: float) -> bool:
    """Both ways on copies of `block`: pad only when the bits agree and padding is faster."""
    plain, padded = block.clone(), block.clone()
    lp, rp = _padded(left), _padded(right)
    _update(plain, left, right, alpha)
    _update(padded, lp, rp, alpha)
    if not _same_bytes(plain, padded):
        return False

    def best(fn) -> float:
        times = []
        for _ in range(_TRIALS):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    t_plain = best(lambda: _update(plain, left, right, alpha))
    t_pad = best(lambda: _update(padded, lp, rp, alpha))
    return t_pad < 0.9 * t_plain


def _same_bytes(a: Tensor, b: Tensor) -> bool:
    """Equal bit patterns (so -0.0 differs from +0.0 and a NaN equals itself), for blocks of any layout."""
    as_int = {torch.float32: torch.int32, torch.float64: torch.int64}
    return torch.equal(a.view(as_int[a.dtype]), b.view(as_int[b.dtype]))
