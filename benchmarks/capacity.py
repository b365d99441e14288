"""Capacity of one machine: pool size vs time and memory of scoring and DEIMOS selection.

Run as `python -m benchmarks.capacity [--sizes N ...] [--masks J] [--batch B] [--dask-size N]`.
Each pool size runs in a fresh process: fixed-mask predictions of N random splicing sequences
with an untrained `SplicingCNN` (J masks; the cost does not depend on the weights), then
`select_deimos` of a batch of B from those N x J predictions, with the peak RSS of the process
after each step. `--dask-size` also times the same scoring as the Prefect `score-pool` flow on a
local Dask cluster (2 single-threaded workers, 4 shards) against one process, and checks that the
predictions are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Offline machines: no telemetry calls from a temporary Prefect server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_one(n: int, n_masks: int, batch: int) -> dict[str, float]:
    """Score `n` random sequences and select `batch` of them, in this process."""
    import torch

    from deimos.acquisition.deimos import select_deimos
    from deimos.uncertainty.predict import predict_fixed_masks
    from models.splicing import SplicingCNN

    model = SplicingCNN(seed=0)
    rng = np.random.default_rng(0)
    X = np.zeros((n, 4, int(model.input_shape[-1])), dtype=np.float32)
    X[np.arange(n)[:, None], rng.integers(0, 4, size=(n, X.shape[2])), np.arange(X.shape[2])] = 1
    base = _peak_mb()
    start = time.perf_counter()
    preds = predict_fixed_masks(model, torch.from_numpy(X), n_masks=n_masks, seed=0, progress=False)
    predict_s = time.perf_counter() - start
    predict_mb = _peak_mb()
    del X
    start = time.perf_counter()
    select_deimos(preds.numpy(), batch, tau_inv=0.1 * float(preds.var(dim=1).mean()))
    select_s = time.perf_counter() - start
    return {
        "n": n,
        "predict_s": round(predict_s, 2),
        "select_s": round(select_s, 2),
        "inputs_mb": round(base, 0),
        "peak_after_predict_mb": round(predict_mb, 0),
        "peak_after_select_mb": round(_peak_mb(), 0),
    }


def measure_dask(n: int, n_masks: int) -> dict[str, object]:
    """`score-pool` on one process vs a 2-worker local Dask cluster, same FASTA and masks."""
    from deimos.data.a5ss_library import generate_library
    from deimos.data.fasta_writer import write_fasta
    from deimos.uncertainty.train import save_model
    from flows.score_pool import score_pool, score_pool_on_dask
    from models.splicing import SplicingCNN

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        library = generate_library(n, seed=1)
        write_fasta(d / "pool.fasta", list(library.ids), list(library.seqs))
        save_model(SplicingCNN(seed=0), d / "model.pt")
        common: dict[str, Any] = {"model_path": str(d / "model.pt"), "fasta": str(d / "pool.fasta"),
                  "n_masks": n_masks, "seed": 0}  # fmt: skip
        start = time.perf_counter()
        score_pool(out=str(d / "one.npy"), shards=1, **common)
        one_s = time.perf_counter() - start
        start = time.perf_counter()
        score_pool_on_dask(workers=2, out=str(d / "dask.npy"), shards=4, **common)
        dask_s = time.perf_counter() - start
        same = bool(np.array_equal(np.load(d / "one.npy"), np.load(d / "dask.npy")))
    return {"n": n, "one_process_s": round(one_s, 1), "dask_2_workers_s": round(dask_s, 1),
            "identical": same}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 265_137])
    parser.add_argument("--masks", type=int, default=50)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--dask-size", type=int, default=0, help="0: skip the Dask comparison")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure_one(args.one, args.masks, args.batch)))
        return 0
    print(f"J={args.masks}, batch {args.batch}, SplicingCNN, "
          f"torch threads = all cores; MB = peak RSS of the process")  # fmt: skip
    print(f"{'n':>9} {'predict s':>10} {'select s':>9} {'MB inputs':>10} {'MB predict':>11} "
          f"{'MB select':>10}")  # fmt: skip
    for n in args.sizes:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.capacity",
                "--one",
                str(n),
                "--masks",
                str(args.masks),
                "--batch",
                str(args.batch),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{r['n']:>9,} {r['predict_s']:>10} {r['select_s']:>9} {r['inputs_mb']:>10.0f} "
              f"{r['peak_after_predict_mb']:>11.0f} {r['peak_after_select_mb']:>10.0f}",
              flush=True)  # fmt: skip
    if args.dask_size:
        print(json.dumps(measure_dask(args.dask_size, args.masks)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
