"""The bodies of the round pipeline's stages: load the campaign's files, call the library, save.

DVC runs each as ``python -m deimos.campaign.stages <stage>`` in the campaign directory (see
dvc.yaml);
the Prefect flows reach them through `dvc repro`, so DVC alone decides what is up to date.
Every output is written to a temporary name and renamed, so a crash leaves no half file.
Exit status: 0 done, 2 bad input (one-line reason on stderr), 1 internal error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deimos.atomic import write_text_atomic
from deimos.campaign.code_version import CODE_FILE, check_code_file, write_code_file
from deimos.campaign.layout import STAGES, Campaign
from deimos.campaign.params import CampaignParams
from deimos.data.onehot import one_hot
from deimos.data.sequences import SequenceSet, read_fasta
from deimos.errors import InputError
from deimos.lab.store import LabelStore

MIN_LABELS = 4
MIN_VALIDATION = 2


def prepare(campaign: Campaign, params: CampaignParams) -> dict[str, Any]:
    """Split the labels into train/validation and list the sequences that may be picked.

    An id's split is fixed by a hash of (seed, id), so the validation set only grows between
    rounds and never swaps members with the training set. Candidates are the pool minus every
    labelled id minus every id already sent to the lab in a closed round.
    """
    pool = _pool(campaign, params)
    labels = LabelStore(campaign.label_dir).labels()
    in_pool = set(pool.ids)
    unknown = [i for i in labels["id"] if i not in in_pool]
    if unknown:
        raise InputError(
            f"{campaign.label_dir / 'labels.csv'}: {len(unknown)} labelled ids are not in "
            f"{campaign.pool_fasta}: {', '.join(unknown[:5])}"
        )
    if len(labels) < MIN_LABELS:
        raise InputError(
            f"{campaign.label_dir / 'labels.csv'}: {len(labels)} labels; at least {MIN_LABELS} "
            "are needed to train (ingest initial measurements with `deimos ingest "
            "--allow-unrequested`)"
        )
    u = np.array([_unit_hash(params.seed, i) for i in labels["id"]])
    is_val = u < params.validation_fraction
    if is_val.sum() < MIN_VALIDATION:
        is_val[np.argsort(u, kind="stable")[:MIN_VALIDATION]] = True
    if (~is_val).sum() < MIN_VALIDATION:
        is_val[np.argsort(u, kind="stable")[::-1][:MIN_VALIDATION]] = False
    table = pd.DataFrame(
        {
            "id": labels["id"],
            "value": labels["value"].astype(float),
            "split": np.where(is_val, "validation", "train"),
        }
    )
    taken = set(labels["id"]) | set(campaign.requested()["id"])
    candidates = [i for i in pool.ids if i not in taken]
    if not candidates:
        raise InputError(f"{campaign.pool_fasta}: every sequence is labelled or requested")
    out = _round_dir(campaign, params)
    write_text_atomic(out / "training_set.csv", table.to_csv(index=False, float_format="%.10g"))
    write_text_atomic(out / "candidates.txt", "\n".join(candidates) + "\n")
    return {"n_train": int((~is_val).sum()), "n_validation": int(is_val.sum()), "n_candidates":
            len(candidates)}  # fmt: skip


def round_settings(params: CampaignParams) -> Any:
    """The round kernel's settings for this campaign (`deimos.loop.round.RoundSettings`)."""
    from deimos.loop.round import RoundSettings

    return RoundSettings(
        kind="regression",
        method=params.method,
        batch_size=params.batch_size,
        n_masks=params.n_masks,
        train=params.train,
        tau_factor=params.tau_factor,
    )


def round_seeds(params: CampaignParams) -> Any:
    """This round's seeds from the campaign's seed plan (`deimos.loop.seeds`)."""
    from deimos.loop.seeds import SeedPlan

    return SeedPlan(params.seed).for_round(params.round)


