"""The paper's Figure 1 on the 1-D task: fit, DEIMOS acquisition function, batch, refit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deimos.config import PositiveInt, check_value
from deimos.data.synthetic import synthetic_1d
from deimos.errors import InputError
from deimos.experiments.benchmark import BenchmarkTask
from deimos.experiments.data import prepare_benchmark_data
from deimos.experiments.runner import build_model, round_settings
from deimos.loop.round import acquire, calibrate_tau, fit_round_model, predict_round
from deimos.loop.seeds import SeedPlan
from deimos.plots import save_png
from deimos.uncertainty.predict import predict_fixed_masks
from models import DropoutModel

#: Columns of the two Figure 1 tables.
FIGURE1_CURVE_COLUMNS = ("x", "f", "mean", "sd", "refit_mean", "refit_sd")
FIGURE1_POINT_COLUMNS = ("x", "y", "status", "ei", "pick_order")


def figure1_data(
    task: BenchmarkTask, seed: int, *, batch_size: int = 5, n_grid: int = 200
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The data of the paper's Figure 1 on the 1-D synthetic regression task.

    Trains a model on the run's initial set, predicts the pool under fixed masks, evaluates the
    DEIMOS acquisition function (each pool point's expected improvement before any pick), picks
    a batch of `batch_size` in greedy order, labels it from the oracle and refits.

    Args:
        task: a `synthetic_1d` task.
        seed: run seed (data split, initial set, weights, masks).
        batch_size: points picked in the shown batch.
        n_grid: points of the evenly spaced x grid the curves are drawn on.

    Returns:
        `(curves, points)`: `curves` has `n_grid` rows with `FIGURE1_CURVE_COLUMNS` (true function,
        predictive mean and sd before and after the refit); `points` one row per pool point with
        `FIGURE1_POINT_COLUMNS`: status "initial" (labelled) or "pool", its EI (NaN for labelled
        points) and its pick order 1..b (0 = not picked).
    """
    from deimos.acquisition.deimos import deimos_expected_improvement

    if not isinstance(task, BenchmarkTask) or task.dataset != "synthetic_1d":
        raise InputError(
            f"Figure 1 needs a synthetic_1d task, got {getattr(task, 'dataset', task)!r}"
        )
    check_value(PositiveInt, batch_size, "batch_size")
    if check_value(PositiveInt, n_grid, "n_grid") < 2:
        raise InputError(f"n_grid must be at least 2, got {n_grid}")
    data = prepare_benchmark_data(task, seed)
    f = synthetic_1d(1, seed=task.data_seed, noise_sd=task.noise_sd).f
    grid_G = np.linspace(f.x_range[0], f.x_range[1], n_grid).astype(np.float32)
    labelled = [int(i) for i in data.initial_idx]
    unlabelled = np.setdiff1d(data.pool_idx, labelled)
    if batch_size > len(unlabelled):
        raise InputError(f"batch_size={batch_size} exceeds the {len(unlabelled)} pool points")

    # The kernel's round 0 with the run's seeds; the refit is round 1 of the same plan.
    plan = SeedPlan(seed)
    settings = round_settings(task, "deimos").replace_batch(batch_size)
    seeds = plan.for_round(0)

    def fit(rows: list[int], round_id: int) -> DropoutModel:
        lab = np.asarray(rows, dtype=np.int64)
        model, _ = fit_round_model(
            lambda init: build_model(task, data, init),
            data.X[lab],
            data.y[lab],
            data.X[data.val_idx],
            data.y[data.val_idx],
            settings,
            plan.for_round(round_id),
        )
        return model

    model = fit(labelled, 0)
    preds = predict_round(model, data.X[unlabelled], data.X[data.val_idx], settings, seeds)
    assert preds.candidates is not None
    grid_preds = predict_fixed_masks(model, grid_G[:, None], n_masks=task.n_masks, seed=seeds.masks)
    tau_inv = calibrate_tau(preds.validation, settings)
    ei = deimos_expected_improvement(preds.candidates, tau_inv).numpy()
    picks = acquire(preds, tau_inv, settings, seeds, n_candidates=len(unlabelled))

    refit = fit(labelled + [int(unlabelled[i]) for i in picks.indices], 1)
    refit_preds = predict_fixed_masks(
        refit, grid_G[:, None], n_masks=task.n_masks, seed=plan.for_round(1).masks
    )
    curves = pd.DataFrame(
        {
            "x": grid_G.astype(float),
            "f": f(grid_G.astype(float)),
            "mean": grid_preds.mean(dim=1).numpy(),
            "sd": grid_preds.std(dim=1).numpy(),
            "refit_mean": refit_preds.mean(dim=1).numpy(),
            "refit_sd": refit_preds.std(dim=1).numpy(),
        }
    )
    order = np.zeros(len(unlabelled), dtype=np.int64)
    order[list(picks.indices)] = np.arange(1, batch_size + 1)
    initial = np.asarray(labelled, dtype=np.int64)
    points = pd.DataFrame(
        {
            "x": np.concatenate([data.X[initial, 0], data.X[unlabelled, 0]]).astype(float),
            "y": np.concatenate([data.y[initial], data.y[unlabelled]]).astype(float),
            "status": ["initial"] * len(initial) + ["pool"] * len(unlabelled),
            "ei": np.concatenate([np.full(len(initial), np.nan), ei]),
            "pick_order": np.concatenate([np.zeros(len(initial), dtype=np.int64), order]),
        }
    )
    return curves, points


