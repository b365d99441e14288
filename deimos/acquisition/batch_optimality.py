"""Appendix A of the DEIMOS paper: how far is greedy batch selection from the best batch?

Algorithm 1 builds a batch greedily: it picks the point with the largest expected improvement
(eq. (5)), conditions the covariance on it and repeats. The batch's total improvement is the drop
of the total predictive variance, `tr(V) - tr(V | B) = tr(V_{:,B} V_BB^-1 V_{B,:})`, and greedy
does not always maximise it: for `V = [[9,3,2],[3,2,3],[2,3,9]]` and b = 2 greedy takes point 2
and then 1 (16.9) while {1, 3} gives 19.6.

The study draws random covariances the way the paper does: predictions `(n, J)` i.i.d. standard
normal for J in {3, 50}, `V = tau^-1 I + Cov` (ddof=1) with `tau^-1` = 10% of the mean dropout
variance, and compares the greedy total with the exhaustive optimum over all `C(n, b)` subsets for
b in {2, 5, 10}, 200 instances per setting. Each instance's `V` is shared by the three batch
sizes. The default n = 18 points (C(18, 10) = 43,758 subsets per instance) keeps the full study to
a minute or two on 2 cores; `--n-points 20` (184,756 subsets) takes a few minutes.

This module holds the study's math: greedy and exhaustive-optimal batches, the random
covariances and the study loop with its summary. Its command line, CSV and plot are in
`deimos.acquisition.optimality`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from deimos.checks import check_int
from deimos.errors import InputError

logger = logging.getLogger(__name__)

MASK_COUNTS: tuple[int, ...] = (3, 50)
BATCH_SIZES: tuple[int, ...] = (2, 5, 10)
DEFAULT_N_POINTS = 18
TAU_FRACTION = 0.1  # tau^-1 as a fraction of the mean dropout variance (Appendix A)
# Past this many subsets per instance exhaustive search stops being "a few minutes" on 2 cores.
MAX_SUBSETS = 2_000_000
_SUBSET_CHUNK = 16_384
_OPTIMAL_RTOL = 1e-9

PAPER_V = ((9.0, 3.0, 2.0), (3.0, 2.0, 3.0), (2.0, 3.0, 9.0))
PAPER_GREEDY_TOTAL = 16.9  # to one decimal
PAPER_OPTIMAL_TOTAL = 19.6
PAPER_OPTIMAL_SUBSET = (0, 2)  # {1, 3} 1-based
PAPER_GREEDY_FIRST = 1  # point 2 1-based


@dataclass(frozen=True)
class InstanceResult:
    """Greedy and optimal trace reduction of one random covariance at one batch size."""

    setting: str
    n_masks: int
    batch_size: int
    instance: int
    greedy: float
    optimal: float

    @property
    def ratio(self) -> float:
        return self.greedy / self.optimal


@dataclass(frozen=True)
class SettingSummary:
    """Ratios greedy/optimal over the instances of one setting."""

    setting: str
    n_instances: int
    min_ratio: float
    mean_ratio: float
    frac_optimal: float


def _check_covariance(V: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    V_arr = np.asarray(V, dtype=np.float64)
    if V_arr.ndim != 2 or V_arr.shape[0] != V_arr.shape[1] or V_arr.shape[0] == 0:
        raise InputError(f"V must be a non-empty square matrix, got shape {V_arr.shape}")
    if not np.isfinite(V_arr).all():
        raise InputError("V contains NaN or inf")
    if not np.allclose(V_arr, V_arr.T, rtol=1e-10, atol=1e-12):
        raise InputError("V must be symmetric (a covariance matrix)")
    return V_arr


def _check_batch(b: int, n_points: int) -> None:
    if not 1 <= check_int(b, "batch size") <= n_points:
        raise InputError(f"batch size must be between 1 and {n_points} (the points), got {b}")


def trace_reduction(V: np.ndarray | Sequence[Sequence[float]], subset: Iterable[int]) -> float:
    """Total variance removed by labelling `subset`: `tr(V_{:,B} V_BB^-1 V_{B,:})`.

    This equals the sum of the per-step EI of eq. (5) when the batch is built in any order with
    every point in the sample.

    Args:
        V: `(n, n)` covariance.
        subset: distinct point indices B.

    Raises:
        InputError: V not a finite symmetric matrix, bad indices, or `V_BB` singular.
    """
    V_arr = _check_covariance(V)
    idx = [int(i) for i in subset]
    if len(set(idx)) != len(idx):
        raise InputError(f"subset has repeated indices: {idx}")
    if any(not 0 <= i < V_arr.shape[0] for i in idx):
        raise InputError(f"subset {idx} has an index out of range for {V_arr.shape[0]} points")
    if not idx:
        return 0.0
    V_NB = V_arr[:, idx]
    try:
        solved = np.linalg.solve(V_arr[np.ix_(idx, idx)], V_NB.T @ V_NB)  # V_BB^-1 V_BN V_NB
    except np.linalg.LinAlgError as exc:
        raise InputError(f"V restricted to subset {idx} is singular") from exc
    return float(np.trace(solved))


def greedy_batch(
    V: np.ndarray | Sequence[Sequence[float]], b: int
) -> tuple[list[int], list[float]]:
    """Algorithm 1 on a dense covariance, every point both in the sample and a candidate.

    Args:
        V: `(n, n)` positive definite covariance.
        b: batch size.

    Returns:
        The picks in order (ties to the lowest index) and each pick's EI when picked; the sum
        of the EIs is the batch's trace reduction.

    Raises:
        InputError: V not a finite symmetric matrix, or b out of range.
    """
    V_cur = _check_covariance(V).copy()
    n_points = V_cur.shape[0]
    _check_batch(b, n_points)
    picks: list[int] = []
    gains: list[float] = []
    for _ in range(b):
        var_N = np.diag(V_cur).copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            ei_N = np.where(var_N > 0, (V_cur**2).sum(axis=0) / var_N, 0.0)  # eq. (5)
        ei_N[picks] = -np.inf
        best = int(np.argmax(ei_N))
        picks.append(best)
        gains.append(float(ei_N[best]))
        if var_N[best] > 0:
            V_cur = V_cur - np.outer(V_cur[:, best], V_cur[best, :]) / var_N[best]
    return picks, gains


def all_subsets(n_points: int, b: int) -> np.ndarray:
    """Every size-b subset of `range(n_points)` in lexicographic order, `(C(n, b), b)`."""
    n_subsets = math.comb(n_points, b)
    flat = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(n_points), b)),
        dtype=np.intp,
        count=n_subsets * b,
    )
    return flat.reshape(n_subsets, b)


def optimal_batch(
    V: np.ndarray | Sequence[Sequence[float]], b: int, subsets: np.ndarray | None = None
) -> tuple[tuple[int, ...], float]:
    """The size-b subset with the largest trace reduction, by exhaustive search.

    `tr(V_{:,B} V_BB^-1 V_{B,:}) = tr(V_BB^-1 (V V)_BB)`, so with `W = V V` formed once each
    subset costs one `b x b` solve; subsets are solved in vectorised blocks.

    Args:
        V: `(n, n)` positive definite covariance.
        b: batch size.
        subsets: the precomputed `all_subsets(n, b)`, to reuse across instances.

    Returns:
        The best subset (the lexicographically first among ties) and its trace reduction.
    """
    V_arr = _check_covariance(V)
    n_points = V_arr.shape[0]
    _check_batch(b, n_points)
    if subsets is None:
        subsets = all_subsets(n_points, b)
    W = V_arr @ V_arr
    best_value = -np.inf
    best_row = 0
    for start in range(0, subsets.shape[0], _SUBSET_CHUNK):
        idx_K_B = subsets[start : start + _SUBSET_CHUNK]
        rows, cols = idx_K_B[:, :, None], idx_K_B[:, None, :]
        value_K = np.einsum("kii->k", np.linalg.solve(V_arr[rows, cols], W[rows, cols]))
        k = int(np.argmax(value_K))
        if value_K[k] > best_value:
            best_value, best_row = float(value_K[k]), start + k
    return tuple(int(i) for i in subsets[best_row]), best_value


def random_covariance(
    n_points: int, n_masks: int, rng: np.random.Generator, tau_fraction: float = TAU_FRACTION
) -> np.ndarray:
    """`V = tau^-1 I + Cov` of i.i.d. standard normal predictions `(n, J)` (eq. (3)).

    `tau^-1` is `tau_fraction` times the mean dropout variance, as in Appendix A/E.
    """
    preds_N_J = rng.standard_normal((n_points, n_masks))
    cov = np.cov(preds_N_J, ddof=1)
    tau_inv = tau_fraction * float(np.mean(np.diag(cov)))
    return cov + tau_inv * np.eye(n_points)


def run_study(
    *,
    n_instances: int,
    n_points: int = DEFAULT_N_POINTS,
    seed: int = 0,
    mask_counts: Sequence[int] = MASK_COUNTS,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    progress: bool = False,
) -> list[InstanceResult]:
    """Greedy vs exhaustive-optimal trace reduction on random covariances.

    Instance i of J masks uses `default_rng([seed, J, i])`, so any single instance can be
    re-drawn on its own.

    Raises:
        InputError: a count below 1, fewer points than the largest batch, or more subsets than
            exhaustive search can cover (`MAX_SUBSETS`).
    """
    if n_instances < 1:
        raise InputError(f"--instances must be at least 1, got {n_instances}")
    if not batch_sizes or not mask_counts:
        raise InputError("need at least one batch size and one mask count")
    if min(mask_counts) < 2:
        raise InputError(f"mask counts must be >= 2 to estimate a covariance, got {mask_counts}")
    b_max = max(batch_sizes)
    if n_points < b_max:
        raise InputError(
            f"--n-points must be at least the largest batch size {b_max}, got {n_points}"
        )
    n_subsets = max(math.comb(n_points, b) for b in batch_sizes)
    if n_subsets > MAX_SUBSETS:
        raise InputError(
            f"--n-points {n_points} needs {n_subsets:,} subsets per instance, more than "
            f"{MAX_SUBSETS:,}: exhaustive search would take hours"
        )
    subsets = {b: all_subsets(n_points, b) for b in batch_sizes}
    results: list[InstanceResult] = []
    for n_masks in mask_counts:
        for instance in tqdm(
            range(n_instances), desc=f"J={n_masks}", disable=not progress, leave=False
        ):
            V = random_covariance(
                n_points, n_masks, np.random.default_rng([seed, n_masks, instance])
            )
            for b in batch_sizes:
                _, gains = greedy_batch(V, b)
                _, optimal = optimal_batch(V, b, subsets[b])
                results.append(
                    InstanceResult(
                        setting=f"J={n_masks},b={b}",
                        n_masks=n_masks,
                        batch_size=b,
                        instance=instance,
                        greedy=float(sum(gains)),
                        optimal=optimal,
                    )
                )
    logger.info("batch_optimality instances=%d n_points=%d", len(results), n_points)
    return results


def summarize(results: Sequence[InstanceResult]) -> list[SettingSummary]:
    """Min and mean ratio, and the fraction of instances where greedy is optimal, per setting."""
    by_setting: dict[str, list[float]] = {}
    for r in results:
        by_setting.setdefault(r.setting, []).append(r.ratio)
    return [
        SettingSummary(
            setting=setting,
            n_instances=len(ratios),
            min_ratio=float(np.min(ratios)),
            mean_ratio=float(np.mean(ratios)),
            frac_optimal=float(np.mean(np.asarray(ratios) >= 1.0 - _OPTIMAL_RTOL)),
        )
        for setting, ratios in by_setting.items()
    ]


def check_paper_example() -> tuple[list[int], float, tuple[int, ...], float]:
    """Greedy and optimal batches of size 2 for the paper's 3x3 example.

    Returns:
        `(greedy picks, greedy total, optimal subset, optimal total)`, zero-based.
    """
    picks, gains = greedy_batch(np.array(PAPER_V), 2)
    subset, optimal = optimal_batch(np.array(PAPER_V), 2)
    return picks, float(sum(gains)), subset, optimal
