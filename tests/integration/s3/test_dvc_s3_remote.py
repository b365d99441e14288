"""A campaign's DVC remote on a real S3 server (SeaweedFS): push, clone, pull, byte for byte.

Credentials reach DVC only through the environment (`s3_env`); the committed `.dvc/config` holds
the location and endpoint, nothing secret.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from deimos.campaign import repo
from deimos.errors import InputError
from tests.helpers.lab_loop_helpers import make_campaign
from tests.helpers.seaweed import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

pytestmark = pytest.mark.slow


def hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_push_clone_pull_round_trip(s3_server, s3_bucket, tmp_path):
    campaign = make_campaign(tmp_path / "c")
    root = campaign.root
    url = f"s3://{s3_bucket}/campaigns/c"

    repo.configure_s3_remote(root, url, name="lab-store", endpoint_url=s3_server.endpoint_url)
    repo.commit(root, [".dvc/config"], "DVC remote on S3")

    config = (root / ".dvc" / "config").read_text(encoding="utf-8")
    assert url in config and s3_server.endpoint_url in config
    assert "remote = lab-store" in config
    for secret in (TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, "access_key", "secret"):
        assert secret not in config
    assert not repo.pushed(root)  # nothing on the remote yet

    repo.run_dvc(root, ["push", "-q"])
    assert repo.pushed(root)
    objects = s3_server.client().list_objects_v2(Bucket=s3_bucket, Prefix="campaigns/c/")
    assert objects.get("KeyCount", 0) > 0

    clone = tmp_path / "clone"
    repo.run_git(tmp_path, ["clone", "-q", str(root), str(clone)])
    assert not (clone / "data").exists() or hashes(clone / "data") != hashes(root / "data")
    # A new campaign has run no round yet, so only data.dvc has outputs to pull.
    repo.run_dvc(clone, ["pull", "-q", "data.dvc"])

    assert hashes(root / "data")  # the campaign has data to compare
    assert hashes(clone / "data") == hashes(root / "data")
    assert repo.pushed(clone)
    # Data that is on the remote but not in the local cache still counts as pushed.
    shutil.rmtree(clone / ".dvc" / "cache")
    assert repo.pushed(clone)

    # New data, tracked but not pushed: the remote lacks it.
    first = sorted(p for p in (root / "data").rglob("*") if p.is_file())[0]
    first.write_bytes(first.read_bytes() + b"\n")
    repo.run_dvc(root, ["add", "-q", "data"])
    assert not repo.pushed(root)
    repo.run_dvc(root, ["push", "-q"])
    assert repo.pushed(root)


def test_remote_credentials_come_from_the_environment(s3_server, s3_bucket, tmp_path, monkeypatch):
    campaign = make_campaign(tmp_path / "c")
    root = campaign.root
    repo.configure_s3_remote(root, f"s3://{s3_bucket}/c", endpoint_url=s3_server.endpoint_url)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-servers-secret-key-0000")

    with pytest.raises(repo.CommandError) as caught:
        repo.run_dvc(root, ["push", "-q"])
    assert "not-the-servers-secret-key-0000" not in str(caught.value)
    assert s3_server.client().list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0


@pytest.mark.parametrize(
    ("url", "changes"),
    [
        ("/local/path", {}),
        ("s3://", {}),
        ("s3://AKIAX:secret@bucket/x", {}),
        ("s3://bucket/x", {"name": "bad name"}),
        ("s3://bucket/x", {"endpoint_url": "http://user:pw@127.0.0.1:1"}),
        ("s3://bucket/x", {"endpoint_url": "127.0.0.1:8333"}),
        ("s3://bucket/x", {"profile": ""}),
    ],
)
def test_configure_s3_remote_refuses_bad_input_before_writing(tmp_path, url, changes):
    repo.init_repo(tmp_path)
    before = (tmp_path / ".dvc" / "config").read_bytes()
    with pytest.raises(InputError):
        repo.configure_s3_remote(tmp_path, url, **changes)
    assert (tmp_path / ".dvc" / "config").read_bytes() == before
