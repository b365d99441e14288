"""Credential redaction for messages and log lines of the S3 queue.

No boto3 here: settings validation (which names a bad endpoint URL) and the S3 modules share it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

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
