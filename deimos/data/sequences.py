"""DNA sequence files in: FASTA and GenBank readers, and the checks they run on every record.

Every reader checks the whole file and either returns every record or raises
`deimos.errors.InputError` naming the file, the record (1-based record number, id and header
line) and what is wrong. Nothing is skipped, truncated or repaired silently.

Pools reach ~1M sequences of ~100 nt, so the checks are vectorised: records are parsed with
Biopython's `SimpleFastaParser` (several times faster than `SeqIO.parse`, which builds a
`SeqRecord` per record), then all sequences are joined into one byte buffer and checked with a
lookup table (`deimos.data.alphabet`). Line numbers are worked out only when there is an error to
report.

One-hot encoding is in `deimos.data.onehot`, the FASTA writer in `deimos.data.fasta_writer`.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from Bio import SeqIO
from Bio.Seq import UndefinedSequenceError
from Bio.SeqIO.FastaIO import SimpleFastaParser

from deimos.checks import check_int
from deimos.data.alphabet import _LOWER_FLAG, _check_alphabet
from deimos.errors import InputError
from deimos.safe_names import check_safe_id

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# Anything `check_safe_id` could refuse in a non-empty id: searched once over all ids joined by a
# space (which no FASTA id contains), so a 1M-record pool costs one regex pass, not 1M calls.
_UNSAFE_ID_RE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]|\.\.")


@dataclass(frozen=True)
class SequenceSet:
    """DNA sequences read from one file, in file order.

    Attributes:
        ids: record ids (first word of each FASTA header, `record.id` for GenBank), unique.
        seqs: uppercase sequences over A/C/G/T (and N when the reader allowed it), one per id.
        source: the file they were read from (`str`), for messages and provenance.
    """

    ids: tuple[str, ...]
    seqs: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.seqs):
            raise InputError(
                f"SequenceSet from {self.source}: {len(self.ids)} ids but "
                f"{len(self.seqs)} sequences"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> np.ndarray:
        """Sequence lengths, `(n,)` int64."""
        return np.fromiter(map(len, self.seqs), dtype=np.int64, count=len(self.seqs))


# ----------------------------------------------------------------------------------------------
# Reading


def read_fasta(path: PathLike, *, length: int | None = None, allow_n: bool = False) -> SequenceSet:
    """Read a DNA FASTA file, checking every record.

    The id of a record is the first whitespace-separated word of its header line (what
    Biopython's `SeqIO` uses); the rest of the header is ignored. Sequence lines may be wrapped;
    sequences are returned in uppercase.

    Args:
        path: the FASTA file (plain text).
        length: if given, every sequence must have exactly this many bases (the model's input
            length).
        allow_n: accept the ambiguous base N (one-hot encoded as all zeros); otherwise only
            A/C/G/T (either case) are accepted.

    Returns:
        The records in file order.

    Raises:
        InputError: the file is missing, unreadable, empty, not FASTA (its first non-blank line
            does not start with '>'), or a record has an empty id, an id with '/', '\\', '..'
            or a control character (ids become file names downstream), a duplicate id, an
            empty sequence, a character outside the alphabet, or the wrong length. The message
            names the file, the record number, its id and header line, and for bad characters
            the 1-based position and the character.
    """
    p = _check_readable(path, length=length)
    text = _read_text(p)
    first_line, first = _first_nonblank_line(text)
    if first is None:
        raise InputError(f"{p}: file has only blank lines; expected FASTA records")
    if not first.startswith(">"):
        raise InputError(
            f"{p}: line {first_line}: not a FASTA file: expected a header line starting with "
            f"'>', got {_clip(first)!r}"
        )
    titles: list[str] = []
    seqs: list[str] = []
    for title, seq in SimpleFastaParser(io.StringIO(text)):
        titles.append(title)
        seqs.append(seq)
    ids = [(t.split(None, 1) or [""])[0] for t in titles]
    locator = _Locator(p, text, header_prefix=">")
    checked = _check_records(ids, seqs, locator, length=length, allow_n=allow_n)
    logger.debug("read_fasta path=%s n_records=%d", p, len(checked))
    return SequenceSet(ids=tuple(ids), seqs=checked, source=str(p))


def read_genbank(
    path: PathLike, *, length: int | None = None, allow_n: bool = False
) -> SequenceSet:
    """Read the DNA sequences of a GenBank file (one or more records), checking every record.

    Ids are Biopython's `record.id` (ACCESSION.VERSION, or the LOCUS name when there is no
    accession). Features and annotations are not returned.

    Args:
        path: the GenBank file.
        length: if given, every sequence must have exactly this many bases.
        allow_n: accept the ambiguous base N; otherwise only A/C/G/T.

    Returns:
        The records in file order, uppercase.

    Raises:
        InputError: the file is missing, unreadable, empty, not GenBank (first non-blank line
            is not a LOCUS line), Biopython cannot parse it, or a record has no sequence, an
            empty or duplicate id, a bad character or the wrong length (same checks and
            messages as `read_fasta`, with the record's LOCUS line number).
    """
    p = _check_readable(path, length=length)
    text = _read_text(p)
    first_line, first = _first_nonblank_line(text)
    if first is None:
        raise InputError(f"{p}: file has only blank lines; expected GenBank records")
    if not first.startswith("LOCUS"):
        raise InputError(
            f"{p}: line {first_line}: not a GenBank file: expected a line starting with "
            f"'LOCUS', got {_clip(first)!r}"
        )
    locator = _Locator(p, text, header_prefix="LOCUS")
    ids: list[str] = []
    seqs: list[str] = []
    try:
        with p.open(encoding="utf-8") as handle:
            for record in SeqIO.parse(handle, "genbank"):
                where = locator.describe(len(ids), record.id or "")
                try:
                    seqs.append(str(record.seq))
                except UndefinedSequenceError as err:
                    raise InputError(f"{where}: record has no sequence (no ORIGIN data)") from err
                ids.append(record.id or "")
    except InputError:
        raise
    except (ValueError, EOFError) as err:
        raise InputError(
            f"{p}: cannot parse GenBank record {len(ids) + 1} "
            f"(LOCUS at line {locator.header_line(len(ids))}): {err}"
        ) from err
    if not ids:
        raise InputError(f"{p}: no GenBank records found")
    checked = _check_records(ids, seqs, locator, length=length, allow_n=allow_n)
    logger.debug("read_genbank path=%s n_records=%d", p, len(checked))
    return SequenceSet(ids=tuple(ids), seqs=checked, source=str(p))


class _Locator:
    """Turns a 0-based record index into 'file: record k (id 'x', line m)' for messages.

    Header line numbers are found with one scan of the text, done only when an error needs them.
    """

    def __init__(self, path: Path, text: str, header_prefix: str) -> None:
        self.path = path
        self._text = text
        self._prefix = header_prefix
        self._lines: list[int] | None = None

    def header_line(self, record_idx: int) -> int | str:
        if self._lines is None:
            self._lines = [
                line_no
                for line_no, line in enumerate(self._text.split("\n"), start=1)
                if line.startswith(self._prefix)
            ]
        return self._lines[record_idx] if record_idx < len(self._lines) else "?"

    def describe(self, record_idx: int, record_id: str) -> str:
        return (
            f"{self.path}: record {record_idx + 1} (id {record_id!r}, "
            f"line {self.header_line(record_idx)})"
        )


def _check_records(
    ids: Sequence[str],
    seqs: Sequence[str],
    locator: _Locator,
    *,
    length: int | None,
    allow_n: bool,
) -> tuple[str, ...]:
    """Run every per-record check; return the sequences in uppercase."""
    if not ids:
        raise InputError(f"{locator.path}: no records found")
    for record_idx, record_id in enumerate(ids):
        if not record_id:
            raise InputError(f"{locator.describe(record_idx, record_id)}: empty record id")
    if _UNSAFE_ID_RE.search(" ".join(ids)):
        for record_idx, record_id in enumerate(ids):
            reason = check_safe_id(record_id)
            if reason:
                raise InputError(f"{locator.describe(record_idx, record_id)}: id {reason}")
    first_seen: dict[str, int] = {}
    for record_idx, record_id in enumerate(ids):
        prev = first_seen.setdefault(record_id, record_idx)
        if prev != record_idx:
            raise InputError(
                f"{locator.path}: duplicate id {record_id!r}: record {prev + 1} "
                f"(line {locator.header_line(prev)}) and record {record_idx + 1} "
                f"(line {locator.header_line(record_idx)})"
            )
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        k = int(empty[0])
        raise InputError(f"{locator.describe(k, ids[k])}: empty sequence")
    codes = _check_alphabet(
        seqs, lengths, allow_n=allow_n, where=lambda k: locator.describe(k, ids[k])
    )
    if length is not None:
        wrong = np.flatnonzero(lengths != length)
        if wrong.size:
            k = int(wrong[0])
            raise InputError(
                f"{locator.describe(k, ids[k])}: sequence has {int(lengths[k])} bases, "
                f"expected {length} (the model's input length); {wrong.size} of "
                f"{len(seqs)} records have the wrong length"
            )
    if bool((codes & _LOWER_FLAG).any()):
        return tuple(s.upper() for s in seqs)
    return tuple(seqs)


def _check_readable(path: PathLike, *, length: int | None) -> Path:
    if length is not None:
        check_int(length, "length (or None)", minimum=1)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    return p


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = p.read_bytes()[: err.start].count(b"\n") + 1
        raise InputError(
            f"{p}: line {line}: not a text file (byte {err.object[err.start]:#04x} is not UTF-8)"
        ) from err
    except OSError as err:
        raise InputError(f"{p}: cannot read: {err.strerror or err}") from err


def _first_nonblank_line(text: str) -> tuple[int, str | None]:
    """1-based number and text of the first line with a non-space character."""
    stripped = text.lstrip()
    if not stripped:
        return 0, None
    start = len(text) - len(stripped)
    # Lines are split on "\n" only, as the parsers do (read_text turned "\r\n" into "\n").
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return text.count("\n", 0, start) + 1, line


def _clip(line: str, n: int = 40) -> str:
    return line if len(line) <= n else line[:n] + "..."
