"""The benchmark's typed parameters (`benchmarks/params.yaml`, `deimos benchmark` flags).

`BenchmarkParams` says which tasks, methods and seeds to run, at which scale, with which
per-task overrides; `benchmark_runs` expands it into independent `(task, method, seed)` runs.
`load_benchmark_params` reads a params file and applies command-line changes on top.

This module imports neither torch, boto3 nor Prefect: checking a params file is fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, Self

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from deimos.acquisition.batch_optimality import BATCH_SIZES, MAX_SUBSETS
from deimos.acquisition.registry import METHODS, methods_for
from deimos.config import (
    FiniteFloat,
    Name,
    NonNegativeInt,
    PositiveInt,
    Settings,
    StrictBool,
    parse_settings,
)
from deimos.experiments.benchmark import SCALES, BenchmarkTask
from deimos.yaml_files import read_yaml

__all__ = [
    "OVERRIDABLE",
    "BenchmarkParams",
    "benchmark_runs",
    "load_benchmark_params",
    "task_methods",
]

#: Fields of `BenchmarkTask` a params file may override (the name, kind and data set are fixed).
OVERRIDABLE = tuple(f for f in BenchmarkTask.model_fields if f not in ("name", "kind", "dataset"))


def _known_scale(value: str) -> str:
    if value not in SCALES:
        raise ValueError(f"must be one of {', '.join(SCALES)}")
    return value


def _known_method(value: str) -> str:
    if value not in METHODS:
        raise ValueError(f"unknown method; valid: {', '.join(sorted(METHODS))}")
    return value


Scale = Annotated[str, Field(strict=True), AfterValidator(_known_scale)]
Method = Annotated[Name, AfterValidator(_known_method)]


#: One problem for `_error`: the key path, the error, and the value refused.
_Problem = tuple[tuple[str | int, ...], PydanticCustomError, object]


def _error(problems: list[_Problem]) -> ValidationError:
    """A `ValidationError` with these keys, for a model validator to raise.

    pydantic-core merges a `ValidationError` raised in a validator into the outer one (keys
    prefixed), so `parse_settings` names the dotted key; a `ValueError` there would have none.
    """
    details = [InitErrorDetails(type=err, loc=loc, input=value) for loc, err, value in problems]
    return ValidationError.from_exception_data("BenchmarkParams", details)


def _fail(loc: tuple[str | int, ...], message: str, value: object) -> NoReturn:
    """Refuse `value` at key path `loc` from a model validator."""
    raise _error([(loc, PydanticCustomError("benchmark_params", message), value)])


class BenchmarkParams(Settings):
    """What a benchmark run covers (`benchmarks/params.yaml` or the CLI).

    Attributes:
        scale: "smoke" (CI-sized), "cpu" (the evidence grid) or "paper" (DEIMOS.md sec. 6).
        tasks: task names of the scale; empty = all of them.
        methods: acquisition methods; empty = every method that applies to each task. A method
            named here that does not apply to a task is skipped for that task.
        seeds: runs per (task, method), seeds `0..seeds-1`; every method of a task sees the same
            seeds, hence the same splits and initial sets.
        overrides: task name (or "*" for every task) -> `BenchmarkTask` field -> value.
        thresholds: task name -> test-metric threshold, overriding the task's own.
        appendix_a_instances: random covariances per Appendix A setting; 0 skips Appendix A.
        appendix_a_points: points per covariance (exhaustive search over all subsets).
        figure1: draw Figure 1 (needs the `synthetic_1d` task in the scale).
    """

    scale: Scale = "smoke"
    tasks: tuple[Name, ...] = ()
    methods: tuple[Method, ...] = ()
    seeds: PositiveInt = 3
    overrides: dict[Name, dict[Name, Any]] = Field(default_factory=dict)
    thresholds: dict[Name, FiniteFloat] = Field(default_factory=dict)
    appendix_a_instances: NonNegativeInt = 50
    appendix_a_points: PositiveInt = 12
    figure1: StrictBool = True

    @field_validator("tasks", "methods", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if value is None:  # `tasks:` with nothing after it in YAML
            return ()
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ValueError("must be a list of names")
        return value

    @field_validator("overrides", mode="before")
    @classmethod
    def _overrides(cls, value: object) -> object:
        if value is None:
            return {}
        if isinstance(value, Mapping):  # `splicing_b1:` with nothing after it: no change
            return {name: {} if fields is None else fields for name, fields in value.items()}
        return value

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds(cls, value: object) -> object:
        return {} if value is None else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        known = SCALES[self.scale]
        at_scale = f"at scale {self.scale!r}; valid: {', '.join(known)}"
        for i, name in enumerate(self.tasks):
            if name not in known:
                _fail(("tasks", i), f"unknown task {at_scale}", name)
        points = self.appendix_a_points
        if self.appendix_a_instances and not (
            max(BATCH_SIZES) <= points
            and max(math.comb(points, b) for b in BATCH_SIZES) <= MAX_SUBSETS
        ):
            _fail(
                ("appendix_a_points",),
                f"must be at least {max(BATCH_SIZES)} (the largest Appendix A batch) and small "
                "enough for exhaustive search",
                points,
            )
        for name, fields in self.overrides.items():
            if name != "*" and name not in known:
                _fail(("overrides", name), f"unknown task {at_scale} or '*'", fields)
            for key, value in fields.items():
                if key not in OVERRIDABLE:
                    _fail(
                        ("overrides", name, key),
                        f"not a task field that may be overridden; valid: {', '.join(OVERRIDABLE)}",
                        value,
                    )
        for name, threshold in self.thresholds.items():
            if name not in known:
                _fail(("thresholds", name), f"unknown task {at_scale}", threshold)
        for name in self._chosen():  # every override must give a valid task
            try:
                BenchmarkTask.model_validate(self._task_fields(name))
            except ValidationError as exc:
                raise self._relocated(name, exc) from None
        return self

    def _chosen(self) -> tuple[str, ...]:
        return self.tasks or tuple(SCALES[self.scale])

    def _task_fields(self, name: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            **SCALES[self.scale][name].model_dump(),
            **self.overrides.get("*", {}),
            **self.overrides.get(name, {}),
        }
        if name in self.thresholds:
            fields["threshold"] = self.thresholds[name]
        return fields

    def _relocated(self, name: str, exc: ValidationError) -> ValidationError:
        """The errors of task `name` under the key that set the bad value."""
        problems: list[_Problem] = []
        for err in exc.errors(include_url=False):
            field, rest = (err["loc"][0], err["loc"][1:]) if err["loc"] else (None, ())
            message = str(err["msg"]).removeprefix("Value error, ")
            if field == "threshold" and name in self.thresholds:
                loc: tuple[str | int, ...] = ("thresholds", name)
            elif name in self.overrides and (field is None or field in self.overrides[name]):
                loc = ("overrides", name)
            else:  # from the "*" overrides: say which task they broke
                loc, message = ("overrides", "*"), f"task {name!r}: {message}"
            if field is not None and loc[0] == "overrides":
                loc = (*loc, field, *rest)
            problems.append((loc, PydanticCustomError(err["type"], message), err["input"]))
        return _error(problems)

    @classmethod
    def from_mapping(cls, data: object, source: str = "benchmark parameters") -> BenchmarkParams:
        """Build from a parsed YAML/JSON mapping (None = the defaults); errors name `source`."""
        return parse_settings(cls, {} if data is None else data, source)

    @classmethod
    def from_yaml(cls, path: Path) -> BenchmarkParams:
        """Read `path` (its `benchmark:` section, if it has one); errors name the file."""
        data = read_yaml(path, missing="no such parameters file")
        if isinstance(data, Mapping) and "benchmark" in data:
            data = data["benchmark"]
        return cls.from_mapping(data, str(path))

    def benchmark_tasks(self) -> list[BenchmarkTask]:
        """The scale's tasks to run, overrides applied, in the scale's order."""
        return [BenchmarkTask(**self._task_fields(name)) for name in self._chosen()]

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-able form (for run records and Prefect parameters)."""
        return self.model_dump(mode="json")


def load_benchmark_params(
    path: Path | None = None, changes: Mapping[str, Any] | None = None
) -> BenchmarkParams:
    """The params file at `path` (None: the defaults) with `changes` (e.g. CLI flags) applied.

    A `thresholds` change adds to the file's thresholds; any other key replaces the file's value.
    Errors name the file (or "command line" without one) and the key.
    """
    base = BenchmarkParams.from_yaml(path) if path else BenchmarkParams()
    values = base.to_dict()
    for key, value in (changes or {}).items():
        if key == "thresholds" and isinstance(value, Mapping):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return BenchmarkParams.from_mapping(values, str(path or "command line"))


def task_methods(task_: BenchmarkTask, methods: Sequence[str]) -> list[str]:
    """The methods of `methods` (all when empty) that apply to the task."""
    valid = list(methods_for(task_.kind))
    return [m for m in (methods or valid) if m in valid]


def benchmark_runs(params: BenchmarkParams) -> list[tuple[BenchmarkTask, str, int]]:
    """Every independent run `(task, method, seed)` the parameters ask for."""
    return [
        (t, method, seed)
        for t in params.benchmark_tasks()
        for method in task_methods(t, params.methods)
        for seed in range(params.seeds)
    ]
