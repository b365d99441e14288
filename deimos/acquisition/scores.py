"""The acquisition baselines the DEIMOS paper compares against (section 5 of docs/DEIMOS.md).

Every selector but k-Center has the call shape of `deimos.acquisition.deimos.select_deimos`:
`(preds, batch_size, *, candidates=None, pool_preds=None, ...)` and returns a frozen
`Selection` whose indices are in pick order and whose gains are each pick's score when picked.

The scores here depend only on the pickable points' own predictions. So with `pool_preds` the
scores come from the pool and `preds` (the representative sample) is only checked for a matching
shape: it keeps the call shape the same across the registry.

Ties go to the lowest point index, whatever order `candidates` is given in.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from deimos.acquisition.selection import (
    ArrayLike,
    Selection,
    check_sample_and_pool,
    to_selection,
)
from deimos.errors import InputError

logger = logging.getLogger(__name__)

# Class probabilities may drift this far from summing to one (float32 softmax sums are ~1e-6 off).
_PROB_SUM_TOL = 1e-3
# Elements per intermediate block (BatchBALD joint probabilities, k-Center distances): ~32 MB in
# float64, so memory stays O(n) in the number of points.
_BLOCK_ELEMENTS = 1 << 22


def select_random(
    preds: ArrayLike,
    batch_size: int,
    *,
    seed: int | np.random.Generator | None = None,
    candidates: Any = None,
    pool_preds: ArrayLike | None = None,
) -> Selection:
    """Pick `batch_size` candidates uniformly at random without replacement.

    Args:
        preds: `(n, J)` or `(n, c, J)` fixed-mask predictions of the sample (only their number of
            points matters, unless `pool_preds` is given).
        batch_size: number of points to pick, b.
        seed: an int seed or a NumPy Generator. The same seed gives the same batch; None draws
            fresh OS entropy.
        candidates: indices of the pickable points into `preds` (or `pool_preds`); default all.
        pool_preds: `(m, J)` / `(m, c, J)` predictions of pool points; they are then the
            pickable points.

    Returns:
        Selection with method "random" and gains 0.0.

    Raises:
        InputError: bad predictions, candidates or batch size.
    """
    _, cand_idx = _pickable(preds, pool_preds, candidates, batch_size)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # Sort first so the result depends on the candidate set, not on the order it was listed in.
    cand_sorted = np.sort(cand_idx.numpy())
    picks = rng.permutation(cand_sorted)[:batch_size]
    return to_selection(picks.tolist(), [0.0] * batch_size, "random")


def select_max_variance(
    preds: ArrayLike,
    batch_size: int,
    *,
    candidates: Any = None,
    pool_preds: ArrayLike | None = None,
) -> Selection:
    """Pick the `batch_size` candidates with the largest predictive variance (regression).

    The variance is over the J fixed-mask predictions, ddof=1 (the diagonal of eq. (3) without
    the `tau^-1` term, which is the same for every point and does not change the ranking).

    Args:
        preds: `(n, J)` regression predictions of the sample.
        batch_size: number of points to pick, b.
        candidates: indices of the pickable points into `preds` (or `pool_preds`); default all.
        pool_preds: `(m, J)` predictions of pool points; they are then the pickable points.

    Returns:
        Selection with method "maxvar"; gains are the picked points' variances.

    Raises:
        InputError: classification input (maxvar is for regression), or bad predictions,
            candidates or batch size.
    """
    points, cand_idx = _pickable(preds, pool_preds, candidates, batch_size)
    if points.ndim != 2:
        raise InputError(
            "maxvar is for regression predictions of shape (n, J); got shape "
            f"{tuple(points.shape)} (use maxent, bald or batchbald for classification)"
        )
    var_C = points[cand_idx.to(points.device)].var(dim=1, correction=1)  # (m,)
    return _top_b(var_C, cand_idx, batch_size, "maxvar")


def select_max_entropy(
    preds: ArrayLike,
    batch_size: int,
    *,
    candidates: Any = None,
    pool_preds: ArrayLike | None = None,
) -> Selection:
    """Pick the candidates whose mask-mean class probabilities have the largest entropy.

    Args:
        preds: `(n, c, J)` class probabilities of the sample under J fixed masks.
        batch_size: number of points to pick, b.
        candidates: indices of the pickable points into `preds` (or `pool_preds`); default all.
        pool_preds: `(m, c, J)` class probabilities of pool points; they are then pickable.

    Returns:
        Selection with method "maxent"; gains are the entropies in nats.

    Raises:
        InputError: regression input, values that are not probabilities, or bad predictions,
            candidates or batch size.
    """
    probs_C_K_J, cand_idx = _classification_candidates(
        preds, pool_preds, candidates, batch_size, "maxent"
    )
    entropy_C = _entropy(probs_C_K_J.mean(dim=2), dim=1)  # H[mean_j p_j]
    return _top_b(entropy_C, cand_idx, batch_size, "maxent")


def select_bald(
    preds: ArrayLike,
    batch_size: int,
    *,
    candidates: Any = None,
    pool_preds: ArrayLike | None = None,
) -> Selection:
    """Pick the top-b candidates by BALD, the mutual information between label and masks.

    `MI(x) = H[mean_j p_j(x)] - mean_j H[p_j(x)]` (Houlsby et al. 2011), the J fixed masks
    standing in for posterior samples.

    Args:
        preds: `(n, c, J)` class probabilities of the sample under J fixed masks.
        batch_size: number of points to pick, b.
        candidates: indices of the pickable points into `preds` (or `pool_preds`); default all.
        pool_preds: `(m, c, J)` class probabilities of pool points; they are then pickable.

    Returns:
        Selection with method "bald"; gains are the mutual informations in nats.

    Raises:
        InputError: regression input, values that are not probabilities, or bad predictions,
            candidates or batch size.
    """
    probs_C_K_J, cand_idx = _classification_candidates(
        preds, pool_preds, candidates, batch_size, "bald"
    )
    mi_C = _entropy(probs_C_K_J.mean(dim=2), dim=1) - _entropy(probs_C_K_J, dim=1).mean(dim=1)
    return _top_b(mi_C, cand_idx, batch_size, "bald")


def _pickable(
    preds: ArrayLike, pool_preds: ArrayLike | None, candidates: Any, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate inputs; return the pickable points' predictions and candidate indices into them."""
    sample, pool, cand_idx = check_sample_and_pool(preds, pool_preds, candidates, batch_size)
    return (pool if pool is not None else sample), cand_idx


