"""BatchBALD: greedy joint mutual information between the batch's labels and the masks."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from tqdm.auto import tqdm

from deimos.acquisition.scores import _BLOCK_ELEMENTS, _classification_candidates, _entropy
from deimos.acquisition.selection import (
    ArrayLike,
    Selection,
    to_selection,
)
from deimos.checks import check_int

logger = logging.getLogger(__name__)


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
    n_configs = check_int(n_configs, "n_configs", minimum=1)
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
