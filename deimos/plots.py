"""Figures people would rather look at than tables. matplotlib's Agg canvas, no pyplot state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from deimos.atomic import replacing


def save_png(fig: Any, path: str | Path, dpi: int | None = None) -> Path:
    """Write a matplotlib figure as PNG to `path` atomically (temp file, then rename), creating
    the parent directory; a reader never sees half an image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def plot_learning_curves(
    curves: pd.DataFrame,
    path: Path,
    *,
    metric: str = "test_mse",
    x: str = "n_labels",
    title: str = "Learning curves",
) -> Path:
    """Plot `metric` against `x` per method (mean +/- 1 sd over seeds if a `seed` column exists).

    The PNG is written to a temporary file and renamed, so a reader never sees half an image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method, group in curves.groupby("method", sort=False):
        stats = group.groupby(x)[metric].agg(["mean", "std"]).reset_index()
        ax.plot(stats[x], stats["mean"], marker="o", label=str(method))
        if stats["std"].notna().any():
            sd = stats["std"].fillna(0.0)
            ax.fill_between(stats[x], stats["mean"] - sd, stats["mean"] + sd, alpha=0.2)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_png(fig, path)
