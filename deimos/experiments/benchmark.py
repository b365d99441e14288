"""The benchmark's task settings: `BenchmarkTask` and the `smoke` / `paper` scales.

The scales are data, not code: one YAML task table per scale under `tasks/` (package data),
read with `load_task_table`, whose errors name the file and the `task.field`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from deimos.config import (
    FiniteFloat,
    MaskCount,
    Name,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Settings,
    StrictBool,
    parse_settings,
)
from deimos.errors import InputError
from deimos.yaml_files import read_yaml

logger = logging.getLogger(__name__)

Kind = Literal["regression", "classification"]
#: When `tau^-1` / `tau_s^-1` is calibrated: on every round's model, or once on round 0's.
TauCalibration = Literal["every_round", "initial"]

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


#: Data sets of images: their CNN needs at least two convolution layers.
_IMAGE_DATASETS = ("digits_7v9", "fashion_7v9", "fashion_10")


def _known_dataset(value: str) -> str:
    if value not in DATASET_KINDS:
        raise ValueError(f"must be one of {', '.join(DATASET_KINDS)}")
    return value


Dataset = Annotated[str, Field(strict=True), AfterValidator(_known_dataset)]
#: Fixed dropout masks per prediction: a variance needs at least two.


class BenchmarkTask(Settings):
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
        sample_labelled: DEIMOS' representative sample S holds the labelled points as well as
            the candidates (the paper samples S from train and pool); False: the candidates only.
        tau_calibration: `every_round` recalibrates `tau` on each round's model; `initial`
            keeps round 0's value for the whole run.
        splicing_channels: channels of the `SplicingCNN`'s three convolutions (kernel widths 9,
            9, 5) for `splicing_sim`; None = the model's defaults (the lab loop's network).
        splicing_hidden_units: `SplicingCNN` hidden widths; None = the model's default.
        noise_sd: label noise of `synthetic_1d`.
        data_seed: seed of the fixed `synthetic_1d` function and its points (the run seed only
            splits them, so all runs learn the same function).
        read_depth: reads per measurement of the simulated splicing assay.
    """

    name: Name
    kind: Kind
    dataset: Dataset
    n_initial: PositiveInt
    batch_size: PositiveInt
    n_rounds: NonNegativeInt
    pool_size: PositiveInt | None
    n_masks: MaskCount
    epochs: PositiveInt
    threshold: FiniteFloat
    test_size: PositiveInt | None = None
    n_validation: PositiveInt = 50
    hidden_units: tuple[PositiveInt, ...] = (128,)
    conv_channels: tuple[PositiveInt, ...] = (32, 64)
    dropout_p: Probability = 0.25
    train_batch_size: PositiveInt = 32
    lr: PositiveFloat = 1e-3
    weight_decay_C: NonNegativeFloat = 1.0  # noqa: N815  (the paper's C)
    patience: PositiveInt = 20
    tau_factor: PositiveFloat = 0.15
    tau_s_factor: PositiveFloat = 0.005
    sample_labelled: StrictBool = False
    tau_calibration: TauCalibration = "every_round"
    splicing_channels: tuple[PositiveInt, PositiveInt, PositiveInt] | None = None
    splicing_hidden_units: tuple[PositiveInt, ...] | None = None
    noise_sd: NonNegativeFloat = 0.1
    data_seed: NonNegativeInt = 0
    read_depth: PositiveFloat = 100.0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if DATASET_KINDS[self.dataset] != self.kind:
            raise ValueError(
                f"dataset {self.dataset!r} is {DATASET_KINDS[self.dataset]}, not {self.kind}"
            )
        needed = self.n_initial + self.n_rounds * self.batch_size
        if self.pool_size is not None and needed > self.pool_size:
            raise ValueError(
                f"pool_size={self.pool_size} is smaller than n_initial + n_rounds x "
                f"batch_size = {needed}"
            )
        if self.dataset == "splicing_sim" and (self.pool_size is None or self.test_size is None):
            raise ValueError("splicing_sim needs pool_size and test_size (generated)")
        if self.dataset in _IMAGE_DATASETS and len(self.conv_channels) < 2:
            raise ValueError("conv_channels needs at least two entries for images")
        return self


#: The task tables, `<scale>.yaml` (shipped with the package: see pyproject's package-data).
TASKS_DIR = Path(__file__).with_name("tasks")
#: The scales, in the order `SCALES` lists them.
SCALE_NAMES = ("smoke", "cpu", "paper")


def load_task_table(path: Path) -> dict[str, BenchmarkTask]:
    """Read a task table: a YAML mapping of task name -> `BenchmarkTask` fields, in order.

    Raises:
        InputError: naming the file and the task (`smoke.yaml: digits_7v9_b1.lr: ...`): the file
            is missing or not YAML, a task is not a mapping, or a field is unknown or invalid.
    """
    source = str(path)
    raw = read_yaml(path, missing="no such task table")
    if not isinstance(raw, Mapping) or not raw:
        raise InputError(f"{source}: expected a mapping of task names to task fields")
    tasks: dict[str, BenchmarkTask] = {}
    for name, fields in raw.items():
        if not isinstance(name, str):
            raise InputError(f"{source}: a task name must be a string, got {name!r}")
        if not isinstance(fields, Mapping):
            raise InputError(
                f"{source}: {name}: expected a mapping of task fields, got {type(fields).__name__}"
            )
        if "name" in fields:
            raise InputError(f"{source}: {name}.name: a task's name is its key; remove the field")
        tasks[name] = parse_settings(
            BenchmarkTask, {"name": name, **fields}, source, prefix=f"{name}."
        )
    return tasks


#: Benchmark settings by scale: `smoke` (seconds per run on CPU: checks that paths run), `cpu`
#: (the evidence grid: 45 minutes on 2 CPU cores) and `paper` (DEIMOS.md sec. 6, a GPU worker).
SCALES: Mapping[str, Mapping[str, BenchmarkTask]] = {
    scale: load_task_table(TASKS_DIR / f"{scale}.yaml") for scale in SCALE_NAMES
}
