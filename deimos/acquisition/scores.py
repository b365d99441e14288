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
import math
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from deimos.acquisition.selection import (
    ArrayLike,
    Selection,
    as_tensor,
    check_batch_size,
    check_candidates,
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


def select_batchbald(
    preds: ArrayLike,
    batch_size: int,
    *,
    candidates: Any = None,
    pool_preds: ArrayLike | None = None,
    n_configs: int = 1024,
    seed: int = 0,
    progress: bool = False,
) -> Selection:
    """Pick a batch greedily by BatchBALD, the joint mutual information (Kirsch et al. 2019).

    Step t adds the candidate x maximising `MI(y_B, y_x; w) = H[y_B, y_x] - sum_{i in B+x}
    E_j H[y_i | w_j]`, the J fixed masks standing in for posterior samples w_j. The joint
    entropy needs `p(y_B, y_x) = mean_j prod_i p(y_i | w_j)` over class configurations of the
    batch: while the batch has at most `n_configs` configurations they are enumerated exactly;
    beyond that, `n_configs` configurations are drawn from `p(y_B)` by ancestral sampling and
    `H[y_B, y_x] = -E_{y_B} sum_{y_x} p(y_x | y_B) log p(y_B, y_x)` is estimated from them
    (y_x is always summed exactly). The draws are seeded, so the batch is reproducible.

    Args:
        preds: `(n, c, J)` class probabilities of the sample under J fixed masks.
        batch_size: number of points to pick, b.
        candidates: indices of the pickable points into `preds` (or `pool_preds`); default all.
        pool_preds: `(m, c, J)` class probabilities of pool points; they are then pickable.
        n_configs: the configuration budget: exact up to this many, then this many samples.
            Each step costs `O(m c J n_configs)`.
        seed: seed of the Monte-Carlo configuration draws.
        progress: show a progress bar over the picks.

    Returns:
        Selection with method "batchbald"; the gain of pick t is the (estimated) joint mutual
        information of the first t picks, in nats. With b = 1 this is BALD.

    Raises:
        InputError: regression input, values that are not probabilities, a bad `n_configs`,
            or bad predictions, candidates or batch size.
    """
    if isinstance(n_configs, bool) or not isinstance(n_configs, int | np.integer):
        raise InputError(f"n_configs must be an integer, got {n_configs!r}")
    if n_configs < 1:
        raise InputError(f"n_configs must be at least 1, got {n_configs}")
    probs, cand_idx = _classification_candidates(
        preds, pool_preds, candidates, batch_size, "batchbald"
    )
    # Enumerate candidates in point order so that argmax's first maximum is the lowest index.
    order = torch.argsort(cand_idx)
    cand_idx = cand_idx[order]
    probs_C_K_J = probs[order.to(probs.device)].to(torch.float64)
    n_cand, n_classes, n_masks = probs_C_K_J.shape
    device = probs_C_K_J.device
    generator = torch.Generator(device=device).manual_seed(int(seed))

    cond_entropy_C = _entropy(probs_C_K_J, dim=1).mean(dim=1)  # E_j H[y_x | w_j]
    probs_flat_J_CK = probs_C_K_J.reshape(-1, n_masks).T  # (J, m c)
    # Batch configurations y^r: joint_R_J[r, j] = p(y^r | w_j) / scale_r, rows scaled to max 1
    # so that long batches do not underflow; log_scale_R holds log scale_r.
    joint_R_J = torch.ones(1, n_masks, dtype=torch.float64, device=device)
    log_scale_R = torch.zeros(1, dtype=torch.float64, device=device)
    sampled = False
    chunk = max(1, _BLOCK_ELEMENTS // n_classes)

    picked = torch.zeros(n_cand, dtype=torch.bool, device=device)
    batch_cond_entropy = 0.0
    picks: list[int] = []
    gains: list[float] = []
    for _ in tqdm(range(batch_size), desc="BatchBALD picks", disable=not progress, leave=False):
        n_rows = joint_R_J.shape[0]
        # Weight of each configuration in the expectation over y_B: its probability when
        # enumerated, 1/R when drawn from p(y_B).
        if sampled:
            weight_R = torch.full((n_rows,), 1.0 / n_rows, dtype=torch.float64, device=device)
        else:
            weight_R = joint_R_J.mean(dim=1) * torch.exp(log_scale_R)
        # H[y_B, y_x] = -sum_r weight_r sum_{y_x} p(y_x | y^r) log p(y^r, y_x). With the scaled
        # joint q = p(y^r, y_x) / scale_r and p(y_x | y^r) = q / mean_j(scaled row r), the sum
        # is -sum_r (weight_r / mean_r) sum_{y_x} q log q - sum_r weight_r log scale_r: one
        # q log q per element and no division (the elementwise work dominates after the matmul).
        row_weight_R = weight_R / joint_R_J.mean(dim=1)
        const = float((weight_R * log_scale_R).sum())
        joint_entropy_C = torch.empty(n_cand, dtype=torch.float64, device=device)
        step = max(1, chunk // n_rows)
        for start in range(0, n_cand, step):
            stop = min(start + step, n_cand)
            cols = probs_flat_J_CK[:, start * n_classes : stop * n_classes]  # (J, k c)
            q_R_CK = joint_R_J @ (cols / n_masks)  # scaled p(y^r, y_x)
            q_log_q = torch.special.xlogy(q_R_CK, q_R_CK, out=q_R_CK)
            term_C = (row_weight_R @ q_log_q).reshape(stop - start, n_classes).sum(dim=1)
            joint_entropy_C[start:stop] = -term_C - const
        mi_C = joint_entropy_C - cond_entropy_C - batch_cond_entropy
        mi_C.masked_fill_(picked, -math.inf)
        best = int(torch.argmax(mi_C))
        picks.append(best)
        gains.append(float(mi_C[best]))
        picked[best] = True
        batch_cond_entropy += float(cond_entropy_C[best])
        if len(picks) == batch_size:
            break
        joint_R_J, log_scale_R, sampled = _extend_configs(
            joint_R_J, log_scale_R, sampled, probs_C_K_J[best], n_configs, generator
        )
    indices = cand_idx[torch.tensor(picks, dtype=torch.int64)].tolist()
    logger.debug("select_batchbald picked=%d sampled=%s", len(indices), sampled)
    return to_selection(indices, gains, "batchbald")


def select_kcenter(
    embeddings: ArrayLike,
    batch_size: int,
    *,
    labelled: Any = None,
    candidates: Any = None,
    n_outliers: int = 0,
) -> Selection:
    """Pick a batch by greedy (robust) k-Center on embeddings, the core-set baseline.

    Each step picks the candidate farthest (Euclidean) from its nearest center, the centers being
    the labelled points and the picks so far. The paper solves robust k-Center as a MIP; here the
    outlier budget is the practical stand-in: at each step the `n_outliers` farthest candidates
    are skipped and the next farthest is picked. Memory is O(n d); no n x n matrix is formed.

    Args:
        embeddings: `(n, d)` embeddings (e.g. penultimate-layer features) of all points.
        batch_size: number of points to pick, b.
        labelled: indices into `embeddings` of the points already labelled (the initial centers).
        candidates: indices of the pickable points into `embeddings`; default every point not in
            `labelled`. They may not include labelled points.
        n_outliers: number of farthest candidates ignored when choosing each center (>= 0).

    Returns:
        Selection with method "kcenter"; the gain of a pick is its distance to the nearest center
        when picked (the covering radius of the candidates that are not skipped). With no labelled
        points the first pick is the candidate nearest the candidates' mean and its gain is inf.

    Raises:
        InputError: embeddings not `(n, d)` or not finite, bad indices, labelled candidates, a
            bad outlier budget, or a batch size larger than the candidates minus the outliers.
    """
    emb = as_tensor(embeddings, "embeddings")
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise InputError(
            f"embeddings must have shape (n, d) with n, d >= 1, got shape {tuple(emb.shape)}"
        )
    finite = torch.isfinite(emb)
    if not bool(finite.all()):
        bad = int(torch.nonzero(~finite.all(dim=1))[0, 0])
        raise InputError(f"embeddings contains NaN or inf (first at point {bad})")
    n_points = emb.shape[0]
    lab_idx = check_candidates([] if labelled is None else labelled, n_points, "labelled")
    is_labelled = torch.zeros(n_points, dtype=torch.bool)
    is_labelled[lab_idx] = True
    if candidates is None:
        cand_idx = torch.nonzero(~is_labelled).flatten()
    else:
        cand_idx = check_candidates(candidates, n_points)
        clash = is_labelled[cand_idx]
        if bool(clash.any()):
            raise InputError(
                f"candidates index {int(cand_idx[clash][0])} is also in labelled; labelled points "
                "are centers already and cannot be picked"
            )
    if isinstance(n_outliers, bool) or not isinstance(n_outliers, int | np.integer):
        raise InputError(f"n_outliers must be an integer, got {n_outliers!r}")
    if n_outliers < 0:
        raise InputError(f"n_outliers must be >= 0, got {n_outliers}")
    check_batch_size(batch_size, cand_idx.numel())
    if batch_size + n_outliers > cand_idx.numel():
        raise InputError(
            f"batch_size={batch_size} plus n_outliers={n_outliers} is more than the "
            f"{cand_idx.numel()} candidates"
        )

    cand_idx = torch.sort(cand_idx).values  # point order: the first maximum is the lowest index
    emb_C_D = emb[cand_idx.to(emb.device)]
    n_cand = emb_C_D.shape[0]
    if lab_idx.numel():
        dist_C = _min_distances(emb_C_D, emb[lab_idx.to(emb.device)])
    else:
        dist_C = torch.full((n_cand,), math.inf, dtype=emb.dtype, device=emb.device)
    picked = torch.zeros(n_cand, dtype=torch.bool, device=emb.device)
    picks: list[int] = []
    gains: list[float] = []
    for _ in range(batch_size):
        if math.isinf(float(dist_C.max())):
            # No centers yet: start from the most central candidate.
            best = int(torch.argmin(((emb_C_D - emb_C_D.mean(dim=0)) ** 2).sum(dim=1)))
            gain = math.inf
        else:
            score_C = dist_C.masked_fill(picked, -math.inf)
            # Stable descending sort keeps point order among ties; skip the outliers.
            order = torch.sort(score_C, descending=True, stable=True).indices
            best = int(order[n_outliers])
            gain = float(dist_C[best])
        picks.append(best)
        gains.append(gain)
        picked[best] = True
        new_dist_C = torch.sqrt(((emb_C_D - emb_C_D[best]) ** 2).sum(dim=1))
        torch.minimum(dist_C, new_dist_C, out=dist_C)
    indices = cand_idx[torch.tensor(picks, dtype=torch.int64)].tolist()
    return to_selection(indices, gains, "kcenter")


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
    return -torch.special.xlogy(probs, probs).sum(dim=dim)


def _top_b(
    scores_C: torch.Tensor, cand_idx: torch.Tensor, batch_size: int, method: str
) -> Selection:
    """The `batch_size` best candidates by score, ties to the lowest point index."""
    scores = scores_C.detach().to("cpu", torch.float64).numpy()
    idx = cand_idx.numpy()
    order = np.lexsort((idx, -scores))[:batch_size]  # last key is primary
    return to_selection(idx[order].tolist(), scores[order].tolist(), method)


def _extend_configs(
    joint_R_J: torch.Tensor,
    log_scale_R: torch.Tensor,
    sampled: bool,
    probs_K_J: torch.Tensor,
    n_configs: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Add a picked point's label to the batch configurations (BatchBALD bookkeeping).

    Exact configurations are crossed with every class while there are at most `n_configs` of
    them; then `n_configs` are drawn from the exact joint. Drawn configurations get a label
    drawn from `p(y_n | y^r) ∝ sum_j p(y^r | w_j) p(y_n | w_j)`, which keeps them draws from
    `p(y_B, y_n)`.

    Args:
        joint_R_J: scaled `p(y^r | w_j)` of the current configurations.
        log_scale_R: log of each row's scale.
        sampled: whether the configurations are draws (True) or an enumeration (False).
        probs_K_J: `(c, J)` class probabilities of the picked point.
        n_configs: configuration budget.
        generator: source of the draws.

    Returns:
        The new `(joint_R_J, log_scale_R, sampled)`.
    """
    n_masks = joint_R_J.shape[1]
    n_classes = probs_K_J.shape[0]
    if not sampled:
        joint_R_J = (joint_R_J[:, None, :] * probs_K_J[None, :, :]).reshape(-1, n_masks)
        log_scale_R = log_scale_R.repeat_interleave(n_classes)
        if joint_R_J.shape[0] > n_configs:
            prob_R = joint_R_J.mean(dim=1) * torch.exp(log_scale_R - log_scale_R.max())
            rows = torch.multinomial(prob_R, n_configs, replacement=True, generator=generator)
            joint_R_J, log_scale_R = joint_R_J[rows], log_scale_R[rows]
            sampled = True
        else:
            keep = joint_R_J.amax(dim=1) > 0  # impossible configurations add nothing
            joint_R_J, log_scale_R = joint_R_J[keep], log_scale_R[keep]
    else:
        cond_R_K = joint_R_J @ probs_K_J.T  # ∝ p(y_n | y^r)
        labels_R = torch.multinomial(cond_R_K, 1, generator=generator).flatten()
        joint_R_J = joint_R_J * probs_K_J[labels_R]
    row_max_R = joint_R_J.amax(dim=1)
    joint_R_J = joint_R_J / row_max_R[:, None]
    log_scale_R = log_scale_R + torch.log(row_max_R)
    return joint_R_J, log_scale_R, sampled


def _min_distances(emb_C_D: torch.Tensor, centers_L_D: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each row of `emb_C_D` to its nearest center, in blocks of centers."""
    dist_C = torch.full((emb_C_D.shape[0],), math.inf, dtype=emb_C_D.dtype, device=emb_C_D.device)
    step = max(1, _BLOCK_ELEMENTS // max(1, emb_C_D.shape[0]))
    for start in range(0, centers_L_D.shape[0], step):
        block = centers_L_D[start : start + step]
        # No matmul shortcut: |a|^2 + |b|^2 - 2ab loses precision for nearby points.
        d_C_L = torch.cdist(emb_C_D, block, compute_mode="donot_use_mm_for_euclid_dist")
        torch.minimum(dist_C, d_C_L.min(dim=1).values, out=dist_C)
    return dist_C
