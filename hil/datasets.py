"""Image data in IDX format (MNIST, Fashion-MNIST, KMNIST) and how it becomes input voltages.

A data root holds one folder per dataset (`mnist/`, `fashion-mnist/`, `kmnist/`)
with the four standard IDX files, gzipped or plain.  The root comes from the
config (`data.root`), `--data-dir`, or `HIL_DATA_DIR`; `embedded` selects the
small MNIST subset that ships inside the package so the quickstart runs offline.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hil.errors import DataError

DATASETS = ("mnist", "fashion-mnist", "kmnist")
EMBEDDED = "embedded"
_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass
class Split:
    """Images as uint8 `(n, 28*28)` and labels as int64 `(n,)`."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> Split:
        return self if n is None else Split(self.images[:n], self.labels[:n])


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or plain); a truncated or malformed file is a DataError."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: truncated or padded IDX file: {len(raw)} bytes, header says {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (gzip if the name ends in .gz); used to make test data."""
    codes = {np.dtype(v): k for k, v in _IDX_DTYPES.items()}
    arr = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">") if array.itemsize > 1 else array.dtype)
    header = bytes([0, 0, codes[np.dtype(arr.dtype)], arr.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in arr.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + arr.tobytes())


def data_root(configured: str | None) -> str:
    """The data root from the config or `HIL_DATA_DIR`, or a DataError saying how to give one."""
    root = configured or os.environ.get("HIL_DATA_DIR")
    if not root:
        raise DataError(
            "no data root: set data.root in the config, pass --data-dir, or set HIL_DATA_DIR "
            "(a folder with mnist/, fashion-mnist/, kmnist/), or use data.root: embedded"
        )
    return root


def choose_root(configured: str | None, given: str | None) -> tuple[str | None, str | None]:
    """The data root (the config's `data.root`, else `--data-dir`, else `HIL_DATA_DIR`, else none), and a note
    when both the config and `--data-dir` name one, so that the one not used is never ignored silently."""
    note = None
    if configured and given and configured != given:
        note = (f"data root: the config's data.root ({configured}) is used, not --data-dir {given}; "
                f"to read {given}, add --set data.root={given}")
    return configured or given or os.environ.get("HIL_DATA_DIR"), note


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder / stem}[.gz]: no such file")


def _read_split(folder: Path, split: str) -> Split:
    images = read_idx(_find(folder, _FILES[(split, "images")]))
    labels = read_idx(_find(folder, _FILES[(split, "labels")]))
    for kind, array in (("images", images), ("labels", labels)):
        if array.dtype != np.uint8:  # the MNIST family stores both as unsigned bytes (IDX type 0x08)
            path = _find(folder, _FILES[(split, kind)])
            raise DataError(f"{path}: {kind} must be unsigned bytes (IDX type 0x08), got {array.dtype.name}")
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{folder}: {split} images must be 3-d and labels 1-d, got {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{folder}: {split} has {len(images)} images but {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{folder}: {split} labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return Split(
        torch.from_numpy(images.reshape(len(images), -1).astype(np.uint8)),
        torch.from_numpy(labels.astype(np.int64)),
    )


def load(dataset: str, root: str | None) -> tuple[Split, Split]:
    """Training and test splits of `dataset` from `root` (or the embedded MNIST subset)."""
    root = data_root(root)
    if root == EMBEDDED:
        if dataset != "mnist":
            raise DataError(f"the embedded data is an MNIST subset; {dataset} needs a data root")
        return load_embedded()
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"{base}: data root is not a directory")
    folder = base / dataset
    if not folder.is_dir():
        raise DataError(f"{folder}: no {dataset} folder in the data root")
    return _read_split(folder, "train"), _read_split(folder, "test")


def fingerprint(dataset: str, root: str | None) -> dict[str, object]:
    """Where a run's data came from: the data root (absolute) and the sha256 of each file read.

    Stored with a run and compared on resume, so that a resumed run reads the same images.
    Data that does not come from a root (the board tasks) has no files to record.
    """
    if dataset not in DATASETS and root != EMBEDDED:
        return {"dataset": dataset, "root": root, "files": {}}
    root = data_root(root)
    if root == EMBEDDED:
        blob = resources.files("hil").joinpath("data/mnist-subset.npz").read_bytes()
        return {"dataset": dataset, "root": EMBEDDED, "files": {"mnist-subset.npz": hashlib.sha256(blob).hexdigest()}}
    folder = Path(root).expanduser().resolve() / dataset
    files: dict[str, str] = {}
    for stem in _FILES.values():
        path = _find(folder, stem)
        files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"dataset": dataset, "root": str(folder.parent), "files": files}


def load_embedded() -> tuple[Split, Split]:
    """The MNIST subset shipped in the package: the first images of each official split."""
    with resources.files("hil").joinpath("data/mnist-subset.npz").open("rb") as fh:
        z = np.load(fh)
        splits = [
            Split(torch.from_numpy(z[f"{s}_images"].reshape(len(z[f"{s}_labels"]), -1)),
                  torch.from_numpy(z[f"{s}_labels"].astype(np.int64)))
            for s in ("train", "test")
        ]
    return splits[0], splits[1]


def to_voltages(
    images: Tensor, gain: float, dtype: torch.dtype = torch.float32, offsets: tuple[float, float] = (0.0, 0.0)
) -> Tensor:
    """Pixels (uint8 0..255) or features (float, in [0, 1]) become doubled input sources `gain * [x - a, b - x]`
    (volts; `offsets` (a, b), in feature units, default 0: `gain * [+x, -x]`)."""
    x = images.to(dtype) * (gain / 255.0 if images.dtype == torch.uint8 else gain)
    a, b = offsets
    if a == b == 0.0:
        return torch.cat([x, -x], dim=1)
    return torch.cat([x - a * gain, b * gain - x], dim=1)


def one_hot(labels: Tensor, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.nn.functional.one_hot(labels, n).to(dtype)
