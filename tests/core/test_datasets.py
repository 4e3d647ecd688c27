"""IDX reading: gzip and plain files, the KMNIST path, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hil.datasets import load, load_embedded, read_idx, to_voltages, write_idx
from hil.errors import DataError
from tests.conftest import full_data_root, needs_full_data


def make_root(tmp_path, dataset="kmnist", n_train=30, n_test=10, gz=True, labels=None):
    folder = tmp_path / dataset
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        lab = labels if labels is not None else rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", lab)
    return tmp_path


@pytest.mark.parametrize("gz", [True, False])
def test_kmnist_from_generated_idx_files(tmp_path, gz):
    root = make_root(tmp_path, gz=gz)
    train, test = load("kmnist", str(root))
    assert train.images.shape == (30, 784) and train.images.dtype == torch.uint8
    assert test.labels.shape == (10,) and test.labels.max() <= 9


def test_roundtrip_preserves_values(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", arr)
    assert np.array_equal(read_idx(tmp_path / "a.idx"), arr)


def test_truncated_file_is_a_clear_error(tmp_path):
    root = make_root(tmp_path)
    path = root / "kmnist" / "train-images-idx3-ubyte.gz"
    import gzip

    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as fh:
        fh.write(raw[:-100])
    with pytest.raises(DataError, match="truncated"):
        load("kmnist", str(root))


def test_mislabelled_files_are_clear_errors(tmp_path):
    root = make_root(tmp_path / "a", labels=np.full(30, 12, dtype=np.uint8), n_test=30)
    with pytest.raises(DataError, match="labels must lie in 0..9"):
        load("kmnist", str(root))
    root = make_root(tmp_path / "b", labels=np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataError, match="30 images but 7 labels"):
        load("kmnist", str(root))


def test_missing_folder_and_file_name_the_path(tmp_path):
    with pytest.raises(DataError, match="no kmnist folder"):
        load("kmnist", str(tmp_path))
    root = make_root(tmp_path / "c")
    (root / "kmnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load("kmnist", str(root))


def test_embedded_subset_and_input_doubling():
    train, test = load_embedded()
    assert len(train) == 6000 and len(test) == 1000
    x = to_voltages(train.images[:2], 480.0)
    assert x.shape == (2, 1568)
    assert torch.equal(x[:, 784:], -x[:, :784]) and x.max() <= 480.0


@needs_full_data
def test_full_mnist_matches_the_published_pixel_mean():
    train, test = load("mnist", str(full_data_root()))
    assert len(train) == 60_000 and len(test) == 10_000
    assert abs(train.images.float().mean().item() / 255 - 0.1307) < 1e-4
