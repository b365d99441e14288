"""Scoring a pool in shards: one Prefect task per shard, any task runner (Dask for scale-out).

Each shard task loads the saved model, reads its rows of the FASTA pool and predicts them under
the masks drawn from the shared seed, so every shard uses the same `J` masks; the flow
concatenates the shards in order. Shards are aligned to the prediction batch size, so the result
is bit-identical to one `predict_fixed_masks` call over the whole pool (tested).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from deimos.atomic import replacing, write_text_atomic
from deimos.data.onehot import one_hot
from deimos.data.sequences import read_fasta
from deimos.errors import InputError
from deimos.uncertainty.predict import predict_fixed_masks, shard_ranges
from deimos.uncertainty.train import load_model

PREDICT_BATCH = 256


def pool_size(fasta: str, model_path: str) -> int:
    """Number of sequences in the pool (checked against the model's input length)."""
    model = load_model(Path(model_path))
    return len(read_fasta(Path(fasta), length=int(model.input_shape[-1])).ids)


def plan_shards(n: int, n_shards: int) -> list[tuple[int, int]]:
    """Shard row ranges aligned to the prediction batch size."""
    return shard_ranges(n, n_shards, align=PREDICT_BATCH)


@task(name="predict-shard", task_run_name="shard-{start}-{stop}", cache_policy=NO_CACHE)
def predict_shard(
    model_path: str,
    fasta: str,
    start: int,
    stop: int,
    n_masks: int,
    seed: int,
    device: str | None = None,
) -> np.ndarray:
    """`(stop - start, J)` fixed-mask predictions of pool rows `start..stop-1`."""
    model = load_model(Path(model_path))
    pool = read_fasta(Path(fasta), length=int(model.input_shape[-1]))
    if not 0 <= start < stop <= len(pool.ids):
        raise InputError(f"{fasta}: shard {start}..{stop} outside the {len(pool.ids)} sequences")
    X = one_hot(list(pool.seqs[start:stop]), ids=list(pool.ids[start:stop]))
    return predict_fixed_masks(
        model,
        X,
        n_masks=n_masks,
        seed=seed,
        batch_size=PREDICT_BATCH,
        device=device,
        progress=False,
    ).numpy()


@task(name="save-predictions", cache_policy=NO_CACHE)
def save_predictions(out: str, shards: list[np.ndarray], ids: list[str]) -> str:
    """Concatenate shards in order and write `out` (.npy) and its ids beside it, atomically."""
    preds = np.concatenate(shards, axis=0)
    if preds.shape[0] != len(ids):
        raise InputError(f"shards hold {preds.shape[0]} rows for {len(ids)} ids")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, preds)
    write_text_atomic(path.with_suffix(".ids.txt"), "\n".join(ids) + "\n")
    return str(path)
