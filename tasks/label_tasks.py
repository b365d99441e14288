"""Prefect tasks that bring labels in: validated ingestion, closing the round, versioning, and
the simulated lab that answers a published batch.

Each task is idempotent, so an ingestion that crashed half way is finished by running it again:
the label store ignores a file it already holds (content hash), a round is closed once, an event
is logged once per file, and versioning commits only what changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from deimos.campaign import repo
from deimos.campaign.create import INITIAL_ROUND
from deimos.campaign.layout import Campaign, append_event, write_requested
from deimos.campaign.params import set_round
from deimos.data.assay import SimulatedAssay
from deimos.data.assay_csv import write_measurements_csv
from deimos.data.sequences import read_fasta
from deimos.errors import InputError
from deimos.lab.queue import LabQueue, LocalQueue, S3Queue
from deimos.lab.queue import local as queue
from deimos.lab.store import LabelStore
from tasks.round_tasks import retried_task


def open_round(campaign: Campaign) -> int | None:
    """The exported round that has not been closed yet, if any."""
    k = campaign.exported_round()
    return k if k is not None and k not in campaign.closed_rounds() else None


def requested_ids(campaign: Campaign) -> set[str]:
    """Ids sent to the lab and not labelled yet: closed rounds' requests plus the open round's."""
    ids = set(campaign.requested()["id"])
    k = open_round(campaign)
    if k is not None:
        ids |= set(campaign.selection(k)["id"])
    return ids - LabelStore(campaign.label_dir).labelled_ids()


@task(name="ingest-label-file", cache_policy=NO_CACHE, persist_result=True)
def ingest_label_file(
    campaign_dir: str,
    label_file: str,
    allow_unrequested: bool = False,
    round_id: int | None = None,
) -> dict[str, Any]:
    """Check the lab's file against the campaign and add its labels, all or nothing."""
    campaign = Campaign(campaign_dir)
    params = campaign.params()
    pool_ids = read_fasta(campaign.pool_fasta, length=params.sequence_length).ids
    k = open_round(campaign)
    if round_id is None:
        exported = campaign.exported_round()
        attributed: int | str = k if k is not None else (
            exported if exported is not None else INITIAL_ROUND
        )  # fmt: skip
    else:
        attributed = round_id
    report = LabelStore(campaign.label_dir).ingest(
        label_file,
        round_id=attributed,
        known_ids=pool_ids,
        requested_ids=requested_ids(campaign),
        allow_unrequested=allow_unrequested,
        value_column=params.labels.value_column,
        value_range=params.labels.value_range,
    )
    return {
        "file": str(label_file),
        "sha256": report.sha256,
        "n_new": report.n_new,
        "n_replicate_rows": report.n_replicate_rows,
        "already_ingested": report.already_ingested,
        "round": attributed,
    }


@task(name="close-round", cache_policy=NO_CACHE)
def close_round(campaign_dir: str) -> int | None:
    """Close the open round once labels answer it; the pipeline moves on to the next round.

    Its selection joins data/requested.csv (so its unanswered ids are never picked again and
    stay ingestible), the round log records it, and `params.yaml: round` becomes k + 1, so the
    next `dvc repro` computes a new round instead of rewriting round k from newer labels.
    """
    campaign = Campaign(campaign_dir)
    k = open_round(campaign)
    if k is None:
        return None
    labels = LabelStore(campaign.label_dir).labels()
    if not (labels["round"].astype(str) == str(k)).any():
        return None
    selection = campaign.selection(k)
    requested = campaign.requested()
    new = selection.loc[~selection["id"].isin(requested["id"]), ["id"]].assign(round=k)
    write_requested(campaign, pd.concat([requested, new], ignore_index=True))
    answered = int(selection["id"].isin(labels["id"]).sum())
    append_event(
        campaign,
        {
            "event": "round_closed",
            "round": k,
            "n_requested": len(selection),
            "n_answered": answered,
            "time": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        },
    )
    set_round(campaign.params_path, k + 1)
    return k


@task(name="record-ingestion", cache_policy=NO_CACHE)
def record_ingestion(campaign_dir: str, report: dict[str, Any]) -> bool:
    """Log the ingestion in the round log once per file; False if it was logged before."""
    campaign = Campaign(campaign_dir)
    if any(e.get("sha256") == report["sha256"] for e in campaign.events()):
        return False
    if report["already_ingested"]:
        return False
    append_event(
        campaign,
        {
            "event": "labels_ingested",
            "round": report["round"],
            "file": Path(report["file"]).name,
            "sha256": report["sha256"],
            "n_labels": report["n_new"],
            "time": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        },
    )
    return True


@retried_task("version-labels", [2, 8])
def version_labels(campaign_dir: str, message: str) -> str | None:
    """`dvc add data` and commit data.dvc + params.yaml; push to the DVC remote if one is set."""
    root = Campaign(campaign_dir).root
    repo.run_dvc(root, ["add", "-q", "data"])
    sha = repo.commit(root, ["data.dvc", "params.yaml", ".gitignore"], message)
    if sha is not None and repo.has_remote(root):
        repo.run_dvc(root, ["push", "-q"])
    return sha


@task(name="simulated-lab", cache_policy=NO_CACHE, persist_result=True)
def measure_batch_simulated(campaign_dir: str, round_id: int) -> str:
    """The simulated lab: read the round's published batch, return a measurement file in the
    inbox (the same CSV layout a lab sends)."""
    campaign = Campaign(campaign_dir)
    params = campaign.params()
    if params.simulation is None:
        raise InputError(f"{campaign.params_path}: not a simulated campaign (no 'simulation')")
    queue_dir = campaign.queue_dir(params)
    existing = queue.returned_label_file(queue_dir, round_id)
    if existing is not None:
        return str(existing)
    queue.read_manifest(queue.outbox(queue_dir, round_id))  # only a published batch is measured
    ids = list(campaign.selection(round_id)["id"])
    pool = read_fasta(campaign.pool_fasta, length=params.sequence_length)
    seq_of = dict(zip(pool.ids, pool.seqs, strict=True))
    sim = params.simulation
    table = SimulatedAssay(seed=sim.seed, read_depth=sim.read_depth).measure(
        ids, [seq_of[i] for i in ids]
    )
    target = queue.inbox(queue_dir) / f"round-{int(round_id)}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_measurements_csv(table, target)
    return str(target)


@retried_task("collect-returned-labels", [2, 10])
def collect_returned_labels(campaign_dir: str, round_id: int) -> str | None:
    """The round's returned label file: the local inbox's, else one downloaded from the S3 drop
    zone into the local inbox (when params.yaml has `s3`).

    Returns the local path, or None while nothing has arrived. The local copy is what ingestion
    hashes, so a file fetched twice is still ingested once.
    """
    campaign = Campaign(campaign_dir)
    params = campaign.params()
    queue_dir = campaign.queue_dir(params)
    lab_queue: LabQueue = LocalQueue(queue_dir)
    found = lab_queue.find_returned_labels(round_id)
    if found is None and params.s3 is not None:
        lab_queue = S3Queue(params.s3)  # boto3 is loaded only here, with S3
        found = lab_queue.find_returned_labels(round_id)
    return None if found is None else str(lab_queue.fetch(found, queue.inbox(queue_dir)))


@task(name="count-labels", cache_policy=NO_CACHE)
def count_labels(campaign_dir: str) -> int:
    """How many sequences of the campaign have a label."""
    return len(LabelStore(Campaign(campaign_dir).label_dir).labels())
