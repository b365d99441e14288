"""Reading a user's text file safely: a size limit before reading, and UTF-8 or a clear error.

Shared by the label-file readers (`deimos.lab.readers`, `deimos.lab.label_studio`), so a CSV and
a JSON
export are refused for the same reasons with the same words.
"""

from __future__ import annotations

from pathlib import Path

from deimos.checks import check_int
from deimos.errors import InputError

UTF8_BOM = b"\xef\xbb\xbf"
# UTF-32 first: its little-endian BOM starts with UTF-16's.
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def read_limited(path: Path, name: str, max_bytes: int) -> bytes:
    """The bytes of `path`, refusing a missing or non-regular file and one over `max_bytes`
    (checked before reading). `name` is how messages name the file."""
    check_int(max_bytes, "max_bytes", minimum=1)
    if not path.is_file():
        raise InputError(f"{name}: {'not a regular file' if path.exists() else 'file not found'}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(f"{name}: file is {size} bytes, larger than the limit of {max_bytes}")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # one byte more tells a file that grew since stat()
    except OSError as err:
        raise InputError(f"{name}: cannot read file ({err.strerror or err})") from err
    if len(data) > max_bytes:
        raise InputError(f"{name}: file is larger than the limit of {max_bytes} bytes")
    return data


def decode_utf8(data: bytes, name: str) -> str:
    """`data` as UTF-8 text (a UTF-8 BOM, as Excel writes, is dropped).

    Raises:
        InputError: UTF-16/32 (by BOM, or NUL bytes: UTF-16 of ASCII text without a BOM is
            valid UTF-8 with a NUL after every character), or bytes that are not UTF-8; the
            message gives the line, and for bad bytes the byte and its offset.
    """
    for bom, encoding in _OTHER_BOMS:
        if data.startswith(bom):
            raise InputError(f"{name}: file is {encoding} (byte-order mark); save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise InputError(f"{name}: line {line}: contains NUL bytes; is it UTF-16? save it as UTF-8")
    skip = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = skip + err.start
        line = data.count(b"\n", 0, offset) + 1
        raise InputError(
            f"{name}: line {line}: not UTF-8 (invalid byte 0x{data[offset]:02x} at byte offset "
            f"{offset}); save the file as UTF-8"
        ) from err
