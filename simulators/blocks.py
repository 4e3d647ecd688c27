"""How the twins hold their conductance blocks: adopted without a copy, row- or column-major, range-checked.

`crossbar.layout` chooses the layout of every block.  Row-major is the reference
(every stored result's bits).  Column-major puts the products that a batch-4
step spends most of its time on onto faster MKL paths on the CPUs measured here
(docs/results/packing.md, section 0): `x @ G1` as `(G1^T x^T)^T` (~140 us against ~400
for 1568 x 1024), the EP update `addmm_` (~90 against ~320 us padded) and the
column sums (~35 against ~90 us).  The EP controller keeps its copy in the layout
the twin hands it (`read_conductances`, `ProgramReport.achieved`), so nothing is
converted per batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def outside_range(value: Tensor, lo: float, hi: float) -> bool:
    """Whether any cell of `value` lies outside [lo, hi]: one reduction (two with a finite hi), one host sync."""
    if math.isinf(hi):  # amin: the same value as min(), 3x faster on the CPU
        return bool(value.amin() < lo)
    return bool(torch.stack([value.amin() < lo, value.amax() > hi]).any())


def adopt_or_copy(blocks: dict[str, Tensor], name: str, value: Tensor) -> Tensor:
    """Hold `value` as block `name` without a copy when it already has the block's layout (see ProgramReport).

    Returns what is held: `value` itself, or the block it was copied into (which keeps its layout).
    """
    dst = blocks[name]
    if value is dst:
        return dst
    same_layout = value.is_contiguous() if dst.is_contiguous() else column_major(value)
    if value.dtype == dst.dtype and value.device == dst.device and same_layout:
        blocks[name] = value
        return value
    dst.copy_(value)
    return dst


def column_major(t: Tensor) -> bool:
    """Whether the last two dimensions of `t` are held column by column (`crossbar.layout: column`)."""
    return t.ndim >= 2 and t.mT.is_contiguous() and not t.is_contiguous()


DRIVE_MIN_CELLS = 1 << 16  # below this the transposed product's extra call does not pay (docs/results/packing.md)


def input_drive(x: Tensor, g1: Tensor) -> Tensor:
    """`x @ G1`; for a column-major G1, as `(G1^T x^T)^T`, which MKL runs ~2x faster at small batches.

    At batch 4 and 1568 x 1024 the two forms take ~140 and ~260 us and differ by float32 roundings;
    a row-major G1 keeps the plain product (the reference bits).
    """
    if column_major(g1) and g1.shape[-1] * g1.shape[-2] >= DRIVE_MIN_CELLS:
        return (g1.mT @ x.mT).mT.contiguous()
    return x @ g1