def plot_figure1(curves: pd.DataFrame, points: pd.DataFrame, path: str | Path) -> Path:
    """Figure 1 from the tables of `figure1_data`: fit, acquisition function, refit.

    Panel 1: the true function, the labelled data and the model mean +/- 1 sd; panel 2: the DEIMOS
    acquisition function over the pool with the batch numbered in pick order; panel 3: the refit
    after labelling the batch. Written atomically (temp file, then rename).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for frame, columns, what in (
        (curves, FIGURE1_CURVE_COLUMNS, "curves"),
        (points, FIGURE1_POINT_COLUMNS, "points"),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"Figure 1 {what} table lacks column {missing[0]!r}")
    initial = points[points["status"] == "initial"]
    pool = points[points["status"] == "pool"].sort_values("x")
    picked = pool[pool["pick_order"] > 0].sort_values("pick_order")
    fig = Figure(figsize=(7.0, 8.5), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True)
    for ax, mean, sd, title, shown in (
        (axes[0], "mean", "sd", "model on the initial labels", initial),
        (axes[2], "refit_mean", "refit_sd", "refit after labelling the batch", None),
    ):
        ax.plot(curves["x"], curves["f"], "k--", linewidth=1, label="true function")
        ax.plot(curves["x"], curves[mean], color="tab:blue", label="mean")
        ax.fill_between(
            curves["x"],
            curves[mean] - curves[sd],
            curves[mean] + curves[sd],
            color="tab:blue",
            alpha=0.25,
            label="+/- 1 sd",
        )
        ax.scatter(initial["x"], initial["y"], color="black", s=14, zorder=3, label="labelled")
        if shown is None:
            ax.scatter(picked["x"], picked["y"], color="tab:red", s=30, zorder=4, label="batch")
        ax.set_title(title)
        ax.set_ylabel("y")
        ax.legend(fontsize="small", loc="best")
    axes[1].plot(pool["x"], pool["ei"], color="tab:green")
    for _, row in picked.iterrows():
        axes[1].annotate(
            str(int(row["pick_order"])),
            (row["x"], row["ei"]),
            color="tab:red",
            fontweight="bold",
            ha="center",
            va="bottom",
        )
        axes[1].plot(row["x"], row["ei"], "o", color="tab:red")
    axes[1].set_title("DEIMOS acquisition function; the batch in pick order")
    axes[1].set_ylabel("expected improvement")
    axes[2].set_xlabel("x")
    fig.tight_layout()
    return save_png(fig, path)