def _classification_candidates(
    preds: ArrayLike,
    pool_preds: ArrayLike | None,
    candidates: Any,
    batch_size: int,
    method: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate classification input.

    Returns:
        The candidates' class probabilities `(m, c, J)` and their indices `(m,)`.
    """
    points, cand_idx = _pickable(preds, pool_preds, candidates, batch_size)
    if points.ndim != 3:
        raise InputError(
            f"{method} is for classification probabilities of shape (n, c, J); got shape "
            f"{tuple(points.shape)} (use maxvar for regression)"
        )
    name = "pool_preds" if pool_preds is not None else "preds"
    probs_C_K_J = points[cand_idx.to(points.device)]
    _check_probabilities(probs_C_K_J, name, cand_idx)
    return probs_C_K_J, cand_idx


def _check_probabilities(probs_C_K_J: torch.Tensor, name: str, cand_idx: torch.Tensor) -> None:
    """Raise InputError unless every `(point, mask)` column is a probability vector."""
    negative = (probs_C_K_J < 0).any(dim=(1, 2))
    if bool(negative.any()):
        bad = int(cand_idx[int(torch.nonzero(negative)[0, 0])])
        raise InputError(f"{name} has a negative class probability (point {bad})")
    off = (probs_C_K_J.sum(dim=1) - 1.0).abs() > _PROB_SUM_TOL  # (m, J)
    if bool(off.any()):
        row, mask = (int(v) for v in torch.nonzero(off)[0])
        raise InputError(
            f"{name} class probabilities of point {int(cand_idx[row])} under mask {mask} sum to "
            f"{float(probs_C_K_J[row, :, mask].sum()):.6g}, not 1 (pass probabilities, not logits)"
        )


def _entropy(probs: torch.Tensor, dim: int) -> torch.Tensor:
    """Shannon entropy in nats along `dim`, with 0 log 0 = 0."""
    plogp: torch.Tensor = torch.special.xlogy(probs, probs)
    return -plogp.sum(dim=dim)


def _top_b(
    scores_C: torch.Tensor, cand_idx: torch.Tensor, batch_size: int, method: str
) -> Selection:
    """The `batch_size` best candidates by score, ties to the lowest point index."""
    scores = scores_C.detach().to("cpu", torch.float64).numpy()
    idx = cand_idx.numpy()
    order = np.lexsort((idx, -scores))[:batch_size]  # last key is primary
    return to_selection(idx[order].tolist(), scores[order].tolist(), method)
