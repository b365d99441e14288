"""The nucleotide alphabet shared by the sequence readers, `one_hot` and `write_fasta`.

It holds the channel order of the one-hot encoding (`BASES`), a byte -> code lookup table and one
vectorised check of every character of a batch of sequences: all sequences are joined into one
byte buffer and looked up at once, so pools of ~1M sequences are checked without a per-base
Python loop. The readers are in `deimos.data.sequences`, the encoder in `deimos.data.onehot` and
the writer in `deimos.data.fasta_writer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from deimos.errors import InputError

#: Channel order of `one_hot`: channel k holds base `BASES[k]`.
BASES = "ACGT"

# Byte -> channel code for one-hot encoding and alphabet checks. 0..3 = A, C, G, T;
# _CODE_N = the ambiguous base N (encoded as all zeros); _CODE_BAD = not a nucleotide.
# _LOWER_FLAG is or-ed in for lowercase letters, so readers know whether to uppercase at all.
_CODE_N = 4
_CODE_BAD = 5
_LOWER_FLAG = np.uint8(8)
_BYTE_CODES = np.full(256, _CODE_BAD, dtype=np.uint8)
for _k, _base in enumerate(BASES + "N"):
    _BYTE_CODES[ord(_base)] = _k
    _BYTE_CODES[ord(_base.lower())] = _k | _LOWER_FLAG


def _check_alphabet(
    seqs: Sequence[str],
    lengths: np.ndarray,
    *,
    allow_n: bool,
    where: Callable[[int], str],
) -> np.ndarray:
    """Check all characters at once; return the channel codes of the joined sequences.

    Returns:
        `(sum(lengths),)` uint8 codes (0..3 = A, C, G, T; 4 = N), with `_LOWER_FLAG` set
        where the character was lowercase.
    """
    joined = "".join(seqs)
    # latin-1 with 'replace' maps each character to exactly one byte, so byte offsets equal
    # character offsets; any non-latin-1 character becomes '?' and is reported below.
    codes = _BYTE_CODES[np.frombuffer(joined.encode("latin-1", errors="replace"), dtype=np.uint8)]
    base_codes = codes & ~_LOWER_FLAG
    bad = base_codes == _CODE_BAD if allow_n else base_codes >= _CODE_N
    if bool(bad.any()):
        offset = int(np.argmax(bad))
        ends = np.cumsum(lengths)
        k = int(np.searchsorted(ends, offset, side="right"))
        pos = offset - (int(ends[k - 1]) if k else 0)
        allowed = "A, C, G, T or N" if allow_n else "A, C, G or T"
        hint = (
            "" if allow_n or joined[offset].upper() != "N" else " (pass allow_n=True to accept N)"
        )
        raise InputError(
            f"{where(k)}: position {pos + 1}: invalid character {joined[offset]!r}; "
            f"expected {allowed}{hint}"
        )
    return codes
