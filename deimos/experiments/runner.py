"""One benchmark run: one method on one task from one seed, round by round on the round kernel.

The seed's `SeedPlan` draws the data split and the initial labelled set (class-balanced for
classification); every round is `deimos.loop.round.run_round`, the code the lab loop runs:
retrain from scratch on all labels so far, measure the test metric, predict the unlabelled pool
under J fixed masks, recalibrate tau on the validation set, pick a batch, reveal the oracle's
labels (DEIMOS sec. 6: learning curves over >= 3 such runs per method). The splicing task runs
through `deimos.loop.simulation`, which calls the same kernel against the simulated assay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deimos.acquisition.registry import methods_for
from deimos.errors import InputError
from deimos.experiments.benchmark import BenchmarkTask
from deimos.experiments.data import BenchmarkData, prepare_benchmark_data
from deimos.experiments.summary import RESULT_COLUMNS
from deimos.loop.round import RoundData, RoundSettings, run_round
from deimos.loop.seeds import SeedPlan
from deimos.uncertainty.calibration import (
    validation_accuracy,
    validation_mse,
    variance_error_r2,
)
from deimos.uncertainty.predict import predict_fixed_masks, predict_mean
from deimos.uncertainty.train import TrainConfig
from models import MLP, DropoutModel, ImageCNN

logger = logging.getLogger(__name__)

METRIC_NAMES: Mapping[str, str] = {"regression": "mse", "classification": "accuracy"}


def check_method(task: BenchmarkTask, method: object) -> None:
    """Raise InputError unless the registry says `method` applies to the task's kind."""
    valid = methods_for(task.kind)
    if not isinstance(method, str) or method not in valid:
        raise InputError(
            f"method {method!r} does not apply to task {task.name!r} ({task.kind}); "
            f"valid: {', '.join(valid)}"
        )


def round_settings(task: BenchmarkTask, method: str) -> RoundSettings:
    """The round kernel's settings for `method` on `task`."""
    return RoundSettings(
        kind=task.kind,
        method=method,
        batch_size=task.batch_size,
        n_masks=task.n_masks,
        train=train_config(task),
        tau_factor=task.tau_factor,
        tau_s_factor=task.tau_s_factor,
        sample_labelled=task.sample_labelled,
    )


def train_config(task: BenchmarkTask) -> TrainConfig:
    """The task's training settings (the seed is set per round from the seed plan)."""
    return TrainConfig(
        epochs=task.epochs,
        batch_size=task.train_batch_size,
        lr=task.lr,
        weight_decay_C=task.weight_decay_C,
        patience=task.patience,
        task=task.kind,
    )


def build_model(task: BenchmarkTask, data: BenchmarkData, init_seed: int) -> DropoutModel:
    """An untrained model for the task's data, weights drawn from `init_seed`."""
    if task.dataset == "synthetic_1d":
        return MLP(
            input_dim=data.X.shape[1],
            hidden_units=task.hidden_units,
            dropout_p=task.dropout_p,
            task="regression",
            seed=init_seed,
        )
    return ImageCNN(
        n_classes=data.n_classes,
        task=task.kind,
        image_size=data.X.shape[-1],
        conv_channels=task.conv_channels,
        pooled_size=2 if data.X.shape[-1] < 12 else 3,
        hidden_units=task.hidden_units,
        dropout_p=task.dropout_p,
        seed=init_seed,
    )


