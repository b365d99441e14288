"""IDX reader and MNIST-style directory loader, on files the tests write and on Fashion-MNIST."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from deimos.data.images import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    load_fashion_mnist,
    load_idx_dataset,
    read_idx,
)
from deimos.errors import InputError

# Written out here rather than imported so the tests check the reader against the format itself.
_CODES = {">u1": 0x08, ">i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def _idx_bytes(arr: np.ndarray, dtype: str) -> bytes:
    header = struct.pack(">BBBB", 0, 0, _CODES[dtype], arr.ndim)
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=dtype).tobytes()


def _save(path: Path, data: bytes, *, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", list(_CODES))
def test_read_idx_round_trip(tmp_path: Path, dtype: str, gz: bool) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    # The suffix does not matter: gzip is detected from the content.
    p = _save(tmp_path / "x-idx3-ubyte", _idx_bytes(arr, dtype), gz=gz)
    got = read_idx(p)
    assert got.shape == (3, 4, 5)
    assert got.dtype == np.dtype(dtype).newbyteorder("=")
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, arr)
    got[0, 0, 0] = 1  # a writable copy, not a view of the file's bytes


def test_read_idx_one_dimensional(tmp_path: Path) -> None:
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    got = read_idx(_save(tmp_path / "l", _idx_bytes(labels, ">u1"), gz=True))
    np.testing.assert_array_equal(got, labels)


def _good() -> bytes:
    return _idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), ">u1")


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00\x00", "shorter than the 4-byte magic"),
        (b"\x00\x01\x08\x03" + _good()[4:], r"bad magic number 0x00010803"),
        (b"P5\n28 28\n255\n" + bytes(784), r"bad magic number 0x50350a32"),
        (b"\x00\x00\x0a\x03" + _good()[4:], r"unsupported IDX dtype code 0x0A"),
        (b"\x00\x00\x08\x00", r"declares 0 dimensions"),
        (_good()[:10], r"truncated IDX header: 3 dimensions need 16 header bytes, file has 10"),
        (
            _good()[:-1],
            r"truncated IDX payload: shape \(2, 3, 4\) of uint8 needs 24 bytes, file has 23",
        ),
        (_good() + b"\x00\x00", r"2 trailing bytes after the IDX payload"),
    ],
)
def test_read_idx_errors(tmp_path: Path, data: bytes, expected: str, gz: bool) -> None:
    p = _save(tmp_path / "bad-idx3-ubyte", data, gz=gz)
    with pytest.raises(InputError, match=expected) as err:
        read_idx(p)
    assert str(err.value).startswith(f"{p}: ")


def test_read_idx_corrupt_gzip_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(_good())[:-12])
    with pytest.raises(InputError, match=re.escape(f"{p}: corrupt or truncated gzip data")):
        read_idx(p)
    with pytest.raises(InputError, match="IDX file not found"):
        read_idx(tmp_path / "missing")
    with pytest.raises(InputError, match="not a regular file"):
        read_idx(tmp_path)


# ----------------------------------------------------------------------------------------------
# load_idx_dataset


def _write_split(
    d: Path,
    split: str,
    n_images: int,
    n_labels: int,
    *,
    gz: bool,
    dotted: bool = False,
    shape: tuple[int, int] = (28, 28),
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n_images, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_labels, dtype=np.uint8)
    sep = "." if dotted else "-"
    ext = ".gz" if gz else ""
    _save(d / f"{split}-images{sep}idx3-ubyte{ext}", _idx_bytes(images, ">u1"), gz=gz)
    _save(d / f"{split}-labels{sep}idx1-ubyte{ext}", _idx_bytes(labels, ">u1"), gz=gz)
    return images, labels


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("split", ["train", "t10k"])
def test_load_idx_dataset_round_trip(tmp_path: Path, split: str, gz: bool, dotted: bool) -> None:
    images, labels = _write_split(tmp_path, split, 7, 7, gz=gz, dotted=dotted)
    got_images, got_labels = load_idx_dataset(tmp_path, split)
    assert got_images.dtype == np.uint8
    assert got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_load_idx_dataset_prefers_uncompressed(tmp_path: Path) -> None:
    raw_images, _ = _write_split(tmp_path, "train", 5, 5, gz=False)
    gz_dir = tmp_path / "gz"
    gz_dir.mkdir()
    _write_split(gz_dir, "train", 6, 6, gz=True)
    for f in gz_dir.iterdir():
        f.rename(tmp_path / f.name)
    got_images, _ = load_idx_dataset(tmp_path, "train")
    np.testing.assert_array_equal(got_images, raw_images)


def test_load_idx_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"split must be one of \('train', 't10k'\), got 'test'"):
        load_idx_dataset(tmp_path, "test")
    with pytest.raises(InputError, match="IDX data directory not found"):
        load_idx_dataset(tmp_path / "nowhere")
    # Missing files: every name looked for is listed.
    names = (
        "train-images-idx3-ubyte, train-images-idx3-ubyte.gz, "
        "train-images.idx3-ubyte, train-images.idx3-ubyte.gz"
    )
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}: none of {names} found")):
        load_idx_dataset(tmp_path)

    counts = tmp_path / "counts"
    counts.mkdir()
    _write_split(counts, "train", 5, 4, gz=True)
    with pytest.raises(
        InputError,
        match=r"5 images in train-images-idx3-ubyte.gz but 4 labels in train-labels-idx1-ubyte.gz",
    ):
        load_idx_dataset(counts)

    small = tmp_path / "small"
    small.mkdir()
    _write_split(small, "t10k", 3, 3, gz=False, shape=(8, 8))
    with pytest.raises(InputError, match="images are 8x8, expected 28x28"):
        load_idx_dataset(small, "t10k")
    assert load_idx_dataset(small, "t10k", image_shape=None)[0].shape == (3, 8, 8)

    only_images = tmp_path / "only_images"
    only_images.mkdir()
    _write_split(only_images, "train", 2, 2, gz=False)
    (only_images / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(InputError, match=r"none of train-labels-idx1-ubyte, "):
        load_idx_dataset(only_images)


def test_load_idx_dataset_rejects_wrong_dtype_and_rank(tmp_path: Path) -> None:
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    _save(tmp_path / "train-images-idx3-ubyte", _idx_bytes(images.astype(">f4"), ">f4"), gz=False)
    _save(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(2, np.uint8), ">u1"), gz=False)
    with pytest.raises(InputError, match=r"expected uint8 images .* got float32"):
        load_idx_dataset(tmp_path)
    _save(tmp_path / "train-images-idx3-ubyte", _idx_bytes(images, ">u1"), gz=False)
    _save(
        tmp_path / "train-labels-idx1-ubyte",
        _idx_bytes(np.zeros((2, 1), np.uint8), ">u1"),
        gz=False,
    )
    with pytest.raises(InputError, match=r"expected uint8 labels of shape \(n,\), got uint8"):
        load_idx_dataset(tmp_path)


# ----------------------------------------------------------------------------------------------
# The real Fashion-MNIST files (Debian package dataset-fashion-mnist; CI installs it).


def test_fashion_mnist_real_files() -> None:
    assert FASHION_MNIST_DIR.is_dir(), (
        f"{FASHION_MNIST_DIR} missing: run `apt-get install -y dataset-fashion-mnist`"
    )
    train_images, train_labels = load_fashion_mnist("train")
    test_images, test_labels = load_idx_dataset(FASHION_MNIST_DIR, "t10k")
    assert train_images.shape == (60000, 28, 28)
    assert test_images.shape == (10000, 28, 28)
    assert train_images.dtype == np.uint8
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    np.testing.assert_array_equal(np.bincount(train_labels, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test_labels, minlength=10), [1000] * 10)
    assert 0 < train_images.mean() < 255
    assert FASHION_MNIST_CLASSES[7] == "Sneaker"
    assert FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert len(FASHION_MNIST_CLASSES) == 10
