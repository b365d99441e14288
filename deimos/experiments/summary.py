"""Many runs summarised: labels needed to reach a threshold (Tables 1-2) and learning curves."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from deimos.errors import InputError
from deimos.plots import save_png

#: Columns of the frame `run_benchmark` returns, in order.
RESULT_COLUMNS = ("task", "method", "seed", "round", "n_labels", "metric", "metric_name")


def check_results(results: object) -> None:
    """Raise InputError unless `results` is a DataFrame with every column of RESULT_COLUMNS."""
    if not isinstance(results, pd.DataFrame):
        raise InputError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise InputError(f"results lacks column {missing[0]!r}; expected {list(RESULT_COLUMNS)}")


def acquisitions_to_threshold(
    results: pd.DataFrame, thresholds: Mapping[str, float]
) -> pd.DataFrame:
    """Labels needed to first reach a test-metric threshold, per task and method (Tables 1-2).

    A run reaches the threshold at the smallest `n_labels` whose metric is `<= threshold`
    (metric_name "mse") or `>= threshold` (any other metric, e.g. "accuracy").

    Args:
        results: rows with `RESULT_COLUMNS`, e.g. concatenated `run_benchmark` frames.
        thresholds: threshold per task name; every task in `results` needs one.

    Returns:
        One row per (task, method) in order of first appearance, columns `task, method,
        metric_name, threshold, n_seeds, n_reached, mean_n_labels, sd_n_labels`: the mean and
        sd (ddof=1) over the seeds that reached it (NaN when none or, for sd, only one did).

    Raises:
        InputError: missing columns, a task without a threshold, or mixed metric names in a task.
    """
    check_results(results)
    missing = [t for t in results["task"].unique() if t not in thresholds]
    if missing:
        raise InputError(f"no threshold for task {missing[0]!r}; give one per task in results")
    out = []
    for (task, method), group in results.groupby(["task", "method"], sort=False):
        names = group["metric_name"].unique()
        if len(names) != 1:
            raise InputError(f"task {task!r} mixes metric names {sorted(map(str, names))}")
        threshold = float(thresholds[str(task)])
        lower_is_better = names[0] == "mse"
        reached = []
        n_seeds = 0
        for _, run in group.groupby("seed", sort=True):
            n_seeds += 1
            run = run.sort_values("n_labels")
            ok = run["metric"] <= threshold if lower_is_better else run["metric"] >= threshold
            if ok.any():
                reached.append(float(run.loc[ok, "n_labels"].iloc[0]))
        out.append(
            {
                "task": task,
                "method": method,
                "metric_name": names[0],
                "threshold": threshold,
                "n_seeds": n_seeds,
                "n_reached": len(reached),
                "mean_n_labels": float(np.mean(reached)) if reached else math.nan,
                "sd_n_labels": float(np.std(reached, ddof=1)) if len(reached) > 1 else math.nan,
            }
        )
    return pd.DataFrame(out)


def plot_benchmark_curves(results: pd.DataFrame, path: str | Path) -> Path:
    """Learning curves, one panel per task: mean +/- 1 sd over seeds, one line per method.

    The PNG is written to a temporary file beside `path` and renamed over it, so a reader never
    sees half an image.

    Returns:
        `path` as a `Path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_results(results)
    if results.empty:
        raise InputError("results is empty; nothing to plot")
    tasks = list(results["task"].unique())
    n_cols = min(3, len(tasks))
    n_rows = math.ceil(len(tasks) / n_cols)
    fig = Figure(figsize=(5.0 * n_cols, 3.8 * n_rows), dpi=110)
    FigureCanvasAgg(fig)
    for k, task in enumerate(tasks):
        ax = fig.add_subplot(n_rows, n_cols, k + 1)
        task_rows = results[results["task"] == task]
        for method, group in task_rows.groupby("method", sort=False):
            stats = group.groupby("n_labels")["metric"].agg(["mean", "std"]).reset_index()
            (line,) = ax.plot(stats["n_labels"], stats["mean"], marker=".", label=str(method))
            sd = stats["std"].fillna(0.0)  # one seed: no band
            ax.fill_between(
                stats["n_labels"],
                stats["mean"] - sd,
                stats["mean"] + sd,
                color=line.get_color(),
                alpha=0.2,
            )
        ax.set_title(str(task))
        ax.set_xlabel("number of labels")
        ax.set_ylabel("test " + str(task_rows["metric_name"].iloc[0]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return save_png(fig, path)
