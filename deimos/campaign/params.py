"""A campaign's typed parameters: everything `params.yaml` sets, checked on load."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from deimos.acquisition.registry import methods_for
from deimos.atomic import write_text_atomic
from deimos.errors import InputError
from deimos.lab.plates import PlateLayout

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class ModelParams:
    """SplicingCNN settings that a campaign may change."""

    dropout_p: float = 0.2

    def __post_init__(self) -> None:
        _number(self.dropout_p, "model.dropout_p", low=0.0, high=1.0, open_high=True)


@dataclass(frozen=True)
class TrainParams:
    """`deimos.uncertainty.train.TrainConfig` fields a campaign sets (task: always regression)."""

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay_C: float = 1.0  # noqa: N815  (the paper's C)
    patience: int = 15

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            _integer(getattr(self, name), f"train.{name}", minimum=1)
        _number(self.lr, "train.lr", low=0.0, open_low=True)
        _number(self.weight_decay_C, "train.weight_decay_C", low=0.0)


@dataclass(frozen=True)
class LabelParams:
    """What the lab sends back: the value column and its allowed range."""

    value_column: str = "donor_usage"
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if not isinstance(self.value_column, str) or not self.value_column.strip():
            raise InputError(
                f"labels.value_column must be a column name, got {self.value_column!r}"
            )
        rng = self.value_range
        if not isinstance(rng, list | tuple) or len(rng) != 2:
            raise InputError(f"labels.value_range must be [low, high], got {rng!r}")
        _number(rng[0], "labels.value_range[0]")
        _number(rng[1], "labels.value_range[1]")
        if not rng[0] < rng[1]:
            raise InputError(f"labels.value_range must have low < high, got {list(rng)}")
        object.__setattr__(self, "value_range", (float(rng[0]), float(rng[1])))


@dataclass(frozen=True)
class SimulationParams:
    """How a simulated campaign's data is generated (byte-identically) and measured."""

    pool_size: int = 5000
    test_size: int = 1000
    n_initial: int = 200
    seed: int = 0
    read_depth: float = 100.0

    def __post_init__(self) -> None:
        _integer(self.pool_size, "simulation.pool_size", minimum=2)
        _integer(self.test_size, "simulation.test_size", minimum=1)
        _integer(self.n_initial, "simulation.n_initial", minimum=4)
        _integer(self.seed, "simulation.seed", minimum=0)
        _number(self.read_depth, "simulation.read_depth", low=0.0, open_low=True)
        if self.n_initial > self.pool_size:
            raise InputError(
                f"simulation.n_initial={self.n_initial} exceeds simulation.pool_size="
                f"{self.pool_size}"
            )


EXPORT_FORMATS = ("fasta", "csv", "plate_map", "label_studio")


@dataclass(frozen=True)
class ExportParams:
    """Which files the export stage writes for the lab (several allowed) and the plate layout.

    fasta: `batch.fasta`, the synthesis order; csv: `batch.csv` (rank, id, sequence, predictions,
    EI); plate_map: `plate_map.csv` + `plate_map.xlsx` (plate, well, ...); label_studio:
    `label_studio_tasks.json` for an annotation team.
    """

    formats: tuple[str, ...] = ("fasta", "csv")
    plate_wells: int = 96
    plate_order: Literal["row", "column"] = "row"
    control_wells: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        formats = self.formats
        if isinstance(formats, str) or not isinstance(formats, list | tuple) or not formats:
            raise InputError(f"export.formats must be a non-empty list, got {formats!r}")
        unknown = [f for f in formats if f not in EXPORT_FORMATS]
        if unknown or len(set(formats)) != len(formats):
            raise InputError(
                f"export.formats must be distinct names from {', '.join(EXPORT_FORMATS)}, "
                f"got {list(formats)!r}"
            )
        if not isinstance(self.control_wells, list | tuple):
            raise InputError(f"export.control_wells must be a list, got {self.control_wells!r}")
        object.__setattr__(self, "formats", tuple(formats))
        object.__setattr__(self, "control_wells", tuple(self.control_wells))
        self.plate_layout()  # checks wells, order and control wells

    def plate_layout(self) -> PlateLayout:
        """The `deimos.lab.plates.PlateLayout` these parameters describe."""
        try:
            return PlateLayout(
                wells=self.plate_wells, order=self.plate_order, control_wells=self.control_wells
            )
        except InputError as exc:
            raise InputError(f"export: {exc}") from exc


@dataclass(frozen=True)
class S3Params:
    """The S3 queue: batches go to s3://bucket/prefix/round-<k>/, labels come back to
    s3://bucket/prefix/inbox/round-<k>.csv|.xlsx|.json.

    Credentials are never parameters: boto3 reads them from the environment, the AWS profile
    named here, or the machine's role.
    """

    bucket: str = ""
    prefix: str = "deimos"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    profile: str | None = None

    def __post_init__(self) -> None:
        self.settings()

    def settings(self) -> Any:
        """The `deimos.lab.queue.s3.S3Settings` of these parameters (checks bucket and prefix)."""
        from deimos.lab.queue.s3 import S3Settings

        try:
            return S3Settings(
                bucket=self.bucket,
                prefix=self.prefix,
                endpoint_url=self.endpoint_url,
                region=self.region,
                profile=self.profile,
            )
        except InputError as exc:
            raise InputError(f"s3: {exc}") from exc


