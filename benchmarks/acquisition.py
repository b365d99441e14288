"""Acquisition benchmark: `python -m benchmarks.acquisition [--quick] [--only NAME ...]`.

Each case runs in its own Python process so that its peak memory (the process's peak resident
set size, inputs and interpreter included) is its own. Timings cover the selection call only, not
the generation of the random predictions. Beside each DEIMOS time the table prints a floor, the
larger of two: the bytes a pick must move (`bytes_per_pick`) over the read bandwidth this process
measures on a 512 MiB reduction ("memory"), and the flops a pick must do (`flops_per_pick`) over
the rate of a dense 2048 x 2048 product in the case's dtype ("compute"), times the batch size.
"x floor" is the distance to the machine's limit. The first line names the machine, since these
shared 2-core machines differ between sessions.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from deimos.acquisition.selection import Selection


@dataclass(frozen=True)
class Case:
    """One benchmark row: sizes, method, and the target it is held to (informational)."""

    name: str
    method: str
    n: int
    n_masks: int
    n_classes: int
    batch_size: int
    dtype: str = "float64"
    dense_check: bool = False
    target: str = ""


FULL_CASES = (
    Case("reg-265k", "deimos", 265_137, 50, 1, 100, target="<= 1.5 s, <= 1.5 GB"),
    Case("reg-265k-f32", "deimos", 265_137, 50, 1, 100, dtype="float32", target="(opt-in)"),
    Case("reg-1M", "deimos", 1_000_000, 50, 1, 100, target="<= 6 s, <= 2 GB"),
    Case("cls-60k", "deimos", 60_000, 50, 10, 100, target="<= 8 s"),
    Case("bin-265k", "deimos", 265_137, 50, 2, 100, target="<= 6 s"),
    Case("reg-5k-vs-dense", "deimos", 5_000, 50, 1, 100, dense_check=True, target=">= 100x dense"),
    Case("cls-500-vs-dense", "deimos", 500, 50, 10, 100, dense_check=True, target="same picks"),
    Case("bin-2k-vs-dense", "deimos", 2_000, 50, 2, 100, dense_check=True, target="same picks"),
    Case("batchbald-2k", "batchbald", 2_000, 50, 10, 100, target="finishes"),
)
QUICK_CASES = (
    Case("reg-20k", "deimos", 20_000, 50, 1, 20),
    Case("cls-2k", "deimos", 2_000, 20, 10, 10),
    Case("reg-1k-vs-dense", "deimos", 1_000, 20, 1, 20, dense_check=True),
    Case("cls-100-vs-dense", "deimos", 100, 20, 5, 10, dense_check=True),
    Case("bin-300-vs-dense", "deimos", 300, 20, 2, 30, dense_check=True),
)


def make_predictions(case: Case, seed: int = 0) -> np.ndarray:
    """Random fixed-mask predictions shaped like a real model's: `(n, J)` or `(n, c, J)`."""
    rng = np.random.default_rng(seed)
    if case.n_classes == 1:
        # Per-point mean and spread differ, as they do for a trained regressor.
        scale = rng.gamma(2.0, 0.5, size=(case.n, 1))
        preds = rng.normal(size=(case.n, 1)) + scale * rng.normal(size=(case.n, case.n_masks))
    else:
        logits = rng.normal(size=(case.n, case.n_classes, 1)) * 2.0
        logits = logits + rng.gamma(2.0, 0.5, size=(case.n, 1, 1)) * rng.normal(
            size=(case.n, case.n_classes, case.n_masks)
        )
        logits -= logits.max(axis=1, keepdims=True)
        preds = np.exp(logits)
        preds /= preds.sum(axis=1, keepdims=True)
    return preds.astype(case.dtype)


def default_tau_inv(preds: np.ndarray) -> float:
    """Appendix E defaults: 0.15 (regression) or 0.005 (classification) x mean dropout variance."""
    factor = 0.15 if preds.ndim == 2 else 0.005
    return float(factor * preds.var(axis=-1, ddof=1).mean())


def dense_deimos(preds: np.ndarray, batch_size: int, tau_inv: float) -> list[int]:
    """The paper's dense Algorithm 1 with the full covariance, vectorised with NumPy."""
    n_masks = preds.shape[-1]
    classification = preds.ndim == 3
    c = preds.shape[1] if classification else 1
    flat = preds.reshape(-1, n_masks).astype(np.float64)
    F = (flat - flat.mean(axis=1, keepdims=True)) / np.sqrt(n_masks - 1)
    V = F @ F.T  # (n c, n c)
    if not classification:
        V[np.diag_indices_from(V)] += tau_inv
    n = preds.shape[0]
    picked: list[int] = []
    eye_c = np.eye(c)
    for _ in range(batch_size):
        if classification:
            V_blocks = V.reshape(n, c, n, c)
            VtV = np.einsum("kaxb,kaxd->xbd", V_blocks, V_blocks)  # V_Sx^T V_Sx per x
            diag_blocks = V_blocks[np.arange(n), :, np.arange(n), :]  # (n, c, c)
            ei = np.trace(np.linalg.solve(diag_blocks + tau_inv * eye_c, VtV), axis1=1, axis2=2)
        else:
            ei = (V * V).sum(axis=0) / np.diag(V)
        ei[picked] = -np.inf
        best = int(np.argmax(ei))
        picked.append(best)
        rows = slice(best * c, (best + 1) * c)
        A = np.linalg.inv(V[rows, rows] + (tau_inv * eye_c if classification else 0.0))
        V -= V[:, rows] @ A @ V[rows, :]
    return picked


