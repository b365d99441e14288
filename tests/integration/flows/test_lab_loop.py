"""The lab loop end to end: real Prefect engine, real DVC and git, the simulated assay.

One small campaign runs three rounds once per module (`finished`); tests that change a campaign
work on their own copy of it (git and DVC repositories are relocatable).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from deimos.campaign import repo
from deimos.campaign.layout import Campaign
from deimos.errors import InputError
from deimos.lab.queue import local as queue
from deimos.lab.store import LabelStore
from tests.helpers.lab_loop_helpers import BATCH, INITIAL, make_campaign, snapshot, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(prefect_server, tmp_path_factory):
    """A simulated campaign after a 3-round `campaign` flow, and the flow's result."""
    from flows.campaign import campaign

    root = tmp_path_factory.mktemp("finished") / "campaign"
    make_campaign(root)
    result = campaign(str(root), rounds=3, labeller="simulated")
    return root, result


@pytest.fixture
def copy_of(tmp_path):
    def copy(root):
        target = tmp_path / "copy"
        shutil.copytree(root, target, symlinks=True)
        return Campaign(target)

    return copy


@pytest.fixture(scope="module")
def exported_once(prefect_server, tmp_path_factory):
    from flows.al_round import al_round

    campaign = make_campaign(tmp_path_factory.mktemp("exported") / "campaign")
    al_round(str(campaign.root))
    return campaign


@pytest.fixture
def exported(exported_once, tmp_path):
    """A campaign whose round 0 is exported and waits for labels (a private copy)."""
    target = tmp_path / "exported"
    shutil.copytree(exported_once.root, target, symlinks=True)
    return Campaign(target)


def dvc(root, *args):
    return repo.run_dvc(root, list(args))


# --- the 3-round campaign -----------------------------------------------------------------------


def test_campaign_labels_grow_by_the_batch_each_round(finished):
    root, result = finished
    campaign = Campaign(root)
    assert result["status"] == "done"
    assert [r["n_labels"] for r in result["rounds"]] == [
        INITIAL,
        INITIAL + BATCH,
        INITIAL + 2 * BATCH,
    ]
    assert result["n_labels"] == INITIAL + 3 * BATCH
    labels = LabelStore(campaign.label_dir).labels()
    assert len(labels) == INITIAL + 3 * BATCH
    assert labels["id"].is_unique
    requested = campaign.requested()
    assert list(requested.groupby("round").size()) == [BATCH] * 3
    for k in range(3):
        picked = set(campaign.selection(k)["id"])
        assert len(picked) == BATCH
        assert picked <= set(labels.loc[labels["round"].astype(str) == str(k), "id"])
        assert queue.read_manifest(queue.outbox(campaign.queue_dir(), k))["round"] == k
    assert campaign.params().round == 3
    assert campaign.closed_rounds() == {0, 1, 2}
    # Rounds never pick an id twice.
    assert requested["id"].is_unique


