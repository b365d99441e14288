"""One-hot encoding of DNA sequences for the model: `(n, 4, L)` float32, channels A, C, G, T.

Sequences come as plain strings or as a `deimos.data.sequences.SequenceSet` read from a file;
the channel order and the alphabet check are those of `deimos.data.alphabet`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deimos.data.alphabet import _LOWER_FLAG, BASES, _check_alphabet
from deimos.data.sequences import SequenceSet
from deimos.errors import InputError


def one_hot(
    seqs: Sequence[str] | SequenceSet,
    *,
    length: int | None = None,
    ids: Sequence[str] | None = None,
) -> np.ndarray:
    """One-hot encode equal-length DNA sequences.

    Channel order is A, C, G, T (`BASES`). N is encoded as all zeros rather than 0.25 in each
    channel: a zero column contributes nothing to a convolution, so an unknown base neither
    adds nor removes evidence, and the encoding stays a 0/1 mask. Lowercase is accepted.

    The whole batch is encoded with one lookup over the joined bytes (no per-base Python loop);
    the output for 265,137 x 101 nt is ~430 MB of float32.

    Args:
        seqs: the sequences, or a `SequenceSet` (whose ids are then used in messages).
        length: if given, the length every sequence must have.
        ids: record ids used in error messages (defaults to the `SequenceSet` ids, else the
            0-based index).

    Returns:
        `(n, 4, L)` float32.

    Raises:
        InputError: no sequences, unequal lengths (or not `length`), or a character other than
            A/C/G/T/N; the message names the record id (or index) and position.
    """
    if isinstance(seqs, SequenceSet):
        ids = seqs.ids if ids is None else ids
        seqs = seqs.seqs
    if isinstance(seqs, str):
        raise InputError("one_hot expects a sequence of strings, got a single str")
    if ids is not None and len(ids) != len(seqs):
        raise InputError(f"one_hot: {len(ids)} ids for {len(seqs)} sequences")
    n = len(seqs)
    if n == 0:
        raise InputError("one_hot: no sequences to encode")

    def where(k: int) -> str:
        return f"sequence {ids[k]!r}" if ids is not None else f"sequence at index {k}"

    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
    L = int(lengths[0]) if length is None else int(length)
    wrong = np.flatnonzero(lengths != L)
    if wrong.size:
        k = int(wrong[0])
        ref = f"expected {L}" if length is not None else f"the first sequence has {L}"
        raise InputError(
            f"one_hot: {where(k)} has {int(lengths[k])} bases, {ref}; "
            "all sequences must have the same length"
        )
    if L == 0:
        raise InputError("one_hot: sequences are empty")
    codes_NL = _check_alphabet(seqs, lengths, allow_n=True, where=where).reshape(n, L)
    codes_NL &= ~_LOWER_FLAG
    out_N4L = np.empty((n, len(BASES), L), dtype=np.float32)
    # Comparing straight into each channel avoids a boolean temporary per channel (5x faster
    # than assigning a mask) and keeps the peak memory at the output plus the codes.
    for channel in range(len(BASES)):
        np.equal(codes_NL, channel, out=out_N4L[:, channel, :])
    return out_N4L
