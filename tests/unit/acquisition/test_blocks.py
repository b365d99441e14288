"""The packed small-block algebra under classification DEIMOS, against dense torch.linalg."""

from __future__ import annotations

import pytest
import torch

from deimos.acquisition.blocks import (
    pack_upper,
    packed_row_starts,
    sum_to_zero_basis,
    trace_solve_packed_,
)


def _spd_and_symmetric(m: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, k, k + 3, generator=g, dtype=torch.float64)
    A = X @ X.transpose(1, 2) + 1e-3 * torch.eye(k, dtype=torch.float64)
    Y = torch.randn(m, k, k, generator=g, dtype=torch.float64)
    return A, Y + Y.transpose(1, 2)  # Q need not be definite


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_trace_solve_matches_dense_solve(k):
    A, Q = _spd_and_symmetric(200, k, seed=k)
    expected = torch.linalg.solve(A, Q).diagonal(dim1=1, dim2=2).sum(dim=1)
    got = trace_solve_packed_(pack_upper(A), pack_upper(Q), k)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_pack_upper_is_row_major_upper_triangle_batch_last():
    A, _ = _spd_and_symmetric(4, 3, seed=0)
    packed = pack_upper(A)
    assert packed.shape == (6, 4)
    starts = packed_row_starts(3)
    assert starts == [0, 3, 5, 6]
    for r in range(3):
        for offset, s in enumerate(range(r, 3)):
            torch.testing.assert_close(packed[starts[r] + offset], A[:, r, s])
    out = torch.empty(6, 4, dtype=torch.float64)
    assert pack_upper(A, out=out).data_ptr() == out.data_ptr()


@pytest.mark.parametrize("c", [2, 3, 10])
def test_sum_to_zero_basis_is_orthonormal_and_orthogonal_to_ones(c):
    H = sum_to_zero_basis(c, torch.float64, torch.device("cpu"))
    assert H.shape == (c, c - 1)
    torch.testing.assert_close(H.T @ H, torch.eye(c - 1, dtype=torch.float64))
    torch.testing.assert_close(H.sum(dim=0), torch.zeros(c - 1, dtype=torch.float64))
    # Any zero-sum vector is reproduced by projecting onto the basis.
    v = torch.randn(c, dtype=torch.float64)
    v -= v.mean()
    torch.testing.assert_close(H @ (H.T @ v), v)
