"""`al_round`: one active-learning round of a campaign, stage by stage through DVC."""

from __future__ import annotations

from typing import Any

from prefect import flow

from deimos.campaign.layout import STAGES, Campaign, campaign_lock
from tasks.round_tasks import (
    commit_round,
    publish_batch,
    publish_batch_s3,
    publish_round_artifact,
    record_round,
    restore_campaign_data,
    run_pipeline_stage,
    summarize_round,
)


@flow(name="al-round", persist_result=True)
def al_round(campaign_dir: str = ".") -> dict[str, Any]:
    """Train, predict, select and export round `params.yaml: round`, then hand the batch to the
    lab queue, record the round and commit it.

    Stages DVC finds up to date are skipped, so re-running a round (or resuming one that
    crashed between stages) redoes only what is missing and gives the same selection.

    Returns:
        The round summary: metrics of training and selection, and the batch table.
    """
    campaign = Campaign(campaign_dir)
    campaign.check()
    with campaign_lock(campaign):
        restore_campaign_data(campaign_dir)
        ran = {stage: run_pipeline_stage(campaign_dir, stage) for stage in STAGES}
        summary = summarize_round(campaign_dir)
        k = summary["round"]
        publish_batch_s3(campaign_dir, k)
        publish_batch(campaign_dir, k)
        plot = record_round(campaign_dir, summary)
        commit_round(
            campaign_dir,
            k,
            f"round {k}: {summary['method']} picked {summary['batch_size']} of "
            f"{summary['n_candidates']} candidates ({summary['n_labels']} labels)",
        )
        publish_round_artifact(summary, plot)
    summary["stages_run"] = [s for s, did in ran.items() if did]
    summary["learning_curve"] = plot
    return summary
