"""The paper's benchmark as library functions: independent runs, threshold tables, curves.

One *run* (`run_benchmark`) is one method on one task from one seed: the seed draws the data
split and the initial labelled set (class-balanced for classification), then every round retrains
a model from scratch on all labels so far, measures the test metric, predicts the unlabelled pool
under `J` fixed dropout masks, picks a batch with the named acquisition method and reveals the
oracle's labels for it (DEIMOS sec. 6: learning curves over >= 3 such runs per method).

`acquisitions_to_threshold` turns many runs into the paper's Tables 1-2 (labels needed to first
reach a test-metric threshold) and `plot_benchmark_curves` draws the learning curves. Nothing here
writes files except the plot, and nothing reads global random state.

The splicing task is delegated to `deimos.loop.simulation.run_simulated_campaign`, which already runs
the simulated assay campaign; so `splicing_sim` accepts only that module's methods.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deimos.acquisition.registry import get_selector
from deimos.acquisition.selection import Selection
from deimos.data.datasets import (
    class_balanced_initial,
    load_digits_dataset,
    split_indices,
    synthetic_1d,
)
from deimos.data.images import FASHION_MNIST_CLASSES, load_fashion_mnist
from deimos.errors import InputError
from deimos.loop.simulation import SIMULATION_METHODS as SPLICING_METHODS
from deimos.loop.simulation import SimulationConfig, run_simulated_campaign
from deimos.plots import save_png
from deimos.uncertainty.calibration import (
    tau_inv_regression,
    tau_s_inv_classification,
    validation_accuracy,
    validation_mse,
)
from deimos.uncertainty.predict import penultimate_embeddings, predict_fixed_masks, predict_mean
from deimos.uncertainty.train import TrainConfig, train_model
from models import MLP, DropoutModel, ImageCNN

logger = logging.getLogger(__name__)

Kind = Literal["regression", "classification"]

#: The task kind each data set serves.
DATASET_KINDS: Mapping[str, Kind] = {
    "splicing_sim": "regression",
    "synthetic_1d": "regression",
    "digits_7v9": "classification",
    "fashion_7v9": "classification",
    "fashion_10": "classification",
}

#: Acquisition methods that apply to each task kind.
METHODS_BY_KIND: Mapping[str, tuple[str, ...]] = {
    "regression": ("deimos", "random", "kcenter", "maxvar"),
    "classification": ("deimos", "random", "kcenter", "maxent", "bald", "batchbald"),
}

#: Columns of the frame `run_benchmark` returns, in order.
RESULT_COLUMNS = ("task", "method", "seed", "round", "n_labels", "metric", "metric_name")

_METRIC_NAMES: Mapping[str, str] = {"regression": "mse", "classification": "accuracy"}


# ----------------------------------------------------------------------------------------------
# Checks


def _check_int(value: object, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_task(task: object) -> None:
    if not isinstance(task, BenchmarkTask):
        raise InputError(f"task must be a BenchmarkTask, got {type(task).__name__}")


def _check_method(task: BenchmarkTask, method: object) -> None:
    valid = METHODS_BY_KIND[task.kind]
    if task.dataset == "splicing_sim":
        valid = tuple(m for m in valid if m in SPLICING_METHODS)
    if not isinstance(method, str) or method not in valid:
        raise InputError(
            f"method {method!r} does not apply to task {task.name!r} ({task.kind}); "
            f"valid: {', '.join(valid)}"
        )


def check_results(results: object) -> None:
    """Raise InputError unless `results` is a DataFrame with every column of RESULT_COLUMNS."""
    if not isinstance(results, pd.DataFrame):
        raise InputError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise InputError(f"results lacks column {missing[0]!r}; expected {list(RESULT_COLUMNS)}")


@dataclass(frozen=True)
class BenchmarkTask:
    """One benchmark setting, validated on construction.

    Attributes:
        name: label used in result frames and plots.
        kind: `"regression"` (metric: test MSE) or `"classification"` (metric: test accuracy).
        dataset: one of `DATASET_KINDS`; its kind must equal `kind`.
        n_initial: labels before the first acquisition (class-balanced for classification).
        batch_size: labels acquired per round, b.
        n_rounds: acquisition rounds; a run has `n_rounds + 1` rows (round 0 = initial model).
        pool_size: unlabelled pool the candidates come from; None = every point not used for
            validation or test (not allowed for `splicing_sim`, whose library is generated).
        n_masks: fixed dropout masks J per prediction.
        epochs: maximum training epochs per round (early stopping on the validation loss).
        threshold: test-metric level for `acquisitions_to_threshold` (MSE <= it, accuracy >= it).
        test_size: test points; None = all available (digits: rest of the data set is split
            first; Fashion-MNIST: the whole `t10k` split of the task's classes).
        n_validation: validation points (early stopping and the `tau` calibration).
        hidden_units: widths of the hidden fully-connected layers.
        conv_channels: 3x3 convolution channels of the image CNN (image tasks only).
        dropout_p: dropout probability before every fully-connected layer.
        train_batch_size: training mini-batch size.
        lr: Adam learning rate.
        weight_decay_C: `C` in `lambda = C / N`.
        patience: early-stopping patience in epochs.
        tau_factor: regression `tau^-1 = tau_factor x` mean validation dropout variance
            (Appendix E: 0.1-0.2).
        tau_s_factor: classification `tau_s^-1 = tau_s_factor x` mean class-probability dropout
            variance (Appendix E: 0.001-0.01).
        noise_sd: label noise of `synthetic_1d`.
        data_seed: seed of the fixed `synthetic_1d` function and its points (the run seed only
            splits them, so all runs learn the same function).
        read_depth: reads per measurement of the simulated splicing assay.
    """

    name: str
    kind: Kind
    dataset: str
    n_initial: int
    batch_size: int
    n_rounds: int
    pool_size: int | None
    n_masks: int
    epochs: int
    threshold: float
    test_size: int | None = None
    n_validation: int = 50
    hidden_units: tuple[int, ...] = (128,)
    conv_channels: tuple[int, ...] = (32, 64)
    dropout_p: float = 0.25
    train_batch_size: int = 32
    lr: float = 1e-3
    weight_decay_C: float = 1.0  # noqa: N815  (the paper's C)
    patience: int = 20
    tau_factor: float = 0.15
    tau_s_factor: float = 0.005
    noise_sd: float = 0.1
    data_seed: int = 0
    read_depth: float = 100.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"BenchmarkTask.name must be a non-empty string, got {self.name!r}")
        where = f"BenchmarkTask {self.name!r}"
        if self.kind not in METHODS_BY_KIND:
            raise InputError(
                f"{where}: kind must be 'regression' or 'classification', got {self.kind!r}"
            )
        if self.dataset not in DATASET_KINDS:
            raise InputError(
                f"{where}: unknown dataset {self.dataset!r}; valid: {', '.join(DATASET_KINDS)}"
            )
        if DATASET_KINDS[self.dataset] != self.kind:
            raise InputError(
                f"{where}: dataset {self.dataset!r} is {DATASET_KINDS[self.dataset]}, "
                f"not {self.kind}"
            )
        for field_name in (
            "n_initial",
            "batch_size",
            "n_masks",
            "epochs",
            "n_validation",
            "train_batch_size",
            "patience",
        ):
            _check_int(getattr(self, field_name), f"{where}: {field_name}", minimum=1)
        _check_int(self.n_rounds, f"{where}: n_rounds", minimum=0)
        _check_int(self.data_seed, f"{where}: data_seed", minimum=0)
        if self.n_masks < 2:
            raise InputError(f"{where}: n_masks must be at least 2, got {self.n_masks}")
        for field_name in ("pool_size", "test_size"):
            if getattr(self, field_name) is not None:
                _check_int(getattr(self, field_name), f"{where}: {field_name}", minimum=1)
        needed = self.n_initial + self.n_rounds * self.batch_size
        if self.pool_size is not None and needed > self.pool_size:
            raise InputError(
                f"{where}: pool_size={self.pool_size} is smaller than n_initial + n_rounds x "
                f"batch_size = {needed}"
            )
        if self.dataset == "splicing_sim" and (self.pool_size is None or self.test_size is None):
            raise InputError(f"{where}: splicing_sim needs pool_size and test_size (generated)")
        for field_name in ("hidden_units", "conv_channels"):
            values = getattr(self, field_name)
            if not isinstance(values, tuple) or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
            ):
                raise InputError(
                    f"{where}: {field_name} must be a tuple of positive integers, got {values!r}"
                )
        if self.dataset in ("digits_7v9", "fashion_7v9", "fashion_10") and (
            len(self.conv_channels) < 2
        ):
            raise InputError(f"{where}: conv_channels needs at least two entries for images")
        positive = ("lr", "tau_factor", "tau_s_factor", "read_depth")
        for field_name in (*positive, "weight_decay_C", "noise_sd", "threshold"):
            value = getattr(self, field_name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and (value > 0 if field_name in positive else True)
            if not ok or (field_name in ("weight_decay_C", "noise_sd") and value < 0):
                raise InputError(f"{where}: {field_name} must be a valid number, got {value!r}")
        p = self.dropout_p
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p < 1.0:
            raise InputError(f"{where}: dropout_p must be in [0, 1), got {p!r}")


def _smoke_scale() -> dict[str, BenchmarkTask]:
    # Small enough that the whole grid (every task x method x 3 seeds) fits CI on 2 CPU cores;
    # the batch sizes are the paper's, the pools, rounds, masks and networks are cut down.
    digits = BenchmarkTask(
        name="digits_7v9_b1",
        kind="classification",
        dataset="digits_7v9",
        n_initial=10,
        batch_size=1,
        n_rounds=10,
        pool_size=None,
        n_masks=20,
        epochs=30,
        threshold=0.97,
        test_size=120,
        n_validation=30,
        hidden_units=(32,),
        conv_channels=(8, 16),
        # Patience = epochs: with ~10 labels the validation loss can plateau for many epochs
        # before falling, and early stopping then keeps an untrained (chance-level) model.
        patience=30,
        train_batch_size=8,
        lr=5e-3,
    )
    synthetic = BenchmarkTask(
        name="synthetic_1d",
        kind="regression",
        dataset="synthetic_1d",
        n_initial=10,
        batch_size=2,
        n_rounds=8,
        pool_size=300,
        n_masks=20,
        epochs=60,
        threshold=0.1,
        test_size=200,
        n_validation=30,
        hidden_units=(64, 64),
        dropout_p=0.1,
        patience=30,
        train_batch_size=8,
        lr=3e-3,
        weight_decay_C=0.01,
    )
    splicing_b1 = BenchmarkTask(
        name="splicing_b1",
        kind="regression",
        dataset="splicing_sim",
        n_initial=40,
        batch_size=1,
        n_rounds=10,
        pool_size=500,
        n_masks=20,
        epochs=10,
        # Smoke thresholds sit inside the range the smoke curves cover (set from a first smoke
        # run); the paper scale uses the paper's.
        threshold=0.08,
        test_size=200,
        n_validation=30,
        dropout_p=0.2,
        patience=5,
    )
    fashion_b1 = BenchmarkTask(
        name="fashion_7v9_b1",
        kind="classification",
        dataset="fashion_7v9",
        n_initial=10,
        batch_size=1,
        n_rounds=10,
        pool_size=500,
        n_masks=20,
        epochs=40,
        threshold=0.94,
        test_size=300,
        n_validation=30,
        hidden_units=(32,),
        conv_channels=(8, 16),
        patience=40,
        train_batch_size=4,
        lr=3e-3,
    )
    fashion_10 = BenchmarkTask(
        name="fashion_10_b100",
        kind="classification",
        dataset="fashion_10",
        n_initial=30,
        batch_size=100,
        n_rounds=3,
        pool_size=1000,
        n_masks=20,
        epochs=30,
        threshold=0.7,
        test_size=500,
        n_validation=100,
        hidden_units=(64,),
        conv_channels=(8, 16),
        patience=10,
        train_batch_size=16,
        lr=3e-3,
    )
    tasks = [
        digits,
        synthetic,
        splicing_b1,
        dataclasses.replace(splicing_b1, name="splicing_b10", batch_size=10, n_rounds=5),
        fashion_b1,
        dataclasses.replace(fashion_b1, name="fashion_7v9_b25", batch_size=25, n_rounds=4),
        fashion_10,
    ]
    return {task.name: task for task in tasks}


def _paper_scale() -> dict[str, BenchmarkTask]:
    # DEIMOS.md sec. 6: 50 masks; candidates 5,000 (splicing) / 2,500 (7 vs 9) / 2,000 (0-9);
    # initial sets 75 / 10 / 30; splicing validation 50 points; test 10% of the splicing data.
    splicing_b1 = BenchmarkTask(
        name="splicing_b1",
        kind="regression",
        dataset="splicing_sim",
        n_initial=75,
        batch_size=1,
        n_rounds=300,
        pool_size=5000,
        n_masks=50,
        epochs=200,
        threshold=0.10,
        test_size=560,
        n_validation=50,
        hidden_units=(256,),
        dropout_p=0.2,
        patience=20,
    )
    fashion_b1 = BenchmarkTask(
        name="fashion_7v9_b1",
        kind="classification",
        dataset="fashion_7v9",
        n_initial=10,
        batch_size=1,
        n_rounds=150,
        pool_size=2500,
        n_masks=50,
        epochs=200,
        threshold=0.97,
        n_validation=100,
        hidden_units=(128,),
        conv_channels=(32, 64, 64),
    )
    tasks = [
        splicing_b1,
        dataclasses.replace(splicing_b1, name="splicing_b10", batch_size=10, n_rounds=30),
        fashion_b1,
        dataclasses.replace(fashion_b1, name="fashion_7v9_b25", batch_size=25, n_rounds=12),
        BenchmarkTask(
            name="fashion_10_b100",
            kind="classification",
            dataset="fashion_10",
            n_initial=30,
            batch_size=100,
            n_rounds=15,
            pool_size=2000,
            n_masks=50,
            epochs=200,
            threshold=0.80,
            n_validation=200,
            hidden_units=(128,),
            conv_channels=(32, 64, 64),
        ),
        BenchmarkTask(
            name="digits_7v9_b1",
            kind="classification",
            dataset="digits_7v9",
            n_initial=10,
            batch_size=1,
            n_rounds=100,
            pool_size=None,
            n_masks=50,
            epochs=200,
            threshold=0.97,
            test_size=100,
            n_validation=40,
            hidden_units=(64,),
            conv_channels=(16, 32),
        ),
        BenchmarkTask(
            name="synthetic_1d",
            kind="regression",
            dataset="synthetic_1d",
            n_initial=10,
            batch_size=1,
            n_rounds=100,
            pool_size=2000,
            n_masks=50,
            epochs=500,
            threshold=0.05,
            test_size=1000,
            n_validation=100,
            hidden_units=(256, 256, 256),
            dropout_p=0.2,
        ),
    ]
    return {task.name: task for task in tasks}


#: Benchmark settings by scale: `smoke` (seconds per run on CPU) and `paper` (DEIMOS.md sec. 6).
SCALES: Mapping[str, Mapping[str, BenchmarkTask]] = {
    "smoke": _smoke_scale(),
    "paper": _paper_scale(),
}


# ----------------------------------------------------------------------------------------------
# Data


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
    """Load or generate the task's data and draw the split and initial set from `seed`.

    Raises:
        InputError: a bad seed, too few points for the requested sizes, missing Fashion-MNIST
            files, or `splicing_sim` (its data live inside `deimos.loop.simulation`).
    """
    _check_task(task)
    _check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
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


# ----------------------------------------------------------------------------------------------
# Runs


def run_benchmark(
    task: BenchmarkTask, method: str, seed: int, *, progress: bool = False
) -> pd.DataFrame:
    """Run one method on one task from one seed: one learning curve.

    Each round trains a fresh model (weights seeded by `seed` and the round) on every label so
    far, records the test metric, and (except after the last round) predicts the unlabelled pool
    under `task.n_masks` fixed masks, picks `task.batch_size` points with `method` and adds their
    oracle labels. DEIMOS' `tau^-1` (regression) or `tau_s^-1` (classification) is recalibrated
    every round on the validation set (Appendix E factors, as `deimos.loop.simulation` does). k-Center
    uses the penultimate-layer embeddings of the whole pool, the labelled points as centers.

    Args:
        task: the setting.
        method: an acquisition method valid for `task.kind` (see `METHODS_BY_KIND`).
        seed: non-negative run seed: data split, initial set, training and random picks.
        progress: show a progress bar over rounds.

    Returns:
        `n_rounds + 1` rows with columns `RESULT_COLUMNS`: `task, method, seed, round,
        n_labels, metric, metric_name`; round 0 is the model trained on the initial set,
        `metric` is the test MSE (`metric_name` "mse") or accuracy ("accuracy").

    Raises:
        InputError: a method that does not apply to the task kind, or bad task/seed.
    """
    _check_task(task)
    _check_int(seed, "seed", minimum=0)
    _check_method(task, method)
    if task.dataset == "splicing_sim":
        return _run_splicing(task, method, seed, progress=progress)
    data = prepare_benchmark_data(task, seed)
    labelled = [int(i) for i in data.initial_idx]  # row indices into data.X
    rows = []
    for round_id in tqdm(range(task.n_rounds + 1), desc=task.name, disable=not progress):
        run_seed = seed * 1000 + round_id
        model = _train(task, data, labelled, run_seed)
        metric = _test_metric(task, model, data)
        rows.append((task.name, method, seed, round_id, len(labelled), metric))
        logger.info(
            "event=benchmark_round task=%s method=%s seed=%d round=%d n_labels=%d metric=%.4f",
            task.name,
            method,
            seed,
            round_id,
            len(labelled),
            metric,
        )
        if round_id == task.n_rounds:
            break
        unlabelled_idx = np.setdiff1d(data.pool_idx, labelled)  # rows, sorted
        picks = _acquire(task, method, model, data, labelled, unlabelled_idx, run_seed)
        labelled += [int(unlabelled_idx[i]) for i in picks.indices]
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS[:-1]))
    frame["metric_name"] = _METRIC_NAMES[task.kind]
    return frame


def _run_splicing(task: BenchmarkTask, method: str, seed: int, *, progress: bool) -> pd.DataFrame:
    assert task.pool_size is not None and task.test_size is not None
    config = SimulationConfig(
        pool_size=task.pool_size,
        test_size=task.test_size,
        n_validation=task.n_validation,
        n_initial=task.n_initial,
        batch_size=task.batch_size,
        n_rounds=task.n_rounds,
        n_masks=task.n_masks,
        methods=(method,),
        seed=seed,
        read_depth=task.read_depth,
        tau_factor=task.tau_factor,
        train=_train_config(task, seed),
    )
    campaign = run_simulated_campaign(config, progress=progress)
    frame = pd.DataFrame(
        {
            "task": task.name,
            "method": method,
            "seed": seed,
            "round": campaign["round"].astype(int),
            "n_labels": campaign["n_labels"].astype(int),
            "metric": campaign["test_mse"].astype(float),
            "metric_name": "mse",
        }
    )
    return frame.loc[:, list(RESULT_COLUMNS)].reset_index(drop=True)


def _train_config(task: BenchmarkTask, seed: int) -> TrainConfig:
    return TrainConfig(
        epochs=task.epochs,
        batch_size=task.train_batch_size,
        lr=task.lr,
        weight_decay_C=task.weight_decay_C,
        patience=task.patience,
        seed=seed,
        task=task.kind,
    )


def _build_model(task: BenchmarkTask, data: BenchmarkData, seed: int) -> DropoutModel:
    if task.dataset == "synthetic_1d":
        return MLP(
            input_dim=data.X.shape[1],
            hidden_units=task.hidden_units,
            dropout_p=task.dropout_p,
            task="regression",
            seed=seed,
        )
    return ImageCNN(
        n_classes=data.n_classes,
        task=task.kind,
        image_size=data.X.shape[-1],
        conv_channels=task.conv_channels,
        pooled_size=2 if data.X.shape[-1] < 12 else 3,
        hidden_units=task.hidden_units,
        dropout_p=task.dropout_p,
        seed=seed,
    )


def _train(
    task: BenchmarkTask, data: BenchmarkData, labelled: list[int], seed: int
) -> DropoutModel:
    """A model trained from scratch on the labelled rows (retraining, not fine-tuning)."""
    rows = np.asarray(labelled, dtype=np.int64)
    model, _ = train_model(
        _build_model(task, data, seed),
        data.X[rows],
        data.y[rows],
        data.X[data.val_idx],
        data.y[data.val_idx],
        _train_config(task, seed),
    )
    return model


def _test_metric(task: BenchmarkTask, model: DropoutModel, data: BenchmarkData) -> float:
    mean = predict_mean(model, data.X[data.test_idx], progress=False)
    if task.kind == "classification":
        return validation_accuracy(mean, data.y_test)
    return validation_mse(mean, data.y_test)


def _acquire(
    task: BenchmarkTask,
    method: str,
    model: DropoutModel,
    data: BenchmarkData,
    labelled: list[int],
    unlabelled_idx: np.ndarray,
    seed: int,
) -> Selection:
    """Pick a batch; the returned indices are positions in `unlabelled_idx`."""
    select = get_selector(method)
    b = task.batch_size
    if method == "kcenter":
        # Embeddings of labelled + unlabelled rows; labelled rows are the initial centers.
        rows = np.concatenate([np.asarray(labelled, dtype=np.int64), unlabelled_idx])
        emb_N_D = penultimate_embeddings(model, data.X[rows])
        n_lab = len(labelled)
        picks = select(emb_N_D, b, labelled=np.arange(n_lab))
        return Selection(tuple(i - n_lab for i in picks.indices), picks.gains, picks.method)
    if method == "random":
        # Only the number of candidates matters; no predictions needed.
        return select(np.zeros((len(unlabelled_idx), 2)), b, seed=seed)
    preds = predict_fixed_masks(
        model, data.X[unlabelled_idx], n_masks=task.n_masks, seed=seed, progress=False
    )  # (m, J) or (m, c, J)
    if method == "deimos":
        val_preds = predict_fixed_masks(
            model, data.X[data.val_idx], n_masks=task.n_masks, seed=seed, progress=False
        )
        if task.kind == "regression":
            tau_inv = tau_inv_regression(val_preds, factor=task.tau_factor)
        else:
            tau_inv = tau_s_inv_classification(val_preds, factor=task.tau_s_factor)
        return select(preds, b, tau_inv=tau_inv)
    if method == "batchbald":
        return select(preds, b, seed=seed)
    return select(preds, b)


# ----------------------------------------------------------------------------------------------
# Summaries


def acquisitions_to_threshold(
    results: pd.DataFrame, thresholds: Mapping[str, float]
) -> pd.DataFrame:
    """Labels needed to first reach a test-metric threshold, per task and method (Tables 1-2).

    A run reaches the threshold at the smallest `n_labels` whose metric is `<= threshold`
    (metric_name "mse") or `>= threshold` (any other metric, e.g. "accuracy").

    Args:
        results: rows with `RESULT_COLUMNS`, e.g. concatenated `run_benchmark` frames.
        thresholds: threshold per task name; every task in `results` needs one.

    Returns:
        One row per (task, method) in order of first appearance, columns `task, method,
        metric_name, threshold, n_seeds, n_reached, mean_n_labels, sd_n_labels`: the mean and
        sd (ddof=1) over the seeds that reached it (NaN when none or, for sd, only one did).

    Raises:
        InputError: missing columns, a task without a threshold, or mixed metric names in a task.
    """
    check_results(results)
    missing = [t for t in results["task"].unique() if t not in thresholds]
    if missing:
        raise InputError(f"no threshold for task {missing[0]!r}; give one per task in results")
    out = []
    for (task, method), group in results.groupby(["task", "method"], sort=False):
        names = group["metric_name"].unique()
        if len(names) != 1:
            raise InputError(f"task {task!r} mixes metric names {sorted(map(str, names))}")
        threshold = float(thresholds[str(task)])
        lower_is_better = names[0] == "mse"
        reached = []
        n_seeds = 0
        for _, run in group.groupby("seed", sort=True):
            n_seeds += 1
            run = run.sort_values("n_labels")
            ok = run["metric"] <= threshold if lower_is_better else run["metric"] >= threshold
            if ok.any():
                reached.append(float(run.loc[ok, "n_labels"].iloc[0]))
        out.append(
            {
                "task": task,
                "method": method,
                "metric_name": names[0],
                "threshold": threshold,
                "n_seeds": n_seeds,
                "n_reached": len(reached),
                "mean_n_labels": float(np.mean(reached)) if reached else math.nan,
                "sd_n_labels": float(np.std(reached, ddof=1)) if len(reached) > 1 else math.nan,
            }
        )
    return pd.DataFrame(out)


def plot_benchmark_curves(results: pd.DataFrame, path: str | Path) -> Path:
    """Learning curves, one panel per task: mean +/- 1 sd over seeds, one line per method.

    The PNG is written to a temporary file beside `path` and renamed over it, so a reader never
    sees half an image.

    Returns:
        `path` as a `Path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_results(results)
    if results.empty:
        raise InputError("results is empty; nothing to plot")
    tasks = list(results["task"].unique())
    n_cols = min(3, len(tasks))
    n_rows = math.ceil(len(tasks) / n_cols)
    fig = Figure(figsize=(5.0 * n_cols, 3.8 * n_rows), dpi=110)
    FigureCanvasAgg(fig)
    for k, task in enumerate(tasks):
        ax = fig.add_subplot(n_rows, n_cols, k + 1)
        task_rows = results[results["task"] == task]
        for method, group in task_rows.groupby("method", sort=False):
            stats = group.groupby("n_labels")["metric"].agg(["mean", "std"]).reset_index()
            (line,) = ax.plot(stats["n_labels"], stats["mean"], marker=".", label=str(method))
            sd = stats["std"].fillna(0.0)  # one seed: no band
            ax.fill_between(
                stats["n_labels"],
                stats["mean"] - sd,
                stats["mean"] + sd,
                color=line.get_color(),
                alpha=0.2,
            )
        ax.set_title(str(task))
        ax.set_xlabel("number of labels")
        ax.set_ylabel("test " + str(task_rows["metric_name"].iloc[0]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return save_png(fig, path)


# ----------------------------------------------------------------------------------------------
# Figure 1


#: Columns of the two Figure 1 tables.
FIGURE1_CURVE_COLUMNS = ("x", "f", "mean", "sd", "refit_mean", "refit_sd")
FIGURE1_POINT_COLUMNS = ("x", "y", "status", "ei", "pick_order")


def figure1_data(
    task: BenchmarkTask, seed: int, *, batch_size: int = 5, n_grid: int = 200
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The data of the paper's Figure 1 on the 1-D synthetic regression task.

    Trains a model on the run's initial set, predicts the pool under fixed masks, evaluates the
    DEIMOS acquisition function (each pool point's expected improvement before any pick), picks
    a batch of `batch_size` in greedy order, labels it from the oracle and refits.

    Args:
        task: a `synthetic_1d` task.
        seed: run seed (data split, initial set, weights, masks).
        batch_size: points picked in the shown batch.
        n_grid: points of the evenly spaced x grid the curves are drawn on.

    Returns:
        `(curves, points)`: `curves` has `n_grid` rows with `FIGURE1_CURVE_COLUMNS` (true function,
        predictive mean and sd before and after the refit); `points` one row per pool point with
        `FIGURE1_POINT_COLUMNS`: status "initial" (labelled) or "pool", its EI (NaN for labelled
        points) and its pick order 1..b (0 = not picked).
    """
    from deimos.acquisition.deimos import deimos_expected_improvement

    _check_task(task)
    if task.dataset != "synthetic_1d":
        raise InputError(f"Figure 1 needs a synthetic_1d task, got {task.dataset!r}")
    _check_int(batch_size, "batch_size", minimum=1)
    _check_int(n_grid, "n_grid", minimum=2)
    data = prepare_benchmark_data(task, seed)
    f = synthetic_1d(1, seed=task.data_seed, noise_sd=task.noise_sd).f
    grid_G = np.linspace(f.x_range[0], f.x_range[1], n_grid).astype(np.float32)
    labelled = [int(i) for i in data.initial_idx]
    unlabelled = np.setdiff1d(data.pool_idx, labelled)
    if batch_size > len(unlabelled):
        raise InputError(f"batch_size={batch_size} exceeds the {len(unlabelled)} pool points")

    model = _train(task, data, labelled, seed * 1000)
    grid_preds = predict_fixed_masks(model, grid_G[:, None], n_masks=task.n_masks, seed=seed)
    pool_preds = predict_fixed_masks(
        model, data.X[unlabelled], n_masks=task.n_masks, seed=seed, progress=False
    )
    val_preds = predict_fixed_masks(
        model, data.X[data.val_idx], n_masks=task.n_masks, seed=seed, progress=False
    )
    tau_inv = tau_inv_regression(val_preds, factor=task.tau_factor)
    ei = deimos_expected_improvement(pool_preds, tau_inv).numpy()
    picks = get_selector("deimos")(pool_preds, batch_size, tau_inv=tau_inv)

    refit = _train(task, data, labelled + [int(unlabelled[i]) for i in picks.indices], seed * 1000)
    refit_preds = predict_fixed_masks(refit, grid_G[:, None], n_masks=task.n_masks, seed=seed)
    curves = pd.DataFrame(
        {
            "x": grid_G.astype(float),
            "f": f(grid_G.astype(float)),
            "mean": grid_preds.mean(dim=1).numpy(),
            "sd": grid_preds.std(dim=1).numpy(),
            "refit_mean": refit_preds.mean(dim=1).numpy(),
            "refit_sd": refit_preds.std(dim=1).numpy(),
        }
    )
    order = np.zeros(len(unlabelled), dtype=np.int64)
    order[list(picks.indices)] = np.arange(1, batch_size + 1)
    initial = np.asarray(labelled, dtype=np.int64)
    points = pd.DataFrame(
        {
            "x": np.concatenate([data.X[initial, 0], data.X[unlabelled, 0]]).astype(float),
            "y": np.concatenate([data.y[initial], data.y[unlabelled]]).astype(float),
            "status": ["initial"] * len(initial) + ["pool"] * len(unlabelled),
            "ei": np.concatenate([np.full(len(initial), np.nan), ei]),
            "pick_order": np.concatenate([np.zeros(len(initial), dtype=np.int64), order]),
        }
    )
    return curves, points


def plot_figure1(curves: pd.DataFrame, points: pd.DataFrame, path: str | Path) -> Path:
    """Figure 1 from the tables of `figure1_data`: fit, acquisition function, refit.

    Panel 1: the true function, the labelled data and the model mean +/- 1 sd; panel 2: the DEIMOS
    acquisition function over the pool with the batch numbered in pick order; panel 3: the refit
    after labelling the batch. Written atomically (temp file, then rename).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for frame, columns, what in (
        (curves, FIGURE1_CURVE_COLUMNS, "curves"),
        (points, FIGURE1_POINT_COLUMNS, "points"),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"Figure 1 {what} table lacks column {missing[0]!r}")
    initial = points[points["status"] == "initial"]
    pool = points[points["status"] == "pool"].sort_values("x")
    picked = pool[pool["pick_order"] > 0].sort_values("pick_order")
    fig = Figure(figsize=(7.0, 8.5), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True)
    for ax, mean, sd, title, shown in (
        (axes[0], "mean", "sd", "model on the initial labels", initial),
        (axes[2], "refit_mean", "refit_sd", "refit after labelling the batch", None),
    ):
        ax.plot(curves["x"], curves["f"], "k--", linewidth=1, label="true function")
        ax.plot(curves["x"], curves[mean], color="tab:blue", label="mean")
        ax.fill_between(
            curves["x"],
            curves[mean] - curves[sd],
            curves[mean] + curves[sd],
            color="tab:blue",
            alpha=0.25,
            label="+/- 1 sd",
        )
        ax.scatter(initial["x"], initial["y"], color="black", s=14, zorder=3, label="labelled")
        if shown is None:
            ax.scatter(picked["x"], picked["y"], color="tab:red", s=30, zorder=4, label="batch")
        ax.set_title(title)
        ax.set_ylabel("y")
        ax.legend(fontsize="small", loc="best")
    axes[1].plot(pool["x"], pool["ei"], color="tab:green")
    for _, row in picked.iterrows():
        axes[1].annotate(
            str(int(row["pick_order"])),
            (row["x"], row["ei"]),
            color="tab:red",
            fontweight="bold",
            ha="center",
            va="bottom",
        )
        axes[1].plot(row["x"], row["ei"], "o", color="tab:red")
    axes[1].set_title("DEIMOS acquisition function; the batch in pick order")
    axes[1].set_ylabel("expected improvement")
    axes[2].set_xlabel("x")
    fig.tight_layout()
    return save_png(fig, path)
