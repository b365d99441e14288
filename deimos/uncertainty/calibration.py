"""Choosing `tau`, `tau_s`, the dropout probability and the weight-decay constant (Appendix E).

All functions are pure: arrays (or callbacks that train and predict) in, numbers out. Arrays may
be NumPy or torch; the arithmetic runs in float64 NumPy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch

from deimos.acquisition.selection import ArrayLike, as_tensor, check_predictions
from deimos.checks import check_int, check_number
from deimos.errors import InputError

logger = logging.getLogger(__name__)

Metric = Literal["mse", "accuracy"]
PredictionsAndTargets = tuple[ArrayLike, ArrayLike]
T = TypeVar("T")


def tau_from_prior(p: float, length_scale: float, n_train: int, weight_decay: float) -> float:
    """Model precision from the prior: `tau = (1 - p) l^2 / (2 N lambda)` (sec. 3, Appendix E).

    Args:
        p: dropout probability in `[0, 1)`.
        length_scale: prior length-scale `l > 0`.
        n_train: number of training points `N >= 1`.
        weight_decay: `lambda > 0`.
    """
    check_number(p, "p", low=0.0, high=1.0, high_open=True)
    check_number(length_scale, "length_scale", low=0.0, low_open=True)
    check_int(n_train, "n_train", minimum=1)
    check_number(weight_decay, "weight_decay", low=0.0, low_open=True)
    return (1.0 - p) * length_scale**2 / (2.0 * int(n_train) * weight_decay)


def tau_inv_regression(val_preds_N_J: ArrayLike, factor: float = 0.15) -> float:
    """`tau^-1 = factor x` mean validation dropout variance (Appendix E: factor 0.1-0.2).

    Args:
        val_preds_N_J: fixed-mask predictions of the initial model on the validation set, `(n, J)`.
        factor: multiplier, > 0.

    Returns:
        `factor * mean_n var_j(P[n, j])`, the variance with ddof=1.
    """
    check_number(factor, "factor", low=0.0, low_open=True)
    preds = _predictions(val_preds_N_J, "val_preds_N_J", ndim=2)
    return float(factor * preds.var(axis=-1, ddof=1).mean())


def tau_s_inv_classification(val_probs_N_C_J: ArrayLike, factor: float = 0.005) -> float:
    """`tau_s^-1 = factor x` mean class-probability dropout variance (Appendix E: 0.001-0.01).

    Args:
        val_probs_N_C_J: fixed-mask class probabilities on the validation set, `(n, c, J)`.
        factor: multiplier, > 0.

    Returns:
        `factor * mean_{n,k} var_j(P[n, k, j])`, the variance with ddof=1.
    """
    check_number(factor, "factor", low=0.0, low_open=True)
    probs = _predictions(val_probs_N_C_J, "val_probs_N_C_J", ndim=3)
    return float(factor * probs.var(axis=-1, ddof=1).mean())


def variance_error_r2(preds: ArrayLike, y: ArrayLike) -> float:
    """Squared Pearson correlation between observed squared error and predicted variance.

    Regression, `preds` `(n, J)` and `y` `(n,)`: error `(mean_j P[n, j] - y_n)^2` against
    `var_j P[n, j]`. Classification, `preds` `(n, c, J)` and integer labels `y`: error
    `sum_k (mean_j P[n, k, j] - [y_n = k])^2` against `sum_k var_j P[n, k, j]`. A constant error
    or variance carries no information about the other: its R^2 is 0 (logged).
    """
    P = _predictions(preds, "preds", ndim=None)
    target = _targets(y, P, "y")
    if P.shape[0] < 3:
        raise InputError(f"preds has {P.shape[0]} points; R^2 needs at least 3")
    mean = P.mean(axis=-1)
    var = P.var(axis=-1, ddof=1)
    if P.ndim == 3:
        onehot = np.eye(P.shape[1])[target.astype(np.int64)]
        err = ((mean - onehot) ** 2).sum(axis=1)
        var = var.sum(axis=1)
    else:
        err = (mean - target) ** 2
    if np.ptp(err) == 0 or np.ptp(var) == 0:
        logger.warning("event=variance_error_r2_constant note='constant error or variance, R^2=0'")
        return 0.0
    r = float(np.corrcoef(err, var)[0, 1])
    return r * r


@dataclass(frozen=True)
class DropoutChoice:
    """Result of `select_dropout_p`.

    Attributes:
        p: the chosen dropout probability (highest R^2; ties go to the smaller p).
        r2_by_p: `(p, R^2)` for every candidate, in increasing p.
    """

    p: float
    r2_by_p: tuple[tuple[float, float], ...]


def select_dropout_p(
    candidates: Mapping[float, PredictionsAndTargets] | Sequence[float],
    predict_for_p: Callable[[float], PredictionsAndTargets] | None = None,
) -> DropoutChoice:
    """Choose the dropout probability whose predicted variance best tracks the error.

    Appendix E: for each candidate `p`, train on the initial set, predict the validation set
    under fixed masks and score `variance_error_r2`; keep the `p` with the highest R^2.

    Args:
        candidates: either `{p: (val_preds, val_y)}` already computed, or a sequence of `p` when
            `predict_for_p` is given.
        predict_for_p: callback `p -> (val_preds, val_y)` (train a model with dropout `p` and
            predict the validation set); only with a sequence of `p`.

    Returns:
        A `DropoutChoice`.
    """
    results = _collect(candidates, predict_for_p, "p", "predict_for_p")
    for p in results:
        check_number(p, "dropout p", low=0.0, high=1.0, high_open=True)
    r2_by_p = tuple((float(p), variance_error_r2(*results[p])) for p in sorted(results))
    best_p, best_r2 = r2_by_p[0]
    for p, r2 in r2_by_p[1:]:
        if r2 > best_r2:
            best_p, best_r2 = p, r2
    logger.info("event=select_dropout_p p=%g r2=%.4f", best_p, best_r2)
    return DropoutChoice(p=best_p, r2_by_p=r2_by_p)


def validation_mse(mean_preds_N: ArrayLike, y_N: ArrayLike) -> float:
    """Mean squared error of `(n,)` predictions against `(n,)` targets."""
    pred = as_tensor(mean_preds_N, "mean_preds_N").double().cpu().numpy()
    y = as_tensor(y_N, "y_N").double().cpu().numpy()
    if pred.ndim != 1 or pred.shape != y.shape or pred.size == 0:
        raise InputError(
            f"mean_preds_N and y_N must both have shape (n,), n >= 1; "
            f"got {pred.shape} and {y.shape}"
        )
    return float(((pred - y) ** 2).mean())


def validation_accuracy(probs_N_C: ArrayLike, y_N: ArrayLike) -> float:
    """Share of points whose most probable class (lowest index on ties) equals the label."""
    probs = as_tensor(probs_N_C, "probs_N_C").double().cpu().numpy()
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise InputError(f"probs_N_C must have shape (n, c), n >= 1; got {probs.shape}")
    y = _labels(y_N, probs.shape[0], probs.shape[1], "y_N")
    return float((probs.argmax(axis=1) == y).mean())


@dataclass(frozen=True)
class WeightDecayChoice:
    """Result of `select_weight_decay_C`.

    Attributes:
        C: the chosen constant in `lambda = C / N` (best score; ties go to the smaller C).
        score_by_C: `(C, validation score)` for every candidate, in increasing C.
        metric: `"mse"` (lower is better) or `"accuracy"` (higher is better).
    """

    C: float
    score_by_C: tuple[tuple[float, float], ...]  # noqa: N815
    metric: Metric


def select_weight_decay_C(  # noqa: N802  (the paper's C)
    candidates: Mapping[float, float] | Sequence[float],
    evaluate_for_C: Callable[[float], float] | None = None,
    *,
    metric: Metric,
) -> WeightDecayChoice:
    """Choose the weight-decay constant `C` by validation score after training on the initial set.

    Args:
        candidates: `{C: validation score}` already computed, or a sequence of `C` when
            `evaluate_for_C` is given.
        evaluate_for_C: callback `C -> score` (train on the initial set with `lambda = C / N`,
            return `validation_mse` or `validation_accuracy`); only with a sequence of `C`.
        metric: `"mse"` (lowest wins) or `"accuracy"` (highest wins).

    Returns:
        A `WeightDecayChoice`.
    """
    if metric not in ("mse", "accuracy"):
        raise InputError(f"metric must be 'mse' or 'accuracy', got {metric!r}")
    scores = _collect(candidates, evaluate_for_C, "C", "evaluate_for_C")
    for C, score in scores.items():
        check_number(C, "C", low=0.0)
        check_number(score, f"score for C={C}")
    score_by_C = tuple((float(C), float(scores[C])) for C in sorted(scores))
    sign = 1.0 if metric == "accuracy" else -1.0
    best_C, best_score = score_by_C[0]
    for C, score in score_by_C[1:]:
        if sign * score > sign * best_score:
            best_C, best_score = C, score
    logger.info("event=select_weight_decay_C C=%g %s=%.6g", best_C, metric, best_score)
    return WeightDecayChoice(C=best_C, score_by_C=score_by_C, metric=metric)


# --- helpers ----------------------------------------------------------------------------------


def _collect(
    candidates: Mapping[float, T] | Sequence[float],
    callback: Callable[[float], T] | None,
    what: str,
    callback_name: str,
) -> dict[float, T]:
    if isinstance(candidates, Mapping):
        if callback is not None:
            raise InputError(
                f"give either a mapping of {what} -> results or a sequence of {what} with "
                f"{callback_name}, not both"
            )
        results = dict(candidates)
    else:
        if callback is None:
            raise InputError(f"a sequence of {what} values needs {callback_name}")
        if isinstance(candidates, str | bytes) or not isinstance(candidates, Sequence):
            raise InputError(f"candidates must be a mapping or a sequence of {what} values")
        if len(set(candidates)) != len(candidates):
            raise InputError(f"candidate {what} values must be distinct, got {list(candidates)}")
        results = {c: callback(c) for c in candidates}
    if not results:
        raise InputError(f"no candidate {what} values given")
    return results


def _predictions(x: ArrayLike, name: str, ndim: int | None) -> np.ndarray:
    t = as_tensor(x, name)
    if ndim is not None and t.ndim != ndim:
        want = "(n, J)" if ndim == 2 else "(n, c, J)"
        raise InputError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    check_predictions(t, name)
    return t.detach().to(torch.float64).cpu().numpy()


def _targets(y: ArrayLike, P: np.ndarray, name: str) -> np.ndarray:
    if P.ndim == 3:
        return _labels(y, P.shape[0], P.shape[1], name)
    t = as_tensor(y, name).double().cpu().numpy()
    if t.shape != (P.shape[0],):
        raise InputError(f"{name} must have shape ({P.shape[0]},), got {t.shape}")
    if not np.isfinite(t).all():
        raise InputError(f"{name} contains NaN or inf")
    return t


def _labels(y: ArrayLike, n: int, n_classes: int, name: str) -> np.ndarray:
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.shape != (n,):
        raise InputError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}[{i}] = {arr[i]} is not a class label in [0, {n_classes})")
    return arr.astype(np.int64)
