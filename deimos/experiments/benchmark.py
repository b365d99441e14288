"""The benchmark's task settings: `BenchmarkTask` and the `smoke` / `paper` scales."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from deimos.acquisition.registry import KINDS
from deimos.errors import InputError

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


#: Columns of the frame `run_benchmark` returns, in order.
RESULT_COLUMNS = ("task", "method", "seed", "round", "n_labels", "metric", "metric_name")

_METRIC_NAMES: Mapping[str, str] = {"regression": "mse", "classification": "accuracy"}


def _check_int(value: object, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")


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
        if self.kind not in KINDS:
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
