"""select_deimos against the dense Algorithm 1 reference, known values and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deimos.acquisition.deimos import (
    _columns_sum_to_zero,
    centred_factors,
    deimos_expected_improvement,
    select_deimos,
)
from deimos.errors import InputError
from tests.helpers.dense_reference import dense_covariance, dense_select


def _probs(rng: np.random.Generator, n: int, c: int, n_masks: int) -> np.ndarray:
    logits = rng.normal(scale=1.5, size=(n, c, n_masks))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _assert_same(got, ref, rtol=1e-6):
    ref_idx, ref_gains = ref
    assert list(got.indices) == ref_idx
    np.testing.assert_allclose(got.gains, ref_gains, rtol=rtol)


@pytest.mark.parametrize("seed", range(12))
def test_regression_matches_dense_reference(seed):
    rng = np.random.default_rng(seed)
    n, n_masks = int(rng.integers(20, 60)), int(rng.integers(2, 15))
    b = int(rng.integers(1, 21))
    preds = rng.normal(size=(n, n_masks)) * rng.uniform(0.1, 3, size=(n, 1))
    tau_inv = float(rng.uniform(0.001, 0.5))
    _assert_same(select_deimos(preds, b, tau_inv=tau_inv), dense_select(preds, b, tau_inv))


@pytest.mark.parametrize("seed", range(8))
def test_regression_candidate_subset_matches_dense(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(25, 50))
    preds = rng.normal(size=(n, 8))
    candidates = rng.choice(n, size=int(rng.integers(20, n)), replace=False)
    b = int(rng.integers(1, 21))
    got = select_deimos(preds, b, tau_inv=0.05, candidates=candidates)
    ref = dense_select(preds, b, 0.05, candidates=candidates)
    # The reference returns positions into preds; so must select_deimos.
    assert set(got.indices) <= set(candidates.tolist())
    _assert_same(got, ref)


@pytest.mark.parametrize("seed", range(8))
def test_regression_pool_preds_matches_dense(seed):
    rng = np.random.default_rng(200 + seed)
    sample = rng.normal(size=(int(rng.integers(10, 40)), 6))
    pool = rng.normal(size=(int(rng.integers(20, 40)), 6)) * 1.5
    candidates = None if seed % 2 else rng.choice(pool.shape[0], size=20, replace=False)
    b = int(rng.integers(1, 21))
    got = select_deimos(sample, b, tau_inv=0.1, pool_preds=pool, candidates=candidates)
    _assert_same(got, dense_select(sample, b, 0.1, candidates=candidates, pool_preds=pool))


@pytest.mark.parametrize("seed", range(10))
def test_classification_matches_dense_reference(seed):
    rng = np.random.default_rng(300 + seed)
    n, c, n_masks = int(rng.integers(20, 40)), int(rng.integers(2, 5)), int(rng.integers(2, 12))
    probs = _probs(rng, n, c, n_masks)
    b = int(rng.integers(1, 21))
    tau_s = float(rng.uniform(1e-4, 1e-2))
    candidates = None if seed % 2 else rng.choice(n, size=20, replace=False)
    got = select_deimos(probs, b, tau_inv=tau_s, candidates=candidates)
    _assert_same(got, dense_select(probs, b, tau_s, candidates=candidates))


@pytest.mark.parametrize("seed", range(6))
def test_classification_pool_preds_matches_dense(seed):
    rng = np.random.default_rng(400 + seed)
    sample = _probs(rng, 15, 3, 10)
    pool = _probs(rng, 25, 3, 10)
    b = int(rng.integers(1, 21))
    got = select_deimos(sample, b, tau_inv=3e-3, pool_preds=pool)
    _assert_same(got, dense_select(sample, b, 3e-3, pool_preds=pool))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 25),
    n_masks=st.integers(2, 8),
    tau_inv=st.floats(1e-3, 10.0),
    data=st.data(),
)
def test_regression_property_matches_dense(n, n_masks, tau_inv, data):
    seed = data.draw(st.integers(0, 2**31 - 1))
    b = data.draw(st.integers(1, n))
    preds = np.random.default_rng(seed).normal(size=(n, n_masks))
    _assert_same(select_deimos(preds, b, tau_inv=tau_inv), dense_select(preds, b, tau_inv))


def test_paper_three_point_example():
    # Appendix A: V = [[9,3,2],[3,2,3],[2,3,9]]. Build predictions whose ddof=1 covariance is V
    # (tau^-1 = 0), so F F^T = V with F = cholesky(V) padded to J masks with zero-mean columns.
    V = np.array([[9.0, 3.0, 2.0], [3.0, 2.0, 3.0], [2.0, 3.0, 9.0]])
    preds = _predictions_with_covariance(V)
    np.testing.assert_allclose(np.cov(preds, ddof=1), V, atol=1e-10)
    sel = select_deimos(preds, 2, tau_inv=0.0)
    # EI of each point alone: sum_k V[k,x]^2 / V[x,x] -> (94/9, 22/2, 94/9); point 2 wins.
    assert sel.indices[0] == 1
    assert sel.gains[0] == pytest.approx(11.0)
    assert sel.indices[1] in (0, 2)
    assert sum(sel.gains) == pytest.approx(16.9, abs=0.05)
    # The optimal pair {1, 3}: trace reduction tr(V_{:,B} V_BB^-1 V_{B,:}).
    B = [0, 2]
    optimal = np.trace(V[:, B] @ np.linalg.solve(V[np.ix_(B, B)], V[B, :]))
    assert optimal == pytest.approx(19.6, abs=0.05)
    assert sum(sel.gains) < optimal


def _predictions_with_covariance(V: np.ndarray) -> np.ndarray:
    n = V.shape[0]
    L = np.linalg.cholesky(V)  # V = L L^T
    # Columns of a J x n matrix with orthonormal, zero-mean columns; preds = L Z^T sqrt(J-1).
    n_masks = n + 2
    basis = np.linalg.qr(np.vstack([np.ones(n_masks), np.eye(n_masks)[:n]]).T)[0][:, 1 : n + 1]
    return (L @ basis.T) * np.sqrt(n_masks - 1)


def test_gains_are_trace_reduction_of_sample_variance():
    rng = np.random.default_rng(7)
    preds = rng.normal(size=(30, 9))
    tau_inv = 0.2
    sel = select_deimos(preds, 6, tau_inv=tau_inv)
    V = np.cov(preds, ddof=1) + tau_inv * np.eye(30)
    B = list(sel.indices)
    reduction = np.trace(V[:, B] @ np.linalg.solve(V[np.ix_(B, B)], V[B, :]))
    assert sum(sel.gains) == pytest.approx(reduction, rel=1e-9)
    assert all(g1 >= 0 for g1 in sel.gains)


def test_ties_go_to_lowest_index():
    rng = np.random.default_rng(3)
    row = rng.normal(size=(1, 6))
    preds = np.vstack([rng.normal(size=(3, 6)) * 0.1, row, row, row])
    sel = select_deimos(preds, 1, tau_inv=0.1)
    assert sel.indices == (3,)


def test_torch_input_float64_matches_numpy_and_returns_python_types():
    rng = np.random.default_rng(11)
    preds = rng.normal(size=(40, 10))
    a = select_deimos(preds, 5, tau_inv=0.1)
    b = select_deimos(torch.from_numpy(preds), 5, tau_inv=0.1, candidates=torch.arange(40))
    assert a.indices == b.indices
    assert all(type(i) is int for i in a.indices)
    assert all(type(g) is float for g in a.gains)
    assert a.method == "deimos"


def test_float32_precision_agrees_with_float64_for_regression():
    rng = np.random.default_rng(5)
    preds = rng.normal(size=(500, 20))
    exact = select_deimos(preds, 10, tau_inv=0.1)
    fast = select_deimos(preds, 10, tau_inv=0.1, precision="float32")
    assert fast.indices[:5] == exact.indices[:5]
    np.testing.assert_allclose(fast.gains, exact.gains, rtol=1e-3)


def test_float32_input_is_computed_in_float64_by_default():
    rng = np.random.default_rng(6)
    probs = _probs(rng, 40, 4, 10).astype(np.float32)
    got = select_deimos(probs, 8, tau_inv=1e-3)
    _assert_same(got, dense_select(probs.astype(np.float64), 8, 1e-3))


def test_float32_precision_is_refused_for_classification():
    probs = _probs(np.random.default_rng(0), 6, 3, 5)
    with pytest.raises(InputError, match="precision='float32' is for regression only"):
        select_deimos(probs, 1, tau_inv=1e-3, precision="float32")
    with pytest.raises(InputError, match="precision must be 'float64' or 'float32'"):
        select_deimos(probs, 1, tau_inv=1e-3, precision="float16")


def test_does_not_modify_inputs():
    rng = np.random.default_rng(9)
    preds = rng.normal(size=(20, 5))
    pool = rng.normal(size=(10, 5))
    before = preds.copy(), pool.copy()
    select_deimos(preds, 3, tau_inv=0.1, pool_preds=pool)
    np.testing.assert_array_equal(preds, before[0])
    np.testing.assert_array_equal(pool, before[1])


def test_centred_factors_give_ddof1_covariance():
    rng = np.random.default_rng(1)
    preds = torch.from_numpy(rng.normal(size=(7, 12)))
    F = centred_factors(preds)
    np.testing.assert_allclose((F @ F.T).numpy(), np.cov(preds.numpy(), ddof=1), atol=1e-12)


def test_zero_noise_picks_stay_exact_after_rank_is_exhausted():
    # With tau^-1 = 0 and J = 3 the covariance has rank 2: after two picks every variance is 0.
    rng = np.random.default_rng(2)
    preds = rng.normal(size=(10, 3))
    got = select_deimos(preds, 4, tau_inv=0.0)
    ref = dense_select(preds, 4, 0.0)
    assert list(got.indices) == ref[0]
    np.testing.assert_allclose(got.gains, ref[1], rtol=1e-6, atol=1e-9)
    assert got.gains[2:] == pytest.approx([0.0, 0.0], abs=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preds": np.zeros(5)}, "ndim=1"),
        ({"preds": np.zeros((2, 3, 4, 5))}, "ndim=4"),
        ({"preds": np.zeros((5, 1))}, "J=1"),
        ({"preds": np.array([[0.0, np.nan], [1.0, 2.0]])}, "NaN or inf (first at point 0)"),
        ({"preds": np.array([[0.0, 1.0], [1.0, np.inf]])}, "NaN or inf (first at point 1)"),
        ({"tau_inv": -0.1}, "tau_inv must be >= 0"),
        ({"tau_inv": float("nan")}, "tau_inv must be finite"),
        ({"batch_size": 11}, "batch_size=11 is larger than the 10 pickable candidates"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"candidates": [0, 10]}, "index 10 is out of range for 10 points"),
        ({"candidates": [-1, 2]}, "index -1 is out of range"),
        ({"candidates": [1, 2, 1]}, "index 1 appears more than once"),
        ({"candidates": [0.5, 1.0]}, "must be integers"),
        ({"candidates": [1, 2], "batch_size": 3}, "larger than the 2 pickable candidates"),
        ({"pool_preds": np.zeros((4, 7))}, "does not match preds shape"),
        ({"pool_preds": np.zeros((4, 5)), "candidates": [4]}, "index 4 is out of range for 4"),
    ],
)
def test_bad_input_raises_clear_value_error(kwargs, message):
    args = {"preds": np.random.default_rng(0).normal(size=(10, 5)), "batch_size": 2}
    args["tau_inv"] = 0.1
    args.update(kwargs)
    preds, batch_size = args.pop("preds"), args.pop("batch_size")
    with pytest.raises(ValueError, match=_escape(message)) as info:
        select_deimos(preds, batch_size, **args)
    assert isinstance(info.value, InputError)


def test_classification_requires_positive_smoothing():
    probs = _probs(np.random.default_rng(0), 6, 3, 5)
    with pytest.raises(InputError, match="must be > 0 for classification"):
        select_deimos(probs, 1, tau_inv=0.0)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("seed", range(5))
def test_acquisition_function_is_eq5_on_the_dense_covariance(seed):
    rng = np.random.default_rng(500 + seed)
    n, n_masks = int(rng.integers(5, 40)), int(rng.integers(2, 12))
    preds = rng.normal(size=(n, n_masks)) * rng.uniform(0.1, 3, size=(n, 1))
    tau_inv = float(rng.uniform(0.001, 0.5))
    V = dense_covariance(preds) + tau_inv * np.eye(n)
    expected = (V**2).sum(axis=0) / np.diag(V)
    got = deimos_expected_improvement(preds, tau_inv).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # The first greedy pick is the acquisition function's maximum, with that value as its gain.
    first = select_deimos(preds, 1, tau_inv=tau_inv)
    assert first.indices[0] == int(np.argmax(expected))
    assert first.gains[0] == pytest.approx(expected.max(), rel=1e-10)


def test_acquisition_function_rejects_classification_and_bad_tau():
    with pytest.raises(InputError, match="regression predictions"):
        deimos_expected_improvement(np.ones((4, 2, 5)) / 2, 0.1)
    with pytest.raises(InputError):
        deimos_expected_improvement(np.random.default_rng(0).normal(size=(4, 5)), -1.0)


@pytest.mark.parametrize("seed", range(6))
def test_binary_classification_matches_dense_reference(seed):
    # c = 2 runs as a scalar problem in the sum-to-zero coordinate.
    rng = np.random.default_rng(500 + seed)
    n = int(rng.integers(20, 60))
    probs = _probs(rng, n, 2, int(rng.integers(2, 12)))
    b = int(rng.integers(1, 21))
    tau_s = float(rng.uniform(1e-4, 1e-2))
    candidates = None if seed % 2 else rng.choice(n, size=20, replace=False)
    got = select_deimos(probs, b, tau_inv=tau_s, candidates=candidates)
    _assert_same(got, dense_select(probs, b, tau_s, candidates=candidates))
    pool = _probs(rng, 30, 2, probs.shape[2])
    got = select_deimos(probs, b, tau_inv=tau_s, pool_preds=pool)
    _assert_same(got, dense_select(probs, b, tau_s, pool_preds=pool))


@pytest.mark.parametrize("c", [6, 10])
def test_many_classes_match_dense_reference(c):
    rng = np.random.default_rng(c)
    probs = _probs(rng, 60, c, 15)
    _assert_same(select_deimos(probs, 25, tau_inv=2e-3), dense_select(probs, 25, 2e-3))


def test_float32_softmax_probabilities_take_the_fast_path_and_keep_dense_picks():
    # float32 probabilities sum to one only up to rounding; the reduced coordinates must still
    # give the picks of the dense algorithm run on the same (float32-rounded) numbers.
    rng = np.random.default_rng(21)
    logits = torch.from_numpy(rng.normal(scale=1.5, size=(80, 5, 12))).float()
    probs = torch.softmax(logits, dim=1)
    assert float((probs.sum(dim=1) - 1).abs().max()) > 0  # really not exact
    assert _columns_sum_to_zero(centred_factors(probs.double()))
    got = select_deimos(probs, 20, tau_inv=1e-3)
    _assert_same(got, dense_select(probs.double().numpy(), 20, 1e-3))


def test_scores_that_do_not_sum_to_one_use_the_general_blocks():
    # Unnormalised per-class scores: 1^T F_x != 0, so nothing may be projected away.
    rng = np.random.default_rng(22)
    scores = rng.gamma(2.0, 1.0, size=(50, 4, 10))
    assert not _columns_sum_to_zero(centred_factors(torch.from_numpy(scores)))
    got = select_deimos(scores, 15, tau_inv=1e-2)
    _assert_same(got, dense_select(scores, 15, 1e-2))
    # A pool that sums to one with a sample that does not: still the general path, still exact.
    pool = _probs(rng, 30, 4, 10)
    got = select_deimos(scores, 10, tau_inv=1e-2, pool_preds=pool)
    _assert_same(got, dense_select(scores, 10, 1e-2, pool_preds=pool))
