"""The paper benchmark's library core: one run, the threshold table, the curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deimos.errors import InputError
from deimos.experiments.benchmark import SCALES, BenchmarkTask
from deimos.experiments.data import prepare_benchmark_data
from deimos.experiments.figure1 import figure1_data, plot_figure1
from deimos.experiments.runner import run_benchmark
from deimos.experiments.summary import (
    RESULT_COLUMNS,
    acquisitions_to_threshold,
    plot_benchmark_curves,
)

# The smoke digits task cut to 2 rounds of 2 labels and a few epochs: a run takes ~1 s.
TINY_DIGITS = SCALES["smoke"]["digits_7v9_b1"].replace(
    batch_size=2, n_rounds=2, epochs=4, n_masks=8
)


@pytest.fixture(scope="module")
def tiny_runs() -> dict[str, pd.DataFrame]:
    return {method: run_benchmark(TINY_DIGITS, method, seed=1) for method in ("deimos", "random")}


@pytest.mark.parametrize("method", ["deimos", "random"])
def test_run_returns_tidy_learning_curve(tiny_runs, method):
    frame = tiny_runs[method]
    assert tuple(frame.columns) == (*RESULT_COLUMNS, "dropout_r2")
    assert frame["dropout_r2"].between(0.0, 1.0).all()
    assert frame["round"].tolist() == [0, 1, 2]
    assert frame["n_labels"].tolist() == [10, 12, 14]  # n_initial, then + batch_size per round
    assert (frame["task"] == "digits_7v9_b1").all()
    assert (frame["method"] == method).all()
    assert (frame["seed"] == 1).all()
    assert (frame["metric_name"] == "accuracy").all()
    assert frame["metric"].between(0.0, 1.0).all()


def test_same_seed_gives_identical_frame(tiny_runs):
    again = run_benchmark(TINY_DIGITS, "random", seed=1)
    pd.testing.assert_frame_equal(again, tiny_runs["random"])


def test_different_seed_draws_different_class_balanced_initial_set():
    a = prepare_benchmark_data(TINY_DIGITS, seed=1)
    b = prepare_benchmark_data(TINY_DIGITS, seed=2)
    assert not np.array_equal(a.initial_idx, b.initial_idx)
    for data in (a, b):
        assert np.isin(data.initial_idx, data.pool_idx).all()
        assert np.bincount(data.y[data.initial_idx], minlength=2).tolist() == [5, 5]
        parts = [set(data.pool_idx), set(data.val_idx), set(data.test_idx)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2])
        assert not (parts[1] & parts[2])
    again = prepare_benchmark_data(TINY_DIGITS, seed=1)
    np.testing.assert_array_equal(again.initial_idx, a.initial_idx)


@pytest.mark.parametrize(
    ("task_name", "method"),
    [
        ("digits_7v9_b1", "maxvar"),
        ("synthetic_1d", "bald"),
        ("synthetic_1d", "maxent"),
        ("synthetic_1d", "batchbald"),
        ("splicing_b1", "maxent"),
        ("digits_7v9_b1", "no-such-method"),
    ],
)
def test_method_that_does_not_fit_the_task_is_rejected(task_name, method):
    with pytest.raises(InputError, match="does not apply to task"):
        run_benchmark(SCALES["smoke"][task_name], method, seed=0)


def test_bad_task_config_is_rejected_with_a_reason():
    with pytest.raises(InputError, match="is classification, not regression"):
        TINY_DIGITS.replace(kind="regression")
    with pytest.raises(InputError, match="pool_size=5 is smaller"):
        SCALES["smoke"]["synthetic_1d"].replace(pool_size=5)
    with pytest.raises(InputError, match=r"BenchmarkTask.n_masks: .*greater than or equal to 2"):
        TINY_DIGITS.replace(n_masks=1)


def _frame(task, metric_name, method, seed, n_labels, metrics):
    return pd.DataFrame(
        {
            "task": task,
            "method": method,
            "seed": seed,
            "round": range(len(metrics)),
            "n_labels": n_labels,
            "metric": metrics,
            "metric_name": metric_name,
        }
    )


def test_acquisitions_to_threshold_counts_first_crossing():
    labels = [10, 12, 14, 16]
    results = pd.concat(
        [
            # accuracy: first >= 0.9
            _frame("cls", "accuracy", "deimos", 0, labels, [0.5, 0.9, 0.8, 0.95]),  # 12
            _frame("cls", "accuracy", "deimos", 1, labels, [0.5, 0.6, 0.7, 0.91]),  # 16
            _frame("cls", "accuracy", "random", 0, labels, [0.5, 0.6, 0.7, 0.8]),  # never
            _frame("cls", "accuracy", "random", 1, labels, [0.9, 0.6, 0.7, 0.8]),  # 10
            # mse: first <= 0.1
            _frame("reg", "mse", "deimos", 0, labels, [0.5, 0.1, 0.05, 0.2]),  # 12
            _frame("reg", "mse", "maxvar", 0, labels, [0.5, 0.4, 0.3, 0.2]),  # never
            _frame("reg", "mse", "maxvar", 1, labels, [0.5, 0.4, 0.3, 0.2]),  # never
        ],
        ignore_index=True,
    )
    table = acquisitions_to_threshold(results, {"cls": 0.9, "reg": 0.1, "unused": 1.0})
    rows = {(r.task, r.method): r for r in table.itertuples()}
    assert list(rows) == [
        ("cls", "deimos"),
        ("cls", "random"),
        ("reg", "deimos"),
        ("reg", "maxvar"),
    ]

    deimos_cls = rows[("cls", "deimos")]
    assert (deimos_cls.n_seeds, deimos_cls.n_reached) == (2, 2)
    assert deimos_cls.mean_n_labels == (12 + 16) / 2
    assert deimos_cls.sd_n_labels == pytest.approx(math.sqrt(((12 - 14) ** 2 + (16 - 14) ** 2) / 1))

    random_cls = rows[("cls", "random")]
    assert (random_cls.n_seeds, random_cls.n_reached, random_cls.mean_n_labels) == (2, 1, 10.0)
    assert math.isnan(random_cls.sd_n_labels)

    deimos_reg = rows[("reg", "deimos")]
    assert (deimos_reg.n_reached, deimos_reg.mean_n_labels, deimos_reg.threshold) == (1, 12, 0.1)
    assert deimos_reg.metric_name == "mse"

    maxvar_reg = rows[("reg", "maxvar")]
    assert (maxvar_reg.n_seeds, maxvar_reg.n_reached) == (2, 0)
    assert math.isnan(maxvar_reg.mean_n_labels)


def test_acquisitions_to_threshold_needs_a_threshold_per_task():
    results = _frame("cls", "accuracy", "random", 0, [10, 11], [0.5, 0.6])
    with pytest.raises(InputError, match="no threshold for task 'cls'"):
        acquisitions_to_threshold(results, {"other": 0.5})
    with pytest.raises(InputError, match="lacks column 'metric_name'"):
        acquisitions_to_threshold(results.drop(columns="metric_name"), {"cls": 0.5})


def test_plot_writes_a_png(tmp_path):
    results = pd.concat(
        [
            _frame("cls", "accuracy", m, s, [10, 11, 12], [0.5 + 0.1 * s, 0.7, 0.9])
            for m in ("deimos", "random")
            for s in (0, 1)
        ]
        + [_frame("reg", "mse", "deimos", 0, [5, 7], [0.3, 0.2])],
        ignore_index=True,
    )
    path = plot_benchmark_curves(results, tmp_path / "sub" / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["curves.png"]  # no temporary left


def test_smoke_cpu_and_paper_scales_are_valid_tasks():
    assert set(SCALES) == {"smoke", "cpu", "paper"}
    for scale in SCALES.values():
        for name, task in scale.items():
            assert isinstance(task, BenchmarkTask)
            assert task.name == name
    assert SCALES["paper"]["splicing_b1"].n_initial == 75
    assert SCALES["paper"]["fashion_7v9_b1"].pool_size == 2500


def test_every_task_of_the_issue_exists_at_both_scales():
    expected = {
        "splicing_b1": 1,
        "splicing_b10": 10,
        "fashion_7v9_b1": 1,
        "fashion_7v9_b25": 25,
        "fashion_10_b100": 100,
        "digits_7v9_b1": 1,
        "synthetic_1d": None,
    }
    for scale in (SCALES["smoke"], SCALES["paper"]):
        assert set(scale) == set(expected)
        for name, batch in expected.items():
            if batch is not None:
                assert scale[name].batch_size == batch
    paper = SCALES["paper"]
    assert all(t.n_masks == 50 for t in paper.values())
    assert paper["fashion_10_b100"].pool_size == 2000 and paper["fashion_10_b100"].n_initial == 30


def test_cpu_scale_has_the_evidence_tasks_at_the_paper_settings_that_matter():
    cpu = SCALES["cpu"]
    assert list(cpu) == ["fashion_7v9_b5", "fashion_10_b50", "splicing_b25", "synthetic_1d"]
    assert all(t.n_masks == 50 for t in cpu.values())
    assert all(2000 <= t.pool_size <= 5000 for t in cpu.values() if t.pool_size is not None)
    f79, f10, splicing = cpu["fashion_7v9_b5"], cpu["fashion_10_b50"], cpu["splicing_b25"]
    assert (f79.n_initial, f79.batch_size) == (10, 5)
    assert 90 <= f79.n_initial + f79.n_rounds * f79.batch_size <= 160
    assert (f10.n_initial, f10.batch_size) == (30, 50)
    assert 75 <= splicing.n_initial <= 100 and splicing.batch_size == 25


# The smoke 1-D task with fewer epochs: a Figure 1 in about a second.
TINY_1D = SCALES["smoke"]["synthetic_1d"].replace(epochs=10, n_masks=10)


def test_figure1_data_picks_a_batch_in_order_and_refits(tmp_path):
    curves, points = figure1_data(TINY_1D, seed=3, batch_size=5, n_grid=50)
    assert len(curves) == 50 and curves["x"].is_monotonic_increasing
    assert (curves["sd"] > 0).all()
    pool = points[points["status"] == "pool"]
    initial = points[points["status"] == "initial"]
    assert len(initial) == TINY_1D.n_initial and initial["ei"].isna().all()
    assert len(pool) == TINY_1D.pool_size - TINY_1D.n_initial
    assert sorted(pool.loc[pool["pick_order"] > 0, "pick_order"]) == [1, 2, 3, 4, 5]
    # The first pick maximises the acquisition function; later ones need not (conditioning).
    first = pool[pool["pick_order"] == 1].iloc[0]
    assert first["ei"] == pytest.approx(pool["ei"].max())
    # Refitting on five more labels changes the model.
    assert not np.allclose(curves["mean"], curves["refit_mean"])
    path = plot_figure1(curves, points, tmp_path / "figure1.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure1_rejects_a_task_that_is_not_1d_and_incomplete_tables(tmp_path):
    with pytest.raises(InputError, match="Figure 1 needs a synthetic_1d task"):
        figure1_data(TINY_DIGITS, seed=0)
    curves = pd.DataFrame({"x": [0.0], "f": [0.0], "mean": [0.0], "sd": [0.0]})
    points = pd.DataFrame({c: [] for c in ("x", "y", "status", "ei", "pick_order")})
    with pytest.raises(InputError, match="curves table lacks column 'refit_mean'"):
        plot_figure1(curves, points, tmp_path / "f.png")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_splicing_task_runs_kcenter():
    task = SCALES["smoke"]["splicing_b10"].replace(n_rounds=1, epochs=2, n_masks=4, pool_size=200)
    frame = run_benchmark(task, "kcenter", seed=0)
    assert frame["n_labels"].tolist() == [40, 50]
    assert (frame["method"] == "kcenter").all()
