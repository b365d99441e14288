"""Baseline acquisition functions against hand-computed and brute-force values."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from deimos.acquisition.batchbald import select_batchbald
from deimos.acquisition.kcenter import select_kcenter
from deimos.acquisition.scores import (
    select_bald,
    select_max_entropy,
    select_max_variance,
    select_random,
)
from deimos.acquisition.selection import Selection
from deimos.errors import InputError

LOG2 = math.log(2.0)


def _softmax_probs(
    rng: np.random.Generator, n: int, c: int, J: int, scale: float = 2.0
) -> np.ndarray:
    logits = rng.normal(size=(n, c, J)) * scale
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _entropy(p: np.ndarray, axis: int) -> np.ndarray:
    safe = np.where(p > 0, p, 1.0)
    return -(p * np.log(safe)).sum(axis=axis)


def _brute_joint_mi(probs_N_K_J: np.ndarray, subset: list[int]) -> float:
    """MI(y_B; w) by enumerating every class configuration of B."""
    n_classes, n_masks = probs_N_K_J.shape[1:]
    joint_entropy = 0.0
    for config in itertools.product(range(n_classes), repeat=len(subset)):
        p_J = np.ones(n_masks)
        for i, y in zip(subset, config, strict=True):
            p_J = p_J * probs_N_K_J[i, y]
        p = p_J.mean()
        if p > 0:
            joint_entropy -= p * math.log(p)
    cond = sum(float(_entropy(probs_N_K_J[i], axis=0).mean()) for i in subset)
    return joint_entropy - cond


def _brute_batchbald(probs_N_K_J: np.ndarray, b: int) -> tuple[list[int], list[float]]:
    picks: list[int] = []
    gains: list[float] = []
    for _ in range(b):
        scores = [
            -math.inf if x in picks else _brute_joint_mi(probs_N_K_J, [*picks, x])
            for x in range(probs_N_K_J.shape[0])
        ]
        best = int(np.argmax(scores))
        picks.append(best)
        gains.append(scores[best])
    return picks, gains


# Three points, two classes, two masks: point 0 is uncertain but the masks agree (aleatoric),
# point 1's masks disagree completely (epistemic), point 2 is fairly sure.
PROBS_3_2_2 = np.array(
    [
        [[0.5, 0.5], [0.5, 0.5]],
        [[1.0, 0.0], [0.0, 1.0]],
        [[0.9, 0.9], [0.1, 0.1]],
    ]
)
H_09 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))


# --- random ---------------------------------------------------------------------------------


def test_random_is_reproducible_from_a_seed_and_changes_with_it() -> None:
    preds = np.zeros((50, 4))
    a = select_random(preds, 10, seed=3)
    b = select_random(preds, 10, seed=3)
    c = select_random(preds, 10, seed=4)
    assert a == b
    assert a.indices != c.indices
    assert len(set(a.indices)) == 10
    assert a.gains == (0.0,) * 10
    assert a.method == "random"
    assert all(isinstance(i, int) for i in a.indices)


def test_random_accepts_a_generator_and_ignores_candidate_order() -> None:
    preds = np.zeros((30, 3))
    cand = [29, 3, 17, 8, 11, 21]
    a = select_random(preds, 4, seed=np.random.default_rng(7), candidates=cand)
    b = select_random(preds, 4, seed=7, candidates=sorted(cand))
    assert a == b
    assert set(a.indices) <= set(cand)


def test_random_picks_from_the_pool_when_given() -> None:
    sel = select_random(np.zeros((3, 4)), 5, seed=0, pool_preds=np.zeros((8, 4)))
    assert max(sel.indices) < 8
    assert len(set(sel.indices)) == 5


# --- max variance ---------------------------------------------------------------------------


def test_max_variance_hand_computed_with_ties_to_lowest_index() -> None:
    preds = np.array([[0.0, 0.0], [0.0, 2.0], [1.0, -1.0], [5.0, 5.0], [0.0, 1.0]])
    # ddof=1 variances: 0, 2, 2, 0, 0.5
    sel = select_max_variance(preds, 3)
    assert sel.indices == (1, 2, 4)
    assert sel.gains == pytest.approx((2.0, 2.0, 0.5))
    assert sel.method == "maxvar"
    reordered = select_max_variance(preds, 2, candidates=[4, 2, 1, 0])
    assert reordered.indices == (1, 2)


def test_max_variance_matches_numpy_and_accepts_float32_tensors() -> None:
    rng = np.random.default_rng(0)
    preds = rng.normal(size=(40, 7))
    expected = np.argsort(-preds.var(axis=1, ddof=1), kind="stable")[:5]
    assert select_max_variance(preds, 5).indices == tuple(expected.tolist())
    t = torch.tensor(preds, dtype=torch.float32)
    assert select_max_variance(t, 5).indices == tuple(expected.tolist())


def test_max_variance_uses_pool_predictions_and_indexes_the_pool() -> None:
    sample = np.zeros((4, 3))
    pool = np.array([[0.0, 0.0, 0.0], [0.0, 3.0, -3.0], [1.0, 2.0, 3.0]])
    sel = select_max_variance(sample, 2, pool_preds=pool)
    assert sel.indices == (1, 2)
    assert select_max_variance(sample, 1, pool_preds=pool, candidates=[0, 2]).indices == (2,)


def test_max_variance_rejects_classification() -> None:
    with pytest.raises(InputError, match="maxvar is for regression"):
        select_max_variance(PROBS_3_2_2, 1)


# --- max entropy / BALD ---------------------------------------------------------------------


def test_max_entropy_hand_computed() -> None:
    sel = select_max_entropy(PROBS_3_2_2, 3)
    assert sel.indices == (0, 1, 2)  # 0 and 1 tie at log 2
    assert sel.gains == pytest.approx((LOG2, LOG2, H_09))
    assert sel.method == "maxent"


def test_bald_hand_computed() -> None:
    sel = select_bald(PROBS_3_2_2, 3)
    assert sel.indices == (1, 0, 2)  # 0 and 2 tie at MI 0
    assert sel.gains == pytest.approx((LOG2, 0.0, 0.0), abs=1e-12)
    assert sel.method == "bald"


def test_bald_matches_numpy_reference_on_random_probabilities() -> None:
    probs = _softmax_probs(np.random.default_rng(1), 30, 4, 9)
    mi = _entropy(probs.mean(axis=2), axis=1) - _entropy(probs, axis=1).mean(axis=1)
    sel = select_bald(probs, 6)
    assert sel.indices == tuple(np.argsort(-mi, kind="stable")[:6].tolist())
    assert sel.gains == pytest.approx(tuple(np.sort(mi)[::-1][:6]), rel=1e-10)


@pytest.mark.parametrize("selector", [select_max_entropy, select_bald, select_batchbald])
def test_classification_selectors_reject_regression(selector: Callable[..., Selection]) -> None:
    with pytest.raises(InputError, match="for classification"):
        selector(np.zeros((4, 3)), 1)


@pytest.mark.parametrize("selector", [select_max_entropy, select_bald, select_batchbald])
def test_classification_selectors_reject_non_probabilities(
    selector: Callable[..., Selection],
) -> None:
    logits = np.random.default_rng(0).normal(size=(5, 3, 4))
    with pytest.raises(InputError, match="sum to"):
        selector(logits - logits.min() + 0.1, 1)
    negative = PROBS_3_2_2.copy()
    negative[2, :, 0] = [1.1, -0.1]
    with pytest.raises(InputError, match=r"negative class probability \(point 2\)"):
        selector(negative, 1)


# --- BatchBALD -----------------------------------------------------------------------------


def test_batchbald_with_one_pick_is_bald() -> None:
    probs = _softmax_probs(np.random.default_rng(2), 25, 3, 8)
    bb = select_batchbald(probs, 1)
    bald = select_bald(probs, 1)
    assert bb.indices == bald.indices
    assert bb.gains == pytest.approx(bald.gains, rel=1e-10)
    assert bb.method == "batchbald"


def test_batchbald_exact_equals_brute_force_greedy_joint_mi() -> None:
    probs = _softmax_probs(np.random.default_rng(3), 10, 3, 6)
    picks, gains = _brute_batchbald(probs, 4)  # 81 configurations: exact throughout
    sel = select_batchbald(probs, 4)
    assert list(sel.indices) == picks
    assert sel.gains == pytest.approx(gains, rel=1e-10)


def test_batchbald_candidates_and_pool_index_the_pickable_points() -> None:
    probs = _softmax_probs(np.random.default_rng(4), 10, 3, 6)
    cand = [9, 2, 5, 7, 0]
    sub_picks, sub_gains = _brute_batchbald(probs[sorted(cand)], 3)
    sel = select_batchbald(probs, 3, candidates=cand)
    assert list(sel.indices) == [sorted(cand)[i] for i in sub_picks]
    assert sel.gains == pytest.approx(sub_gains, rel=1e-10)
    pooled = select_batchbald(probs[:2], 3, pool_preds=probs, candidates=cand)
    assert pooled == sel


def test_batchbald_monte_carlo_estimate_is_close_and_seeded() -> None:
    probs = _softmax_probs(np.random.default_rng(5), 14, 2, 10)
    # 2^10 configurations exceed the budget of 512: the last picks use 512 sampled ones, whose
    # estimate of the final joint MI has a standard deviation of about 0.07 nats here.
    errors = []
    for seed in range(8):
        sel = select_batchbald(probs, 12, n_configs=512, seed=seed)
        assert len(set(sel.indices)) == 12
        errors.append(sel.gains[-1] - _brute_joint_mi(probs, list(sel.indices)))
    assert max(abs(e) for e in errors) < 0.4
    assert abs(float(np.mean(errors))) < 0.1
    assert len(set(errors)) > 1  # the seed matters
    again = select_batchbald(probs, 12, n_configs=512, seed=7)
    assert again.gains[-1] - _brute_joint_mi(probs, list(again.indices)) == errors[-1]


def test_batchbald_runs_past_the_exact_budget_at_moderate_scale() -> None:
    probs = torch.softmax(torch.randn(300, 10, 20, generator=torch.Generator().manual_seed(0)), 1)
    sel = select_batchbald(probs.to(torch.float32), 8, n_configs=256)
    assert len(set(sel.indices)) == 8
    assert all(math.isfinite(g) for g in sel.gains)
    bald_first = select_bald(probs, 1)
    assert sel.indices[0] == bald_first.indices[0]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_batchbald_rejects_bad_config_budget(bad: Any) -> None:
    with pytest.raises(InputError, match="n_configs"):
        select_batchbald(PROBS_3_2_2, 1, n_configs=bad)


# --- shared input checks --------------------------------------------------------------------

REGRESSION = np.random.default_rng(0).normal(size=(6, 4))
CLASSIFICATION = _softmax_probs(np.random.default_rng(0), 6, 3, 4)
PRED_SELECTORS: list[tuple[Callable[..., Selection], np.ndarray]] = [
    (select_random, REGRESSION),
    (select_max_variance, REGRESSION),
    (select_max_entropy, CLASSIFICATION),
    (select_bald, CLASSIFICATION),
    (select_batchbald, CLASSIFICATION),
]


@pytest.mark.parametrize(("selector", "preds"), PRED_SELECTORS)
def test_bad_inputs_raise_input_error(
    selector: Callable[..., Selection], preds: np.ndarray
) -> None:
    with pytest.raises(InputError, match="ndim=1"):
        selector(preds.reshape(-1), 1)
    with pytest.raises(InputError, match="J=1"):
        selector(preds[..., :1], 1)
    nan = preds.copy()
    nan[3, ..., 0] = np.nan
    with pytest.raises(InputError, match=r"NaN or inf \(first at point 3\)"):
        selector(nan, 1)
    with pytest.raises(InputError, match="larger than the 6 pickable"):
        selector(preds, 7)
    with pytest.raises(InputError, match="larger than the 2 pickable"):
        selector(preds, 3, candidates=[0, 1])
    with pytest.raises(InputError, match="positive integer"):
        selector(preds, 0)
    with pytest.raises(InputError, match="index 6 is out of range"):
        selector(preds, 1, candidates=[0, 6])
    with pytest.raises(InputError, match="index 2 appears more than once"):
        selector(preds, 1, candidates=[2, 1, 2])
    with pytest.raises(InputError, match="pool_preds shape"):
        selector(preds, 1, pool_preds=preds[..., :3])
    with pytest.raises(InputError, match="must be a numpy array or torch tensor"):
        selector(preds.tolist(), 1)


@pytest.mark.parametrize(("selector", "preds"), PRED_SELECTORS)
def test_inputs_are_not_modified(selector: Callable[..., Selection], preds: np.ndarray) -> None:
    before = preds.copy()
    selector(preds, 3)
    np.testing.assert_array_equal(preds, before)


# --- k-Center -------------------------------------------------------------------------------

LINE = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])


def test_kcenter_hand_computed_on_a_line() -> None:
    sel = select_kcenter(LINE, 3, labelled=[0])
    # distances to {0}: 1, 2, 10, 11 -> pick 11; to {0, 11}: 1, 2, 1 -> pick 2; then 1 vs 1
    assert sel.indices == (4, 2, 1)
    assert sel.gains == pytest.approx((11.0, 2.0, 1.0))
    assert sel.method == "kcenter"


def test_kcenter_outlier_budget_skips_the_farthest_points() -> None:
    sel = select_kcenter(LINE, 2, labelled=[0], n_outliers=1)
    # skip 11 (dist 11), pick 10; then distances 1, 2, 1: skip point 2, pick point 1 (tie with 4)
    assert sel.indices == (3, 1)
    assert sel.gains == pytest.approx((10.0, 1.0))


def test_kcenter_without_labelled_points_starts_at_the_centre() -> None:
    sel = select_kcenter(LINE, 2)
    assert sel.indices == (2, 4)  # mean 4.8 is nearest to 2; then 11 is farthest
    assert sel.gains[0] == math.inf
    assert sel.gains[1] == pytest.approx(9.0)


def test_kcenter_matches_brute_force_greedy() -> None:
    rng = np.random.default_rng(6)
    emb = rng.normal(size=(60, 5))
    labelled = [3, 17, 40]
    cand = [i for i in range(60) if i not in labelled and i % 4 != 1]
    D = np.linalg.norm(emb[:, None, :] - emb[None, :, :], axis=2)
    centers = list(labelled)
    picks: list[int] = []
    gains: list[float] = []
    for _ in range(8):
        dist = {x: D[x, centers].min() for x in cand if x not in picks}
        best = max(dist, key=lambda x: (dist[x], -x))
        picks.append(best)
        gains.append(dist[best])
        centers.append(best)
    sel = select_kcenter(torch.tensor(emb), 8, labelled=labelled, candidates=cand[::-1])
    assert list(sel.indices) == picks
    assert sel.gains == pytest.approx(gains, rel=1e-12)


def test_kcenter_bad_inputs() -> None:
    with pytest.raises(InputError, match=r"shape \(n, d\)"):
        select_kcenter(LINE.ravel(), 1)
    nan = LINE.copy()
    nan[2, 0] = np.inf
    with pytest.raises(InputError, match=r"NaN or inf \(first at point 2\)"):
        select_kcenter(nan, 1)
    with pytest.raises(InputError, match="labelled index 5 is out of range"):
        select_kcenter(LINE, 1, labelled=[5])
    with pytest.raises(InputError, match="candidates index 0 is also in labelled"):
        select_kcenter(LINE, 1, labelled=[0], candidates=[0, 1])
    with pytest.raises(InputError, match="n_outliers must be a non-negative integer"):
        select_kcenter(LINE, 1, n_outliers=-1)
    with pytest.raises(InputError, match="n_outliers must be a non-negative integer"):
        select_kcenter(LINE, 1, n_outliers=1.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="plus n_outliers=2 is more than the 4 candidates"):
        select_kcenter(LINE, 3, labelled=[0], n_outliers=2)
    with pytest.raises(InputError, match="larger than the 4 pickable"):
        select_kcenter(LINE, 5, labelled=[1])
