"""`campaign`: rounds until a label budget, with a pluggable labeller."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow

from flows.al_round import al_round
from flows.ingest_labels import ingest_labels
from tasks.label_tasks import (
    collect_returned_labels,
    count_labels,
    measure_batch_simulated,
)

Labeller = Literal["simulated", "queue"]


@flow(name="campaign", persist_result=True)
def campaign(
    campaign_dir: str = ".",
    rounds: int = 3,
    label_budget: int | None = None,
    labeller: Labeller = "queue",
) -> dict[str, Any]:
    """Run up to `rounds` rounds, each: `al_round`, labels from the labeller, `ingest_labels`.

    Labellers: ``"simulated"`` measures every published batch with the simulated splicing
    assay; ``"queue"`` takes the lab's file from the queue inbox (``round-<k>.csv``/``.xlsx``/
    ``.json``) or, when params.yaml has ``s3``, the S3 drop zone (``PREFIX/inbox/round-<k>.*``),
    and stops, waiting, when it is not there yet; the next run (e.g. a scheduled deployment)
    carries on from the same round. The loop also stops before a round once the campaign holds
    `label_budget` labels or more.

    Returns:
        `rounds` (one summary per round run), `n_labels`, and `status`: ``done``,
        ``budget_reached`` or ``awaiting_labels``.
    """
    summaries: list[dict[str, Any]] = []
    status = "done"
    n_labels = count_labels(campaign_dir)
    for _ in range(rounds):
        if label_budget is not None and n_labels >= label_budget:
            status = "budget_reached"
            break
        summary = al_round(campaign_dir)
        summaries.append(summary)
        k = summary["round"]
        if labeller == "simulated":
            label_file: str | None = measure_batch_simulated(campaign_dir, k)
        else:
            label_file = collect_returned_labels(campaign_dir, k)
        if label_file is None:
            status = "awaiting_labels"
            break
        report = ingest_labels(label_file, campaign_dir)
        n_labels += report["n_new"]
    return {"rounds": summaries, "n_labels": n_labels, "status": status}
