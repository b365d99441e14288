"""Calibration (Appendix E): hand-checked formulas and the selection rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from deimos.errors import InputError
from deimos.uncertainty.calibration import (
    select_dropout_p,
    select_weight_decay_C,
    tau_from_prior,
    tau_inv_regression,
    tau_s_inv_classification,
    validation_accuracy,
    validation_mse,
    variance_error_r2,
)


def test_tau_from_prior_hand_values() -> None:
    assert tau_from_prior(0.5, 2.0, 10, 0.1) == pytest.approx(1.0)  # 0.5 * 4 / (2 * 10 * 0.1)
    assert tau_from_prior(0.2, 1.0, 100, 0.01) == pytest.approx(0.4)  # 0.8 / 2
    # lambda = C / N keeps tau constant as N grows (Appendix E).
    assert tau_from_prior(0.1, 1.5, 50, 3.0 / 50) == pytest.approx(
        tau_from_prior(0.1, 1.5, 500, 3.0 / 500)
    )


def test_tau_inv_regression_hand_value() -> None:
    preds = np.array([[1.0, 3.0], [2.0, 2.0], [0.0, 4.0]])  # ddof=1 variances 2, 0, 8
    assert tau_inv_regression(preds) == pytest.approx(0.15 * 10 / 3)
    assert tau_inv_regression(torch.tensor(preds), factor=0.1) == pytest.approx(1 / 3)


def test_tau_s_inv_classification_hand_value() -> None:
    probs = np.array([[[0.2, 0.6], [0.8, 0.4]], [[0.5, 0.5], [0.5, 0.5]]])  # variances .08 .08 0 0
    assert tau_s_inv_classification(probs) == pytest.approx(0.005 * 0.04)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: tau_from_prior(1.0, 1.0, 10, 0.1), "p must be"),
        (lambda: tau_from_prior(0.5, 0.0, 10, 0.1), "length_scale"),
        (lambda: tau_from_prior(0.5, 1.0, 0, 0.1), "n_train"),
        (lambda: tau_from_prior(0.5, 1.0, 10, 0.0), "weight_decay"),
        (lambda: tau_inv_regression(np.ones((3, 1))), "at least 2"),
        (lambda: tau_inv_regression(np.ones((3, 2, 4))), r"shape \(n, J\)"),
        (lambda: tau_inv_regression(np.ones((3, 4)), factor=-1.0), "factor"),
        (lambda: tau_s_inv_classification(np.ones((3, 4))), r"shape \(n, c, J\)"),
        (lambda: tau_s_inv_classification(np.full((2, 2, 3), np.nan)), "NaN"),
    ],
)
def test_bad_calibration_inputs_raise_input_error(call, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        call()


def preds_with(err_sqrt: np.ndarray, spread: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`(n, 2)` predictions with mean `y + err_sqrt` (squared error err_sqrt^2) and ddof=1
    variance `2 spread^2`."""
    mean = y + err_sqrt
    return np.stack([mean - spread, mean + spread], axis=1)


def test_variance_error_r2_matches_scipy_and_is_one_for_a_linear_relation() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=20)
    a = rng.normal(size=20)
    assert variance_error_r2(preds_with(a, a, y), y) == pytest.approx(1.0)  # var = 2 err
    b = rng.normal(size=20)
    expected = stats.pearsonr(a**2, 2 * b**2)[0] ** 2
    assert variance_error_r2(preds_with(a, b, y), y) == pytest.approx(expected)


def test_variance_error_r2_for_classification_hand_case() -> None:
    # Point errors (vs one-hot) and summed class variances, both computed by hand.
    probs = np.array(
        [
            [[0.9, 0.7], [0.1, 0.3]],  # mean (.8, .2), label 0: err .08; var .02 + .02
            [[0.5, 0.5], [0.5, 0.5]],  # mean (.5, .5), label 0: err .5; var 0
            [[0.2, 0.6], [0.8, 0.4]],  # mean (.4, .6), label 1: err .32; var .08 + .08
        ]
    )
    y = np.array([0, 0, 1])
    expected = np.corrcoef([0.08, 0.5, 0.32], [0.04, 0.0, 0.16])[0, 1] ** 2
    assert variance_error_r2(probs, y) == pytest.approx(expected)


