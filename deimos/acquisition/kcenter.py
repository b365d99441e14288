"""Greedy (robust) k-Center on embeddings: the core-set baseline."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from deimos.acquisition.scores import _BLOCK_ELEMENTS
from deimos.acquisition.selection import (
    ArrayLike,
    Selection,
    as_tensor,
    check_batch_size,
    check_candidates,
    to_selection,
)
from deimos.checks import check_int
from deimos.errors import InputError

logger = logging.getLogger(__name__)


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
    n_outliers = check_int(n_outliers, "n_outliers", minimum=0)
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