def test_every_round_is_committed_tagged_and_reported(finished):
    root, _ = finished
    log = repo.run_git(root, ["log", "--format=%s"]).splitlines()
    assert sum(s.startswith("round ") for s in log) == 3
    assert sum(s.startswith("labels: 10 from round-") for s in log) == 3
    assert repo.run_git(root, ["status", "--porcelain"]).strip() == ""
    assert set(repo.run_git(root, ["tag"]).split()) == {"round-0", "round-1", "round-2"}
    # The tag holds the lock file that records round 1's selection.
    lock = yaml.safe_load(repo.run_git(root, ["show", "round-1:dvc.lock"]))
    assert "rounds/1/selection.csv" in {out["path"] for out in lock["stages"]["select"]["outs"]}
    table = pd.read_csv(root / "reports" / "rounds.csv")
    assert list(table["round"]) == [0, 1, 2]
    assert list(table["n_labels"]) == [INITIAL, INITIAL + BATCH, INITIAL + 2 * BATCH]
    assert table["test_mse"].between(0, 1).all()
    assert (root / "reports" / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_round_publishes_a_markdown_artifact(finished):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    _, result = finished

    async def latest(key):
        async with get_client() as client:
            # Every field explicit: this FastAPI rejects the nulls the client sends by default.
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                flow_run_filter=FlowRunFilter(),
                task_run_filter=TaskRunFilter(),
                sort=ArtifactSort.CREATED_DESC,
                limit=10,
            )
            return found

    import asyncio

    for k in range(3):
        artifacts = asyncio.run(latest(f"round-{k}"))
        assert artifacts, f"no artifact for round {k}"
        text = artifacts[0].data
        first_pick = result["rounds"][k]["batch"]["id"][0]
        assert f"# Round {k}: {BATCH} sequences selected by deimos" in text
        assert f"| 1 | {first_pick} |" in text
        assert "learning_curve.png" in text
        assert "test MSE (simulated truth)" in text


# --- DVC: what re-runs, and reproducibility ----------------------------------------------------


def test_dvc_repro_runs_only_what_changed_and_reproduces_the_selection(finished, copy_of):
    from flows.al_round import al_round

    campaign = copy_of(finished[0])
    root = campaign.root
    summary = al_round(str(root))  # round 3, not run yet in the finished campaign
    assert summary["stages_run"] == ["prepare", "train", "predict", "select", "export"]
    again = al_round(str(root))
    assert again["stages_run"] == []
    out = dvc(root, "repro")
    assert "Running stage" not in out
    assert "Data and pipelines are up to date" in out or out.count("didn't change") == 5

    selection = (root / "rounds/3/selection.csv").read_bytes()
    model = (root / "rounds/3/model.pt").read_bytes()
    out = dvc(root, "repro", "--force")
    assert out.count("Running stage") == 5
    assert (root / "rounds/3/model.pt").read_bytes() == model
    assert (root / "rounds/3/selection.csv").read_bytes() == selection

    params = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(params.replace(f"batch_size: {BATCH}", "batch_size: 4"))
    out = dvc(root, "repro")
    ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["select", "export"]
    smaller = pd.read_csv(root / "rounds/3/selection.csv", dtype={"id": str})
    full = pd.read_csv(pd.io.common.BytesIO(selection), dtype={"id": str})
    # Greedy selection: the first 4 picks of a batch of 10 are the batch of 4.
    assert list(smaller["id"]) == list(full["id"][:4])

    (root / "params.yaml").write_text(params.replace("n_masks: 8", "n_masks: 6"))
    out = dvc(root, "repro")
    ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["predict", "select", "export"]


def test_audit_an_old_round_from_its_tag(finished, copy_of):
    """`git checkout round-1 && dvc checkout && dvc repro --force` recomputes round 1 as it was."""
    campaign = copy_of(finished[0])
    root = campaign.root
    repo.run_git(root, ["checkout", "-q", "round-1"])
    dvc(root, "checkout", "--force")
    assert campaign.params().round == 1
    recorded = {
        name: (root / "rounds/1" / name).read_bytes() for name in ("selection.csv", "model.pt")
    }
    assert dvc(root, "status").count("changed") == 0
    out = dvc(root, "repro", "--force")
    assert out.count("Running stage") == 5
    for name, data in recorded.items():
        assert (root / "rounds/1" / name).read_bytes() == data, name
    assert repo.run_git(root, ["status", "--porcelain"]).strip() == ""


# --- ingestion through the flow ----------------------------------------------------------------


def good_rows(campaign, n=None):
    ids = list(campaign.selection(0)["id"])[:n]
    return ["id,donor_usage"] + [f"{i},{0.1 + 0.05 * j:.3f}" for j, i in enumerate(ids)]


