"""A campaign's typed parameters: everything `params.yaml` sets, checked on load.

Loading imports neither torch nor boto3 (`tests/unit/core/test_import_boundaries.py`): a bad
`params.yaml` is refused in milliseconds, naming the file and the dotted key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from deimos.acquisition.registry import methods_for
from deimos.atomic import write_text_atomic
from deimos.config import (
    FiniteFloat,
    MaskCount,
    Name,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Settings,
    check_value,
    parse_settings,
)
from deimos.errors import InputError
from deimos.lab.plates import PlateLayout
from deimos.lab.queue.settings import S3Settings
from deimos.loop.config import AssaySimulation, campaign_train_config
from deimos.uncertainty.config import TrainConfig
from deimos.yaml_files import read_yaml

__all__ = [
    "EXPORT_FORMATS",
    "PARAMS_FILE",
    "CampaignParams",
    "ExportParams",
    "LabelParams",
    "ModelParams",
    "load_params",
    "params_from_mapping",
    "params_yaml_text",
    "set_round",
]

PARAMS_FILE = "params.yaml"

EXPORT_FORMATS = ("fasta", "csv", "plate_map", "label_studio")
ExportFormat = Literal["fasta", "csv", "plate_map", "label_studio"]

# The round kernel derives these per round (`deimos.loop.seeds.SeedPlan`, the model's task); a
# campaign setting them would be silently ignored, so they are refused instead.
_DERIVED_TRAIN_KEYS = {
    "seed": "the training seed comes from the campaign's `seed` (one seed plan per round)",
    "task": "a campaign trains a regression model",
}


class ModelParams(Settings):
    """SplicingCNN settings that a campaign may change."""

    dropout_p: Probability = 0.2


class LabelParams(Settings):
    """What the lab sends back: the value column and its allowed range."""

    value_column: Name = "donor_usage"
    value_range: tuple[FiniteFloat, FiniteFloat] = (0.0, 1.0)

    @model_validator(mode="after")
    def _low_below_high(self) -> LabelParams:
        low, high = self.value_range
        if not low < high:
            raise ValueError(f"value_range must have low < high, got {[low, high]}")
        return self


class ExportParams(Settings):
    """Which files the export stage writes for the lab (several allowed) and the plate layout.

    fasta: `batch.fasta`, the synthesis order; csv: `batch.csv` (rank, id, sequence, predictions,
    EI); plate_map: `plate_map.csv` + `plate_map.xlsx` (plate, well, ...); label_studio:
    `label_studio_tasks.json` for an annotation team.
    """

    formats: Annotated[tuple[ExportFormat, ...], Field(min_length=1)] = ("fasta", "csv")
    plate_wells: Annotated[int, Field(strict=True)] = 96
    plate_order: Literal["row", "column"] = "row"
    control_wells: tuple[Annotated[str, Field(strict=True)], ...] = ()

    @field_validator("formats")
    @classmethod
    def _distinct(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(formats)) != len(formats):
            raise ValueError(f"formats must be distinct, got {list(formats)}")
        return formats

    @model_validator(mode="after")
    def _plate_layout_is_valid(self) -> ExportParams:
        self.plate_layout()  # checks wells, order and control wells
        return self

    def plate_layout(self) -> PlateLayout:
        """The `deimos.lab.plates.PlateLayout` these parameters describe."""
        return PlateLayout(
            wells=self.plate_wells, order=self.plate_order, control_wells=self.control_wells
        )


class CampaignParams(Settings):
    """Everything `params.yaml` sets (see `load_params`).

    `train` is the library's `TrainConfig` with the lab loop's defaults (100 epochs, patience
    15); its `seed` and `task` are not campaign parameters. `s3` is the S3 queue's
    `S3Settings`, `simulation` the simulator's `AssaySimulation` (None for a real lab).
    """

    round: NonNegativeInt = 0
    seed: NonNegativeInt = 0
    sequence_length: Annotated[int, Field(strict=True, ge=16)] = 101
    validation_fraction: Annotated[FiniteFloat, Field(gt=0, le=0.5)] = 0.1
    batch_size: PositiveInt = 100
    method: str = "deimos"
    n_masks: MaskCount = 50
    tau_factor: PositiveFloat = 0.15
    queue_dir: Name = "queue"
    model: ModelParams = Field(default_factory=ModelParams)
    train: TrainConfig = Field(default_factory=campaign_train_config)
    labels: LabelParams = Field(default_factory=LabelParams)
    export: ExportParams = Field(default_factory=ExportParams)
    s3: S3Settings | None = None
    simulation: AssaySimulation | None = None

    @field_validator("method")
    @classmethod
    def _regression_method(cls, method: str) -> str:
        valid = methods_for("regression")
        if method not in valid:
            raise ValueError(f"must be one of {', '.join(valid)}")
        return method

    @field_validator("train", mode="before")
    @classmethod
    def _campaign_training(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            return raw
        for key, why in _DERIVED_TRAIN_KEYS.items():
            if key in raw:
                raise ValueError(f"{key} is not a campaign parameter: {why}")
        # Keys left out take the lab loop's defaults, not the library's.
        return {**campaign_train_config().model_dump(), **raw}

    @field_validator("train")
    @classmethod
    def _regression_training(cls, train: TrainConfig) -> TrainConfig:
        if train.task != "regression":
            raise ValueError(f"train.task must be 'regression', got {train.task!r}")
        return train

    def to_yaml_dict(self) -> dict[str, Any]:
        """Plain data in `params.yaml` order (tuples as lists)."""
        return self.model_dump(mode="json", exclude={"train": set(_DERIVED_TRAIN_KEYS)})


def params_from_mapping(raw: Any, source: str) -> CampaignParams:
    """Build `CampaignParams` from parsed YAML; `source` names the file in errors."""
    return parse_settings(CampaignParams, raw, source)


def load_params(path: str | os.PathLike[str]) -> CampaignParams:
    """Read and check `params.yaml`."""
    raw = read_yaml(path, missing="parameters file not found (is this a campaign directory?)")
    return params_from_mapping(raw, str(Path(path)))


def params_yaml_text(params: CampaignParams) -> str:
    """`params.yaml` for `params`, with a comment on what each knob does."""
    body = yaml.safe_dump(params.to_yaml_dict(), sort_keys=False, default_flow_style=None)
    header = (
        "# DEIMOS lab-loop parameters: `dvc repro` and the deimos flows read this file.\n"
        "# round: the round the pipeline computes (`deimos ingest` advances it).\n"
        "# method: deimos | random | maxvar | kcenter;  n_masks: J fixed dropout masks;\n"
        "# tau_factor: tau^-1 = tau_factor * mean predictive variance on the validation labels.\n"
        "# train.device: null picks CUDA when the worker has it, else cpu (or cuda, cuda:1, ...).\n"
        "# export.formats: any of fasta, csv, plate_map, label_studio (plate_wells 96 | 384,\n"
        "#   plate_order row | column, control_wells left empty, e.g. [A1, H12]).\n"
        "# s3: null, or {bucket, prefix, endpoint_url, region, profile} to publish batches to\n"
        "#   s3://bucket/prefix/round-<k>/ and collect labels from s3://bucket/prefix/inbox/;\n"
        "#   credentials come from the environment or the AWS profile, never from this file.\n"
    )
    return header + body


_ROUND_LINE = re.compile(r"^round:[ \t]*\d+[ \t]*(#.*)?$", re.MULTILINE)


def set_round(path: str | os.PathLike[str], round_id: int) -> None:
    """Rewrite only the `round:` line of `params.yaml` (keeps the user's comments and order)."""
    round_id = check_value(NonNegativeInt, round_id, "round")
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    new_text, n = _ROUND_LINE.subn(f"round: {round_id}", text, count=1)
    if n != 1:
        raise InputError(f"{p}: no top-level 'round: <int>' line to update")
    if new_text != text:
        write_text_atomic(p, new_text)