@dataclass(frozen=True)
class CampaignParams:
    """Everything `params.yaml` sets; validated on construction (see `load_params`)."""

    round: int = 0
    seed: int = 0
    sequence_length: int = 101
    validation_fraction: float = 0.1
    batch_size: int = 100
    method: str = "deimos"
    n_masks: int = 50
    tau_factor: float = 0.15
    queue_dir: str = "queue"
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    labels: LabelParams = field(default_factory=LabelParams)
    export: ExportParams = field(default_factory=ExportParams)
    s3: S3Params | None = None
    simulation: SimulationParams | None = None

    def __post_init__(self) -> None:
        _integer(self.round, "round", minimum=0)
        _integer(self.seed, "seed", minimum=0)
        _integer(self.sequence_length, "sequence_length", minimum=16)
        _number(self.validation_fraction, "validation_fraction", low=0.0, high=0.5, open_low=True)
        _integer(self.batch_size, "batch_size", minimum=1)
        _integer(self.n_masks, "n_masks", minimum=2)
        _number(self.tau_factor, "tau_factor", low=0.0, open_low=True)
        if self.method not in methods_for("regression"):
            raise InputError(
                f"method must be one of {', '.join(methods_for('regression'))}, got {self.method!r}"
            )
        if not isinstance(self.queue_dir, str) or not self.queue_dir:
            raise InputError(f"queue_dir must be a directory name, got {self.queue_dir!r}")

    def to_yaml_dict(self) -> dict[str, Any]:
        """Plain data in `params.yaml` order (tuples as lists)."""
        data = asdict(self)
        data["labels"]["value_range"] = list(self.labels.value_range)
        data["export"]["formats"] = list(self.export.formats)
        data["export"]["control_wells"] = list(self.export.control_wells)
        return data


_SECTIONS: dict[str, type] = {
    "model": ModelParams,
    "train": TrainParams,
    "labels": LabelParams,
    "export": ExportParams,
    "s3": S3Params,
    "simulation": SimulationParams,
}


def params_from_mapping(raw: Any, source: str) -> CampaignParams:
    """Build `CampaignParams` from parsed YAML; `source` names the file in errors."""
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a mapping of parameters, got {type(raw).__name__}")
    try:
        kwargs = _known_keys(raw, CampaignParams, source, prefix="")
        for key, cls in _SECTIONS.items():
            if key not in kwargs:
                continue
            section = kwargs[key]
            if section is None and key in ("simulation", "s3"):
                continue
            if not isinstance(section, dict):
                raise InputError(f"{key} must be a mapping, got {section!r}")
            kwargs[key] = cls(**_known_keys(section, cls, source, prefix=f"{key}."))
        return CampaignParams(**kwargs)
    except InputError as exc:
        message = str(exc)
        raise InputError(message if message.startswith(source) else f"{source}: {message}") from exc


def load_params(path: str | os.PathLike[str]) -> CampaignParams:
    """Read and check `params.yaml`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: parameters file not found (is this a campaign directory?)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not valid YAML ({exc})".replace("\n", " ")) from exc
    return params_from_mapping(raw, str(p))


def params_yaml_text(params: CampaignParams) -> str:
    """`params.yaml` for `params`, with a comment on what each knob does."""
    body = yaml.safe_dump(params.to_yaml_dict(), sort_keys=False, default_flow_style=None)
    header = (
        "# DEIMOS lab-loop parameters: `dvc repro` and the deimos flows read this file.\n"
        "# round: the round the pipeline computes (`deimos ingest` advances it).\n"
        "# method: deimos | random | maxvar;  n_masks: J fixed dropout masks;\n"
        "# tau_factor: tau^-1 = tau_factor * mean predictive variance on the validation labels.\n"
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
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    new_text, n = _ROUND_LINE.subn(f"round: {int(round_id)}", text, count=1)
    if n != 1:
        raise InputError(f"{p}: no top-level 'round: <int>' line to update")
    if new_text != text:
        write_text_atomic(p, new_text)


# --- validation helpers -----------------------------------------------------------------------


def _known_keys(raw: dict[str, Any], cls: type, source: str, prefix: str) -> dict[str, Any]:
    names = [f.name for f in fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise InputError(
            f"{source}: unknown parameter {prefix}{unknown[0]!r}; expected one of "
            f"{', '.join(prefix + n for n in names)}"
        )
    return dict(raw)


def _integer(value: Any, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and value == value
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        bounds = ""
        if low is not None:
            bounds += f" {'>' if open_low else '>='} {low}"
        if high is not None:
            bounds += f"{' and' if low is not None else ''} {'<' if open_high else '<='} {high}"
        raise InputError(f"{name} must be a number{bounds}, got {value!r}")