BAD_FILES = {
    "missing_column": (["id,usage", "{a},0.5"], "missing required column"),
    "unknown_id": (["id,donor_usage", "{a},0.5", "NOT_IN_POOL,0.2"], "not in the campaign"),
    "unrequested": (["id,donor_usage", "{a},0.5", "{other},0.2"], "not requested"),
    "nan": (["id,donor_usage", "{a},nan"], "line 2"),
    "empty_value": (["id,donor_usage", "{a},"], "line 2"),
    "out_of_range": (["id,donor_usage", "{a},1.7"], "line 2"),
    "duplicate_id": (["id,donor_usage", "{a},0.5", "{a},0.6"], "{a}"),
    "not_a_number": (["id,donor_usage", "{a},high"], "line 2"),
    "formula": (["id,donor_usage,note", "{a},0.5,=HYPERLINK(1)"], "formula"),
    "already_labelled": (["id,donor_usage", "{labelled},0.5"], "not requested"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_label_file_is_rejected_and_changes_nothing(exported, tmp_path, case):
    from flows.ingest_labels import ingest_labels

    campaign = exported
    rows, expected = BAD_FILES[case]
    picked = list(campaign.selection(0)["id"])
    labelled = LabelStore(campaign.label_dir).labels()["id"].iloc[0]
    other = next(
        line.split()[0][1:]
        for line in campaign.pool_fasta.read_text().splitlines()
        if line.startswith(">")
        and line[1:].split()[0] not in picked
        and line[1:].split()[0] not in set(LabelStore(campaign.label_dir).labels()["id"])
    )
    fmt = {"a": picked[0], "other": other, "labelled": labelled}
    path = write_csv(tmp_path / f"{case}.csv", [r.format(**fmt) for r in rows])
    before = snapshot(campaign.root)
    with pytest.raises(InputError) as err:
        ingest_labels(str(path), str(campaign.root))
    assert str(path) in str(err.value)
    assert expected.format(**fmt) in str(err.value)
    assert snapshot(campaign.root) == before


def test_ingest_merges_replicates_closes_the_round_and_is_idempotent(exported, tmp_path):
    from flows.ingest_labels import ingest_labels

    campaign = exported
    ids = list(campaign.selection(0)["id"])
    rows = ["id,donor_usage,replicate", f"{ids[0]},0.2,1", f"{ids[0]},0.4,2"]
    rows += [f"{i},0.5,1" for i in ids[1:]]
    path = write_csv(tmp_path / "round-0.csv", rows)
    report = ingest_labels(str(path), str(campaign.root))
    assert report["n_new"] == BATCH and report["n_replicate_rows"] == 2
    assert report["closed_round"] == 0 and report["round"] == 0
    labels = LabelStore(campaign.label_dir).labels().set_index("id")
    assert labels.loc[ids[0], "value"] == pytest.approx(0.3)
    assert labels.loc[ids[0], "n_replicates"] == 2
    assert labels.loc[ids[1], "source_sha256"] == report["sha256"]
    assert campaign.params().round == 1
    assert repo.run_git(campaign.root, ["status", "--porcelain"]).strip() == ""
    assert dvc(campaign.root, "status", "data.dvc").strip().endswith("up to date.")

    before = snapshot(campaign.root)
    again = ingest_labels(str(path), str(campaign.root))
    assert again["already_ingested"] and again["n_new"] == 0 and again["closed_round"] is None
    assert snapshot(campaign.root) == before


def test_partial_labels_then_late_labels_for_a_closed_round(exported, tmp_path):
    from flows.al_round import al_round
    from flows.ingest_labels import ingest_labels

    campaign = exported
    ids = list(campaign.selection(0)["id"])
    first = write_csv(tmp_path / "part1.csv", ["id,donor_usage"] + [f"{i},0.5" for i in ids[:6]])
    assert ingest_labels(str(first), str(campaign.root))["closed_round"] == 0
    summary = al_round(str(campaign.root))
    assert summary["round"] == 1
    assert not set(summary["batch"]["id"]) & set(ids), "round 1 re-picked ids sent in round 0"
    late = write_csv(tmp_path / "part2.csv", ["id,donor_usage"] + [f"{i},0.4" for i in ids[6:]])
    report = ingest_labels(str(late), str(campaign.root), round_id=0)
    assert report["n_new"] == 4 and report["round"] == 0
    # Late labels for round 0 close nothing: round 1 is open until its own labels arrive.
    assert report["closed_round"] is None
    assert campaign.params().round == 1


def test_unrequested_labels_need_the_flag(exported, tmp_path):
    from flows.ingest_labels import ingest_labels

    campaign = exported
    labelled = set(LabelStore(campaign.label_dir).labels()["id"]) | set(campaign.selection(0)["id"])
    spare = [
        line[1:].split()[0]
        for line in campaign.pool_fasta.read_text().splitlines()
        if line.startswith(">") and line[1:].split()[0] not in labelled
    ][:3]
    path = write_csv(tmp_path / "extra.csv", ["id,donor_usage"] + [f"{i},0.5" for i in spare])
    with pytest.raises(InputError, match="--allow-unrequested"):
        ingest_labels(str(path), str(campaign.root))
    report = ingest_labels(str(path), str(campaign.root), allow_unrequested=True)
    assert report["n_new"] == 3


# --- crashes and resume --------------------------------------------------------------------------


def test_crash_between_stages_then_resume(finished, copy_of, tmp_path, monkeypatch):
    """A worker dies after `train`; the re-run redoes only predict/select/export and gives the
    selection an uninterrupted run gives."""
    from flows.al_round import al_round

    campaign = copy_of(finished[0])
    reference = Campaign(shutil.copytree(campaign.root, tmp_path / "reference", symlinks=True))
    expected = al_round(str(reference.root))

    real_run_dvc = repo.run_dvc

    def dies_at_predict(root, args, **kwargs):
        if list(args) == ["repro", "--single-item", "predict"]:
            raise repo.CommandError("worker lost (injected)")
        return real_run_dvc(root, args, **kwargs)

    monkeypatch.setattr(repo, "run_dvc", dies_at_predict)
    with pytest.raises(repo.CommandError, match="injected"):
        al_round(str(campaign.root))
    model = (campaign.root / "rounds/3/model.pt").read_bytes()
    assert not (campaign.root / "rounds/3/selection.csv").exists()
    assert campaign.exported_round() == 2  # nothing half-published
    assert not queue.outbox(campaign.queue_dir(), 3).exists()
    monkeypatch.setattr(repo, "run_dvc", real_run_dvc)

    resumed = al_round(str(campaign.root))
    assert resumed["stages_run"] == ["predict", "select", "export"]
    assert (campaign.root / "rounds/3/model.pt").read_bytes() == model
    assert resumed["batch"] == expected["batch"]
    assert queue.read_manifest(queue.outbox(campaign.queue_dir(), 3))["round"] == 3
    log = repo.run_git(campaign.root, ["log", "--format=%s"]).splitlines()
    assert sum(s.startswith("round 3:") for s in log) == 1


def test_crash_while_versioning_labels_then_resume(exported, tmp_path, monkeypatch):
    from flows.ingest_labels import ingest_labels

    campaign = exported
    ids = list(campaign.selection(0)["id"])
    path = write_csv(tmp_path / "round-0.csv", ["id,donor_usage"] + [f"{i},0.5" for i in ids])
    real_run_dvc = repo.run_dvc

    def dies_at_dvc_add(root, args, **kwargs):
        if list(args)[:1] == ["add"]:
            raise repo.CommandError("disk went away (injected)")
        return real_run_dvc(root, args, **kwargs)

    monkeypatch.setattr(repo, "run_dvc", dies_at_dvc_add)
    head = repo.head(campaign.root)
    with pytest.raises(repo.CommandError, match="injected"):
        ingest_labels(str(path), str(campaign.root))
    assert repo.head(campaign.root) == head  # nothing committed
    monkeypatch.setattr(repo, "run_dvc", real_run_dvc)

    report = ingest_labels(str(path), str(campaign.root))
    assert report["already_ingested"]
    labels = LabelStore(campaign.label_dir).labels()
    assert len(labels) == INITIAL + BATCH and labels["id"].is_unique
    events = campaign.events()
    assert sum(e["event"] == "labels_ingested" for e in events) == 1
    assert sum(e["event"] == "round_closed" for e in events) == 1
    assert repo.head(campaign.root) != head
    assert repo.run_git(campaign.root, ["status", "--porcelain"]).strip() == ""
    assert campaign.params().round == 1


# --- the command line ----------------------------------------------------------------------------


def deimos(*args, api_url=None, cwd=None):
    import os

    env = dict(os.environ)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return subprocess.run(
        [sys.executable, "-m", "deimos_cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


def test_cli_init_rejects_bad_input_and_creates_nothing(tmp_path):
    fasta = tmp_path / "pool.fasta"
    fasta.write_text(">s1\n" + "ACGT" * 5 + "\n>s2\n" + "ACGX" * 5 + "\n")
    done = deimos("init", tmp_path / "c", "--pool", fasta, "--length", 20)
    assert done.returncode == 2
    assert "pool.fasta" in done.stderr and "s2" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.")]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("mine")
    done = deimos("init", tmp_path / "c", "--simulated")
    assert done.returncode == 2 and "not an empty directory" in done.stderr
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["keep.txt"]
    done = deimos("round", "--campaign", tmp_path / "c")
    assert done.returncode == 2 and "not a deimos campaign" in done.stderr


def test_cli_round_refuses_a_bad_params_file_before_any_stage(tmp_path):
    campaign = make_campaign(tmp_path / "c")
    params = campaign.params_path
    params.write_text(params.read_text().replace("lr: 0.001", "lr: 0"))
    before = snapshot(campaign.root)
    done = deimos("round", "--campaign", campaign.root)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"deimos: error: {params}: train.lr: Input should be greater than 0 (got 0)"
    )
    assert "prefect" not in done.stderr.lower()  # refused before the flow engine started
    assert snapshot(campaign.root) == before


def test_cli_lab_campaign_from_fasta_and_labels(prefect_server, tmp_path):
    """A lab's own pool and first measurements: init, round, ingest, status."""
    from deimos.data.a5ss_library import generate_library
    from deimos.data.fasta_writer import write_fasta

    lib = generate_library(120, seed=7)
    fasta = tmp_path / "library.fasta"
    write_fasta(fasta, list(lib.ids), list(lib.seqs))
    first = write_csv(
        tmp_path / "first.csv", ["id,donor_usage"] + [f"{i},0.{j % 9 + 1}" for j, i in
                                                       enumerate(lib.ids[:30])]
    )  # fmt: skip
    root = tmp_path / "lab"
    done = deimos("init", root, "--pool", fasta, "--labels", first, "--batch-size", 5,
                  "--masks", 4, "--epochs", 2)  # fmt: skip
    assert done.returncode == 0, done.stderr
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["simulation"] is None and params["batch_size"] == 5
    assert "test.fasta" not in (root / "dvc.yaml").read_text()

    done = deimos("round", "--campaign", root, api_url=prefect_server)
    assert done.returncode == 0, done.stderr
    assert "batch for the lab" in done.stdout
    batch = pd.read_csv(root / "queue/outbox/round-0/batch.csv", dtype={"id": str})
    assert len(batch) == 5 and not set(batch["id"]) & set(lib.ids[:30])
    # Every stage reports its wall time and peak memory; benchmarks.round_scale reads them.
    from benchmarks.round_scale import stage_times

    stages = stage_times((done.stdout + done.stderr).splitlines())
    assert set(stages) == {"prepare", "train", "predict", "select", "export"}
    assert all(seconds >= 0 and peak_mb > 50 for seconds, peak_mb in stages.values())
    assert stages["train"][0] > 0

    bad = write_csv(tmp_path / "bad.csv", ["id,donor_usage", f"{batch['id'][0]},-3"])
    done = deimos("ingest", bad, "--campaign", root, api_url=prefect_server)
    assert done.returncode == 2
    assert "bad.csv" in done.stderr and "line 2" in done.stderr

    labels = write_csv(
        tmp_path / "round-0.csv", ["id,donor_usage"] + [f"{i},0.25" for i in batch["id"]]
    )
    done = deimos("ingest", labels, "--campaign", root, api_url=prefect_server)
    assert done.returncode == 0, done.stderr
    assert "ingested 5 labels" in done.stdout and "round 0 closed" in done.stdout

    done = deimos("status", "--campaign", root)
    assert done.returncode == 0, done.stderr
    assert "35 labelled" in done.stdout
    assert "round      1" in done.stdout


def test_concurrent_ingestions_all_land_once(prefect_server, exported, tmp_path):
    """Two `deimos ingest` processes at once: different files both land (the campaign lock
    serialises them); the same file twice lands once."""
    import os

    root = exported.root
    ids = list(exported.selection(0)["id"])
    half = len(ids) // 2
    first = write_csv(tmp_path / "a.csv", ["id,donor_usage"] + [f"{i},0.3" for i in ids[:half]])
    second = write_csv(tmp_path / "b.csv", ["id,donor_usage"] + [f"{i},0.6" for i in ids[half:]])
    env = dict(os.environ, PREFECT_API_URL=prefect_server)

    def start(path):
        return subprocess.Popen(
            [sys.executable, "-m", "deimos_cli.main", "ingest", str(path), "--campaign", str(root)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    runs = [start(first), start(second), start(second)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err for _, err in outputs]
    assert sum("already ingested" in out for out, _ in outputs) == 1
    labels = LabelStore(exported.label_dir).labels().set_index("id")
    assert len(labels) == INITIAL + BATCH
    assert labels.loc[ids[0], "value"] == pytest.approx(0.3)
    assert labels.loc[ids[-1], "value"] == pytest.approx(0.6)
    events = [e for e in exported.events() if e["event"] == "labels_ingested"]
    assert sorted(e["file"] for e in events) == ["a.csv", "b.csv"]
    assert sum(e["event"] == "round_closed" for e in exported.events()) == 1
    assert repo.run_git(root, ["status", "--porcelain"]).strip() == ""
    log = repo.run_git(root, ["log", "--format=%s"]).splitlines()
    assert sum(s.startswith("labels: ") for s in log) == 2


def test_queue_labeller_waits_for_the_lab_then_stops_at_the_budget(exported):
    """The wet-lab queue: no file in the inbox -> awaiting_labels and nothing changes; once the
    lab's file is there the next run ingests it, and the label budget ends the campaign."""
    from flows.campaign import campaign

    root = exported.root
    before = snapshot(root)
    waiting = campaign(str(root), rounds=2, labeller="queue")
    assert waiting["status"] == "awaiting_labels" and waiting["n_labels"] == INITIAL
    assert snapshot(root) == before

    ids = list(exported.selection(0)["id"])
    inbox = exported.queue_dir() / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    write_csv(inbox / "round-0.csv", ["id,donor_usage"] + [f"{i},0.5" for i in ids])
    done = campaign(str(root), rounds=2, labeller="queue", label_budget=INITIAL + BATCH)
    assert done["status"] == "budget_reached" and done["n_labels"] == INITIAL + BATCH
    assert [r["round"] for r in done["rounds"]] == [0]
    assert exported.params().round == 1
    assert not exported.round_dir(1).exists()  # the budget stopped it before round 1
