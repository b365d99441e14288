"""Acquisition benchmark: `python -m benchmarks.acquisition [--quick] [--only NAME ...]`.

Each case runs in its own Python process so that its peak memory (the process's peak resident
set size, inputs and interpreter included) is its own. Timings cover the selection call only, not
the generation of the random predictions.
"""

from __future__ import annotations

import argparse
import json
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
    Case("cls-60k", "deimos", 60_000, 50, 10, 100, target="<= 20 s"),
    Case("reg-5k-vs-dense", "deimos", 5_000, 50, 1, 100, dense_check=True, target=">= 100x dense"),
    Case("cls-500-vs-dense", "deimos", 500, 50, 10, 100, dense_check=True, target="same picks"),
    Case("batchbald-2k", "batchbald", 2_000, 50, 10, 100, target="finishes"),
)
QUICK_CASES = (
    Case("reg-20k", "deimos", 20_000, 50, 1, 20),
    Case("cls-2k", "deimos", 2_000, 20, 10, 10),
    Case("reg-1k-vs-dense", "deimos", 1_000, 20, 1, 20, dense_check=True),
    Case("cls-100-vs-dense", "deimos", 100, 20, 5, 10, dense_check=True),
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
    return row


def format_table(rows: list[dict[str, object]]) -> str:
    """Markdown table of benchmark rows."""
    columns = (
        "case", "method", "n", "J", "c", "b", "dtype", "seconds", "peak RSS (MB)",
        "dense s", "speedup", "same picks as dense", "target",
    )  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['method']} | {r['n']:,} | {r['n_masks']} | {r['n_classes']} "
            f"| {r['batch_size']} | {r['dtype']} | {r['seconds']} | {r['peak_rss_mb']} "
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
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
