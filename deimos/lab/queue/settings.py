"""Where the S3 queue lives and how hard it retries: checked without importing boto3.

`params.yaml`'s `s3:` section is an `S3Settings`, so a campaign's parameters load (and a bad
bucket name is refused) in milliseconds, before any S3 module or client exists.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from deimos.config import NonNegativeFloat, PositiveInt, Settings
from deimos.lab.queue.redact import redact
from deimos.safe_names import check_object_prefix

__all__ = ["S3Settings", "check_bucket_name"]

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_REGION_RE = re.compile(r"[a-z0-9-]+")


def check_bucket_name(bucket: str) -> str:
    """Check `bucket` against the S3 bucket naming rules and return it.

    Raises:
        ValueError: the name breaks a rule (named in the message; `InputError` is one).
    """
    if not 3 <= len(bucket) <= 63:
        raise ValueError(f"S3 bucket name {bucket!r} must be 3 to 63 characters long")
    if not _BUCKET_RE.fullmatch(bucket):
        raise ValueError(
            f"S3 bucket name {bucket!r} may hold only lowercase letters, digits, '.' and '-', "
            "and must start and end with a letter or digit"
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        raise ValueError(f"S3 bucket name {bucket!r} has an empty or malformed dot-label")
    if _IPV4_RE.fullmatch(bucket):
        raise ValueError(f"S3 bucket name {bucket!r} must not look like an IP address")
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        raise ValueError(f"S3 bucket name {bucket!r} uses a prefix or suffix S3 reserves")
    return bucket


def _check_prefix(prefix: str) -> str:
    if not prefix.strip("/"):
        # The queue needs a folder of its own: keys are checked to lie under it.
        raise ValueError(f"S3 prefix must be a non-empty key prefix, got {prefix!r}")
    return check_object_prefix(prefix)


def _check_endpoint_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"S3 endpoint URL {redact(url)!r} must be http(s)://HOST[:PORT]")
    if parts.username is not None or parts.password is not None:
        # Credentials come from boto3's chain, never from configuration that gets committed.
        raise ValueError("S3 endpoint URL must not contain a user name or password")
    return url


def _check_region(region: str) -> str:
    if not _REGION_RE.fullmatch(region):
        raise ValueError(f"S3 region {region!r} is not a region name (e.g. us-east-1)")
    return region


def _has_control(value: str) -> bool:
    return any(ord(ch) < 32 or 127 <= ord(ch) <= 159 for ch in value)


def _check_profile(profile: str | None) -> str | None:
    if profile is not None and (not profile or _has_control(profile)):
        raise ValueError(f"AWS profile name {profile!r} is empty or malformed")
    return profile


_Text = Annotated[str, Field(strict=True)]


class S3Settings(Settings):
    """The S3 queue: batches go to `s3://bucket/prefix/round-<k>/`, labels come back to
    `s3://bucket/prefix/inbox/round-<k>.csv|.xlsx|.json`.

    Credentials are never settings: boto3 reads them from the environment, the AWS profile
    named here, or the machine's role.

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

    bucket: Annotated[_Text, AfterValidator(check_bucket_name)]
    prefix: Annotated[_Text, AfterValidator(_check_prefix)] = "deimos"
    endpoint_url: _Text | None = None
    region: Annotated[_Text, AfterValidator(_check_region)] = "us-east-1"
    profile: Annotated[_Text | None, AfterValidator(_check_profile)] = None
    attempts: PositiveInt = 5
    backoff_s: NonNegativeFloat = 0.5

    @model_validator(mode="after")
    def _check_endpoint(self) -> S3Settings:
        # A whole-object check, so the error does not repeat the rejected URL (it may hold a key).
        _check_endpoint_url(self.endpoint_url)
        return self

    def url(self, key: str = "") -> str:
        """`s3://BUCKET/KEY` for messages."""
        return f"s3://{self.bucket}/{key}"
