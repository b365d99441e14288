"""Paper benchmark at smoke scale: `python -m benchmarks.paper_smoke [--tasks ...] [--methods ...]
[--seeds N] [--out DIR]`.

Runs every method that applies to each task (or the `--methods` given) for seeds `0..N-1`, then
writes `results.csv` (one row per run and round), `curves.png` (learning curves, mean +/- 1 sd)
and `threshold_table.csv` (labels needed to reach each task's threshold), and prints the table
and the wall time. Each task's methods run from the same seeds, hence the same initial sets.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from deimos.atomic import write_text_atomic
from deimos.benchmark import (
    METHODS_BY_KIND,
    SCALES,
    acquisitions_to_threshold,
    plot_benchmark_curves,
    run_benchmark,
)
from deimos.errors import InputError


def run_grid(
    task_names: Sequence[str], methods: Sequence[str] | None, n_seeds: int, scale: str = "smoke"
) -> pd.DataFrame:
    """Every (task, method, seed) run, concatenated; methods that do not fit a task are skipped
    only when `methods` is None (all methods), otherwise they are an error."""
    tasks = SCALES[scale]
    unknown = [t for t in task_names if t not in tasks]
    if unknown:
        raise InputError(f"unknown task {unknown[0]!r}; valid: {', '.join(tasks)}")
    frames = []
    for name in task_names:
        task = tasks[name]
        for method in methods if methods is not None else METHODS_BY_KIND[task.kind]:
            for seed in range(n_seeds):
                start = time.perf_counter()
                frame = run_benchmark(task, method, seed)
                final = frame.iloc[-1]
                print(
                    f"{name:>14} {method:>9} seed={seed} "
                    f"{final.metric_name}={final.metric:.4f} at n={final.n_labels} "
                    f"({time.perf_counter() - start:.1f} s)",
                    flush=True,
                )
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["digits_7v9", "synthetic_1d"])
    parser.add_argument("--methods", nargs="+", default=None, help="default: all for the task")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/paper_smoke"))
    args = parser.parse_args(argv)
    if args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        results = run_grid(args.tasks, args.methods, args.seeds)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    thresholds = {name: SCALES["smoke"][name].threshold for name in args.tasks}
    table = acquisitions_to_threshold(results, thresholds)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "results.csv", results.to_csv(index=False))
    write_text_atomic(args.out / "threshold_table.csv", table.to_csv(index=False))
    plot_benchmark_curves(results, args.out / "curves.png")
    with pd.option_context("display.width", 120, "display.max_columns", None):
        print(table.to_string(index=False))
    print(f"wrote {args.out}/results.csv, curves.png, threshold_table.csv")
    print(f"wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
