"""Many small symmetric blocks at once: the `c x c` algebra of classification DEIMOS.

Classification DEIMOS needs `tr((P_x + tau I)^-1 Q_x)` for every candidate `x`, where `P_x` and
`Q_x` are `k x k` symmetric (`k` = c - 1 after `sum_to_zero_basis`). A batched inverse of
60,000 `9 x 9` matrices spends its time in per-matrix overhead and in memory layout, not in
arithmetic. Here each block is stored as its packed upper triangle with the batch dimension
*last* (`(k (k + 1) / 2, m)`), so one elimination step is a handful of long, contiguous
vector operations over all candidates.
"""

from __future__ import annotations

import functools

import torch


def packed_row_starts(k: int) -> list[int]:
    """Offsets of the rows of a packed upper triangle: row `r` holds entries `(r, r..k-1)`.

    Returns:
        `k + 1` offsets; row `r` is `[starts[r], starts[r + 1])`, `starts[k] = k (k + 1) / 2`.
    """
    return [r * k - r * (r - 1) // 2 for r in range(k + 1)]


@functools.lru_cache(maxsize=32)
def _upper_flat_indices(k: int) -> tuple[int, ...]:
    return tuple(r * k + s for r in range(k) for s in range(r, k))


def pack_upper(blocks: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Packed upper triangles of symmetric blocks, batch last.

    Args:
        blocks: `(m, k, k)` contiguous symmetric matrices.
        out: optional `(k (k + 1) / 2, m)` buffer to write into.

    Returns:
        `(k (k + 1) / 2, m)`: row `t` is entry `(r, s)`, `r <= s`, in row-major order.
    """
    m, k = blocks.shape[0], blocks.shape[1]
    index = torch.tensor(_upper_flat_indices(k), dtype=torch.int64, device=blocks.device)
    # Reading the (k k, m) transposed view row by row gathers each entry for all blocks at once.
    flat_t = blocks.reshape(m, k * k).T
    if out is None:
        return torch.index_select(flat_t, 0, index)
    return torch.index_select(flat_t, 0, index, out=out)


def trace_solve_packed_(a: torch.Tensor, q: torch.Tensor, k: int) -> torch.Tensor:
    """`tr(A_x^-1 Q_x)` for every block, by symmetric Gaussian elimination; overwrites a and q.

    Eliminating pivot `j` is the congruence `A <- E A E^T`, `Q <- E Q E^T` with
    `E = I - l e_j^T`, `l_r = A_rj / A_jj`; it leaves `tr(A^-1 Q)` unchanged, and once `A` is
    diagonal the trace is `sum_j Q_jj / A_jj`. `Q_jj` is final after step `j - 1`, so only the
    trailing triangle is kept up to date. `A` must be symmetric positive definite (no pivoting).

    Args:
        a: `(k (k + 1) / 2, m)` packed upper triangles of `A_x` (see `pack_upper`).
        q: `(k (k + 1) / 2, m)` packed upper triangles of symmetric `Q_x`.
        k: block size.

    Returns:
        `(m,)` traces.
    """
    starts = packed_row_starts(k)
    trace = torch.zeros(a.shape[1], dtype=a.dtype, device=a.device)
    for j in range(k):
        row_a = a[starts[j] : starts[j + 1]]  # (k - j, m): A_j,j..k-1
        row_q = q[starts[j] : starts[j + 1]]
        pivot = row_a[0]
        trace.addcdiv_(row_q[0], pivot)
        if j == k - 1:
            break
        mult = row_a[1:] / pivot  # (k-j-1, m): l_s, s > j
        # w_s = Q_js - l_s Q_jj, so that Q_rs <- Q_rs - l_r w_s - l_s Q_jr.
        w = torch.addcmul(row_q[1:], mult, row_q[0], value=-1.0)
        for i, r in enumerate(range(j + 1, k)):
            target_a = a[starts[r] : starts[r + 1]]  # (k - r, m): A_r,r..k-1
            target_q = q[starts[r] : starts[r + 1]]
            target_a.addcmul_(mult[i], row_a[1 + i :], value=-1.0)
            target_q.addcmul_(mult[i], w[i:], value=-1.0)
            target_q.addcmul_(mult[i:], row_q[1 + i], value=-1.0)
    return trace


def sum_to_zero_basis(n_classes: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Orthonormal basis of the vectors whose entries sum to zero.

    Class probabilities sum to one under every mask, so each centred block `F_x` has
    `1^T F_x = 0`: its columns live in this `(c - 1)`-dimensional space, and expressing them in
    the basis loses nothing while shrinking every `c x c` block to `(c-1) x (c-1)`.

    Returns:
        `(c, c - 1)` matrix `H` with `H^T H = I` and `1^T H = 0`.
    """
    ones_first = torch.eye(n_classes, dtype=torch.float64)
    ones_first[:, 0] = 1.0
    q, _ = torch.linalg.qr(ones_first)
    basis: torch.Tensor = q[:, 1:].to(dtype=dtype, device=device).contiguous()
    return basis