def test_constant_variance_gives_zero_r2() -> None:
    y = np.arange(5.0)
    assert variance_error_r2(preds_with(np.arange(5.0), np.ones(5), y), y) == 0.0


def test_select_dropout_p_picks_the_best_r2_with_ties_to_the_smaller_p() -> None:
    rng = np.random.default_rng(1)
    y, a, b = rng.normal(size=(3, 30))
    good, poor = (preds_with(a, a, y), y), (preds_with(a, b, y), y)
    choice = select_dropout_p({0.3: poor, 0.1: good, 0.5: poor})
    assert choice.p == 0.1
    assert [p for p, _ in choice.r2_by_p] == [0.1, 0.3, 0.5]
    assert select_dropout_p({0.4: good, 0.2: good}).p == 0.2
    calls: list[float] = []

    def predict_for_p(p: float) -> tuple[np.ndarray, np.ndarray]:
        calls.append(p)
        return good if p == 0.25 else poor

    assert select_dropout_p([0.05, 0.25], predict_for_p).p == 0.25
    assert calls == [0.05, 0.25]


def test_select_weight_decay_c_by_metric_direction() -> None:
    mse = select_weight_decay_C({1.0: 0.3, 0.1: 0.2, 10.0: 0.5}, metric="mse")
    assert mse.C == 0.1 and mse.score_by_C == ((0.1, 0.2), (1.0, 0.3), (10.0, 0.5))
    assert select_weight_decay_C({1.0: 0.9, 0.1: 0.8, 10.0: 0.9}, metric="accuracy").C == 1.0
    chosen = select_weight_decay_C([0.5, 2.0], lambda c: 1.0 / c, metric="accuracy")
    assert chosen.C == 0.5


def test_validation_metrics_hand_values() -> None:
    assert validation_mse(np.array([1.0, 2.0]), np.array([0.0, 4.0])) == pytest.approx(2.5)
    probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    assert validation_accuracy(probs, np.array([0, 0, 0])) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: select_dropout_p({}), "no candidate"),
        (lambda: select_dropout_p([0.1]), "needs predict_for_p"),
        (
            lambda: select_dropout_p(
                {0.1: (np.ones((3, 2)), np.ones(3))}, lambda p: (np.ones((3, 2)), np.ones(3))
            ),
            "not both",
        ),
        (lambda: select_dropout_p({1.2: (np.ones((3, 2)), np.ones(3))}), "dropout p"),
        (lambda: select_dropout_p([0.1, 0.1], lambda p: (np.ones((3, 2)), np.ones(3))), "distinct"),
        (lambda: variance_error_r2(np.ones((3, 2)), np.ones(4)), r"shape \(3,\)"),
        (lambda: variance_error_r2(np.ones((2, 2)), np.ones(2)), "at least 3"),
        (lambda: variance_error_r2(np.ones((3, 2, 2)), np.array([0, 2, 1])), r"y\[1\] = 2"),
        (lambda: select_weight_decay_C({1.0: 0.1}, metric="r2"), "metric"),  # type: ignore[arg-type]
        (lambda: select_weight_decay_C({1.0: float("nan")}, metric="mse"), "score for C=1.0"),
        (lambda: select_weight_decay_C({-1.0: 0.1}, metric="mse"), "C must be"),
        (lambda: validation_accuracy(np.ones((2, 2)), np.array([0.0, 1.0])), "integer"),
        (lambda: validation_mse(np.ones(2), np.ones(3)), "shape"),
    ],
)
def test_bad_selection_inputs_raise_input_error(call, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        call()
