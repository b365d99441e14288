"""Appendix A study: greedy vs exhaustive-optimal batches, and its CLI."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from deimos.acquisition.batch_optimality import (
    PAPER_V,
    all_subsets,
    greedy_batch,
    optimal_batch,
    random_covariance,
    run_study,
    summarize,
    trace_reduction,
)
from deimos.acquisition.deimos import select_deimos
from deimos.acquisition.optimality import CSV_NAME, PNG_NAME, main
from deimos.errors import InputError


def test_paper_example_greedy_and_optimum() -> None:
    V = np.array(PAPER_V)
    picks, gains = greedy_batch(V, 2)
    assert picks[0] == 1  # point 2, 1-based
    assert round(sum(gains), 1) == 16.9
    assert trace_reduction(V, picks) == pytest.approx(sum(gains), rel=1e-12)
    subset, optimal = optimal_batch(V, 2)
    assert subset == (0, 2)
    assert round(optimal, 1) == 19.6
    assert trace_reduction(V, [0, 2]) == pytest.approx(optimal, rel=1e-12)


def test_trace_reduction_matches_explicit_conditioning() -> None:
    V = random_covariance(7, 4, np.random.default_rng(0))
    B = [5, 1, 3]
    V_cond = V - V[:, B] @ np.linalg.solve(V[np.ix_(B, B)], V[B, :])
    assert trace_reduction(V, B) == pytest.approx(np.trace(V) - np.trace(V_cond), rel=1e-12)
    assert trace_reduction(V, []) == 0.0


def test_greedy_equals_optimal_for_a_single_pick() -> None:
    for seed in range(10):
        V = random_covariance(9, 3, np.random.default_rng(seed))
        picks, gains = greedy_batch(V, 1)
        subset, optimal = optimal_batch(V, 1)
        assert (picks[0],) == subset
        assert gains[0] == pytest.approx(optimal, rel=1e-12)


def test_optimal_batch_matches_a_plain_loop_over_subsets() -> None:
    V = random_covariance(8, 50, np.random.default_rng(1))
    values = {s: trace_reduction(V, s) for s in itertools.combinations(range(8), 3)}
    best = max(values, key=lambda s: values[s])
    subset, optimal = optimal_batch(V, 3)
    assert subset == best
    assert optimal == pytest.approx(values[best], rel=1e-10)
    assert all_subsets(8, 3).shape == (math.comb(8, 3), 3)


# With tau^-1 = 0, V has rank J - 1 = 5 and once rank 1 is left every EI ties exactly, so
# stop before that.
@pytest.mark.parametrize(("tau_inv", "b"), [(0.05, 8), (0.0, 3)])
def test_greedy_batch_equals_select_deimos(tau_inv: float, b: int) -> None:
    rng = np.random.default_rng(2)
    preds = rng.standard_normal((15, 6))
    V = np.cov(preds, ddof=1) + tau_inv * np.eye(15)
    picks, gains = greedy_batch(V, b)
    sel = select_deimos(preds, b, tau_inv=tau_inv)
    assert list(sel.indices) == picks
    assert sum(sel.gains) == pytest.approx(sum(gains), rel=1e-9)


def test_study_ratios_never_exceed_one() -> None:
    results = run_study(n_instances=4, n_points=10, seed=3)
    assert len(results) == 4 * 2 * 3
    for r in results:
        assert r.ratio <= 1.0 + 1e-9
        assert r.greedy > 0
    summaries = summarize(results)
    assert [s.setting for s in summaries] == [f"J={J},b={b}" for J in (3, 50) for b in (2, 5, 10)]
    # n = b = 10: the only batch is every point, so greedy is optimal.
    assert all(s.frac_optimal == 1.0 for s in summaries if s.setting.endswith("b=10"))


def test_study_is_reproducible_from_the_seed() -> None:
    a = run_study(n_instances=2, n_points=10, seed=5, batch_sizes=(2,))
    b = run_study(n_instances=2, n_points=10, seed=5, batch_sizes=(2,))
    c = run_study(n_instances=2, n_points=10, seed=6, batch_sizes=(2,))
    assert a == b
    assert [r.optimal for r in a] != [r.optimal for r in c]


def test_quick_cli_writes_csv_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    assert main(["--quick", "--no-progress", "--out", str(out), "--instances", "3"]) == 0
    with (out / CSV_NAME).open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 6
    assert set(rows[0]) == {
        "setting",
        "n_masks",
        "batch_size",
        "instance",
        "greedy",
        "optimal",
        "ratio",
    }
    for row in rows:
        assert float(row["ratio"]) == pytest.approx(float(row["greedy"]) / float(row["optimal"]))
        assert float(row["ratio"]) <= 1.0 + 1e-9
    png = (out / PNG_NAME).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    printed = capsys.readouterr().out
    assert "total 16.9" in printed and "total 19.6" in printed
    assert "J=50,b=10" in printed and "mean ratio" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--instances", "0"], "--instances must be at least 1"),
        (["--n-points", "9"], "--n-points must be at least the largest batch size 10"),
        (["--n-points", "40"], "exhaustive search would take hours"),
    ],
)
def test_cli_bad_arguments_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "study"
    assert main(["--quick", "--no-progress", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bad_matrices_and_subsets_raise_input_error() -> None:
    V = np.array(PAPER_V)
    with pytest.raises(InputError, match="square"):
        greedy_batch(np.ones((2, 3)), 1)
    with pytest.raises(InputError, match="symmetric"):
        trace_reduction(np.array([[1.0, 2.0], [0.0, 1.0]]), [0])
    with pytest.raises(InputError, match="NaN or inf"):
        optimal_batch(np.array([[np.nan]]), 1)
    with pytest.raises(InputError, match="between 1 and 3"):
        greedy_batch(V, 4)
    with pytest.raises(InputError, match="between 1 and 3"):
        optimal_batch(V, 0)
    with pytest.raises(InputError, match="repeated"):
        trace_reduction(V, [1, 1])
    with pytest.raises(InputError, match="out of range"):
        trace_reduction(V, [3])
    with pytest.raises(InputError, match="singular"):
        trace_reduction(np.zeros((2, 2)), [0])
