"""`collect_labels`: look once for the lab's answer to the open round and ingest it.

Deployed on a schedule (`deimos collect --every SECONDS` serves it), this is the watcher of the
lab's drop zone: the local inbox, and the S3 inbox when `params.yaml` has an `s3` section. A wet
lab takes days, so the flow does not wait in a process; each run checks and returns.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from deimos.campaign.layout import Campaign
from flows.ingest_labels import ingest_labels
from tasks.label_tasks import collect_returned_labels, open_round


@flow(name="collect-labels", persist_result=True)
def collect_labels(campaign_dir: str = ".") -> dict[str, Any]:
    """Ingest the open round's returned label file if it has arrived.

    Returns:
        `status`: ``ingested`` (with the ingestion report), ``waiting`` (round exported, no
        labels yet) or ``no_open_round``; and `round`.
    """
    campaign = Campaign(campaign_dir)
    campaign.check()
    k = open_round(campaign)
    if k is None:
        return {"status": "no_open_round", "round": None}
    label_file = collect_returned_labels(campaign_dir, k)
    if label_file is None:
        return {"status": "waiting", "round": k}
    report = ingest_labels(label_file, campaign_dir)
    return {"status": "ingested", "round": k, "report": report}
