"""Small real data sets, and the splits an active-learning run starts from.

Real data comes from inside the scikit-learn wheel (`load_digits`, `load_diabetes`), so nothing
downloads. Every random choice takes its seed (an int or a `numpy.random.Generator`) as an
argument; nothing reads global random state. The synthetic 1-D regression data of the paper's
Appendix D is in `deimos.data.synthetic`.

Index names: functions here return row indices into the arrays they were given (`row_idx`);
which of those rows form the pool, the training set or the test set is up to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_diabetes, load_digits

from deimos.checks import check_int
from deimos.errors import InputError

logger = logging.getLogger(__name__)

SeedLike = int | np.random.Generator


@dataclass(frozen=True, eq=False)
class Dataset:
    """Arrays of one data set. Treat the arrays as read-only (they are not copied on access).

    Attributes:
        name: short name, e.g. `"digits[7,9]"` or `"diabetes"`.
        X: inputs, points first: `(n, 1, 8, 8)` images or `(n, d)` features, float32.
        y: `(n,)` int64 class indices `0..k-1` (classification) or float32 targets (regression).
        class_names: name of each class index (classification); empty for regression.
        feature_names: names of the columns of a tabular `X`; empty for images.
        y_mean: mean subtracted from a standardised regression target (0 if not standardised).
        y_std: standard deviation it was divided by (1 if not standardised); original units are
            `y * y_std + y_mean`.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()
    y_mean: float = 0.0
    y_std: float = 1.0

    def __post_init__(self) -> None:
        if self.y.ndim != 1 or len(self.X) != len(self.y):
            raise InputError(
                f"Dataset {self.name}: X has {len(self.X)} points but y has shape {self.y.shape}"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def is_classification(self) -> bool:
        return bool(self.class_names)


def load_digits_dataset(classes: Sequence[int] | None = None) -> Dataset:
    """scikit-learn's 1,797 real 8x8 handwritten digits as single-channel images.

    Args:
        classes: digits to keep, e.g. `(7, 9)`; labels are remapped to their position in this
            tuple (7 -> 0, 9 -> 1). None keeps all ten digits with their own labels.

    Returns:
        `Dataset` with `X` `(n, 1, 8, 8)` float32 in [0, 1] (pixel value / 16), `y` `(n,)` int64.

    Raises:
        InputError: `classes` has fewer than two entries, a repeat, or a digit outside 0..9.
    """
    digits = load_digits()
    images_N_H_W = np.asarray(digits.images, dtype=np.float32) / np.float32(16.0)
    labels_N = np.asarray(digits.target, dtype=np.int64)
    keep = tuple(range(10)) if classes is None else _check_classes(classes)
    mask = np.isin(labels_N, keep)
    # Lookup from original digit to new class index.
    remap = np.full(10, -1, dtype=np.int64)
    remap[list(keep)] = np.arange(len(keep))
    X = np.ascontiguousarray(images_N_H_W[mask][:, None, :, :])
    y = remap[labels_N[mask]]
    name = "digits" if classes is None else "digits[" + ",".join(map(str, keep)) + "]"
    return Dataset(name=name, X=X, y=y, class_names=tuple(str(d) for d in keep))


def _check_classes(classes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(classes, str | bytes) or not isinstance(classes, Sequence | np.ndarray):
        raise InputError(f"classes must be a sequence of digits such as (7, 9), got {classes!r}")
    out: list[int] = []
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, int | np.integer) or not 0 <= int(c) <= 9:
            raise InputError(f"classes: {c!r} is not a digit 0..9")
        if int(c) in out:
            raise InputError(f"classes: digit {int(c)} is listed twice")
        out.append(int(c))
    if len(out) < 2:
        raise InputError(f"classes must name at least two digits, got {tuple(out)}")
    return tuple(out)


def load_diabetes_dataset() -> Dataset:
    """scikit-learn's diabetes regression data (442 patients, 10 features), standardised.

    Each feature column and the target are shifted to mean 0 and scaled to standard deviation 1
    (population sd, ddof=0); `y_mean` and `y_std` undo the target scaling.

    Returns:
        `Dataset` with `X` `(442, 10)` float32 and `y` `(442,)` float32.
    """
    bunch = load_diabetes(scaled=False)
    X_raw = np.asarray(bunch.data, dtype=np.float64)
    y_raw = np.asarray(bunch.target, dtype=np.float64)
    X = (X_raw - X_raw.mean(axis=0)) / X_raw.std(axis=0)
    y_mean, y_std = float(y_raw.mean()), float(y_raw.std())
    return Dataset(
        name="diabetes",
        X=X.astype(np.float32),
        y=((y_raw - y_mean) / y_std).astype(np.float32),
        feature_names=tuple(bunch.feature_names),
        y_mean=y_mean,
        y_std=y_std,
    )


# ----------------------------------------------------------------------------------------------
# Splits and initial training sets


def split_indices(
    n: int,
    *,
    seed: SeedLike,
    fractions: Sequence[float] | None = None,
    sizes: Sequence[int] | None = None,
) -> tuple[np.ndarray, ...]:
    """Randomly partition `range(n)` into disjoint parts (e.g. train / validation / test).

    Every point lands in exactly one part: fractions must sum to 1 and sizes to `n`, so nothing
    is dropped. Fractions are turned into sizes by the largest-remainder rule.

    Args:
        n: number of points.
        seed: int or Generator.
        fractions: share of each part, each > 0, summing to 1. Give this or `sizes`.
        sizes: number of points in each part, each >= 0, summing to `n`.

    Returns:
        One sorted int64 array of row indices per part.

    Raises:
        InputError: both or neither of `fractions`/`sizes`, values that do not sum as required,
            or a fraction too small to give its part a point.
    """
    _check_count(n, "n")
    if (fractions is None) == (sizes is None):
        raise InputError("split_indices: give exactly one of fractions= or sizes=")
    if fractions is not None:
        frac = np.asarray(fractions, dtype=np.float64)
        if frac.ndim != 1 or frac.size == 0 or not np.all(np.isfinite(frac)) or np.any(frac <= 0):
            raise InputError(f"fractions must be positive numbers, got {fractions!r}")
        if abs(float(frac.sum()) - 1.0) > 1e-9:
            raise InputError(f"fractions must sum to 1, got {list(fractions)} (sum {frac.sum()})")
        exact = frac * n
        part_sizes = np.floor(exact).astype(np.int64)
        # Largest remainder: the points left by flooring go to the parts that lost the most.
        leftover = n - int(part_sizes.sum())
        part_sizes[np.argsort(-(exact - part_sizes), kind="stable")[:leftover]] += 1
        empty = np.flatnonzero(part_sizes == 0)
        if empty.size:
            k = int(empty[0])
            raise InputError(
                f"fractions[{k}] = {frac[k]} of n={n} gives an empty part; use sizes= instead"
            )
    else:
        assert sizes is not None
        if isinstance(sizes, str | bytes) or any(
            isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0 for s in sizes
        ):
            raise InputError(f"sizes must be non-negative integers, got {sizes!r}")
        part_sizes = np.asarray(sizes, dtype=np.int64)
        if part_sizes.size == 0 or int(part_sizes.sum()) != n:
            raise InputError(
                f"sizes must sum to n={n} so that no point is dropped, got {list(sizes)} "
                f"(sum {int(part_sizes.sum())})"
            )
    perm = _rng(seed).permutation(n)
    bounds = np.cumsum(part_sizes)[:-1]
    return tuple(np.sort(part) for part in np.split(perm, bounds))


def class_balanced_initial(
    y: np.ndarray,
    *,
    seed: SeedLike,
    n_per_class: int | None = None,
    n_total: int | None = None,
    pool_idx: np.ndarray | Sequence[int] | None = None,
) -> np.ndarray:
    """Draw a class-balanced initial training set, as the paper does for classification.

    With `n_total` not divisible by the number of classes k, every class gets `n_total // k` and
    `n_total % k` classes chosen at random get one more.

    Args:
        y: `(n,)` integer class labels of all points; the classes are `np.unique(y)`.
        seed: int or Generator.
        n_per_class: points per class. Give this or `n_total`.
        n_total: total points, spread over the classes as evenly as possible (at least one per
            class).
        pool_idx: row indices of `y` to draw from (e.g. the training split); default all rows.

    Returns:
        Sorted int64 row indices into `y`.

    Raises:
        InputError: bad `y`, counts or `pool_idx`, or a class with fewer points available than
            it needs (the message names the class, how many it has and how many it needs).
    """
    y_N = np.asarray(y)
    if y_N.ndim != 1 or y_N.size == 0 or not np.issubdtype(y_N.dtype, np.integer):
        raise InputError(
            f"y must be a non-empty 1-D array of integer class labels, got dtype {y_N.dtype} "
            f"with shape {y_N.shape}"
        )
    if (n_per_class is None) == (n_total is None):
        raise InputError("class_balanced_initial: give exactly one of n_per_class= or n_total=")
    classes = np.unique(y_N)
    k = len(classes)
    rng = _rng(seed)
    if n_per_class is not None:
        _check_count(n_per_class, "n_per_class")
        need_C = np.full(k, int(n_per_class), dtype=np.int64)
    else:
        assert n_total is not None
        _check_count(n_total, "n_total")
        if n_total < k:
            raise InputError(
                f"n_total={n_total} is less than the {k} classes; a class-balanced set needs "
                "at least one point per class"
            )
        need_C = np.full(k, n_total // k, dtype=np.int64)
        need_C[rng.choice(k, size=n_total % k, replace=False)] += 1
    if pool_idx is None:
        rows = np.arange(len(y_N))
    else:
        rows = np.asarray(pool_idx)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise InputError(f"pool_idx must be 1-D integer row indices, got shape {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= len(y_N)):
            raise InputError(f"pool_idx has indices outside 0..{len(y_N) - 1}")
        if np.unique(rows).size != rows.size:
            raise InputError("pool_idx contains repeated indices")
    picked: list[np.ndarray] = []
    for c, need in zip(classes, need_C, strict=True):
        rows_c = rows[y_N[rows] == c]
        if len(rows_c) < need:
            raise InputError(
                f"class {int(c)} has {len(rows_c)} points available but {int(need)} are needed "
                "for a class-balanced initial set"
            )
        picked.append(rng.choice(rows_c, size=int(need), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Argument checks


def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_int(seed, "seed (an integer or numpy Generator)"))


def _check_count(value: int, name: str) -> None:
    check_int(value, name, minimum=1)
