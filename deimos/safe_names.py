"""Names that end up in file names and object keys: sequence ids, path components, S3 prefixes.

Ids from the lab (label files, FASTA headers) are used downstream as parts of file names and
object-store keys, so an id such as ``../../etc/x`` or one holding a control character must be
refused where it enters, with the file and line named. The rule lives here, once.
"""

from __future__ import annotations

from deimos.errors import InputError

#: Longest file-name component most file systems (ext4, APFS, NTFS) accept, in bytes.
MAX_COMPONENT_BYTES = 255


def _has_control(value: str) -> bool:
    # C0 controls, DEL and the C1 block (\x80-\x9f): none belongs in a name, all can hide text.
    return any(ord(ch) < 32 or 127 <= ord(ch) <= 159 for ch in value)


def check_safe_id(value: str) -> str | None:
    """Why `value` cannot be used as an id, or None when it can.

    An id is refused when it is empty or holds a control character, a path separator (``/``,
    ``\\``) or ``..``: any of these would let it escape or corrupt a file name or object key.
    Callers add the file, line or record to the reason.

    Args:
        value: the id as read.

    Returns:
        A short reason that reads after the id (``"contains '..'"``), or None.
    """
    if not isinstance(value, str):
        return f"is not a string ({type(value).__name__})"
    if not value:
        return "is empty"
    if _has_control(value):
        return "contains a control character"
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if ".." in value:
        return "contains '..'"
    return None


def check_path_component(name: str, what: str) -> str:
    """Check one file-name component (no directories) and return it unchanged.

    Args:
        name: the component, e.g. a file name built from an id.
        what: what the name is, for the message (``"round name"``).

    Returns:
        `name`.

    Raises:
        InputError: `name` is not a string, is empty, ``.`` or ``..``, holds ``/``, ``\\`` or a
            control character, or is longer than 255 bytes in UTF-8.
    """
    if not isinstance(name, str):
        raise InputError(f"{what} must be a string, got {type(name).__name__}")
    if not name:
        raise InputError(f"{what} is empty")
    if name in (".", ".."):
        raise InputError(f"{what} {name!r} is not a file name")
    if "/" in name or "\\" in name:
        raise InputError(f"{what} {name!r} contains a path separator")
    if _has_control(name):
        raise InputError(f"{what} {name!r} contains a control character")
    n_bytes = len(name.encode("utf-8", errors="surrogatepass"))
    if n_bytes > MAX_COMPONENT_BYTES:
        raise InputError(
            f"{what} is {n_bytes} bytes long in UTF-8, more than the limit of "
            f"{MAX_COMPONENT_BYTES}: {name[:40]!r}..."
        )
    return name


def check_object_prefix(prefix: str) -> str:
    """Check an S3-style key prefix (``a/b/c``) and return it without a trailing ``/``.

    Each ``/``-separated segment is checked like a path component, so a prefix can neither
    climb out of its folder (``..``) nor hide an empty segment (``a//b``, which S3 keeps as a
    distinct key). The empty prefix (the bucket's root) is allowed.

    Args:
        prefix: the prefix as configured, e.g. ``"deimos/campaign-1/"``.

    Returns:
        The prefix without its trailing ``/`` (``"deimos/campaign-1"``), or ``""``.

    Raises:
        InputError: a leading ``/``, an empty segment, or a bad segment (named).
    """
    if not isinstance(prefix, str):
        raise InputError(f"object prefix must be a string, got {type(prefix).__name__}")
    if prefix.startswith("/"):
        raise InputError(f"object prefix {prefix!r} must not start with '/'")
    trimmed = prefix[:-1] if prefix.endswith("/") else prefix
    if not trimmed:
        return ""
    for k, segment in enumerate(trimmed.split("/"), start=1):
        if not segment:
            raise InputError(f"object prefix {prefix!r}: segment {k} is empty ('//')")
        check_path_component(segment, f"object prefix {prefix!r}: segment {k}")
    return trimmed
