"""`deimos benchmark` (the paper's comparisons through the Prefect `benchmark` flow) and
`deimos benchmark-report` (the report again, from a results directory's tables alone)."""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deimos.errors import InputError

if TYPE_CHECKING:
    from deimos.experiments.params import BenchmarkParams


def _thresholds(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name or not math.isfinite(number):
            raise InputError(f"--threshold wants TASK=NUMBER, got {item!r}")
        out[name] = number
    return out


def _params(args: argparse.Namespace) -> BenchmarkParams:
    from deimos.experiments.params import load_benchmark_params

    changes: dict[str, Any] = {}
    for key in ("scale", "seeds"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    for key in ("tasks", "methods"):
        if getattr(args, key):
            changes[key] = getattr(args, key)
    if args.threshold:
        changes["thresholds"] = _thresholds(args.threshold)
    if args.no_appendix_a:
        changes["appendix_a_instances"] = 0
    if args.no_figure1:
        changes["figure1"] = False
    return load_benchmark_params(args.params, changes)


def _print_summary(out_dir: Path) -> None:
    import pandas as pd

    from deimos.experiments import report as report

    summary = pd.read_csv(out_dir / report.THRESHOLD_CSV)
    lmm = pd.read_csv(out_dir / report.LMM_CSV)
    cols = ["task", "method", "threshold", "n_reached", "n_seeds", "mean_n_labels"]
    cols += ["final_n_labels", "final_metric"]
    with pd.option_context("display.width", 160, "display.max_columns", None):
        print("labels to reach the threshold, and the final test metric (mean over seeds):")
        print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if not lmm.empty:
            print("\nmixed-model likelihood-ratio test against DEIMOS (Appendix C):")
            print(
                lmm[["task", "method", "effect", "p_value", "verdict"]].to_string(
                    index=False, float_format=lambda v: f"{v:.3g}"
                )
            )
    print(f"\nreport: {out_dir / report.REPORT_MD}")


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Run the benchmark flow and print the threshold table and the tests."""
    from deimos.experiments.params import benchmark_runs

    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    params = _params(args)  # bad parameters are refused before torch and Prefect load
    runs = benchmark_runs(params)
    if not runs:
        raise InputError("no run: none of the methods applies to the chosen tasks")
    from deimos_cli.lab_loop import _prefect_defaults
    from tasks.benchmark_tasks import RUNS_DIR

    out_dir = args.out.absolute()
    if args.fresh:
        shutil.rmtree(out_dir / RUNS_DIR, ignore_errors=True)
    print(f"{len(runs)} runs ({params.scale} scale) into {out_dir}", flush=True)
    _prefect_defaults()
    from flows.benchmark import benchmark

    if args.workers > 1:
        from flows.dask_runner import dask_task_runner, one_prefect_server

        with one_prefect_server():
            flow = benchmark.with_options(task_runner=dask_task_runner(args.workers))
            result = flow(str(out_dir), params.to_dict())
    else:
        result = benchmark(str(out_dir), params.to_dict())
    print(f"{result['n_runs']} runs in {result['seconds']:.0f} s")
    _print_summary(out_dir)
    return 0


def cmd_benchmark_report(args: argparse.Namespace) -> int:
    """Regenerate the report from the tables in a results directory."""
    from deimos.experiments import report as report

    results_dir = args.results_dir
    tables = report.read_benchmark_tables(results_dir, _thresholds(args.threshold or []))
    out_dir = args.out or results_dir
    report.write_benchmark_report(tables, out_dir)
    _print_summary(out_dir)
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "benchmark", help="compare acquisition methods on the paper's tasks (Prefect flow)"
    )
    p.add_argument("--params", type=Path, help="benchmark parameters (YAML)")
    p.add_argument("--scale", choices=("smoke", "cpu", "paper"), help="default smoke")
    p.add_argument("--tasks", nargs="+", help="task names (default: all of the scale)")
    p.add_argument("--methods", nargs="+", help="methods (default: all that apply)")
    p.add_argument("--seeds", type=int, help="runs per task and method (default 3)")
    p.add_argument("--threshold", action="append", metavar="TASK=VALUE", help="repeatable")
    p.add_argument("--no-appendix-a", action="store_true", help="skip the Appendix A study")
    p.add_argument("--no-figure1", action="store_true", help="skip Figure 1")
    p.add_argument("--fresh", action="store_true", help="ignore runs finished before")
    p.add_argument(
        "--workers", type=int, default=1, help="run the runs on a local Dask cluster of N processes"
    )
    p.add_argument("--out", type=Path, default=Path("bench-results/benchmark"))
    p.set_defaults(handler=cmd_benchmark)

    p = sub.add_parser(
        "benchmark-report", help="rewrite a benchmark report from its results tables"
    )
    p.add_argument("results_dir", type=Path, help="directory holding results.csv")
    p.add_argument("--threshold", action="append", metavar="TASK=VALUE", help="repeatable")
    p.add_argument("--out", type=Path, help="where to write (default: the results directory)")
    p.set_defaults(handler=cmd_benchmark_report)
