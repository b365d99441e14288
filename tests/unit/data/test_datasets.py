"""Real (scikit-learn) and synthetic data sets, splits and class-balanced initial sets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_diabetes, load_digits

from deimos.data.datasets import (
    Dataset,
    class_balanced_initial,
    load_diabetes_dataset,
    load_digits_dataset,
    split_indices,
)
from deimos.data.synthetic import random_network_1d, synthetic_1d
from deimos.errors import InputError

# ----------------------------------------------------------------------------------------------
# digits and diabetes


def test_digits_all_classes() -> None:
    d = load_digits_dataset()
    ref = load_digits()
    assert d.X.shape == (1797, 1, 8, 8)
    assert d.X.dtype == np.float32
    assert d.X.min() == 0.0
    assert d.X.max() == 1.0
    np.testing.assert_array_equal(d.y, ref.target)
    np.testing.assert_allclose(d.X[:, 0] * 16, ref.images)
    assert d.class_names == tuple("0123456789")
    assert d.is_classification
    assert len(d) == 1797


@pytest.mark.parametrize("classes", [(7, 9), (9, 7), (0, 3, 5)])
def test_digits_subset_is_remapped_in_the_given_order(classes: tuple[int, ...]) -> None:
    d = load_digits_dataset(classes)
    ref = load_digits()
    keep = np.isin(ref.target, classes)
    assert len(d) == int(keep.sum())
    # Label k means digit classes[k], and the images are the original ones in original order.
    np.testing.assert_array_equal(np.asarray(classes)[d.y], ref.target[keep])
    np.testing.assert_allclose(d.X[:, 0] * 16, ref.images[keep])
    assert set(d.y.tolist()) == set(range(len(classes)))
    assert d.class_names == tuple(str(c) for c in classes)
    assert d.name == "digits[" + ",".join(map(str, classes)) + "]"


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ((7,), "at least two digits"),
        ((7, 7), "digit 7 is listed twice"),
        ((7, 10), "10 is not a digit 0..9"),
        ((7, -1), "-1 is not a digit"),
        ((7, True), "True is not a digit"),
        ((7, 9.0), "9.0 is not a digit"),
        ("79", "classes must be a sequence of digits"),
        (7, "classes must be a sequence of digits"),
    ],
)
def test_digits_bad_classes(classes: object, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        load_digits_dataset(classes)  # type: ignore[arg-type]


def test_diabetes_is_standardised_and_invertible() -> None:
    d = load_diabetes_dataset()
    ref = load_diabetes(scaled=False)
    assert d.X.shape == (442, 10)
    assert d.X.dtype == np.float32
    assert d.y.dtype == np.float32
    np.testing.assert_allclose(d.X.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(d.X.std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(d.y * d.y_std + d.y_mean, ref.target, rtol=1e-5)
    # Standardising keeps the column order and correlations of the raw features.
    np.testing.assert_allclose(np.corrcoef(d.X.T), np.corrcoef(ref.data.T), atol=1e-5)
    assert d.feature_names == tuple(ref.feature_names)
    assert not d.is_classification


def test_dataset_rejects_mismatched_arrays() -> None:
    with pytest.raises(InputError, match="X has 3 points but y has shape"):
        Dataset(name="bad", X=np.zeros((3, 2)), y=np.zeros(4))


# ----------------------------------------------------------------------------------------------
# synthetic_1d


def test_synthetic_1d_is_deterministic_by_seed() -> None:
    a = synthetic_1d(100, seed=5)
    b = synthetic_1d(100, seed=5)
    c = synthetic_1d(100, seed=6)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    grid = np.linspace(-1, 1, 50)
    np.testing.assert_array_equal(a.f(grid), b.f(grid))
    assert not np.allclose(a.f(grid), c.f(grid))


def test_synthetic_1d_same_function_for_any_n() -> None:
    small, large = synthetic_1d(10, seed=3), synthetic_1d(1000, seed=3)
    grid = np.linspace(-1, 1, 101)
    np.testing.assert_array_equal(small.f(grid), large.f(grid))


def test_synthetic_1d_shapes_and_noise() -> None:
    d = synthetic_1d(20000, seed=0, noise_sd=0.3, x_range=(-2.0, 3.0))
    assert d.X.shape == (20000, 1)
    assert d.y.shape == (20000,)
    assert d.X.dtype == np.float32
    assert d.X.min() >= -2.0
    assert d.X.max() <= 3.0
    resid = d.y - d.f(d.X)
    assert abs(resid.mean()) < 0.01
    assert abs(resid.std() - 0.3) < 0.01
    noiseless = synthetic_1d(50, seed=0, noise_sd=0.0)
    np.testing.assert_allclose(noiseless.y, noiseless.f(noiseless.X), rtol=1e-6, atol=1e-6)


def test_random_network_is_normalised_and_not_trivial() -> None:
    for seed in range(5):
        f = random_network_1d(seed, x_range=(0.0, 10.0))
        grid = np.linspace(0.0, 10.0, 2001)
        y = f(grid)
        assert abs(y.mean()) < 1e-9
        assert abs(y.std() - 1.0) < 1e-9
        # Not a straight line: the slope changes sign or size along the range.
        slope = np.diff(y)
        assert slope.max() - slope.min() > 1e-3
        assert f.W1.shape == (1, 32)
        assert f.W2.shape == (32, 32)
        # (n, 1) and (n,) inputs give the same values.
        np.testing.assert_array_equal(f(grid[:, None]), y)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"n": 0, "seed": 1}, "n must be a positive integer"),
        ({"n": 5, "seed": 1.5}, "seed must be an integer"),
        ({"n": 5, "seed": 1, "noise_sd": -0.1}, "noise_sd must be a finite number in"),
        ({"n": 5, "seed": 1, "noise_sd": float("nan")}, "noise_sd must be a finite number"),
        ({"n": 5, "seed": 1, "x_range": (1.0, 1.0)}, "low < high"),
        ({"n": 5, "seed": 1, "x_range": (0.0,)}, r"x_range must be \(low, high\)"),
        ({"n": 5, "seed": 1, "n_hidden": 0}, "n_hidden must be a positive integer"),
    ],
)
def test_synthetic_1d_bad_arguments(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        synthetic_1d(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# split_indices


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(min_value=3, max_value=500),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_split_fractions_partition_everything(n: int, seed: int) -> None:
    parts = split_indices(n, seed=seed, fractions=(0.5, 0.3, 0.2))
    joined = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))
    sizes = [len(p) for p in parts]
    for size, frac in zip(sizes, (0.5, 0.3, 0.2), strict=True):
        assert abs(size - frac * n) < 1
    for p in parts:
        assert p.dtype == np.int64
        np.testing.assert_array_equal(p, np.sort(p))


def test_split_sizes_and_determinism() -> None:
    a = split_indices(100, seed=7, sizes=(50, 10, 40))
    b = split_indices(100, seed=7, sizes=(50, 10, 40))
    c = split_indices(100, seed=8, sizes=(50, 10, 40))
    assert [len(p) for p in a] == [50, 10, 40]
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a[0], c[0])
    # A Generator works too and is advanced, so two calls with it differ.
    rng = np.random.default_rng(7)
    first = split_indices(100, seed=rng, sizes=(50, 50))
    second = split_indices(100, seed=rng, sizes=(50, 50))
    assert not np.array_equal(first[0], second[0])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "exactly one of fractions= or sizes="),
        ({"fractions": (0.5, 0.5), "sizes": (5, 5)}, "exactly one of"),
        ({"fractions": (0.5, 0.4)}, r"fractions must sum to 1"),
        ({"fractions": (1.2, -0.2)}, "fractions must be positive"),
        ({"fractions": (0.99, 0.01)}, r"fractions\[1\] = 0.01 of n=10 gives an empty part"),
        ({"sizes": (5, 4)}, r"sizes must sum to n=10 so that no point is dropped, got \[5, 4\]"),
        ({"sizes": (5, 6)}, "sizes must sum to n=10"),
        ({"sizes": (11, -1)}, "sizes must be non-negative integers"),
        ({"sizes": (5.0, 5.0)}, "sizes must be non-negative integers"),
    ],
)
def test_split_bad_arguments(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        split_indices(10, seed=0, **kwargs)  # type: ignore[arg-type]


def test_split_bad_n_and_seed() -> None:
    with pytest.raises(InputError, match="n must be a positive integer"):
        split_indices(0, seed=0, sizes=(0,))
    with pytest.raises(InputError, match=r"seed \(an integer or numpy Generator\)"):
        split_indices(10, seed=None, sizes=(10,))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# class_balanced_initial


def test_class_balanced_per_class() -> None:
    y = np.repeat(np.array([3, 5, 8]), [10, 20, 30])
    rows = class_balanced_initial(y, seed=0, n_per_class=4)
    assert rows.dtype == np.int64
    assert len(np.unique(rows)) == 12
    np.testing.assert_array_equal(np.unique(y[rows], return_counts=True)[1], [4, 4, 4])
    np.testing.assert_array_equal(rows, class_balanced_initial(y, seed=0, n_per_class=4))
    assert not np.array_equal(rows, class_balanced_initial(y, seed=1, n_per_class=4))


def test_class_balanced_total_spreads_remainder() -> None:
    d = load_digits_dataset((7, 9))
    rows = class_balanced_initial(d.y, seed=0, n_total=10)  # the paper's 7-vs-9 setting
    np.testing.assert_array_equal(np.bincount(d.y[rows]), [5, 5])
    y = np.repeat(np.arange(10), 10)
    counts = np.bincount(y[class_balanced_initial(y, seed=2, n_total=33)], minlength=10)
    assert counts.sum() == 33
    assert set(counts.tolist()) == {3, 4}


def test_class_balanced_respects_pool() -> None:
    y = np.array([0, 1] * 20)
    pool_idx = np.arange(20, 40)
    rows = class_balanced_initial(y, seed=0, n_per_class=5, pool_idx=pool_idx)
    assert np.isin(rows, pool_idx).all()
    np.testing.assert_array_equal(np.bincount(y[rows]), [5, 5])


def test_class_balanced_errors_name_the_class() -> None:
    y = np.array([0] * 10 + [1] * 2 + [2] * 10)
    with pytest.raises(InputError, match=r"class 1 has 2 points available but 3 are needed"):
        class_balanced_initial(y, seed=0, n_per_class=3)
    # A class missing from the pool altogether is reported too, not dropped.
    with pytest.raises(InputError, match=r"class 2 has 0 points available but 1 are needed"):
        class_balanced_initial(y, seed=0, n_per_class=1, pool_idx=np.arange(12))
    with pytest.raises(InputError, match="n_total=2 is less than the 3 classes"):
        class_balanced_initial(y, seed=0, n_total=2)
    with pytest.raises(InputError, match="exactly one of n_per_class= or n_total="):
        class_balanced_initial(y, seed=0)
    with pytest.raises(InputError, match="exactly one of"):
        class_balanced_initial(y, seed=0, n_per_class=1, n_total=3)
    with pytest.raises(InputError, match="n_per_class must be a positive integer"):
        class_balanced_initial(y, seed=0, n_per_class=0)
    with pytest.raises(InputError, match="integer class labels, got dtype float64"):
        class_balanced_initial(y.astype(float), seed=0, n_per_class=1)
    with pytest.raises(InputError, match=r"pool_idx has indices outside 0\.\.21"):
        class_balanced_initial(y, seed=0, n_per_class=1, pool_idx=[0, 22])
    with pytest.raises(InputError, match="pool_idx contains repeated indices"):
        class_balanced_initial(y, seed=0, n_per_class=1, pool_idx=[0, 0, 11, 12])
    with pytest.raises(InputError, match="pool_idx must be 1-D integer row indices"):
        class_balanced_initial(y, seed=0, n_per_class=1, pool_idx=np.array([0.0, 1.0]))
