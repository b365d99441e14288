"""`ingest_labels`: bring one label file from the lab into the campaign, validated and versioned."""

from __future__ import annotations

from typing import Any

from prefect import flow

from deimos.campaign.layout import Campaign, campaign_lock
from tasks.label_tasks import close_round, ingest_label_file, record_ingestion, version_labels


@flow(name="ingest-labels", persist_result=True)
def ingest_labels(
    label_file: str,
    campaign_dir: str = ".",
    allow_unrequested: bool = False,
    round_id: int | None = None,
) -> dict[str, Any]:
    """Validate and merge `label_file`, close the round it answers, and commit the new data.

    A bad file raises `InputError` before anything is written. Every step after the merge is
    idempotent, so running the flow again after a crash finishes the job without duplicates.

    Returns:
        What was ingested (`n_new`, `already_ingested`, `sha256`, `round`) and `closed_round`.
    """
    campaign = Campaign(campaign_dir)
    campaign.check()
    with campaign_lock(campaign):
        report = ingest_label_file(campaign_dir, label_file, allow_unrequested, round_id)
        record_ingestion(campaign_dir, report)
        closed = close_round(campaign_dir)
        version_labels(
            campaign_dir,
            f"labels: {report['n_new']} from {report['file'].rsplit('/', 1)[-1]} "
            f"(round {report['round']}, sha256 {report['sha256'][:12]})",
        )
    return {**report, "closed_round": closed}
