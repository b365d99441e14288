"""Batches out and labels back through the lab's queues: export formats, the S3 queue on a real
SeaweedFS server, the drop-zone collector, and an S3 outage in the middle of a round."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import openpyxl
import pandas as pd
import pytest

from deimos.campaign import repo
from deimos.campaign.params import ExportParams, params_from_mapping
from deimos.errors import InputError
from deimos.lab.queue import local as queue
from deimos.lab.queue.settings import S3Settings
from deimos.lab.store import LabelStore
from tests.helpers.lab_loop_helpers import BATCH, make_campaign, write_csv

pytestmark = pytest.mark.slow

ALL_FORMATS = ExportParams(
    formats=("fasta", "csv", "plate_map", "label_studio"),
    plate_wells=96,
    plate_order="column",
    control_wells=("A1", "H12"),
)


def s3_params(server, bucket, prefix="lab/splice") -> S3Settings:
    return S3Settings(bucket=bucket, prefix=prefix, endpoint_url=server.endpoint_url)


def s3_client(server):
    import boto3

    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1")


def test_every_export_format_reaches_the_outbox(prefect_server, tmp_path):
    from flows.al_round import al_round

    campaign = make_campaign(tmp_path / "c", export=ALL_FORMATS)
    summary = al_round(str(campaign.root))
    outbox = queue.outbox(campaign.queue_dir(), 0)
    manifest = queue.read_manifest(outbox)
    assert sorted(f["name"] for f in manifest["files"]) == [
        "batch.csv",
        "batch.fasta",
        "label_studio_tasks.json",
        "plate_map.csv",
        "plate_map.xlsx",
    ]
    plate = pd.read_csv(outbox / "plate_map.csv", dtype={"id": str})
    # Column-major with A1 left empty: B1, C1, ... H1, then A2.
    assert list(plate["well"][:8]) == ["B1", "C1", "D1", "E1", "F1", "G1", "H1", "A2"]
    assert list(plate["id"]) == summary["batch"]["id"]
    sheet = openpyxl.load_workbook(outbox / "plate_map.xlsx").active
    assert [c.value for c in sheet[1]][:3] == ["plate", "well", "rank"]
    tasks = json.loads((outbox / "label_studio_tasks.json").read_text())
    assert [t["data"]["id"] for t in tasks] == summary["batch"]["id"]
    assert len(tasks) == BATCH

    # Another format list re-runs only the export stage and gives the same batch.
    params_path = campaign.params_path
    text = params_path.read_text()
    params_path.write_text(
        text.replace("formats: [fasta, csv, plate_map, label_studio]", "formats: [csv]")
    )
    out = repo.run_dvc(campaign.root, ["repro"])
    ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["export"]
    assert sorted(p.name for p in (campaign.round_dir(0) / "export").iterdir()) == ["batch.csv"]


def test_bad_export_params_are_rejected_by_name(tmp_path):
    def refused(raw: dict) -> str:
        with pytest.raises(InputError) as err:
            params_from_mapping(raw, "c/params.yaml")
        return str(err.value)

    assert refused({"export": {"formats": ["fasta", "pdf"]}}).startswith(
        "c/params.yaml: export.formats[1]: Input should be 'fasta', 'csv',"
    )
    assert "formats must be distinct" in refused({"export": {"formats": ["csv", "csv"]}})
    assert refused({"export": {"formats": ["plate_map"], "control_wells": ["Z9"]}}).startswith(
        "c/params.yaml: export: "
    )
    assert "Z9" in refused({"export": {"formats": ["plate_map"], "control_wells": ["Z9"]}})
    assert refused({"s3": {"bucket": "b"}}).startswith("c/params.yaml: s3.bucket: ")
    assert refused({"s3": {"bucket": "lab-bucket", "prefix": "../etc"}}).startswith(
        "c/params.yaml: s3.prefix: "
    )
    with pytest.raises(InputError, match=r"ExportParams\.formats"):
        ExportParams(formats=("fasta", "pdf"))


def test_s3_round_trip_publish_collect_and_label_studio_return(
    prefect_server, s3_server, s3_bucket, tmp_path
):
    """A round goes to S3 with its manifest; the lab drops a Label Studio export in the S3
    inbox; the collector finds it, ingests it and closes the round."""
    from deimos.lab.queue.s3_batches import read_batch_manifest_s3
    from flows.al_round import al_round
    from flows.collect_labels import collect_labels

    export = ExportParams(formats=("fasta", "csv", "label_studio"))
    campaign = make_campaign(tmp_path / "c", export=export, s3=s3_params(s3_server, s3_bucket))
    assert collect_labels(str(campaign.root))["status"] == "no_open_round"
    summary = al_round(str(campaign.root))
    settings = campaign.params().s3
    manifest = read_batch_manifest_s3(settings, 0)
    assert manifest is not None
    assert manifest == queue.read_manifest(queue.outbox(campaign.queue_dir(), 0))
    assert collect_labels(str(campaign.root)) == {"status": "waiting", "round": 0}

    # The annotation team answers in Label Studio; its JSON export lands in the S3 inbox.
    client = s3_client(s3_server)
    tasks_obj = client.get_object(
        Bucket=s3_bucket, Key="lab/splice/round-0/label_studio_tasks.json"
    )
    tasks = json.loads(tasks_obj["Body"].read())
    for n, task in enumerate(tasks):
        task["annotations"] = [
            {
                "id": 100 + n,
                "was_cancelled": False,
                "result": [
                    {
                        "from_name": "donor_usage",
                        "to_name": "sequence",
                        "type": "number",
                        "value": {"number": 0.25 + 0.01 * n},
                    }
                ],
            }
        ]
    client.put_object(
        Bucket=s3_bucket, Key="lab/splice/inbox/round-0.json", Body=json.dumps(tasks).encode()
    )
    result = collect_labels(str(campaign.root))
    assert result["status"] == "ingested" and result["report"]["closed_round"] == 0
    labels = LabelStore(campaign.label_dir).labels().set_index("id")
    first = summary["batch"]["id"][0]
    assert labels.loc[first, "value"] == pytest.approx(0.25)
    assert (campaign.queue_dir() / "inbox" / "round-0.json").is_file()
    assert campaign.params().round == 1
    # Collecting again finds no open round and changes nothing.
    head = repo.head(campaign.root)
    assert collect_labels(str(campaign.root))["status"] == "no_open_round"
    assert repo.head(campaign.root) == head


def test_s3_outage_mid_round_then_the_same_round_exports_completely(
    prefect_server, s3_server, s3_bucket, tmp_path
):
    from deimos.lab.queue import s3 as s3_queue
    from deimos.lab.queue import s3_batches
    from flows.al_round import al_round
    from tests.helpers.seaweed import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

    secrets = (TEST_ACCESS_KEY_ID.encode(), TEST_SECRET_ACCESS_KEY.encode())
    export = ExportParams(formats=("fasta", "csv", "plate_map"))
    campaign = make_campaign(tmp_path / "c", export=export, s3=s3_params(s3_server, s3_bucket))
    head = repo.head(campaign.root)

    s3_server.stop()
    try:
        with pytest.raises(s3_queue.S3QueueError) as failure:
            al_round(str(campaign.root))
    finally:
        s3_server.start()
    message = str(failure.value)
    assert "round-0" in message and "attempts" in message
    assert not any(secret.decode() in message for secret in secrets)
    # Nothing recorded as exported: no local manifest, no commit, no tag, no S3 manifest.
    assert not (queue.outbox(campaign.queue_dir(), 0) / queue.MANIFEST).exists()
    assert repo.head(campaign.root) == head
    assert repo.run_git(campaign.root, ["tag"]).strip() == ""
    settings = campaign.params().s3
    assert s3_batches.read_batch_manifest_s3(settings, 0) is None

    summary = al_round(str(campaign.root))
    assert summary["stages_run"] == []  # the stages had finished; only publishing was left
    manifest = s3_batches.read_batch_manifest_s3(settings, 0)
    assert manifest is not None and len(manifest["files"]) == 4
    assert repo.run_git(campaign.root, ["tag"]).split() == ["round-0"]
    # No credential anywhere in the campaign's files.
    for path in campaign.root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and path.stat().st_size < 5_000_000:
            data = path.read_bytes()
            assert not any(secret in data for secret in secrets), path


def test_cli_collect_and_init_with_s3(prefect_server, s3_server, s3_bucket, tmp_path):
    from flows.al_round import al_round

    env = dict(os.environ, PREFECT_API_URL=prefect_server)
    root = tmp_path / "lab"
    done = subprocess.run(
        [sys.executable, "-m", "deimos_cli.main", "init", str(root), "--simulated",
         "--pool-size", "300", "--test-size", "50", "--initial", "40", "--batch-size", "10",
         "--masks", "8", "--epochs", "2", "--formats", "fasta,plate_map",
         "--plate-wells", "384", "--s3-bucket", s3_bucket, "--s3-prefix", "cli",
         "--s3-endpoint", s3_server.endpoint_url],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    al_round(str(root))
    keys = {o["Key"] for o in s3_client(s3_server).list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert "cli/round-0/manifest.json" in keys and "cli/round-0/plate_map.xlsx" in keys

    def collect():
        return subprocess.run(
            [sys.executable, "-m", "deimos_cli.main", "collect", "--campaign", str(root)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip

    waiting = collect()
    assert waiting.returncode == 0 and "no labels returned yet" in waiting.stdout
    ids = pd.read_csv(root / "rounds/0/selection.csv", dtype={"id": str})["id"]
    body = write_csv(tmp_path / "r0.csv", ["id,donor_usage"] + [f"{i},0.5" for i in ids])
    s3_client(s3_server).upload_file(str(body), s3_bucket, "cli/inbox/round-0.csv")
    got = collect()
    assert got.returncode == 0, got.stderr
    assert f"ingested {BATCH} labels" in got.stdout and "round 0 closed" in got.stdout

    bad = subprocess.run(
        [sys.executable, "-m", "deimos_cli.main", "init", str(tmp_path / "bad"), "--simulated",
         "--formats", "fasta,pdf"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert bad.returncode == 2 and "export.formats" in bad.stderr
    assert not (tmp_path / "bad").exists()
