"""Dense Algorithm 1 of the DEIMOS paper, straight from eq. (3), (5), (6): a test oracle.

It forms the full covariance over the sample and the pool, so it only suits small problems.
"""

from __future__ import annotations

import numpy as np

_RELATIVE_VARIANCE_FLOOR = 1e-12


def dense_covariance(preds: np.ndarray) -> np.ndarray:
    """ddof=1 covariance of `(n, J)` or `(n, c, J)` predictions; rows are (point, class) pairs."""
    flat = preds.reshape(-1, preds.shape[-1])
    return np.atleast_2d(np.cov(flat, ddof=1))


def dense_select(
    preds: np.ndarray,
    batch_size: int,
    tau_inv: float,
    candidates: np.ndarray | None = None,
    pool_preds: np.ndarray | None = None,
) -> tuple[list[int], list[float]]:
    """Greedy DEIMOS on the explicit covariance of sample (+ pool) points.

    Returns the picked candidate indices (into preds, or pool_preds when given) and the EI of each
    pick when picked.
    """
    preds = np.asarray(preds, dtype=np.float64)
    n_sample = preds.shape[0]
    classification = preds.ndim == 3
    c = preds.shape[1] if classification else 1
    if pool_preds is None:
        all_preds = preds
        cand_points = np.arange(n_sample) if candidates is None else np.asarray(candidates)
    else:
        pool_preds = np.asarray(pool_preds, dtype=np.float64)
        all_preds = np.concatenate([preds, pool_preds], axis=0)
        n_pool = pool_preds.shape[0]
        cand_pool = np.arange(n_pool) if candidates is None else np.asarray(candidates)
        cand_points = n_sample + cand_pool
    V = dense_covariance(all_preds)
    sample_rows = np.arange(n_sample * c)
    eye_c = np.eye(c)
    if not classification:
        V = V + tau_inv * np.eye(V.shape[0])
    floor = _RELATIVE_VARIANCE_FLOOR * max(np.diag(V)[cand_points * c].max(), 1e-300)

    def rows(point: int) -> np.ndarray:
        return np.arange(point * c, (point + 1) * c)

    picked: list[int] = []
    gains: list[float] = []
    for _ in range(batch_size):
        ei = np.full(len(cand_points), -np.inf)
        for i, x in enumerate(cand_points):
            if i in picked:
                continue
            V_Sx = V[np.ix_(sample_rows, rows(x))]
            V_xx = V[np.ix_(rows(x), rows(x))]
            if classification:
                ei[i] = np.trace(V_Sx @ np.linalg.solve(V_xx + tau_inv * eye_c, V_Sx.T))
            else:
                ei[i] = 0.0 if V_xx[0, 0] <= floor else float((V_Sx**2).sum() / V_xx[0, 0])
        best = int(np.argmax(ei))
        picked.append(best)
        gains.append(float(ei[best]))
        r = rows(cand_points[best])
        V_nn = V[np.ix_(r, r)]
        if classification:
            A = np.linalg.inv(V_nn + tau_inv * eye_c)
        elif V_nn[0, 0] <= floor:
            continue
        else:
            A = np.array([[1.0 / V_nn[0, 0]]])
        V = V - V[:, r] @ A @ V[r, :]
    indices = [int(cand_points[i]) - (0 if pool_preds is None else n_sample) for i in picked]
    return indices, gains