def run_benchmark(
    task: BenchmarkTask, method: str, seed: int, *, progress: bool = False
) -> pd.DataFrame:
    """Run one method on one task from one seed: one learning curve.

    Args:
        task: the setting.
        method: an acquisition method that applies to `task.kind` (see the registry).
        seed: non-negative run seed; `SeedPlan(seed)` derives every other seed.
        progress: show a progress bar over rounds.

    Returns:
        `n_rounds + 1` rows with columns `RESULT_COLUMNS`: `task, method, seed, round,
        n_labels, metric, metric_name`; round 0 is the model trained on the initial set,
        `metric` is the test MSE (`metric_name` "mse") or accuracy ("accuracy").

    Raises:
        InputError: a method that does not apply to the task kind, or bad task/seed.
    """
    if not isinstance(task, BenchmarkTask):
        raise InputError(f"task must be a BenchmarkTask, got {type(task).__name__}")
    plan = SeedPlan(seed)
    check_method(task, method)
    if task.dataset == "splicing_sim":
        return _run_splicing(task, method, seed, progress=progress)
    data = prepare_benchmark_data(task, seed)
    settings = round_settings(task, method)
    labelled = [int(i) for i in data.initial_idx]  # row indices into data.X
    fixed_tau: float | None = None
    rows = []
    for round_id in tqdm(range(task.n_rounds + 1), desc=task.name, disable=not progress):
        unlabelled_idx = np.setdiff1d(data.pool_idx, labelled)  # rows, sorted
        lab = np.asarray(labelled, dtype=np.int64)
        result = run_round(
            lambda init_seed: build_model(task, data, init_seed),
            RoundData(
                X_train=data.X[lab],
                y_train=data.y[lab],
                X_val=data.X[data.val_idx],
                y_val=data.y[data.val_idx],
                X_candidates=data.X[unlabelled_idx],
            ),
            settings,
            plan.for_round(round_id),
            select_batch=round_id < task.n_rounds,
            tau_inv=fixed_tau,
        )
        if task.tau_calibration == "initial" and round_id == 0:
            fixed_tau = result.tau_inv
        metric = _test_metric(task, result.model, data)
        r2 = dropout_quality(result.model, data.X[data.test_idx], data.y_test, task.n_masks)
        rows.append((task.name, method, seed, round_id, len(labelled), metric, r2))
        logger.info(
            "event=benchmark_round task=%s method=%s seed=%d round=%d n_labels=%d metric=%.4f "
            "dropout_r2=%.3f",
            task.name,
            method,
            seed,
            round_id,
            len(labelled),
            metric,
            r2,
        )
        if result.selection is not None:
            labelled += [int(unlabelled_idx[i]) for i in result.selection.indices]
    frame = pd.DataFrame(rows, columns=[*RESULT_COLUMNS[:-1], "dropout_r2"])
    frame.insert(len(RESULT_COLUMNS) - 1, "metric_name", METRIC_NAMES[task.kind])
    return frame


def dropout_quality(
    model: DropoutModel, X_test: np.ndarray, y_test: np.ndarray, n_masks: int
) -> float:
    """Appendix E's check of MC dropout on the test set: R^2 between each point's squared error
    and its predicted dropout variance (`variance_error_r2`), under `n_masks` fixed masks."""
    preds = predict_fixed_masks(model, X_test, n_masks=n_masks, seed=0, progress=False).numpy()
    return variance_error_r2(preds, y_test)


def _run_splicing(task: BenchmarkTask, method: str, seed: int, *, progress: bool) -> pd.DataFrame:
    from deimos.loop.simulation import SimulationConfig, run_simulated_campaign

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
        sample_labelled=task.sample_labelled,
        tau_calibration=task.tau_calibration,
        conv_channels=task.splicing_channels,
        hidden_units=task.splicing_hidden_units,
        dropout_p=task.dropout_p,
        train=train_config(task),
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
            "dropout_r2": campaign["dropout_r2"].astype(float),
        }
    )
    return frame.loc[:, [*RESULT_COLUMNS, "dropout_r2"]].reset_index(drop=True)


def _test_metric(task: BenchmarkTask, model: DropoutModel, data: BenchmarkData) -> float:
    mean = predict_mean(model, data.X[data.test_idx], progress=False)
    if task.kind == "classification":
        return validation_accuracy(mean, data.y_test)
    return validation_mse(mean, data.y_test)
