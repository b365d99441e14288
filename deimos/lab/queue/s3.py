"""The S3 lab queue: batches go out to `s3://BUCKET/PREFIX/round-<k>/`, labels come back to
`s3://BUCKET/PREFIX/inbox/round-<k>.csv|.xlsx|.json`.

The same protocol as the local queue (`deimos.lab.queue.local`): a batch is complete once its
`manifest.json` exists, and the manifest (names, sizes, SHA-256) is uploaded last, so a reader
never picks up half a batch; if an export dies before the manifest, the round reads as not
exported and the next export simply uploads it again.

Credentials never live in `S3Settings` or in a message: boto3 finds them itself (environment
variables, the AWS profile named by `profile`, an instance role), and every error message and log
line goes through `redact` first.

Failures of the network or the server (connection refused, timeouts, HTTP 5xx) are retried, the
whole operation at a time, `attempts` times with exponential backoff; anything else (no such
bucket, access denied, a corrupt batch) fails at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from deimos.atomic import replacing
from deimos.errors import DeimosError, InputError
from deimos.lab.queue.local import LABEL_SUFFIXES, MANIFEST, sha256_file
from deimos.safe_names import check_object_prefix, check_path_component

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

#: Largest object `download_object` fetches unless told otherwise: a label sheet, not a dataset.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
INBOX = "inbox"

# One quick retry inside a call (throttling, a dropped connection); the real retry policy is the
# whole-operation loop below, driven by `S3Settings`. More here would multiply the waits.
_CALL_ATTEMPTS = 2
_TIMEOUT_S = 5.0
_CHUNK = 1 << 20
_RETRYABLE_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed"}
)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
# AWS access key ids: a four-letter kind (AKIA long-term, ASIA temporary, ...) + 16 characters.
_ACCESS_KEY_RE = re.compile(
    r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b"
)
# Signed-URL query values and Authorization-header fields that carry a credential or signature.
_SIGNED_FIELD_RE = re.compile(
    r"(?i)\b(X-Amz-Credential|X-Amz-Signature|X-Amz-Security-Token|AWSAccessKeyId|Signature|"
    r"Credential)=([^&\s,\"']+)"
)
_SECRET_ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)
# Shorter values are not real credentials, and scrubbing them would mangle ordinary words.
_MIN_SECRET_LEN = 6

T = TypeVar("T")


class S3QueueError(DeimosError, RuntimeError):
    """An S3 queue operation failed for a reason outside the user's input (network, server,
    permissions); the message says what failed and never holds a credential."""


# -- settings ---------------------------------------------------------------------------------


def check_bucket_name(bucket: str) -> str:
    """Check `bucket` against the S3 bucket naming rules and return it.

    Raises:
        InputError: the name breaks a rule (named in the message).
    """
    if not isinstance(bucket, str):
        raise InputError(f"S3 bucket name must be a string, got {type(bucket).__name__}")
    if not 3 <= len(bucket) <= 63:
        raise InputError(f"S3 bucket name {bucket!r} must be 3 to 63 characters long")
    if not _BUCKET_RE.fullmatch(bucket):
        raise InputError(
            f"S3 bucket name {bucket!r} may hold only lowercase letters, digits, '.' and '-', "
            "and must start and end with a letter or digit"
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        raise InputError(f"S3 bucket name {bucket!r} has an empty or malformed dot-label")
    if _IPV4_RE.fullmatch(bucket):
        raise InputError(f"S3 bucket name {bucket!r} must not look like an IP address")
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        raise InputError(f"S3 bucket name {bucket!r} uses a prefix or suffix S3 reserves")
    return bucket


def _check_endpoint_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"S3 endpoint URL {redact(url)!r} must be http(s)://HOST[:PORT]")
    if parts.username is not None or parts.password is not None:
        # Credentials come from boto3's chain, never from configuration that gets committed.
        raise InputError("S3 endpoint URL must not contain a user name or password")
    return url


@dataclass(frozen=True)
class S3Settings:
    """Where the S3 queue lives and how hard to retry; validated once, here.

    Attributes:
        bucket: the bucket (S3 naming rules).
        prefix: the key prefix the queue owns (``deimos`` or ``lab/campaign-1``); a trailing
            ``/`` is dropped. Segments must be non-empty, without ``..`` or control characters.
        endpoint_url: an S3-compatible server (``http://127.0.0.1:8333``); None for AWS.
        region: the signing region.
        profile: an AWS profile for credentials; None uses the default chain.
        attempts: how many times an operation is tried on network or server failures.
        backoff_s: the wait after the first failed attempt; doubled after each further one.
    """

    bucket: str
    prefix: str = "deimos"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    profile: str | None = None
    attempts: int = 5
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        check_bucket_name(self.bucket)
        if not isinstance(self.prefix, str) or not self.prefix.strip("/"):
            # The queue needs a folder of its own: keys are checked to lie under it.
            raise InputError(f"S3 prefix must be a non-empty key prefix, got {self.prefix!r}")
        object.__setattr__(self, "prefix", check_object_prefix(self.prefix))
        if self.endpoint_url is not None:
            _check_endpoint_url(self.endpoint_url)
        if not isinstance(self.region, str) or not re.fullmatch(r"[a-z0-9-]+", self.region):
            raise InputError(f"S3 region {self.region!r} is not a region name (e.g. us-east-1)")
        if self.profile is not None and (not self.profile or _has_control(self.profile)):
            raise InputError(f"AWS profile name {self.profile!r} is empty or malformed")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise InputError(f"S3 attempts must be an integer, got {self.attempts!r}")
        if self.attempts < 1:
            raise InputError(f"S3 attempts must be at least 1, got {self.attempts}")
        if not self.backoff_s >= 0:  # also refuses NaN
            raise InputError(f"S3 backoff_s must be >= 0, got {self.backoff_s}")

    def url(self, key: str = "") -> str:
        """`s3://BUCKET/KEY` for messages."""
        return f"s3://{self.bucket}/{key}"


def _has_control(value: str) -> bool:
    return any(ord(ch) < 32 or 127 <= ord(ch) <= 159 for ch in value)


def _round(round_id: int) -> int:
    if isinstance(round_id, bool) or not isinstance(round_id, int) or round_id < 0:
        raise InputError(f"round id must be a non-negative integer, got {round_id!r}")
    return round_id


def batch_prefix(settings: S3Settings, round_id: int) -> str:
    """The key prefix of round `round_id`'s batch: ``PREFIX/round-<k>/``."""
    return f"{settings.prefix}/round-{_round(round_id)}/"


def manifest_key(settings: S3Settings, round_id: int) -> str:
    return batch_prefix(settings, round_id) + MANIFEST


def inbox_prefix(settings: S3Settings) -> str:
    """The drop zone where the lab returns label files: ``PREFIX/inbox/``."""
    return f"{settings.prefix}/{INBOX}/"


def check_key(settings: S3Settings, key: str) -> str:
    """Check that `key` is a plain object key under `settings.prefix` and return it.

    Raises:
        InputError: the key is outside the prefix, starts with ``/``, ends with ``/``, or has an
            empty segment, ``..`` or a control character.
    """
    if not isinstance(key, str):
        raise InputError(f"S3 key must be a string, got {type(key).__name__}")
    if ".." in key:
        raise InputError(f"S3 key {key!r} contains '..'")
    if key.endswith("/"):
        raise InputError(f"S3 key {key!r} names a folder, not an object")
    if check_object_prefix(key) != key:  # leading '/', '//', control characters, '\'
        raise InputError(f"S3 key {key!r} is malformed")
    if not key.startswith(settings.prefix + "/"):
        raise InputError(f"S3 key {key!r} lies outside the queue prefix {settings.prefix!r}/")
    return key


# -- credentials and messages -----------------------------------------------------------------


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with AWS credentials removed.

    Removes access key ids (by their shape), the values of the AWS credential environment
    variables, any extra `secrets` (e.g. the session's resolved keys), and the values of
    ``X-Amz-Credential``, ``X-Amz-Signature``, ``Signature``, ``Credential`` and similar fields of
    signed URLs and headers.

    Args:
        text: a message or log line.
        secrets: further secret strings to remove.

    Returns:
        The text with each of these replaced by ``***``.
    """
    known = [os.environ.get(name, "") for name in _SECRET_ENV_VARS]
    known.extend(secrets)
    # Longest first, so a secret that contains another is removed whole.
    for secret in sorted({s for s in known if len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _SIGNED_FIELD_RE.sub(lambda m: f"{m.group(1)}=***", text)
    return _ACCESS_KEY_RE.sub("***", text)


def _session(settings: S3Settings) -> boto3.session.Session:
    try:
        return boto3.session.Session(profile_name=settings.profile, region_name=settings.region)
    except ProfileNotFound as exc:
        name = (
            settings.profile
            or os.environ.get("AWS_PROFILE")
            or os.environ.get("AWS_DEFAULT_PROFILE")
        )
        source = "s3.profile" if settings.profile else "AWS_PROFILE"
        raise InputError(f"AWS profile {name!r} ({source}) is not configured") from exc


def _session_secrets(settings: S3Settings) -> tuple[str, ...]:
    """The resolved credentials of `settings`' session, to scrub from messages (best effort)."""
    try:
        credentials = _session(settings).get_credentials()
        if credentials is None:
            return ()
        frozen = credentials.get_frozen_credentials()
    except Exception:  # only used to scrub a message already being built: never fail it
        return ()
    return tuple(s for s in (frozen.access_key, frozen.secret_key, frozen.token) if s)


def s3_client(settings: S3Settings) -> S3Client:
    """A boto3 S3 client for `settings`, credentials from boto3's default chain or the profile.

    Checksums are sent and validated only where S3 requires them: boto3 >= 1.36 otherwise adds
    CRC headers that S3-compatible servers such as SeaweedFS reject.
    """
    config = Config(
        retries={"max_attempts": _CALL_ATTEMPTS, "mode": "standard"},
        connect_timeout=_TIMEOUT_S,
        read_timeout=_TIMEOUT_S,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return _session(settings).client(
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config
    )


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or exc.response.get("Error", {}).get("Code") in _RETRYABLE_CODES
    return False


def _reason(exc: BaseException, settings: S3Settings) -> str:
    """What went wrong, in a few words, for the end of an error message."""
    where = settings.endpoint_url or "the AWS S3 endpoint"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return f"could not connect to the endpoint {where}"
    if isinstance(exc, ReadTimeoutError):
        return f"the endpoint {where} did not answer within {_TIMEOUT_S:g} s"
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return f"the connection to {where} failed ({exc})"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            "no complete AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "configure a profile, or run with an instance role)"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        code = error.get("Code", "?")
        message = error.get("Message") or ""
        return f"{code} (HTTP {status})" + (f": {message}" if message else "")
    return f"{type(exc).__name__}: {exc}"


def _with_retries(settings: S3Settings, what: str, operation: Callable[[], T]) -> T:
    """Run `operation`, retrying network and server failures with exponential backoff.

    Raises:
        S3QueueError: the last attempt failed on the network or server, or an S3 call failed for
            another reason (permissions, no such bucket); `what` leads the message.
        InputError: from `operation` itself, unchanged.
    """
    for attempt in range(1, settings.attempts + 1):
        try:
            return operation()
        except (BotoCoreError, ClientError) as exc:
            if not _retryable(exc):
                raise S3QueueError(
                    redact(f"{what} failed: {_reason(exc, settings)}", _session_secrets(settings))
                ) from exc
            if attempt == settings.attempts:
                secrets = _session_secrets(settings)
                raise S3QueueError(
                    redact(
                        f"{what} failed after {settings.attempts} attempts: "
                        f"{_reason(exc, settings)}",
                        secrets,
                    )
                ) from exc
            wait_s = settings.backoff_s * 2 ** (attempt - 1)
            log.warning(
                redact(
                    f"s3_retry what={what!r} attempt={attempt}/{settings.attempts} "
                    f"wait_s={wait_s:g} reason={_reason(exc, settings)!r}"
                )
            )
            time.sleep(wait_s)
    raise AssertionError("unreachable: attempts >= 1")  # pragma: no cover


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


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
        if _is_missing(exc):
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
            if _is_missing(exc):
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
    round_id = _round(round_id)
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

    _with_retries(
        settings, f"S3 export of round {round_id} to {settings.url(prefix)}", publish_once
    )
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
    round_id = _round(round_id)
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
                if _is_missing(exc):
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

    return _with_retries(
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
    round_id = _round(round_id)
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

    return _with_retries(
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
            if _is_missing(exc):
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

    return _with_retries(settings, f"download of {where}", download_once)
