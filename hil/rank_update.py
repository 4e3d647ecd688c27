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
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

PAD_RANK = 16  # the smallest K on MKL's fast float32 path (benchmarks/step_ab.py --g1-passes shows it)
_TRIALS = 3  # timed runs of each way at the first update of a shape

_pads: dict[tuple, bool] = {}  # (shape, K, dtype, threads) -> pad or not, decided once per process


def rank_update_(block: Tensor, left: Tensor, right: Tensor, alpha: float) -> None:
    """In place: `block += alpha * left^T @ right` for `left (K, n_pre)`, `right (K, n_post)`; 3-D: per trial."""
    k = right.shape[-2]
    if block.ndim == 3:  # packed trials (simulators/packed.py): batched, left as it is
        block.baddbmm_(left.transpose(-1, -2), right, alpha=alpha)
        return
    if k < PAD_RANK and block.device.type == "cpu" and _pad_pays(block, left, right, alpha):
        left, right = _padded(left), _padded(right)
    block.addmm_(left.T, right, alpha=alpha)


def _padded(rows: Tensor) -> Tensor:
    """`rows (K, n)` with zero rows added up to PAD_RANK."""
    return torch.cat([rows, rows.new_zeros(PAD_RANK - rows.shape[0], rows.shape[1])])


def _pad_pays(block: Tensor, left: Tensor, right: Tensor, alpha: float) -> bool:
    key = (tuple(block.shape), right.shape[-2], block.dtype, torch.get_num_threads())
    if key not in _pads:
        _pads[key] = _measure(block, left, right, alpha)
    return _pads[key]


def _measure(block: Tensor, left: Tensor, right: Tensor, alpha: float) -> bool:
    """Both ways on copies of `block`: pad only when the bits agree and padding is faster."""
    plain, padded = block.clone(), block.clone()
    plain.addmm_(left.T, right, alpha=alpha)
    padded.addmm_(_padded(left).T, _padded(right), alpha=alpha)
    if not torch.equal(plain.view(torch.uint8), padded.view(torch.uint8)):
        return False

    def best(fn) -> float:
        times = []
        for _ in range(_TRIALS):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    lp, rp = _padded(left), _padded(right)
    t_plain = best(lambda: plain.addmm_(left.T, right, alpha=alpha))
    t_pad = best(lambda: padded.addmm_(lp.T, rp, alpha=alpha))
    return t_pad < 0.9 * t_plain
