"""IDX image files (the MNIST / Fashion-MNIST format), gzip-compressed or not.

IDX layout (big-endian): two zero bytes, a dtype code byte, a byte with the number of
dimensions d, then d uint32 sizes, then the payload in C order. Files are checked exactly: a
wrong magic, an unknown dtype, a short payload or extra bytes after it are errors naming the file,
never silently trimmed.

Fashion-MNIST installs offline with `apt-get install -y dataset-fashion-mnist`, which puts
`{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` under `FASHION_MNIST_DIR`. Any directory with
files named the MNIST way (real MNIST included) loads the same way.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path

import numpy as np

from deimos.errors import InputError

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Where the Debian package `dataset-fashion-mnist` puts the files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Fashion-MNIST class names; the label is the index (Sneaker = 7, Ankle boot = 9).
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

SPLITS = ("train", "t10k")
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: PathLike) -> np.ndarray:
    """Read one IDX file; gzip is detected from the file's first bytes, not its name.

    Args:
        path: the `.idx*-ubyte` file, raw or gzip-compressed.

    Returns:
        An array with the file's shape and dtype, in native byte order (a fresh, writable copy).

    Raises:
        InputError: missing or unreadable file, corrupt or truncated gzip, header shorter than
            its stated dimensions, bad magic (first two bytes not zero), unsupported dtype code,
            zero dimensions, or a payload shorter (truncated) or longer (trailing bytes) than
            the header's dimensions require. The message names the file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: IDX file not found")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise InputError(f"{p}: cannot read: {err.strerror or err}") from err
    if raw[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise InputError(f"{p}: corrupt or truncated gzip data: {err}") from err
    else:
        data = raw
    return _parse_idx(data, p)


def _parse_idx(data: bytes, p: Path) -> np.ndarray:
    if len(data) < 4:
        raise InputError(f"{p}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic")
    if data[0] != 0 or data[1] != 0:
        raise InputError(
            f"{p}: not an IDX file: bad magic number 0x{data[:4].hex()} "
            "(an IDX file starts with two zero bytes)"
        )
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise InputError(f"{p}: unsupported IDX dtype code 0x{dtype_code:02X} (known: {known})")
    if ndim == 0:
        raise InputError(f"{p}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise InputError(
            f"{p}: truncated IDX header: {ndim} dimensions need {header_size} header bytes, "
            f"file has {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[dtype_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header_size
    if got < expected:
        raise InputError(
            f"{p}: truncated IDX payload: shape {shape} of {dtype.name} needs {expected} bytes, "
            f"file has {got}"
        )
    if got > expected:
        raise InputError(
            f"{p}: {got - expected} trailing bytes after the IDX payload "
            f"(shape {shape} of {dtype.name} needs {expected} bytes, file has {got})"
        )
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_size)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def idx_file_names(split: str, kind: str) -> tuple[str, ...]:
    """Names tried for one file, in order: MNIST style, then the dotted variant, raw before gz.

    Args:
        split: `"train"` or `"t10k"`.
        kind: `"images"` or `"labels"`.
    """
    ndim = 3 if kind == "images" else 1
    stems = (f"{split}-{kind}-idx{ndim}-ubyte", f"{split}-{kind}.idx{ndim}-ubyte")
    return tuple(stem + ext for stem in stems for ext in ("", ".gz"))


def load_idx_dataset(
    directory: PathLike,
    split: str = "train",
    *,
    image_shape: tuple[int, int] | None = (28, 28),
) -> tuple[np.ndarray, np.ndarray]:
    """Load the images and labels of one split from a directory of MNIST-style IDX files.

    Looks for `{split}-images-idx3-ubyte` and `{split}-labels-idx1-ubyte`, each raw or `.gz`
    (also the `{split}-images.idx3-ubyte` spelling some mirrors use); when several exist the
    uncompressed one is used.

    Args:
        directory: folder holding the files (e.g. `FASHION_MNIST_DIR`).
        split: `"train"` or `"t10k"` (the test split).
        image_shape: required `(height, width)`; None accepts any.

    Returns:
        `(images_N_H_W, labels_N)`: uint8 images `(n, 28, 28)` and int64 class labels `(n,)`.

    Raises:
        InputError: unknown split, directory or file missing (the message lists every name
            looked for), a file that `read_idx` rejects, wrong dtype or shape, or image and label
            counts that differ.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")
    d = Path(directory)
    if not d.is_dir():
        hint = (
            " (install it with: apt-get install -y dataset-fashion-mnist)"
            if d == FASHION_MNIST_DIR
            else ""
        )
        raise InputError(f"{d}: IDX data directory not found{hint}")
    images_path = _find(d, idx_file_names(split, "images"))
    labels_path = _find(d, idx_file_names(split, "labels"))
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise InputError(
            f"{images_path}: expected uint8 images of shape (n, height, width), got "
            f"{images.dtype} with shape {images.shape}"
        )
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise InputError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected "
            f"{image_shape[0]}x{image_shape[1]}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise InputError(
            f"{labels_path}: expected uint8 labels of shape (n,), got {labels.dtype} with "
            f"shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise InputError(
            f"{d}: {len(images)} images in {images_path.name} but {len(labels)} labels in "
            f"{labels_path.name}"
        )
    logger.debug("load_idx_dataset dir=%s split=%s n_images=%d", d, split, len(images))
    return images, labels.astype(np.int64)


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """`load_idx_dataset(FASHION_MNIST_DIR, split)`; class names in `FASHION_MNIST_CLASSES`."""
    return load_idx_dataset(FASHION_MNIST_DIR, split)


def _find(directory: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise InputError(f"{directory}: none of {', '.join(names)} found")
