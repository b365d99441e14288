"""Prefect tasks of one round: run a DVC stage, publish the batch, record and commit the round.

DVC decides whether a stage needs to run, so these tasks never use Prefect's cache
(`NO_CACHE`): a re-run of a round asks DVC again. I/O tasks retry with backoff; a bad input
(`InputError`) is never retried.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from deimos.atomic import write_text_atomic
from deimos.campaign import repo
from deimos.campaign.code_version import CODE_FILE, write_code_file
from deimos.campaign.create import restore_data
from deimos.campaign.layout import Campaign
from deimos.errors import InputError
from deimos.lab.queue import LocalQueue, S3Queue
from deimos.plots import plot_learning_curves

REPORT_TABLE = "rounds.csv"
REPORT_PLOT = "learning_curve.png"
ARTIFACT_ROWS = 100


def retried_task(name: str, delays: list[float], **options: Any) -> Any:
    """A task that retries transient failures (a busy git lock, a network blip) after each of
    `delays` seconds, and fails at once on bad input, which no retry can fix."""
    return task(
        name=name,
        cache_policy=NO_CACHE,
        retries=len(delays),
        retry_delay_seconds=delays,
        retry_condition_fn=retry_unless_bad_input,
        **options,
    )


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: transient failures retry, bad input does not."""
    try:
        state.result()
    except InputError:
        return False
    except Exception:
        return True
    return False


@retried_task("restore-data", [2, 10])
def restore_campaign_data(campaign_dir: str) -> str:
    """Tracked data/ in the workspace (present, pulled from the DVC remote, or regenerated), and
    code.json naming the installed code the stages will run."""
    where = restore_data(campaign_dir)
    write_code_file(campaign_dir)
    return where


@task(name="dvc-stage", task_run_name="stage-{stage}", cache_policy=NO_CACHE)
def run_pipeline_stage(campaign_dir: str, stage: str) -> bool:
    """`dvc repro --single-item STAGE`; True when DVC ran it, False when it was up to date."""
    output = repo.run_dvc(Path(campaign_dir), ["repro", "--single-item", stage], stream=True)
    return f"Running stage '{stage}'" in output


@task(name="summarize-round", cache_policy=NO_CACHE, persist_result=True)
def summarize_round(campaign_dir: str) -> dict[str, Any]:
    """The round's numbers: training metrics, selection metrics and the batch table."""
    campaign = Campaign(campaign_dir)
    k = campaign.params().round
    out = campaign.round_dir(k)
    summary: dict[str, Any] = {}
    for name in ("train_metrics.json", "metrics.json"):
        summary.update(json.loads((out / name).read_text(encoding="utf-8")))
    summary["round"] = k
    summary["batch"] = campaign.selection(k).to_dict(orient="list")
    return summary


@retried_task("publish-batch", [1, 4, 16], persist_result=True)
def publish_batch(campaign_dir: str, round_id: int) -> dict[str, Any]:
    """Copy the round's export to the lab queue's outbox (manifest last)."""
    campaign = Campaign(campaign_dir)
    export_dir = campaign.round_dir(round_id) / "export"
    return LocalQueue(campaign.queue_dir()).publish(round_id, export_dir)


@task(name="publish-batch-s3", cache_policy=NO_CACHE, persist_result=True)
def publish_batch_s3(campaign_dir: str, round_id: int) -> dict[str, Any] | None:
    """Upload the round's export to the S3 queue (manifest last), when params.yaml has `s3`.

    `deimos.lab.queue.S3Queue` retries with backoff itself; a failure here stops the round before
    it is committed, and a re-run uploads the same files again.
    """
    campaign = Campaign(campaign_dir)
    params = campaign.params()
    if params.s3 is None:
        return None
    # S3Queue loads boto3 only here, where S3 is used.
    return S3Queue(params.s3).publish(round_id, campaign.round_dir(round_id) / "export")


@task(name="record-round", cache_policy=NO_CACHE)
def record_round(campaign_dir: str, summary: dict[str, Any]) -> str:
    """Put the round's row in reports/rounds.csv and redraw the learning curve; return its path."""
    campaign = Campaign(campaign_dir)
    campaign.reports_dir.mkdir(exist_ok=True)
    table_path = campaign.reports_dir / REPORT_TABLE
    row = {k: v for k, v in summary.items() if k != "batch"}
    table = pd.read_csv(table_path) if table_path.is_file() else pd.DataFrame()
    if len(table):
        table = table[table["round"] != row["round"]]
    table = pd.concat([table, pd.DataFrame([row])], ignore_index=True).sort_values("round")
    write_text_atomic(table_path, table.to_csv(index=False, float_format="%.6g"))
    metric = "test_mse" if "test_mse" in table and table["test_mse"].notna().any() else None
    metric = metric or "validation_mse"
    curve = table.assign(method=table["method"].astype(str))
    png = plot_learning_curves(
        curve,
        campaign.reports_dir / REPORT_PLOT,
        metric=metric,
        title=f"Campaign learning curve ({metric.replace('_', ' ')})",
    )
    return str(png)


@retried_task("commit-round", [2, 8])
def commit_round(campaign_dir: str, round_id: int, message: str) -> str | None:
    """Commit dvc.lock, params and reports; tag `round-<k>`; push data/model to the DVC remote."""
    root = Campaign(campaign_dir).root
    sha = repo.commit(
        root, ["dvc.lock", "params.yaml", "reports", ".gitignore", CODE_FILE], message
    )
    repo.run_git(root, ["tag", "-f", f"round-{int(round_id)}"])
    if repo.has_remote(root):
        repo.run_dvc(root, ["push", "-q"])
    return sha


@task(name="round-artifact", cache_policy=NO_CACHE)
def publish_round_artifact(summary: dict[str, Any], plot_path: str) -> None:
    """A markdown artifact: batch table, EI per pick, current metric, learning-curve path."""
    create_markdown_artifact(
        key=f"round-{int(summary['round'])}",
        markdown=round_markdown(summary, plot_path),
        description=f"DEIMOS round {summary['round']}",
    )


def round_markdown(summary: dict[str, Any], plot_path: str) -> str:
    batch = pd.DataFrame(summary["batch"])
    lines = [
        f"# Round {summary['round']}: {len(batch)} sequences selected by {summary['method']}",
        "",
        f"- labels used: {summary['n_labels']} ({summary['n_train']} train, "
        f"{summary['n_validation']} validation)",
        f"- validation MSE: {summary['validation_mse']:.4f}",
    ]
    if "test_mse" in summary:
        lines.append(f"- test MSE (simulated truth): {summary['test_mse']:.4f}")
    lines += [
        f"- tau^-1: {summary['tau_inv']:.4g}; candidates scored: {summary['n_candidates']}",
        f"- total expected improvement: {summary['total_expected_improvement']:.4g}",
        f"- learning curve: `{plot_path}`",
        "",
        "| rank | id | expected improvement | predicted mean | predicted sd |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in batch.head(ARTIFACT_ROWS).itertuples(index=False):
        lines.append(
            f"| {row.rank} | {row.id} | {row.expected_improvement:.4g} | {row.pred_mean:.3f} | "
            f"{row.pred_sd:.3f} |"
        )
    if len(batch) > ARTIFACT_ROWS:
        lines.append(f"| ... | {len(batch) - ARTIFACT_ROWS} more | | | |")
    return "\n".join(lines) + "\n"
