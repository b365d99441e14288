"""The result type every acquisition function returns, and the input checks they share.

Axis order, used across the project: points first, classes next, masks last
(`preds_N_J` for regression, `probs_N_C_J` for classification).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deimos.checks import check_int
from deimos.errors import InputError

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Selection:
    """A batch picked by an acquisition function.

    Attributes:
        indices: picked positions in pick order, as Python ints. They index `preds`, or
            `pool_preds` when that was given.
        gains: the acquisition score of each pick at the moment it was picked (for DEIMOS the
            expected reduction of the sample's total predictive variance, eq. (5)/(6)).
        method: registry name of the acquisition function that made the batch.
    """

    indices: tuple[int, ...]
    gains: tuple[float, ...]
    method: str

    def __len__(self) -> int:
        return len(self.indices)


def as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """Wrap a NumPy array or torch tensor as a floating tensor without copying when possible.

    NumPy input stays on the CPU; a tensor keeps its device. Integer input becomes float64.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        raise InputError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t


def check_predictions(preds: torch.Tensor, name: str, *, min_masks: int = 2) -> None:
    """Check fixed-mask predictions: `(n, J)` regression or `(n, c, J)` classification.

    Raises:
        InputError: wrong ndim, no points, fewer than `min_masks` masks, or NaN/inf values.
    """
    if preds.ndim not in (2, 3):
        raise InputError(
            f"{name} must have shape (n, J) for regression or (n, c, J) for classification, "
            f"got ndim={preds.ndim} with shape {tuple(preds.shape)}"
        )
    if preds.shape[0] == 0:
        raise InputError(f"{name} has no points (shape {tuple(preds.shape)})")
    if preds.shape[-1] < min_masks:
        raise InputError(
            f"{name} has J={preds.shape[-1]} predictions per point; at least {min_masks} "
            "are needed to estimate a covariance"
        )
    if preds.ndim == 3 and preds.shape[1] < 2:
        raise InputError(f"{name} has c={preds.shape[1]} classes; classification needs c >= 2")
    finite = torch.isfinite(preds)
    if not bool(finite.all()):
        bad = int(torch.nonzero(~finite.reshape(preds.shape[0], -1).all(dim=1))[0, 0])
        raise InputError(f"{name} contains NaN or inf (first at point {bad})")


def check_candidates(candidates: Any, n_points: int, name: str = "candidates") -> torch.Tensor:
    """Validate candidate indices into a set of `n_points`; return them as an int64 CPU tensor.

    Raises:
        InputError: not 1-D integers, out of range, or duplicated.
    """
    if candidates is None:
        return torch.arange(n_points)
    if isinstance(candidates, torch.Tensor):
        cand = candidates.detach().cpu()
    else:
        cand = torch.as_tensor(np.asarray(candidates))
    if cand.ndim != 1:
        raise InputError(f"{name} must be a 1-D sequence of indices, got shape {tuple(cand.shape)}")
    if cand.numel() and (cand.is_floating_point() or cand.is_complex() or cand.dtype == torch.bool):
        raise InputError(f"{name} must be integers, got dtype {cand.dtype}")
    cand = cand.to(torch.int64)
    if cand.numel():
        lo, hi = int(cand.min()), int(cand.max())
        if lo < 0 or hi >= n_points:
            bad = lo if lo < 0 else hi
            raise InputError(f"{name} index {bad} is out of range for {n_points} points")
        uniq, counts = torch.unique(cand, return_counts=True)
        if bool((counts > 1).any()):
            raise InputError(f"{name} index {int(uniq[counts > 1][0])} appears more than once")
    return cand


def check_batch_size(batch_size: int, n_pickable: int) -> None:
    """Raise InputError unless 1 <= batch_size <= n_pickable."""
    check_int(batch_size, "batch_size", minimum=1)
    if batch_size > n_pickable:
        raise InputError(
            f"batch_size={batch_size} is larger than the {n_pickable} pickable candidates"
        )


def to_selection(indices: Sequence[int], gains: Sequence[float], method: str) -> Selection:
    """Build a Selection with plain Python ints and floats."""
    return Selection(
        indices=tuple(int(i) for i in indices),
        gains=tuple(float(g) for g in gains),
        method=method,
    )


def check_sample_and_pool(
    preds: ArrayLike, pool_preds: ArrayLike | None, candidates: Any, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Validate an acquisition call's inputs.

    Returns:
        The sample predictions, the pool predictions (or None), and the candidate indices as an
        int64 CPU tensor: into the pool when one is given, else into the sample.

    Raises:
        InputError: bad predictions, a pool whose classes/masks or device differ from the
            sample's, bad candidate indices, or a batch larger than the candidates.
    """
    sample = as_tensor(preds, "preds")
    check_predictions(sample, "preds")
    pool = None
    if pool_preds is not None:
        pool = as_tensor(pool_preds, "pool_preds")
        check_predictions(pool, "pool_preds")
        if pool.ndim != sample.ndim or pool.shape[1:] != sample.shape[1:]:
            raise InputError(
                f"pool_preds shape {tuple(pool.shape)} does not match preds shape "
                f"{tuple(sample.shape)} beyond the first axis (same classes and masks needed)"
            )
        if pool.device != sample.device:
            raise InputError(f"pool_preds is on {pool.device} but preds is on {sample.device}")
    cand_idx = check_candidates(candidates, (pool if pool is not None else sample).shape[0])
    check_batch_size(batch_size, cand_idx.numel())
    return sample, pool, cand_idx
