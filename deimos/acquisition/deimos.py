"""DEIMOS batch acquisition at pool scale (paper eq. (3), (5), (6) and Algorithm 1).

The dense algorithm keeps the joint predictive covariance `V` of the representative sample and
the candidates, picks `argmax_x EI(x)`, conditions `V` on the pick and repeats. `V` is
`n x n` (`cn x cn` for classification), which caps the paper at a few thousand candidates.

This module returns the dense algorithm's picks and gains without ever forming `V`. With the
centred, scaled predictions `F` (`f_x = (p_x - mean_j p_x) / sqrt(J - 1)`, so `F F^T` is the
ddof=1 dropout covariance) the conditioned covariance between two unpicked points always has the
form

    V[k, x] = tau^-1 [k == x] + f_k M f_x^T,       M: `(J, J)`, starts as I,

because conditioning on a pick `n` with `u = M f_n^T` is the rank-one change
`M <- M - u u^T / V[n, n]` (rank-c, `M <- M - U A U^T`, for classification). Per candidate we keep
`d_x = f_x M f_x^T` and `h_x = f_x M G M f_x^T` with `G = sum_{k in S} f_k^T f_k` (`J x J`), which
give `V[x, x]` and `sum_{k in S} V[k, x]^2`, hence EI. Each pick updates them with one pass over
the candidates' `F` (a product with two `J`-vectors, or `2c` for classification).

Regression has one subtlety: a picked sample point's row of `V` becomes exactly zero (its label is
known up to the noise it was observed with), while `f_n M f_x^T` does not; so a picked sample
point leaves `G`. Classification has no `tau^-1` on the diagonal (the smoothing `tau_s^-1` only
enters the inverted `c x c` block), so there picked points stay in `G` with their conditioned rows.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from tqdm.auto import tqdm

from deimos.acquisition.selection import (
    ArrayLike,
    Selection,
    check_sample_and_pool,
    to_selection,
)
from deimos.errors import InputError

logger = logging.getLogger(__name__)

# A point whose predictive variance is below this fraction of the largest initial variance is
# treated as known: its EI is 0 and conditioning on it changes nothing (avoids 0/0 when tau^-1 = 0).
_RELATIVE_VARIANCE_FLOOR = 1e-12
_INIT_CHUNK_ROWS = 1 << 16


def centred_factors(preds: torch.Tensor) -> torch.Tensor:
    """Scale fixed-mask predictions so that `F F^T` is their ddof=1 covariance (eq. (3)).

    Args:
        preds: `(n, J)` or `(n, c, J)` predictions under J fixed dropout masks.

    Returns:
        `F` with the shape of `preds`: `(p - mean over masks) / sqrt(J - 1)`.
    """
    n_masks = preds.shape[-1]
    return (preds - preds.mean(dim=-1, keepdim=True)) / math.sqrt(n_masks - 1)


def deimos_expected_improvement(preds: ArrayLike, tau_inv: float) -> torch.Tensor:
    """DEIMOS' acquisition function before any pick: every sample point's EI (eq. (5)).

    With `V = F F^T + tau^-1 I` over the sample, `EI(x) = sum_k V[k, x]^2 / V[x, x]`: the drop in
    total predictive variance if `x` were labelled. This is what the first greedy pick maximises;
    it is exposed for plots (Figure 1), not for selection.

    Args:
        preds: `(n, J)` fixed-mask regression predictions of the sample.
        tau_inv: noise variance `tau^-1` (>= 0).

    Returns:
        `(n,)` float64 tensor of expected improvements.
    """
    sample, _, _ = check_sample_and_pool(preds, None, None, 1)
    if sample.ndim != 2:
        raise InputError("deimos_expected_improvement takes (n, J) regression predictions")
    tau = _check_tau_inv(tau_inv, classification=False)
    F = centred_factors(sample.to(torch.float64))  # (n, J)
    d = (F * F).sum(dim=1)  # V[x, x] - tau^-1
    h = ((F @ (F.T @ F)) * F).sum(dim=1)  # sum_k (F F^T)[k, x]^2
    var = d + tau
    # A point with no variance and no noise teaches nothing (0/0).
    return torch.where(var > 0, (h + 2.0 * tau * d + tau * tau) / var.clamp_min(1e-300), 0.0)


def select_deimos(
    preds: ArrayLike,
    batch_size: int,
    *,
    tau_inv: float,
    candidates: Any = None,
    pool_preds: ArrayLike | None = None,
    precision: str = "float64",
    progress: bool = False,
) -> Selection:
    """Pick a batch by greedy DEIMOS expected improvement (Algorithm 1), exactly, in O(n) memory.

    Args:
        preds: fixed-mask predictions of the representative sample S: `(n, J)` for regression or
            `(n, c, J)` class probabilities for classification. NumPy or torch; computation runs
            on the tensor's device.
        batch_size: number of points to pick, b.
        tau_inv: regression: the noise variance `tau^-1` added to V's diagonal (>= 0).
            Classification: the smoothing `tau_s^-1` added to each inverted `c x c` block (> 0).
        candidates: integer indices of the pickable points: into `preds` (default all of them),
            or into `pool_preds` when that is given.
        pool_preds: `(m, J)` / `(m, c, J)` predictions of candidate points outside the sample,
            under the same masks. Their labels reduce the sample's variance but they are not in S.
        precision: `"float64"` (default, whatever the input dtype: the picks are the dense
            algorithm's) or `"float32"`, a regression-only option that halves memory traffic
            (measured: 96 of 100 picks identical at n = 265,137). Classification rejects it: its
            `c x c` block updates lose the picks within a few steps in float32.
        progress: show a progress bar over the picks.

    Returns:
        Selection with the picked indices in pick order and each pick's EI when it was picked.

    Raises:
        InputError: (a ValueError) for wrong shapes, J < 2, NaN/inf, a bad tau_inv, a batch size
            larger than the number of candidates, or bad candidate indices.
    """
    sample, pool, cand_idx = check_sample_and_pool(preds, pool_preds, candidates, batch_size)
    tau = _check_tau_inv(tau_inv, classification=sample.ndim == 3)

    dtype = _compute_dtype(precision, classification=sample.ndim == 3)
    F_S = centred_factors(sample.to(dtype))
    if pool is None:
        F_C = F_S if candidates is None else F_S[cand_idx.to(F_S.device)]
        in_sample = True
    else:
        F_P = centred_factors(pool.to(dtype))
        F_C = F_P if candidates is None else F_P[cand_idx.to(F_P.device)]
        in_sample = False

    if sample.ndim == 2:
        picks, gains = _greedy_regression(F_S, F_C, batch_size, tau, in_sample, progress)
    else:
        picks, gains = _greedy_classification(F_S, F_C, batch_size, tau, progress)
    indices = cand_idx[torch.tensor(picks, dtype=torch.int64)].tolist()
    logger.debug("select_deimos picked=%d first=%s", len(indices), indices[:5])
    return to_selection(indices, gains, "deimos")


def _compute_dtype(precision: str, *, classification: bool) -> torch.dtype:
    if precision == "float64":
        return torch.float64
    if precision != "float32":
        raise InputError(f"precision must be 'float64' or 'float32', got {precision!r}")
    if classification:
        raise InputError(
            "precision='float32' is for regression only: the classification updates lose the "
            "dense algorithm's picks in float32; use precision='float64'"
        )
    return torch.float32


def _check_tau_inv(tau_inv: float, *, classification: bool) -> float:
    try:
        tau = float(tau_inv)
    except (TypeError, ValueError) as exc:
        raise InputError(f"tau_inv must be a number, got {tau_inv!r}") from exc
    if not math.isfinite(tau):
        raise InputError(f"tau_inv must be finite, got {tau}")
    if tau < 0:
        raise InputError(f"tau_inv must be >= 0, got {tau}")
    if classification and tau == 0:
        # Class probabilities sum to one, so each c x c block V_xx is singular.
        raise InputError(
            "tau_inv (the smoothing tau_s^-1) must be > 0 for classification: class "
            "probabilities sum to one, so each c x c covariance block is singular"
        )
    return tau


def _greedy_regression(
    F_S: torch.Tensor,
    F_C: torch.Tensor,
    batch_size: int,
    tau: float,
    in_sample: bool,
    progress: bool,
) -> tuple[list[int], list[float]]:
    """Greedy picks for regression. `F_S`: `(n, J)`, `F_C`: `(m, J)`; returns candidate rows."""
    n_masks = F_S.shape[1]
    G = F_S.T @ F_S  # (J, J)
    d = torch.empty(F_C.shape[0], dtype=F_C.dtype, device=F_C.device)  # f_x M f_x^T
    h = torch.empty_like(d)  # f_x M G M f_x^T
    for start in range(0, F_C.shape[0], _INIT_CHUNK_ROWS):
        block = F_C[start : start + _INIT_CHUNK_ROWS]  # (chunk, J)
        d[start : start + block.shape[0]] = (block * block).sum(dim=1)
        h[start : start + block.shape[0]] = ((block @ G) * block).sum(dim=1)
    M = torch.eye(n_masks, dtype=F_C.dtype, device=F_C.device)
    floor = _RELATIVE_VARIANCE_FLOOR * (tau + float(d.max()))

    blocked = torch.zeros_like(d, dtype=torch.bool)
    ei = torch.empty_like(d)
    var = torch.empty_like(d)
    uv = torch.empty(n_masks, 2, dtype=F_C.dtype, device=F_C.device)
    picks: list[int] = []
    gains: list[float] = []
    for _ in tqdm(range(batch_size), desc="DEIMOS picks", disable=not progress, leave=False):
        # eq. (5): EI(x) = sum_{k in S} V[k,x]^2 / V[x,x]; for x in S the k = x term adds
        # tau^-2 + 2 tau^-1 d_x to h_x.
        torch.add(d, tau, out=var)
        if in_sample:
            torch.mul(d, 2.0 * tau, out=ei)
            ei.add_(h).add_(tau * tau)
        else:
            ei.copy_(h)
        ei.div_(var)
        ei.masked_fill_(var <= floor, 0.0)
        ei.masked_fill_(blocked, -math.inf)
        best = int(torch.argmax(ei))  # first maximum: ties go to the lowest index
        picks.append(best)
        gains.append(float(ei[best]))
        blocked[best] = True

        f_n = F_C[best]  # (J,)
        u = M @ f_n  # (J,)
        v_nn = tau + float(f_n @ u)
        if v_nn <= floor:
            continue  # a known point: conditioning on it changes nothing
        if in_sample:
            G.sub_(torch.outer(f_n, f_n))  # its row of V is now zero
        beta = 1.0 / v_nn
        uv[:, 0] = u
        uv[:, 1] = M @ (G @ u)
        ab = F_C @ uv  # (m, 2): a_x = f_x M f_n^T, b_x = f_x M G u
        a, b = ab[:, 0], ab[:, 1]
        a_sq = a * a
        if in_sample:
            h.sub_(a_sq)
        u_G_u = float(u @ (G @ u))
        # h_x <- f_x M' G M' f_x^T with M' = M - beta u u^T
        h.addcmul_(a, b, value=-2.0 * beta).add_(a_sq, alpha=beta * beta * u_G_u)
        d.sub_(a_sq, alpha=beta)
        M.sub_(torch.outer(u, u), alpha=beta)
    return picks, gains


def _greedy_classification(
    F_S: torch.Tensor,
    F_C: torch.Tensor,
    batch_size: int,
    tau_s: float,
    progress: bool,
) -> tuple[list[int], list[float]]:
    """Greedy picks for classification (eq. (6)). `F_S`: `(n, c, J)`, `F_C`: `(m, c, J)`."""
    n_classes, n_masks = F_S.shape[1], F_S.shape[2]
    F_S_flat = F_S.reshape(-1, n_masks)  # (n c, J)
    G = F_S_flat.T @ F_S_flat  # (J, J) = sum_k F_k^T F_k
    m = F_C.shape[0]
    P = torch.empty(m, n_classes, n_classes, dtype=F_C.dtype, device=F_C.device)  # V_xx
    Q = torch.empty_like(P)  # V_Sx^T V_Sx
    for start in range(0, m, _INIT_CHUNK_ROWS):
        block = F_C[start : start + _INIT_CHUNK_ROWS]  # (chunk, c, J)
        stop = start + block.shape[0]
        P[start:stop] = block @ block.transpose(1, 2)
        Q[start:stop] = (block @ G) @ block.transpose(1, 2)
    M = torch.eye(n_masks, dtype=F_C.dtype, device=F_C.device)
    eye_c = torch.eye(n_classes, dtype=F_C.dtype, device=F_C.device)
    F_C_flat = F_C.reshape(-1, n_masks)  # (m c, J)

    blocked = torch.zeros(m, dtype=torch.bool, device=F_C.device)
    picks: list[int] = []
    gains: list[float] = []
    for _ in tqdm(range(batch_size), desc="DEIMOS picks", disable=not progress, leave=False):
        # eq. (6): EI(x) = tr((V_xx + tau_s^-1 I)^-1 V_Sx^T V_Sx); both factors are symmetric,
        # so the trace is the sum of their elementwise product. A batched inverse beats a batched
        # Cholesky solve for c x c blocks on CPU.
        inv_blocks, _ = torch.linalg.inv_ex(P + tau_s * eye_c)
        ei = (inv_blocks * Q).sum(dim=(1, 2))
        ei.masked_fill_(blocked, -math.inf)
        best = int(torch.argmax(ei))
        picks.append(best)
        gains.append(float(ei[best]))
        blocked[best] = True

        F_n = F_C[best]  # (c, J)
        U = M @ F_n.T  # (J, c)
        # Fold A = (V_nn + tau_s^-1 I)^-1 = W W^T into the update vectors (W = L^-T for the
        # Cholesky factor L of V_nn + tau_s^-1 I): M' = M - U A U^T = M - U~ U~^T, U~ = U W.
        chol_n = torch.linalg.cholesky(F_n @ U + tau_s * eye_c)  # (c, c)
        W = torch.linalg.solve_triangular(chol_n, eye_c, upper=False).T  # (c, c)
        U_w = U @ W  # (J, c)
        Y_w = M @ (G @ U_w)  # (J, c)
        K_w = U_w.T @ (G @ U_w)  # (c, c)
        BC = (F_C_flat @ torch.cat([U_w, Y_w], dim=1)).reshape(m, n_classes, 2 * n_classes)
        B, C = BC[..., :n_classes], BC[..., n_classes:]  # B_x = F_x U~, C_x = F_x M G U~
        # Q' = F_x M' G M' F_x^T = Q - B C^T - C B^T + B K~ B^T = Q - B E^T - E B^T,
        # E = C - B K~ / 2
        E = torch.sub(
            C, (B.reshape(-1, n_classes) @ K_w).reshape(m, n_classes, n_classes), alpha=0.5
        )
        P.sub_(B @ B.transpose(1, 2))
        cross = B @ E.transpose(1, 2)
        Q.sub_(cross).sub_(cross.transpose(1, 2))
        M.sub_(U_w @ U_w.T)
    return picks, gains
