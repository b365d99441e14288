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

This module holds the key layout, the client and the retry loop; the operations
(publish, read a batch, find and download returned labels) are in `deimos.lab.queue.s3_batches`,
and `deimos.lab.queue.S3Queue` puts them behind the queue interface.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

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

from deimos.checks import check_int
from deimos.errors import DeimosError, InputError
from deimos.lab.queue.local import MANIFEST
from deimos.lab.queue.redact import redact
from deimos.lab.queue.settings import S3Settings
from deimos.safe_names import check_object_prefix

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

INBOX = "inbox"

# One quick retry inside a call (throttling, a dropped connection); the real retry policy is the
# whole-operation loop below, driven by `S3Settings`. More here would multiply the waits.
_CALL_ATTEMPTS = 2
_TIMEOUT_S = 5.0
_RETRYABLE_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed"}
)
T = TypeVar("T")


class S3QueueError(DeimosError, RuntimeError):
    """An S3 queue operation failed for a reason outside the user's input (network, server,
    permissions); the message says what failed and never holds a credential."""


def check_round_id(round_id: int) -> int:
    return check_int(round_id, "round id", minimum=0)


def batch_prefix(settings: S3Settings, round_id: int) -> str:
    """The key prefix of round `round_id`'s batch: ``PREFIX/round-<k>/``."""
    return f"{settings.prefix}/round-{check_round_id(round_id)}/"


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


# -- credentials, the client and retries ------------------------------------------------------


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


def with_retries(settings: S3Settings, what: str, operation: Callable[[], T]) -> T:
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


def is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")