def bytes_per_pick(case: Case) -> int:
    """Bytes one DEIMOS pick cannot avoid moving: read every candidate's centred predictions once
    and read and write its running statistics (float64).

    Regression and binary classification keep two scalars per candidate; `c` classes keep two
    `(c-1) x (c-1)` blocks (the sum-to-zero coordinates). Intermediate products that stay in
    cache are not counted, so this is a floor, not a model of the implementation.
    """
    k = 1 if case.n_classes <= 2 else case.n_classes - 1
    itemsize = 4 if case.dtype == "float32" else 8
    return case.n * itemsize * (k * case.n_masks + 2 * 2 * k * k)


def flops_per_pick(case: Case) -> int:
    """Multiply-adds x 2 one DEIMOS pick cannot avoid: the candidates' factors times the pick's
    update vectors, and (blocks) the rank-k update of the two running `k x k` blocks.

    Scalar paths (regression, binary) multiply each candidate's `J` factors by two vectors
    (`4 n J`). With `k = c - 1 >= 2` a pick needs `F_x [U, E]` for every candidate (`4 n k^2 J`)
    and `B B^T`, `B E^T` per candidate (`4 n k^3`, the second symmetrised).
    """
    k = 1 if case.n_classes <= 2 else case.n_classes - 1
    if k == 1:
        return 4 * case.n * case.n_masks
    return case.n * (4 * k * k * case.n_masks + 4 * k**3)


def measured_gemm_rate(dtype: str, size: int = 2048) -> float:
    """This process's dense matrix-product rate in flop/s: best of 3 `size x size` products."""
    import torch

    a = torch.randn(size, size, dtype=getattr(torch, dtype))
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def measured_bandwidth(n_bytes: int = 1 << 29) -> float:
    """This process's read bandwidth in bytes/s: best of 5 full reductions over 512 MiB."""
    import torch

    x = torch.ones(n_bytes // 8, dtype=torch.float64)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return n_bytes / best


def run_case(case: Case) -> dict[str, object]:
    """Run one case in this process; return its row of the table."""
    from deimos.acquisition.deimos import select_deimos
    from deimos.acquisition.registry import SelectionInputs, select

    preds = make_predictions(case)
    tau_inv = default_tau_inv(preds)
    start = time.perf_counter()
    selection: Selection
    if case.method == "deimos":
        # The precision option is DEIMOS' own, so it is called directly.
        selection = select_deimos(preds, case.batch_size, tau_inv=tau_inv, precision=case.dtype)
    else:
        selection = select(case.method, SelectionInputs(case.batch_size, preds=preds, seed=0))
    seconds = time.perf_counter() - start
    row: dict[str, object] = asdict(case) | {"seconds": round(seconds, 3)}
    if case.dense_check:
        start = time.perf_counter()
        dense_picks = dense_deimos(preds, case.batch_size, tau_inv)
        dense_seconds = time.perf_counter() - start
        row["dense_seconds"] = round(dense_seconds, 3)
        row["speedup"] = round(dense_seconds / seconds, 1)
        row["same_picks"] = list(selection.indices) == dense_picks
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if case.method == "deimos":
        bandwidth = measured_bandwidth()
        gemm_rate = measured_gemm_rate(case.dtype)
        memory_floor = case.batch_size * bytes_per_pick(case) / bandwidth
        compute_floor = case.batch_size * flops_per_pick(case) / gemm_rate
        floor = max(memory_floor, compute_floor)
        row["bandwidth_gb_s"] = round(bandwidth / 1e9, 1)
        row["gemm_gflop_s"] = round(gemm_rate / 1e9, 1)
        row["floor_seconds"] = float(f"{floor:.3g}")
        row["bound"] = "memory" if memory_floor >= compute_floor else "compute"
        row["x_floor"] = round(seconds / floor, 1)
    return row


def machine_line() -> str:
    """CPU model, torch threads and version: which machine the table is from."""
    import platform

    import torch

    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            names = [ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")]
        model = f"{names[0]} x {len(names)}" if names else model
    except OSError:
        pass
    return f"machine: {model}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def format_table(rows: list[dict[str, object]]) -> str:
    """Markdown table of benchmark rows."""
    columns = (
        "case", "method", "n", "J", "c", "b", "dtype", "seconds", "floor s", "bound", "x floor",
        "read GB/s", "GEMM GFLOP/s", "peak RSS (MB)",
        "dense s", "speedup", "same picks as dense", "target",
    )  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['method']} | {r['n']:,} | {r['n_masks']} | {r['n_classes']} "
            f"| {r['batch_size']} | {r['dtype']} | {r['seconds']} | {r.get('floor_seconds', '')} "
            f"| {r.get('bound', '')} | {r.get('x_floor', '')} | {r.get('bandwidth_gb_s', '')} "
            f"| {r.get('gemm_gflop_s', '')} | {r['peak_rss_mb']} "
            f"| {r.get('dense_seconds', '')} | {r.get('speedup', '')} "
            f"| {r.get('same_picks', 'n/a (dense does not fit)')} | {r['target']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", nargs="*", help="case names to run")
    parser.add_argument("--run-case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cases = {c.name: c for c in (*FULL_CASES, *QUICK_CASES)}
    if args.run_case:
        print(json.dumps(run_case(cases[args.run_case])))
        return 0
    selected: tuple[Case, ...] = QUICK_CASES if args.quick else FULL_CASES
    if args.only:
        unknown = sorted(set(args.only) - set(cases))
        if unknown:
            parser.error(f"unknown case(s) {unknown}; known: {sorted(cases)}")
        selected = tuple(cases[name] for name in args.only)
    rows = []
    for case in selected:
        print(f"running {case.name} ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.acquisition", "--run-case", case.name],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(machine_line())
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
