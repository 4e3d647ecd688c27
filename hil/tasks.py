"""Board-sized tasks: Iris, scikit-learn's 8x8 digits, XOR (two features or one), and MNIST downsampled to k x k.

A physical board has a handful of nodes, so these tasks have few features.  Every
task gives features in [0, 1] as float32 `(n, features)` (the same `Split` as the
IDX datasets, whose uint8 pixels are scaled by 1/255), so `to_voltages` turns them
into doubled input sources `gain * [+x, -x]` and the config's `input_gain` maps
them onto the station's voltage range.  Nothing here knows whether a twin or a
board will be trained: the tasks are generic over any `Crossbar`.

- `iris`: 150 flowers, 4 features, 3 classes; stratified train/test split
  (`data.test_fraction`, seeded by `data.split_seed`), each feature min-max scaled
  on the training split (the test split is clipped to [0, 1]).
- `digits`: 1797 8x8 images, 64 features in 0..16 (divided by 16), 10 classes; the
  same split; `data.size: k` average-pools them to k x k.
- `xor`: the four corners of the unit square with Gaussian jitter (std `XOR_JITTER`),
  label = x1 XOR x2; `XOR_TRAIN` / `XOR_TEST` points drawn from `data.split_seed`.
- `xor1d`: the same two bits on ONE feature, for a board with a single input pair (the
  memristive 2-2-1): x = (2 x1 + x2) / 3, the levels 0, 1/3, 2/3, 1 with jitter
  `XOR1D_JITTER`; label = x1 XOR x2, i.e. 1 on the two middle levels.  No straight line
  (one threshold) separates it: the network needs its diodes, one per hidden node.
- `mnist`, `fashion-mnist`, `kmnist` with `data.size: k`: 28 x 28 images average-pooled
  to k x k (from a data root or the embedded MNIST subset).

`data.tile: m` repeats the features m times, so a task with few features fills a
board's input channels (XOR's 2 features x 2 tiles x 2 signs = the 8 inputs of 8-4-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hil.datasets import DATASETS, Split
from hil.errors import DataError

XOR_TRAIN, XOR_TEST, XOR_JITTER = 200, 100, 0.1
XOR1D_JITTER = 0.04  # levels 1/3 apart: a point crosses halfway to the next level (4.2 sigma) w.p. 3e-5
SKLEARN_TASKS = ("iris", "digits")
BOARD_TASKS = ("iris", "digits", "xor", "xor1d")


@dataclass(frozen=True)
class TaskInfo:
    """What a task gives the network: features per example (before tiling) and classes."""

    features: int
    classes: int


def task_info(dataset: str, size: int | None) -> TaskInfo:
    """Features and classes of a dataset at a pooled size (None: native size)."""
    if dataset == "iris":
        return TaskInfo(4, 3)
    if dataset == "xor":
        return TaskInfo(2, 2)
    if dataset == "xor1d":
        return TaskInfo(1, 2)
    if dataset == "digits":
        return TaskInfo((size or 8) ** 2, 10)
    return TaskInfo((size or 28) ** 2, 10)


def _sklearn():
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError:
        raise DataError(
            "the iris and digits tasks need scikit-learn (its datasets ship inside it): "
            "pip install 'hil-ep[tasks]'"
        ) from None
    return sklearn


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    sk = _sklearn()
    return sk.model_selection.train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)


def _splits(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> tuple[Split, Split]:
    def one(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
                     torch.as_tensor(y, dtype=torch.int64))

    return one(xtr, ytr), one(xte, yte)


def pool(images: np.ndarray, side: int, size: int) -> np.ndarray:
    """Average-pool square images `(n, side*side)` to `(n, size*size)` (adaptive pooling, any size <= side)."""
    if not 1 <= size <= side:
        raise DataError(f"data.size: {size} must lie in 1..{side} for {side}x{side} images")
    t = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 1, side, side)
    return torch.nn.functional.adaptive_avg_pool2d(t, size).reshape(len(images), -1).numpy()


def iris(test_fraction: float, seed: int) -> tuple[Split, Split]:
    data = _sklearn().datasets.load_iris()
    xtr, xte, ytr, yte = _split(data.data.astype(np.float64), data.target, test_fraction, seed)
    lo, hi = xtr.min(axis=0), xtr.max(axis=0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    return _splits((xtr - lo) / scale, ytr, np.clip((xte - lo) / scale, 0.0, 1.0), yte)


def digits(test_fraction: float, seed: int, size: int | None) -> tuple[Split, Split]:
    data = _sklearn().datasets.load_digits()
    x = data.data / 16.0
    if size is not None and size != 8:
        x = pool(x, 8, size)
    xtr, xte, ytr, yte = _split(x, data.target, test_fraction, seed)
    return _splits(xtr, ytr, xte, yte)


def xor(seed: int, one_feature: bool = False) -> tuple[Split, Split]:
    """XOR points: two jittered bits, or (`one_feature`) the same bits coded as one of four levels."""
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        corners = rng.integers(0, 2, size=(n, 2))
        if one_feature:
            level = (2 * corners[:, :1] + corners[:, 1:]) / 3.0
            x = np.clip(level + rng.normal(0.0, XOR1D_JITTER, size=(n, 1)), 0.0, 1.0)
        else:
            x = np.clip(corners + rng.normal(0.0, XOR_JITTER, size=(n, 2)), 0.0, 1.0)
        return x, corners[:, 0] ^ corners[:, 1]

    (xtr, ytr), (xte, yte) = draw(XOR_TRAIN), draw(XOR_TEST)
    return _splits(xtr, ytr, xte, yte)


def downsample(split: Split, size: int) -> Split:
    """28 x 28 uint8 images average-pooled to size x size features in [0, 1]."""
    x = pool(split.images.numpy().astype(np.float32) / 255.0, 28, size)
    return Split(torch.from_numpy(np.ascontiguousarray(x)), split.labels)


def tile(split: Split, times: int) -> Split:
    return split if times == 1 else Split(split.images.repeat(1, times), split.labels)


def load_task(dataset: str, *, test_fraction: float, seed: int, size: int | None) -> tuple[Split, Split]:
    """Training and test splits of a board task (features in [0, 1], float32)."""
    if dataset == "iris":
        return iris(test_fraction, seed)
    if dataset == "digits":
        return digits(test_fraction, seed, size)
    if dataset in ("xor", "xor1d"):
        return xor(seed, one_feature=dataset == "xor1d")
    raise DataError(f"unknown board task {dataset!r}; expected one of {', '.join(BOARD_TASKS + DATASETS)}")
