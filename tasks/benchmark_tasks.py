"""The paper benchmark as Prefect tasks, and its typed parameters (`benchmark.yaml`).

`BenchmarkParams` says which tasks, methods and seeds to run, at which scale, with which
per-task overrides; `benchmark_runs` expands it into independent `(task, method, seed)` runs.
Each run is one Prefect task that caches its learning curve under `runs/` of the output
directory (keyed by the run's full settings), so an interrupted paper-scale benchmark resumes
where it stopped. Reports are written from the tables alone by `deimos.experiments.report`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from deimos.acquisition.optimality import BATCH_SIZES, MAX_SUBSETS, run_study
from deimos.acquisition.registry import METHODS, methods_for
from deimos.atomic import write_text_atomic
from deimos.errors import InputError
from deimos.experiments import report as report
from deimos.experiments.benchmark import SCALES, BenchmarkTask
from deimos.experiments.figure1 import figure1_data
from deimos.experiments.runner import run_benchmark

#: Fields of `BenchmarkTask` a params file may override (the name and kind are fixed).
OVERRIDABLE = tuple(
    f.name for f in dataclasses.fields(BenchmarkTask) if f.name not in ("name", "kind", "dataset")
)
RUNS_DIR = "runs"
ARTIFACT_KEY = "deimos-benchmark-report"


@dataclass(frozen=True)
class BenchmarkParams:
    """What a benchmark run covers (`benchmark.yaml` or CLI).

    Attributes:
        scale: "smoke" (CI-sized) or "paper" (DEIMOS.md sec. 6 settings; meant for a GPU worker).
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

    scale: str = "smoke"
    tasks: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    seeds: int = 3
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    appendix_a_instances: int = 50
    appendix_a_points: int = 12
    figure1: bool = True

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise InputError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        known = SCALES[self.scale]
        for name in self.tasks:
            if name not in known:
                raise InputError(
                    f"unknown task {name!r} at scale {self.scale!r}; valid: {', '.join(known)}"
                )
        all_methods = set(METHODS)
        for method in self.methods:
            if method not in all_methods:
                raise InputError(
                    f"unknown method {method!r}; valid: {', '.join(sorted(all_methods))}"
                )
        for name, value in (
            ("seeds", self.seeds),
            ("appendix_a_instances", self.appendix_a_instances),
            ("appendix_a_points", self.appendix_a_points),
        ):
            minimum = 0 if name == "appendix_a_instances" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.appendix_a_instances and not (
            max(BATCH_SIZES) <= self.appendix_a_points
            and max(math.comb(self.appendix_a_points, b) for b in BATCH_SIZES) <= MAX_SUBSETS
        ):
            raise InputError(
                f"appendix_a_points must be at least {max(BATCH_SIZES)} (the largest Appendix A "
                f"batch) and small enough for exhaustive search, got {self.appendix_a_points}"
            )
        if not isinstance(self.figure1, bool):
            raise InputError(f"figure1 must be true or false, got {self.figure1!r}")
        for name, fields in self.overrides.items():
            if name != "*" and name not in known:
                raise InputError(f"overrides: unknown task {name!r} at scale {self.scale!r}")
            if not isinstance(fields, Mapping):
                raise InputError(f"overrides.{name} must map field names to values")
            for key in fields:
                if key not in OVERRIDABLE:
                    raise InputError(
                        f"overrides.{name}: unknown field {key!r}; valid: {', '.join(OVERRIDABLE)}"
                    )
        for name, threshold in self.thresholds.items():
            if name not in known:
                raise InputError(f"thresholds: unknown task {name!r} at scale {self.scale!r}")
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, int | float)
                or not math.isfinite(threshold)
            ):
                raise InputError(f"thresholds.{name} must be a number, got {threshold!r}")
        self.benchmark_tasks()  # every override must give a valid task

    @classmethod
    def from_mapping(cls, data: object, source: str = "benchmark parameters") -> BenchmarkParams:
        """Build from a parsed YAML/JSON mapping; unknown keys are errors naming `source`."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: must be a mapping of parameters")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in names]
        if unknown:
            raise InputError(
                f"{source}: unknown parameter {unknown[0]!r}; valid: {', '.join(sorted(names))}"
            )
        values = dict(data)
        for key in ("tasks", "methods"):
            if key in values:
                raw = values[key]
                if raw is None:
                    raw = []
                if isinstance(raw, str) or not isinstance(raw, Sequence):
                    raise InputError(f"{source}: {key} must be a list of names")
                values[key] = tuple(str(v) for v in raw)
        for key in ("overrides", "thresholds"):
            if key in values and values[key] is None:
                values[key] = {}
            if key in values and not isinstance(values[key], Mapping):
                raise InputError(f"{source}: {key} must be a mapping")
        if "overrides" in values:
            overrides = {}
            for name, fields in values["overrides"].items():
                if not isinstance(fields, Mapping | None):
                    raise InputError(f"{source}: overrides.{name} must map field names to values")
                # YAML lists become tuples, as BenchmarkTask's sequence fields are.
                overrides[str(name)] = {f: _tuple_if_list(v) for f, v in (fields or {}).items()}
            values["overrides"] = overrides
        try:
            return cls(**values)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: Path) -> BenchmarkParams:
        """Read `path`; errors name the file."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{path}: no such parameters file") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({exc})") from None
        if isinstance(data, Mapping) and "benchmark" in data:
            data = data["benchmark"]
        return cls.from_mapping(data, str(path))

    def benchmark_tasks(self) -> list[BenchmarkTask]:
        """The scale's tasks to run, overrides applied, in the scale's order."""
        chosen = self.tasks or tuple(SCALES[self.scale])
        out = []
        for name in chosen:
            fields: dict[str, Any] = {
                **self.overrides.get("*", {}),
                **self.overrides.get(name, {}),
            }
            if name in self.thresholds:
                fields["threshold"] = float(self.thresholds[name])
            try:
                out.append(dataclasses.replace(SCALES[self.scale][name], **fields))
            except TypeError as exc:
                raise InputError(f"overrides of task {name!r}: {exc}") from None
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-able form (for run records and Prefect parameters)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


