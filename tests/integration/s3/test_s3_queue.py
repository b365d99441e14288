"""The S3 lab queue against a real S3 server (SeaweedFS `weed mini`, see tests/seaweed.py).

Each test gets its own bucket (`s3_bucket`); the test that stops the server mid-export runs its
own server so the session's server is never down for the other tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config

from deimos.errors import InputError
from deimos.lab.queue import s3 as s3_queue
from deimos.lab.queue import s3_batches
from deimos.lab.queue.redact import redact
from deimos.lab.queue.s3 import S3QueueError
from deimos.lab.queue.s3_batches import (
    MAX_DOWNLOAD_BYTES,
    download_object,
    find_returned_labels_s3,
    publish_batch_s3,
    read_batch_manifest_s3,
)
from deimos.lab.queue.settings import S3Settings
from tests.helpers.seaweed import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, SeaweedServer

PREFIX = "lab/campaign-1"
# The queue's own log lines. botocore's DEBUG log prints request headers, signatures included;
# that is botocore's, and off unless someone turns DEBUG on for it.
QUEUE_LOG = "deimos.lab.queue.s3"


def queue_log(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == QUEUE_LOG)


def settings_for(server: SeaweedServer, bucket: str, **changes: object) -> S3Settings:
    """Queue settings for `bucket` on `server`, retrying quickly so failing tests take seconds."""
    fields: dict[str, object] = {
        "bucket": bucket,
        "prefix": PREFIX,
        "endpoint_url": server.endpoint_url,
        "attempts": 3,
        "backoff_s": 0.05,
    }
    fields.update(changes)
    return S3Settings(**fields)  # type: ignore[arg-type]


def make_batch(folder: Path) -> list[Path]:
    """Three batch files, one of them larger than the 1 MiB read chunk."""
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "batch.csv"
    csv.write_text("row_id,sequence\n0,ACGTACGTAC\n1,TTGACCATGA\n", encoding="utf-8")
    fasta = folder / "batch.fasta"
    fasta.write_text(">0\nACGTACGTAC\n>1\nTTGACCATGA\n", encoding="utf-8")
    plate = folder / "plate.bin"
    plate.write_bytes(os.urandom(2_500_000))
    return [plate, csv, fasta]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded_calls(monkeypatch, operations: tuple[str, ...]) -> list[tuple[str, str]]:
    """(operation, key) of every call of `operations` the queue's clients make, in order.

    Hooks boto3's own event system on the real clients; nothing is faked.
    """
    calls: list[tuple[str, str]] = []
    real = s3_queue.s3_client

    def client_with_hooks(settings):
        client = real(settings)
        for op in operations:

            def record(params, op=op, **_):
                calls.append((op, params["Key"]))

            client.meta.events.register(f"provide-client-params.s3.{op}", record)
        return client

    monkeypatch.setattr(s3_batches, "s3_client", client_with_hooks)
    return calls


# -- publish and read -------------------------------------------------------------------------


def test_publish_then_read_round_trip(s3_server, s3_bucket, tmp_path, monkeypatch):
    settings = settings_for(s3_server, s3_bucket)
    files = make_batch(tmp_path / "export")
    puts = recorded_calls(monkeypatch, ("PutObject",))

    manifest = publish_batch_s3(settings, 3, files)

    expected = sorted(
        (
            {"name": p.name, "bytes": p.stat().st_size, "sha256": sha256(p.read_bytes())}
            for p in files
        ),
        key=lambda e: e["name"],
    )
    assert manifest == {"round": 3, "files": expected}
    # The manifest is the last object written, after every file.
    assert [key for _, key in puts] == [
        f"{PREFIX}/round-3/batch.csv",
        f"{PREFIX}/round-3/batch.fasta",
        f"{PREFIX}/round-3/plate.bin",
        f"{PREFIX}/round-3/manifest.json",
    ]
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix=f"{PREFIX}/")["Contents"]
    times = {obj["Key"].rsplit("/", 1)[1]: obj["LastModified"] for obj in listed}
    assert set(times) == {"batch.csv", "batch.fasta", "plate.bin", "manifest.json"}
    assert times["manifest.json"] >= max(times[p.name] for p in files)
    for p in files:
        body = client.get_object(Bucket=s3_bucket, Key=f"{PREFIX}/round-3/{p.name}")["Body"]
        assert body.read() == p.read_bytes()

    assert read_batch_manifest_s3(settings, 3) == manifest
    assert read_batch_manifest_s3(settings, 4) is None


def test_republish_of_the_same_batch_writes_nothing(s3_server, s3_bucket, tmp_path, monkeypatch):
    settings = settings_for(s3_server, s3_bucket)
    files = make_batch(tmp_path / "export")
    first = publish_batch_s3(settings, 1, files)
    writes = recorded_calls(monkeypatch, ("PutObject", "DeleteObject"))

    again = publish_batch_s3(settings, 1, list(reversed(files)))

    assert again == first
    assert writes == []
    assert read_batch_manifest_s3(settings, 1) == first


def test_republish_of_a_changed_batch_replaces_it(s3_server, s3_bucket, tmp_path):
    settings = settings_for(s3_server, s3_bucket)
    files = make_batch(tmp_path / "export")
    old = publish_batch_s3(settings, 2, files)
    files[1].write_text("row_id,sequence\n0,GGGGGGGGGG\n", encoding="utf-8")

    new = publish_batch_s3(settings, 2, files)

    assert new != old
    assert read_batch_manifest_s3(settings, 2) == new


def test_a_batch_without_manifest_reads_as_not_exported(s3_server, s3_bucket, tmp_path):
    settings = settings_for(s3_server, s3_bucket)
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/round-5/batch.csv", Body=b"row_id\n0\n")

    assert read_batch_manifest_s3(settings, 5) is None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("delete", "listed in the manifest but missing"),
        ("same-size", "SHA-256 differs"),
        ("shorter", "the manifest records"),
    ],
)
def test_read_refuses_a_damaged_batch(s3_server, s3_bucket, tmp_path, damage, message):
    settings = settings_for(s3_server, s3_bucket)
    files = make_batch(tmp_path / "export")
    publish_batch_s3(settings, 7, files)
    key = f"{PREFIX}/round-7/batch.fasta"
    client = s3_server.client()
    original = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    if damage == "delete":
        client.delete_object(Bucket=s3_bucket, Key=key)
    elif damage == "same-size":
        client.put_object(Bucket=s3_bucket, Key=key, Body=original.replace(b"ACGT", b"TTTT"))
    else:
        client.put_object(Bucket=s3_bucket, Key=key, Body=original[:-1])

    with pytest.raises(InputError, match=message) as caught:
        read_batch_manifest_s3(settings, 7)
    assert f"s3://{s3_bucket}/{key}" in str(caught.value)


def test_read_refuses_a_manifest_for_another_round(s3_server, s3_bucket):
    settings = settings_for(s3_server, s3_bucket)
    s3_server.client().put_object(
        Bucket=s3_bucket, Key=f"{PREFIX}/round-2/manifest.json", Body=b'{"round": 9, "files": []}'
    )
    with pytest.raises(InputError, match="records round 9, not 2"):
        read_batch_manifest_s3(settings, 2)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([], "no files to publish"),
        (["missing.csv"], "not a file"),
        (["manifest.json"], "may not be called manifest.json"),
        (["a/batch.csv", "b/batch.csv"], "two batch files are called 'batch.csv'"),
    ],
)
def test_publish_refuses_bad_files(s3_server, s3_bucket, tmp_path, files, message):
    paths = []
    for name in files:
        path = tmp_path / name
        if name != "missing.csv":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x\n", encoding="utf-8")
        paths.append(path)
    with pytest.raises(InputError, match=message):
        publish_batch_s3(settings_for(s3_server, s3_bucket), 1, paths)


# -- returned labels --------------------------------------------------------------------------


def test_find_returned_labels_in_suffix_order(s3_server, s3_bucket):
    settings = settings_for(s3_server, s3_bucket)
    client = s3_server.client()
    inbox = f"{PREFIX}/inbox"
    assert find_returned_labels_s3(settings, 3) is None

    # Neighbours that must not match round 3: another round, another suffix, another prefix.
    for key in (f"{inbox}/round-30.csv", f"{inbox}/round-3.txt", "lab/other/inbox/round-3.csv"):
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    assert find_returned_labels_s3(settings, 3) is None

    client.put_object(Bucket=s3_bucket, Key=f"{inbox}/round-3.json", Body=b"[]")
    assert find_returned_labels_s3(settings, 3) == f"{inbox}/round-3.json"
    client.put_object(Bucket=s3_bucket, Key=f"{inbox}/round-3.xlsx", Body=b"x")
    assert find_returned_labels_s3(settings, 3) == f"{inbox}/round-3.xlsx"
    client.put_object(Bucket=s3_bucket, Key=f"{inbox}/round-3.csv", Body=b"x")
    assert find_returned_labels_s3(settings, 3) == f"{inbox}/round-3.csv"


def test_download_replaces_the_file_atomically(s3_server, s3_bucket, tmp_path):
    settings = settings_for(s3_server, s3_bucket)
    key = f"{PREFIX}/inbox/round-1.csv"
    payload = b"row_id,label\n" + b"".join(b"%d,0.%d\n" % (i, i % 10) for i in range(250_000))
    assert len(payload) > 2 * (1 << 20)  # several read chunks
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=payload)
    dest = tmp_path / "labels" / "round-1.csv"

    assert find_returned_labels_s3(settings, 1) == key
    assert download_object(settings, key, dest) == dest
    assert dest.read_bytes() == payload

    dest.write_bytes(b"old content\n")
    download_object(settings, key, dest)
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["round-1.csv"]  # no temp file left


def test_download_refuses_an_oversized_object_before_fetching_it(s3_server, s3_bucket, tmp_path):
    settings = settings_for(s3_server, s3_bucket)
    key = f"{PREFIX}/inbox/round-1.csv"
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=b"x" * 2048)
    dest = tmp_path / "round-1.csv"
    dest.write_bytes(b"previous\n")

    with pytest.raises(InputError, match="2048 bytes, more than the limit of 1024 bytes"):
        download_object(settings, key, dest, max_bytes=1024)
    assert dest.read_bytes() == b"previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round-1.csv"]


@pytest.mark.slow
def test_download_default_limit_is_64_mib(s3_server, s3_bucket, tmp_path):
    settings = settings_for(s3_server, s3_bucket)
    key = f"{PREFIX}/inbox/round-1.json"
    assert MAX_DOWNLOAD_BYTES == 64 * 1024 * 1024
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=b" " * (MAX_DOWNLOAD_BYTES + 1))

    with pytest.raises(InputError, match=f"more than the limit of {MAX_DOWNLOAD_BYTES} bytes"):
        download_object(settings, key, tmp_path / "labels.json")
    assert not (tmp_path / "labels.json").exists()


def test_download_of_a_missing_object_is_an_input_error(s3_server, s3_bucket, tmp_path):
    settings = settings_for(s3_server, s3_bucket)
    with pytest.raises(InputError, match="no such object"):
        download_object(settings, f"{PREFIX}/inbox/round-9.csv", tmp_path / "x.csv")


@pytest.mark.parametrize(
    "key",
    [
        "../lab/campaign-1/inbox/round-1.csv",
        f"{PREFIX}/../secrets.csv",
        f"{PREFIX}/inbox/..",
        f"/{PREFIX}/inbox/round-1.csv",
        f"{PREFIX}/inbox/round-1\x00.csv",
        f"{PREFIX}/inbox/round\n-1.csv",
        f"{PREFIX}//round-1.csv",
        f"{PREFIX}/inbox/",
        "lab/campaign-10/inbox/round-1.csv",
        "lab/other/inbox/round-1.csv",
        PREFIX,
    ],
)
def test_download_refuses_keys_outside_the_prefix(s3_server, s3_bucket, tmp_path, key):
    with pytest.raises(InputError):
        download_object(settings_for(s3_server, s3_bucket), key, tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bucket",
    ["ab", "Upper-case", "under_score", "-dash-first", "dot-last.", "a..b", "a.-b", "10.0.0.1",
     "xn--bucket", "x" * 64, "with space"],
)  # fmt: skip
def test_settings_refuse_bad_bucket_names(bucket):
    with pytest.raises(InputError, match="bucket name"):
        S3Settings(bucket=bucket)


@pytest.mark.parametrize(
    "prefix", ["", "/", "/lead", "a//b", "a/../b", "..", "a/..", "a/\x01b", "a/b\x7f", "a\\b"]
)
def test_settings_refuse_bad_prefixes(prefix):
    with pytest.raises(InputError, match="prefix"):
        S3Settings(bucket="deimos-lab", prefix=prefix)


def test_settings_normalise_the_prefix_and_check_the_rest():
    assert S3Settings(bucket="deimos-lab", prefix="lab/c1/").prefix == "lab/c1"
    assert S3Settings(bucket="my.bucket-01").bucket == "my.bucket-01"
    with pytest.raises(InputError, match="must not contain a user name or password") as err:
        S3Settings(bucket="deimos-lab", endpoint_url="http://AKIAX:secret@127.0.0.1:8333")
    assert "secret" not in str(err.value)
    with pytest.raises(InputError, match="endpoint URL"):
        S3Settings(bucket="deimos-lab", endpoint_url="ftp://127.0.0.1")
    with pytest.raises(InputError, match="attempts"):
        S3Settings(bucket="deimos-lab", attempts=0)
    with pytest.raises(InputError, match="backoff_s"):
        S3Settings(bucket="deimos-lab", backoff_s=-1.0)
    with pytest.raises(InputError, match="round id"):
        publish_batch_s3(S3Settings(bucket="deimos-lab"), -1, [])


def test_credentials_come_from_a_named_profile(s3_server, s3_bucket, tmp_path, monkeypatch):
    config = tmp_path / "aws-credentials"
    config.write_text(
        f"[lab]\naws_access_key_id = {TEST_ACCESS_KEY_ID}\n"
        f"aws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    files = make_batch(tmp_path / "export")

    manifest = publish_batch_s3(settings_for(s3_server, s3_bucket, profile="lab"), 1, files)

    assert read_batch_manifest_s3(settings_for(s3_server, s3_bucket, profile="lab"), 1) == manifest
    with pytest.raises(InputError, match=r"profile 'nobody' \(s3.profile\) is not configured"):
        publish_batch_s3(settings_for(s3_server, s3_bucket, profile="nobody"), 1, files)


# -- failures and secrets ---------------------------------------------------------------------


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_redact_removes_keys_secrets_and_signatures(monkeypatch, s3_server, signature_version):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "my-very-secret-value-123")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name="us-east-1",
        config=Config(signature_version=signature_version),
    )
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "deimos-lab", "Key": "a/b.csv"}, ExpiresIn=60
    )
    signature = parse_qs(urlsplit(url).query)[
        "X-Amz-Signature" if signature_version == "s3v4" else "Signature"
    ][0]
    text = redact(f"failed: {url} with my-very-secret-value-123 and ASIAABCDEFGHIJKLMNOP, extra")

    for leaked in (
        "my-very-secret-value-123",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAABCDEFGHIJKLMNOP",
        signature,
    ):
        assert leaked not in text
    if signature_version == "s3v4":
        assert "X-Amz-Credential=***" in text and "X-Amz-Signature=***" in text
    else:
        assert "AWSAccessKeyId=***" in text and "Signature=***" in text
    assert "/deimos-lab/a/b.csv?" in text and text.endswith(", extra")
    assert redact("token abc", secrets=["session-token-xyz", "abc"]) == "token abc"  # too short
    assert redact("token session-token-xyz", secrets=["session-token-xyz"]) == "token ***"


def test_wrong_credentials_fail_at_once_without_leaking_them(
    s3_server, s3_bucket, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret-wrong")
    settings = settings_for(s3_server, s3_bucket, attempts=3, backoff_s=5.0)
    began = time.monotonic()

    with pytest.raises(S3QueueError) as caught, caplog.at_level(logging.DEBUG, logger=QUEUE_LOG):
        publish_batch_s3(settings, 1, make_batch(tmp_path / "export"))

    assert time.monotonic() - began < 5.0  # not retried: a 403 does not go away by waiting
    message = str(caught.value)
    assert message.startswith(f"S3 export of round 1 to s3://{s3_bucket}/{PREFIX}/round-1/ failed:")
    assert "InvalidAccessKeyId" in message
    for leaked in ("AKIAWRONGWRONGWRONG1", "wrong-secret-wrong-secret-wrong"):
        assert leaked not in message
        assert leaked not in queue_log(caplog)


def test_a_missing_bucket_is_reported_not_retried(s3_server, s3_env, tmp_path):
    settings = settings_for(s3_server, "no-such-bucket-here", backoff_s=5.0)
    with pytest.raises(S3QueueError, match=r"failed: NoSuchBucket \(HTTP 404\)"):
        publish_batch_s3(settings, 1, make_batch(tmp_path / "export"))
    with pytest.raises(S3QueueError, match="NoSuchBucket"):
        find_returned_labels_s3(settings, 1)


@pytest.mark.slow
def test_server_stopped_mid_export(tmp_path, s3_env, monkeypatch, caplog):
    """The server dies after the first upload: the export fails cleanly after its retries, leaves
    no manifest, and a later export of the same round completes."""
    with SeaweedServer(tmp_path / "server", bucket="mid-export") as server:
        settings = settings_for(server, "mid-export", attempts=3, backoff_s=0.05)
        files = make_batch(tmp_path / "export")
        real = s3_queue.s3_client
        n_puts = 0

        def client_that_loses_its_server(s):
            client = real(s)

            def after_put(**_):
                nonlocal n_puts
                n_puts += 1
                if n_puts == 1:
                    server.stop()  # a real outage: the process group is killed

            client.meta.events.register("after-call.s3.PutObject", after_put)
            return client

        monkeypatch.setattr(s3_batches, "s3_client", client_that_loses_its_server)
        began = time.monotonic()
        with pytest.raises(S3QueueError) as caught, caplog.at_level(logging.INFO, logger=QUEUE_LOG):
            publish_batch_s3(settings, 3, files)
        elapsed = time.monotonic() - began

        message = str(caught.value)
        assert message == (
            f"S3 export of round 3 to s3://mid-export/{PREFIX}/round-3/ failed after 3 attempts: "
            f"could not connect to the endpoint {server.endpoint_url}"
        )
        assert elapsed < 30
        assert n_puts == 1
        # Each retry was logged; neither the message nor the log holds a credential.
        assert queue_log(caplog).count("s3_retry") == 2
        for leaked in (TEST_SECRET_ACCESS_KEY, TEST_ACCESS_KEY_ID):
            assert leaked not in message
            assert leaked not in queue_log(caplog)

        monkeypatch.setattr(s3_batches, "s3_client", real)
        server.start()
        # The first file made it before the outage; the manifest did not, so the round reads as
        # not exported.
        keys = [
            obj["Key"]
            for obj in server.client().list_objects_v2(Bucket="mid-export").get("Contents", [])
        ]
        assert keys == [f"{PREFIX}/round-3/batch.csv"]
        assert read_batch_manifest_s3(settings, 3) is None

        manifest = publish_batch_s3(settings, 3, files)
        assert read_batch_manifest_s3(settings, 3) == manifest
        assert [f["name"] for f in manifest["files"]] == ["batch.csv", "batch.fasta", "plate.bin"]


def test_endpoint_and_profile_can_come_from_the_environment(monkeypatch, tmp_path):
    settings = S3Settings(bucket="lab-bucket")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    assert s3_queue.s3_client(settings).meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_PROFILE", "lab-profile")
    with pytest.raises(InputError, match=r"'lab-profile' \(AWS_PROFILE\) is not configured"):
        s3_queue.s3_client(settings)
