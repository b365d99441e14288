"""A benchmark run's data: the task's points, drawn split and initial labelled set."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from deimos.data.datasets import class_balanced_initial, load_digits_dataset, split_indices
from deimos.data.images import FASHION_MNIST_CLASSES, load_fashion_mnist
from deimos.data.synthetic import synthetic_1d
from deimos.errors import InputError
from deimos.experiments.benchmark import BenchmarkTask
from deimos.loop.seeds import SeedPlan


def _check_task(task: object) -> None:
    if not isinstance(task, BenchmarkTask):
        raise InputError(f"task must be a BenchmarkTask, got {type(task).__name__}")


@dataclass(frozen=True, eq=False)
class BenchmarkData:
    """The arrays of one run, drawn deterministically from the run seed.

    Attributes:
        X: `(n, *input_shape)` float32 inputs of every row the run uses.
        y: `(n,)` labels the oracle reveals: int64 classes or float32 (noisy) targets.
        y_test: `(len(test_idx),)` targets of the test metric: the test labels (classification)
            or the noise-free function values (regression).
        pool_idx: sorted row indices of the unlabelled pool (the initial set included).
        val_idx: row indices of the validation set.
        test_idx: row indices of the test set.
        initial_idx: sorted row indices of the initial labelled set, a subset of `pool_idx`.
        n_classes: number of classes, None for regression.
    """

    X: np.ndarray
    y: np.ndarray
    y_test: np.ndarray
    pool_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    initial_idx: np.ndarray
    n_classes: int | None


def prepare_benchmark_data(task: BenchmarkTask, seed: int) -> BenchmarkData:
    """Load or generate the task's data; draw the split and initial set from the run seed's
    `SeedPlan.split()` stream.

    Raises:
        InputError: a bad seed, too few points for the requested sizes, missing Fashion-MNIST
            files, or `splicing_sim` (its data live inside `deimos.loop.simulation`).
    """
    _check_task(task)
    rng = np.random.default_rng(SeedPlan(seed).split())
    y_test: np.ndarray
    if task.dataset == "digits_7v9":
        digits = load_digits_dataset((7, 9))
        X, y = digits.X, digits.y
        n_test = task.test_size if task.test_size is not None else len(y) // 5
        n_rest = len(y) - n_test - task.n_validation
        if n_rest < 1:
            raise InputError(f"task {task.name!r}: digits 7/9 has only {len(y)} points")
        val_idx, test_idx, rest = split_indices(
            len(y), seed=rng, sizes=[task.n_validation, n_test, n_rest]
        )
        pool_idx = _subsample(rest, task.pool_size, rng, task.name)
        y_test = y[test_idx]
        n_classes: int | None = 2
    elif task.dataset in ("fashion_7v9", "fashion_10"):
        classes = (7, 9) if task.dataset == "fashion_7v9" else tuple(range(10))
        X, y, n_train = _fashion_rows(task, classes, rng)
        val_idx, rest = split_indices(
            n_train, seed=rng, sizes=[task.n_validation, n_train - task.n_validation]
        )
        pool_idx = _subsample(rest, task.pool_size, rng, task.name)
        test_idx = np.arange(n_train, len(y), dtype=np.int64)
        y_test = y[test_idx]
        n_classes = len(classes)
    elif task.dataset == "synthetic_1d":
        n_pool = task.pool_size if task.pool_size is not None else 1000
        n_test = task.test_size if task.test_size is not None else 1000
        n_total = n_pool + n_test + task.n_validation
        data = synthetic_1d(n_total, seed=task.data_seed, noise_sd=task.noise_sd)
        X, y = data.X, data.y
        val_idx, test_idx, pool_idx = split_indices(
            n_total, seed=rng, sizes=[task.n_validation, n_test, n_pool]
        )
        y_test = data.f(X[test_idx, 0]).astype(np.float32)
        n_classes = None
    else:
        raise InputError(
            f"task {task.name!r}: {task.dataset} data are generated inside "
            "deimos.loop.simulation.run_simulated_campaign; run it through run_benchmark"
        )
    needed = task.n_initial + task.n_rounds * task.batch_size
    if needed > len(pool_idx):
        raise InputError(
            f"task {task.name!r}: the pool has {len(pool_idx)} points but n_initial + n_rounds x "
            f"batch_size = {needed}"
        )
    if n_classes is not None:
        initial_idx = class_balanced_initial(y, seed=rng, n_total=task.n_initial, pool_idx=pool_idx)
    else:
        initial_idx = np.sort(rng.choice(pool_idx, size=task.n_initial, replace=False))
    return BenchmarkData(
        X=X,
        y=y,
        y_test=y_test,
        pool_idx=np.sort(pool_idx).astype(np.int64),
        val_idx=val_idx.astype(np.int64),
        test_idx=test_idx.astype(np.int64),
        initial_idx=initial_idx.astype(np.int64),
        n_classes=n_classes,
    )


@functools.lru_cache(maxsize=2)
def _fashion_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    # Decompressing 60,000 images takes a second; runs of one process share one copy.
    images, labels = load_fashion_mnist(split)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _fashion_rows(
    task: BenchmarkTask, classes: tuple[int, ...], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of the task's classes: the train rows the run may use, then the test rows.

    Returns:
        `(X, y, n_train)`: `X` `(n, 1, 28, 28)` float32 in [0, 1], `y` `(n,)` int64 remapped to
        positions in `classes`, and how many leading rows come from the train split.
    """
    remap = np.full(len(FASHION_MNIST_CLASSES), -1, dtype=np.int64)
    remap[list(classes)] = np.arange(len(classes))
    parts_X, parts_y = [], []
    for split, size in (
        ("train", None if task.pool_size is None else task.pool_size + task.n_validation),
        ("t10k", task.test_size),
    ):
        images, labels = _fashion_split(split)
        rows = np.flatnonzero(np.isin(labels, classes))
        rows = _subsample(rows, size, rng, task.name)
        parts_X.append(images[rows].astype(np.float32)[:, None] / np.float32(255.0))
        parts_y.append(remap[labels[rows]])
    n_train = len(parts_y[0])
    return np.concatenate(parts_X), np.concatenate(parts_y), n_train


def _subsample(
    rows: np.ndarray, size: int | None, rng: np.random.Generator, name: str
) -> np.ndarray:
    if size is None:
        return np.sort(rows)
    if size > len(rows):
        raise InputError(f"task {name!r}: asked for {size} points but only {len(rows)} exist")
    return np.sort(rng.choice(rows, size=size, replace=False))