def _tuple_if_list(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


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


def run_key(task_: BenchmarkTask, method: str, seed: int) -> str:
    """A file-name-safe key of a run's full settings: same key = same learning curve."""
    blob = json.dumps([dataclasses.asdict(task_), method, seed], sort_keys=True, default=list)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return f"{task_.name}__{method}__seed{seed}__{digest}"


@task(name="benchmark-run", task_run_name="{method}-{task_.name}-seed{seed}", cache_policy=NO_CACHE)
def benchmark_run(task_: BenchmarkTask, method: str, seed: int, out_dir: str) -> pd.DataFrame:
    """One learning curve; read from `runs/` when this exact run finished before."""
    cached = Path(out_dir) / RUNS_DIR / f"{run_key(task_, method, seed)}.csv"
    if cached.is_file():
        return pd.read_csv(cached)
    frame = run_benchmark(task_, method, seed)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cached, frame.to_csv(index=False))
    return frame


@task(name="appendix-a", cache_policy=NO_CACHE)
def appendix_a_table(n_instances: int, n_points: int) -> pd.DataFrame:
    """Greedy vs exhaustive-optimal DEIMOS batches on random covariances (Appendix A)."""
    return report.appendix_a_frame(run_study(n_instances=n_instances, n_points=n_points))


@task(name="figure-1", cache_policy=NO_CACHE)
def figure1_tables(task_: BenchmarkTask) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables behind Figure 1 (seed 0)."""
    return figure1_data(task_, seed=0)


@task(name="benchmark-report", cache_policy=NO_CACHE)
def write_report(
    out_dir: str,
    results: pd.DataFrame,
    thresholds: Mapping[str, float],
    appendix_a: pd.DataFrame | None,
    figure1: tuple[pd.DataFrame, pd.DataFrame] | None,
) -> str:
    """Save the tables, then the report from them; publish the report as a Prefect artifact.

    The tables go first and `report.md` last, so a directory with a report is complete.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / report.RESULTS_CSV, results.to_csv(index=False))
    write_text_atomic(out / report.THRESHOLDS_JSON, json.dumps(dict(thresholds), indent=2) + "\n")
    for name, frame in (
        (report.APPENDIX_A_CSV, appendix_a),
        (report.FIGURE1_CURVES_CSV, figure1[0] if figure1 else None),
        (report.FIGURE1_POINTS_CSV, figure1[1] if figure1 else None),
    ):
        if frame is not None:
            write_text_atomic(out / name, frame.to_csv(index=False))
        else:
            (out / name).unlink(missing_ok=True)  # a stale table would enter the new report
    path = report.write_benchmark_report(report.read_benchmark_tables(out), out)
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=f"Report directory: `{out.absolute()}`\n\n" + path.read_text(encoding="utf-8"),
        description="DEIMOS benchmark: learning curves, threshold table, mixed-model tests",
    )
    return str(path)
