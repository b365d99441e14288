"""DNA sequence files out: an atomic FASTA writer whose output `read_fasta` reads back unchanged.

Ids and sequences are checked before anything is written (the same alphabet check as the readers,
`deimos.data.alphabet`); the records then go to a temporary file that replaces the target only
once complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

from deimos.data.alphabet import _check_alphabet
from deimos.data.sequences import PathLike
from deimos.errors import InputError

logger = logging.getLogger(__name__)


def write_fasta(
    path: PathLike, ids: Sequence[str], seqs: Sequence[str], *, allow_n: bool = False
) -> None:
    """Write sequences as FASTA (one line per sequence) atomically.

    Everything is checked before anything is written, then the records go to a temporary file in
    the same directory that replaces `path` only once complete, so a failure leaves an existing
    file untouched. What this writes, `read_fasta` reads back unchanged (sequences uppercase).

    Args:
        path: destination file; its directory must exist.
        ids: one id per sequence: non-empty, unique, no whitespace (FASTA would cut the id at
            the first space).
        seqs: DNA sequences over A/C/G/T (and N if `allow_n`).
        allow_n: accept the ambiguous base N.

    Raises:
        InputError: bad ids or sequences (named by index and id), or the file cannot be written.
    """
    p = Path(path)
    if isinstance(ids, str) or isinstance(seqs, str):
        raise InputError("write_fasta: ids and seqs must be sequences of strings, not one str")
    if len(ids) != len(seqs):
        raise InputError(f"write_fasta {p}: {len(ids)} ids but {len(seqs)} sequences")
    if not ids:
        raise InputError(f"write_fasta {p}: no sequences to write")
    first_seen: dict[str, int] = {}
    for k, record_id in enumerate(ids):
        if (
            not isinstance(record_id, str)
            or not record_id
            or record_id != "".join(record_id.split())
        ):
            raise InputError(
                f"write_fasta {p}: id at index {k} ({record_id!r}) must be a non-empty string "
                "without whitespace"
            )
        prev = first_seen.setdefault(record_id, k)
        if prev != k:
            raise InputError(
                f"write_fasta {p}: duplicate id {record_id!r} at indices {prev} and {k}"
            )
    for k, seq in enumerate(seqs):
        if not isinstance(seq, str) or not seq:
            raise InputError(
                f"write_fasta {p}: sequence {ids[k]!r} (index {k}) is empty or not a str"
            )
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    _check_alphabet(
        seqs,
        lengths,
        allow_n=allow_n,
        where=lambda k: f"write_fasta {p}: sequence {ids[k]!r} (index {k})",
    )
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"write_fasta {p}: directory {parent} does not exist")
    if p.is_dir():
        raise InputError(f"write_fasta {p}: is a directory")

    def records() -> Iterator[SeqRecord]:
        for record_id, seq in zip(ids, seqs, strict=True):
            yield SeqRecord(Seq(seq.upper()), id=record_id, description="")

    # mkstemp creates the file 0600; keep the mode of the file being replaced, else 0644.
    mode = p.stat().st_mode & 0o777 if p.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            SeqIO.write(records(), handle, "fasta-2line")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, p)
    except OSError as err:
        _remove_quietly(tmp_name)
        raise InputError(f"write_fasta {p}: cannot write: {err.strerror or err}") from err
    except BaseException:
        _remove_quietly(tmp_name)
        raise
    logger.debug("write_fasta path=%s n_records=%d", p, len(ids))


def _remove_quietly(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)
