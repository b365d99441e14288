"""The paper benchmark as Prefect tasks.

Each run is one Prefect task that caches its learning curve under `runs/` of the output
directory (keyed by the run's full settings), so an interrupted paper-scale benchmark resumes
where it stopped. Reports are written from the tables alone by `deimos.experiments.report`.
What to run (`BenchmarkParams`, `benchmark_runs`) lives in `deimos.experiments.params`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from deimos.acquisition.batch_optimality import run_study
from deimos.atomic import write_text_atomic
from deimos.experiments import report as report
from deimos.experiments.benchmark import BenchmarkTask
from deimos.experiments.figure1 import figure1_data
from deimos.experiments.runner import run_benchmark

RUNS_DIR = "runs"
ARTIFACT_KEY = "deimos-benchmark-report"


def run_key(task_: BenchmarkTask, method: str, seed: int) -> str:
    """A file-name-safe key of a run's full settings: same key = same learning curve.

    The threshold is left out: it is read off the curve afterwards and does not change it.
    """
    blob = json.dumps(
        [task_.model_dump(exclude={"threshold"}), method, seed], sort_keys=True, default=list
    )
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