def train(campaign: Campaign, params: CampaignParams) -> dict[str, Any]:
    """Train a SplicingCNN from scratch on the round's training split (the round kernel's fit);
    report validation (and, for simulated campaigns, test) MSE."""
    from deimos.data.donor_model import donor_usage
    from deimos.loop.round import fit_round_model
    from deimos.uncertainty.predict import predict_mean
    from deimos.uncertainty.train import save_model
    from models.splicing import SplicingCNN

    pool = _pool(campaign, params)
    out = _round_dir(campaign, params)
    table = _training_set(out)
    X = _encode(pool, table["id"])
    y = table["value"].to_numpy(dtype=np.float32)
    is_val = (table["split"] == "validation").to_numpy()

    def build(init_seed: int) -> SplicingCNN:
        return SplicingCNN(
            seq_length=params.sequence_length, dropout_p=params.model.dropout_p, seed=init_seed
        )

    model, result = fit_round_model(
        build,
        X[~is_val],
        y[~is_val],
        X[is_val],
        y[is_val],
        round_settings(params),
        round_seeds(params),
        progress=True,
    )
    save_model(model, out / "model.pt")
    val_pred = predict_mean(model, X[is_val], progress=False).numpy()
    metrics: dict[str, Any] = {
        "round": params.round,
        "n_labels": len(table),
        "n_train": int((~is_val).sum()),
        "n_validation": int(is_val.sum()),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.val_losses),
        "validation_mse": float(np.mean((val_pred - y[is_val]) ** 2)),
    }
    if params.simulation is not None and campaign.test_fasta.is_file():
        test = read_fasta(campaign.test_fasta, length=params.sequence_length)
        test_pred = predict_mean(model, one_hot(test), progress=False).numpy()
        metrics["test_mse"] = float(np.mean((test_pred - donor_usage(list(test.seqs))) ** 2))
    write_text_atomic(out / "train_metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


# The predictions/ directory: what the select stage reads back (float32 .npy, no pickles).
_ARRAYS = {
    "candidates": "candidate_preds.npy",
    "validation": "validation_preds.npy",
    "labelled": "labelled_preds.npy",
    "embeddings": "candidate_embeddings.npy",
    "labelled_embeddings": "labelled_embeddings.npy",
}


def predict(campaign: Campaign, params: CampaignParams) -> dict[str, Any]:
    """The round kernel's predictions: candidates and validation labels under the round's fixed
    masks (and embeddings when the method needs them)."""
    from deimos.loop.round import predict_round
    from deimos.uncertainty.train import load_model

    pool = _pool(campaign, params)
    out = _round_dir(campaign, params)
    model = load_model(out / "model.pt")
    candidates = _candidates(out)
    table = _training_set(out)
    val = table[table["split"] == "validation"]
    settings = round_settings(params)
    needs_train = settings.needs_embeddings or settings.sample_labelled
    preds = predict_round(
        model,
        _encode(pool, candidates),
        _encode(pool, val["id"]),
        settings,
        round_seeds(params),
        X_train=_encode(pool, table[table["split"] == "train"]["id"]) if needs_train else None,
        progress=True,
    )
    with _replacing_dir(out / "predictions") as tmp:
        for field, name in _ARRAYS.items():
            array = getattr(preds, field)
            if array is not None:
                np.save(tmp / name, array)
        (tmp / "candidate_ids.txt").write_text("\n".join(candidates) + "\n", encoding="utf-8")
        np.save(tmp / "validation_values.npy", val["value"].to_numpy(dtype=np.float64))
    return {"n_candidates": len(candidates), "n_masks": params.n_masks}


def select(campaign: Campaign, params: CampaignParams) -> dict[str, Any]:
    """Pick the batch with the campaign's method (the round kernel's tau and acquisition);
    write the selection table and its metrics."""
    from deimos.loop.round import RoundPredictions, acquire, calibrate_tau

    out = _round_dir(campaign, params)
    pred_dir = out / "predictions"
    ids = (pred_dir / "candidate_ids.txt").read_text(encoding="utf-8").split()
    arrays = {
        field: np.load(pred_dir / name, allow_pickle=False) if (pred_dir / name).is_file() else None
        for field, name in _ARRAYS.items()
    }
    predictions = RoundPredictions(**arrays)
    settings = round_settings(params)
    if settings.needs_predictions and predictions.candidates is None:
        raise InputError(f"{pred_dir}: no candidate predictions; re-run the predict stage")
    if settings.needs_embeddings and predictions.embeddings is None:
        raise InputError(f"{pred_dir}: no embeddings for {params.method}; re-run predict")
    tau_inv = calibrate_tau(predictions.validation, settings)
    batch = min(params.batch_size, len(ids))
    picks = acquire(
        predictions, tau_inv, settings, round_seeds(params), n_candidates=len(ids),
        batch_size=batch, progress=True,
    )  # fmt: skip
    rows = np.asarray(picks.indices, dtype=np.int64)
    preds = predictions.candidates
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(rows) + 1),
            "id": [ids[r] for r in rows],
            "expected_improvement": np.asarray(picks.gains, dtype=np.float64),
            "pred_mean": preds[rows].mean(axis=1).astype(np.float64) if preds is not None
            else np.nan,
            "pred_sd": preds[rows].std(axis=1, ddof=1).astype(np.float64) if preds is not None
            else np.nan,
        }
    )  # fmt: skip
    write_text_atomic(out / "selection.csv", table.to_csv(index=False, float_format="%.10g"))
    metrics = {
        "round": params.round,
        "method": params.method,
        "batch_size": len(rows),
        "n_candidates": len(ids),
        "n_masks": params.n_masks,
        "tau_inv": tau_inv,
        "total_expected_improvement": float(np.sum(picks.gains)),
    }
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def export(campaign: Campaign, params: CampaignParams) -> dict[str, Any]:
    """The lab's copy of the batch, in every format of `params.export.formats`."""
    from deimos.campaign.exports import export_batch

    pool = _pool(campaign, params)
    out = _round_dir(campaign, params)
    selection = campaign.selection(params.round)
    seq_of = dict(zip(pool.ids, pool.seqs, strict=True))
    table = selection[["rank", "id"]].copy()
    table["sequence"] = [seq_of[i] for i in selection["id"]]
    for col in ("pred_mean", "pred_sd", "expected_improvement"):
        table[col] = selection[col]
    with _replacing_dir(out / "export") as tmp:
        files = export_batch(table, tmp, params)
    return {"n_exported": len(table), "files": files}


