"""`score-pool`: fixed-mask predictions of a whole pool, computed in shards by a task runner.

With `workers` (a local Dask cluster) or `dask_address` (an existing one, e.g. GPU machines),
the shards run on Dask through `prefect-dask`; otherwise on one process. Every shard draws the
same masks from `seed`, and the gathered `(n, J)` predictions are what `deimos select` (DEIMOS
on the n x J factors) takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from deimos.data.sequences import read_fasta
from deimos.uncertainty.train import load_model
from flows.dask_runner import dask_task_runner, one_prefect_server
from tasks.scoring_tasks import plan_shards, predict_shard, save_predictions


@flow(name="score-pool")
def score_pool(
    model_path: str,
    fasta: str,
    out: str,
    n_masks: int = 50,
    seed: int = 0,
    shards: int = 1,
    device: str | None = None,
) -> dict[str, Any]:
    """Predict every sequence of `fasta` under `n_masks` fixed masks, `shards` tasks at once.

    `device` ("cpu", "cuda", "cuda:1", ...) is where each shard computes; `None` picks CUDA
    when the worker has it, else the CPU.

    Returns:
        `out` (the .npy path), `n` (sequences), `n_masks`, `shards` (ranges actually used).
    """
    logger = get_run_logger()
    model = load_model(Path(model_path))
    ids = list(read_fasta(Path(fasta), length=int(model.input_shape[-1])).ids)
    ranges = plan_shards(len(ids), shards)
    logger.info("score-pool: %d sequences in %d shards, J=%d", len(ids), len(ranges), n_masks)
    futures = [
        predict_shard.submit(model_path, fasta, start, stop, n_masks, seed, device)
        for start, stop in ranges
    ]
    parts = [f.result() for f in futures]
    path = save_predictions(out, parts, ids)
    return {"out": path, "n": len(ids), "n_masks": n_masks, "shards": ranges}


def score_pool_on_dask(
    *, workers: int = 2, dask_address: str | None = None, **params: Any
) -> dict[str, Any]:
    """Run `score_pool` with a `DaskTaskRunner`: a local cluster of `workers` single-threaded
    processes, or the scheduler at `dask_address`."""
    with one_prefect_server():
        runner = dask_task_runner(workers, dask_address)
        return score_pool.with_options(task_runner=runner)(**params)
