"""The S3 queue's batches and returned labels: publish a round's batch (manifest last), read it
back checked against its manifest, find the labels the lab returned, and download them.

The protocol, retries and credential handling are described in `deimos.lab.queue.s3`, which
holds the client, the key layout and the retry loop these operations run in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from deimos.atomic import replacing
from deimos.errors import InputError
from deimos.lab.queue.local import LABEL_SUFFIXES, MANIFEST, sha256_file
from deimos.lab.queue.redact import redact
from deimos.lab.queue.s3 import (
    batch_prefix,
    check_key,
    check_round_id,
    inbox_prefix,
    is_missing,
    manifest_key,
    s3_client,
    with_retries,
)
from deimos.safe_names import check_path_component

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from deimos.lab.queue.settings import S3Settings

# The S3 queue's one logger, shared with `deimos.lab.queue.s3` (retries are logged there).
log = logging.getLogger("deimos.lab.queue.s3")

#: Largest object `download_object` fetches unless told otherwise: a label sheet, not a dataset.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_CHUNK = 1 << 20


# -- publishing a batch -----------------------------------------------------------------------


def _manifest_for(round_id: int, files: list[Path]) -> dict[str, Any]:
    if not files:
        raise InputError(f"round {round_id}: no files to publish")
    names: set[str] = set()
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: not a file; cannot publish it")
        check_path_component(path.name, f"batch file name {str(path)!r}")
        if path.name == MANIFEST:
            raise InputError(f"{path}: a batch file may not be called {MANIFEST}")
        if path.name in names:
            raise InputError(f"{path}: two batch files are called {path.name!r}")
        names.add(path.name)
    ordered = sorted((Path(p) for p in files), key=lambda p: p.name)
    return {
        "round": round_id,
        "files": [
            {"name": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in ordered
        ],
    }


def _get_manifest(client: S3Client, settings: S3Settings, key: str) -> bytes | None:
    try:
        return client.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise


def _already_published(
    client: S3Client, settings: S3Settings, round_id: int, manifest: dict[str, Any]
) -> bool:
    """True when the round's manifest equals `manifest` and every listed object is there, at its
    size (a full re-hash is the reader's job; this only has to spot a changed or damaged batch)."""
    raw = _get_manifest(client, settings, manifest_key(settings, round_id))
    if raw is None:
        return False
    try:
        if json.loads(raw) != manifest:
            return False
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    prefix = batch_prefix(settings, round_id)
    for entry in manifest["files"]:
        try:
            head = client.head_object(Bucket=settings.bucket, Key=prefix + entry["name"])
        except ClientError as exc:
            if is_missing(exc):
                return False
            raise
        if head["ContentLength"] != entry["bytes"]:
            return False
    return True


def _put_file(client: S3Client, settings: S3Settings, key: str, path: Path, sha256: str) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
        handle.seek(0)
        # Content-MD5 makes the server refuse a body damaged in transit (BadDigest); the SHA-256
        # rides along as metadata so the object can be checked without the manifest.
        client.put_object(
            Bucket=settings.bucket,
            Key=key,
            Body=handle,
            ContentMD5=base64.b64encode(digest.digest()).decode("ascii"),
            Metadata={"sha256": sha256},
        )


def publish_batch_s3(settings: S3Settings, round_id: int, files: list[Path]) -> dict[str, Any]:
    """Upload a round's batch files to ``PREFIX/round-<k>/``, then its manifest, last.

    A re-publish is a no-op when the same manifest and its objects are already there. Publishing
    different files for a round first deletes its manifest, so readers see the round as not
    exported until the new batch is complete.

    Args:
        settings: the queue.
        round_id: the round `k`.
        files: the batch files; their names become the object names.

    Returns:
        The manifest: ``{"round": k, "files": [{"name", "bytes", "sha256"}, ...]}`` (by name).

    Raises:
        InputError: no files, a missing file, a bad or duplicate file name.
        S3QueueError: the upload failed (after `settings.attempts` tries on network errors).
    """
    round_id = check_round_id(round_id)
    manifest = _manifest_for(round_id, list(files))
    by_name = {Path(p).name: Path(p) for p in files}
    prefix = batch_prefix(settings, round_id)
    body = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    client = s3_client(settings)

    def publish_once() -> None:
        if _already_published(client, settings, round_id, manifest):
            log.info(redact(f"s3_publish round={round_id} url={settings.url(prefix)} unchanged"))
            return
        # A stale manifest would vouch for files that are about to change under it.
        client.delete_object(Bucket=settings.bucket, Key=prefix + MANIFEST)
        for entry in manifest["files"]:
            _put_file(
                client, settings, prefix + entry["name"], by_name[entry["name"]], entry["sha256"]
            )
        client.put_object(
            Bucket=settings.bucket,
            Key=prefix + MANIFEST,
            Body=body,
            ContentMD5=base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
            ContentType="application/json",
        )
        log.info(
            redact(
                f"s3_publish round={round_id} url={settings.url(prefix)} "
                f"n_files={len(manifest['files'])}"
            )
        )

    with_retries(settings, f"S3 export of round {round_id} to {settings.url(prefix)}", publish_once)
    return manifest


# -- reading a batch --------------------------------------------------------------------------


def _sha256_object(client: S3Client, settings: S3Settings, key: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    n_bytes = 0
    stream = client.get_object(Bucket=settings.bucket, Key=key)["Body"]
    for block in stream.iter_chunks(_CHUNK):
        digest.update(block)
        n_bytes += len(block)
    return n_bytes, digest.hexdigest()


def read_batch_manifest_s3(settings: S3Settings, round_id: int) -> dict[str, Any] | None:
    """The manifest of round `round_id`'s batch after checking every object against it.

    Returns:
        The manifest, or None when the round has no manifest (not exported, or an export that
        did not finish).

    Raises:
        InputError: the manifest is not valid JSON or not for this round, or a listed object is
            missing, or differs in size or SHA-256 (the key is named).
        S3QueueError: S3 could not be read.
    """
    round_id = check_round_id(round_id)
    key = manifest_key(settings, round_id)
    prefix = batch_prefix(settings, round_id)
    client = s3_client(settings)

    def read_once() -> dict[str, Any] | None:
        raw = _get_manifest(client, settings, key)
        if raw is None:
            return None
        manifest = _parse_manifest(settings, key, raw, round_id)
        for entry in manifest["files"]:
            object_key = prefix + entry["name"]
            try:
                head = client.head_object(Bucket=settings.bucket, Key=object_key)
            except ClientError as exc:
                if is_missing(exc):
                    raise InputError(
                        f"{settings.url(object_key)}: listed in the manifest but missing"
                    ) from exc
                raise
            if head["ContentLength"] != entry["bytes"]:
                raise InputError(
                    f"{settings.url(object_key)}: {head['ContentLength']} bytes, the manifest "
                    f"records {entry['bytes']}"
                )
            n_bytes, sha256 = _sha256_object(client, settings, object_key)
            if n_bytes != entry["bytes"] or sha256 != entry["sha256"]:
                raise InputError(f"{settings.url(object_key)}: SHA-256 differs from the manifest")
        return manifest

    return with_retries(
        settings, f"reading the batch of round {round_id} at {settings.url(prefix)}", read_once
    )


def _parse_manifest(settings: S3Settings, key: str, raw: bytes, round_id: int) -> dict[str, Any]:
    where = settings.url(key)
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise InputError(f"{where}: not a batch manifest (needs 'round' and a 'files' list)")
    if manifest.get("round") != round_id:
        raise InputError(f"{where}: records round {manifest.get('round')!r}, not {round_id}")
    for entry in manifest["files"]:
        if not isinstance(entry, dict):
            raise InputError(f"{where}: a 'files' entry is not an object")
        name = entry.get("name")
        if not isinstance(name, str) or name == MANIFEST:
            raise InputError(f"{where}: bad file name {name!r}")
        check_path_component(name, f"{where}: file name")
        if not isinstance(entry.get("bytes"), int) or not isinstance(entry.get("sha256"), str):
            raise InputError(f"{where}: entry {name!r} lacks 'bytes' or 'sha256'")
    return manifest


# -- returned labels --------------------------------------------------------------------------


def find_returned_labels_s3(settings: S3Settings, round_id: int) -> str | None:
    """The key of the labels the lab returned for round `round_id`, if any.

    Looks for ``PREFIX/inbox/round-<k>.csv``, ``.xlsx`` and ``.json``, in that order.

    Returns:
        The first key that exists, or None.

    Raises:
        S3QueueError: S3 could not be listed (including a missing bucket).
    """
    round_id = check_round_id(round_id)
    stem = f"{inbox_prefix(settings)}round-{round_id}"
    client = s3_client(settings)

    def find_once() -> str | None:
        # One listing rather than a HEAD per suffix: a HEAD cannot tell a missing object from a
        # missing bucket (both are a bare 404), a listing can.
        found: set[str] = set()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=settings.bucket, Prefix=stem + "."):
            found.update(obj["Key"] for obj in page.get("Contents", []))
        for suffix in LABEL_SUFFIXES:
            if stem + suffix in found:
                return stem + suffix
        return None

    return with_retries(
        settings, f"looking for labels of round {round_id} in {settings.url(stem)}.*", find_once
    )


def download_object(
    settings: S3Settings, key: str, dest: Path, *, max_bytes: int = MAX_DOWNLOAD_BYTES
) -> Path:
    """Download object `key` to `dest` atomically: `dest` is the whole object or untouched.

    Args:
        settings: the queue.
        key: an object key under `settings.prefix` (e.g. from `find_returned_labels_s3`).
        dest: the local file to write; its folder is created if missing.
        max_bytes: the largest object accepted, checked before the download starts.

    Returns:
        `dest`.

    Raises:
        InputError: a key outside the prefix or with ``..``/control characters, an object over
            `max_bytes`, or one that does not exist.
        S3QueueError: the download failed.
    """
    key = check_key(settings, key)
    dest = Path(dest)
    where = settings.url(key)
    client = s3_client(settings)

    def download_once() -> Path:
        try:
            head = client.head_object(Bucket=settings.bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                raise InputError(f"{where}: no such object") from exc
            raise
        size = head["ContentLength"]
        if size > max_bytes:
            raise InputError(
                f"{where}: {size} bytes, more than the limit of {max_bytes} bytes; refusing to "
                "download it"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        with replacing(dest) as tmp:
            response = client.get_object(Bucket=settings.bucket, Key=key)
            n_bytes = 0
            with open(tmp, "wb") as handle:
                for block in response["Body"].iter_chunks(_CHUNK):
                    n_bytes += len(block)
                    # The object may have been replaced by a bigger one since the HEAD.
                    if n_bytes > max_bytes:
                        raise InputError(
                            f"{where}: grew past the limit of {max_bytes} bytes while downloading"
                        )
                    handle.write(block)
        log.info(redact(f"s3_download url={where} dest={dest} n_bytes={n_bytes}"))
        return dest

    return with_retries(settings, f"download of {where}", download_once)