STAGE_FUNCTIONS = {
    "prepare": prepare,
    "train": train,
    "predict": predict,
    "select": select,
    "export": export,
}
assert tuple(STAGE_FUNCTIONS) == STAGES


# --- helpers ----------------------------------------------------------------------------------


def _pool(campaign: Campaign, params: CampaignParams) -> SequenceSet:
    return read_fasta(campaign.pool_fasta, length=params.sequence_length)


def _round_dir(campaign: Campaign, params: CampaignParams) -> Path:
    path = campaign.round_dir(params.round)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _training_set(out: Path) -> pd.DataFrame:
    path = out / "training_set.csv"
    if not path.is_file():
        raise InputError(f"{path}: missing; run the prepare stage first")
    return pd.read_csv(path, dtype={"id": str, "split": str})


def _candidates(out: Path) -> list[str]:
    path = out / "candidates.txt"
    if not path.is_file():
        raise InputError(f"{path}: missing; run the prepare stage first")
    return path.read_text(encoding="utf-8").split()


def _encode(pool: SequenceSet, ids: Sequence[str] | pd.Series) -> np.ndarray:
    row_of = {seq_id: row for row, seq_id in enumerate(pool.ids)}
    missing = [i for i in ids if i not in row_of]
    if missing:
        raise InputError(f"{pool.source}: ids not in the pool: {', '.join(missing[:5])}")
    X = one_hot(pool)
    return X[np.array([row_of[i] for i in ids], dtype=np.int64)]


def _unit_hash(seed: int, seq_id: str) -> float:
    digest = hashlib.sha256(f"{seed}\0{seq_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class _replacing_dir:  # noqa: N801  (used like a function: `with _replacing_dir(path) as tmp`)
    """Fill a temporary directory beside `path`; on success it replaces `path` in one rename."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Path:
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        return self.tmp

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            self.path.rename(old)
            self.tmp.rename(self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self.tmp.rename(self.path)


def run_stage(stage: str, campaign_dir: str | Path = ".") -> dict[str, Any]:
    """Run one stage of the campaign in `campaign_dir` with its `params.yaml`."""
    if stage not in STAGE_FUNCTIONS:
        raise InputError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    campaign = Campaign(campaign_dir)
    return STAGE_FUNCTIONS[stage](campaign, campaign.params())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deimos.campaign.stages", description=__doc__)
    parser.add_argument("stage", choices=(*STAGES, "code"), help="a stage, or `code` to record "
                        "the installed code in code.json")  # fmt: skip
    parser.add_argument("--campaign", type=Path, default=Path("."), help="campaign directory")
    args = parser.parse_args(argv)
    try:
        if args.stage == "code":
            changed = write_code_file(args.campaign)
            print(f"{CODE_FILE}: {'updated' if changed else 'unchanged'}")
            return 0
        check_code_file(args.campaign)
        start = time.perf_counter()
        summary = run_stage(args.stage, args.campaign)
        # Wall time and peak memory of the stage's own work (imports included), for
        # `benchmarks.round_scale` and for anyone reading a slow round's log.
        summary["seconds"] = round(time.perf_counter() - start, 2)
        summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    except InputError as exc:
        print(f"deimos stage {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    print(f"stage {args.stage}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
