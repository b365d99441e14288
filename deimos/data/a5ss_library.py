"""The simulated A5SS reporter library: window layout and seeded generation of sequences.

The lab loop must run with no lab. The simulated alternative-5'-splice-site (A5SS) assay stands
in for the library of Rosenberg et al. (Cell 163:698, 2015): a reporter exon that ends in donor
SD1, followed by a 25-nt degenerate region (Mut1), a second donor SD2 and a second 25-nt
degenerate region (Mut2). The cell splices at either donor; the assay counts RNA-seq reads for
each and reports the fraction that used SD1. This module lays out and draws the sequences;
`deimos.data.donor_model` gives their true SD1 usage, `deimos.data.assay` simulates the read
counts and `deimos.data.assay_csv` writes the library and measurement tables.

Layout of one sequence (0-based window positions for the default ``length=101``)::

    [0, 10)    constant exon, whose last 3 nt are SD1's exonic positions -3..-1
    [10, 18)   SD1: ``GT`` at 10-11, then 6 constant intronic nt (SD1 positions +1..+8)
    [18, 43)   Mut1, 25 random nt
    [43, 54)   11 constant nt, whose last 3 are SD2's exonic positions -3..-1
    [54, 61)   SD2: ``GT`` at 54-55, then 5 constant intronic nt (SD2 positions +1..+7)
    [61, 86)   Mut2, 25 random nt
    [86, length)  constant intron (``length - 86`` nt; 0 to 64 allowed)

The distances between the donors and the degenerate regions (donor ``GT`` to Mut1: 8 nt; Mut1
to SD2 ``GT``: 11 nt; SD2 ``GT`` to Mut2: 7 nt) are those of the published plasmid map. The
constant sequences themselves are written for this module (no ``GT`` outside the two donors, no
strong motifs) and are not the plasmid's. The plasmid's third donor SD3, just after Mut2, is
left out: here SD1 competes with SD2 and with cryptic donors that random regions may create.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deimos.checks import check_int
from deimos.errors import InputError

logger = logging.getLogger(__name__)

ALPHABET = "ACGT"
DEFAULT_LENGTH = 101
ID_PREFIX = "A5SS_"

# Constant parts of the window, written for this module (see the module docstring for the map).
_EXON = "CTCCACCAAG"  # ends in SD1's -3..-1 ("AAG")
_SD1_INTRON = "GTGAGCCA"  # SD1 +1..+8
_MIDDLE = "CCTCTCACCAG"  # 11 nt, ends in SD2's -3..-1 ("CAG")
_SD2_INTRON = "GTGAGCA"  # SD2 +1..+7
_TAIL = "CTAACTCCCTCACACCAATCCTCAACCTGACACTTCCAGCCAACACTCACCTTCCAGCTCACCA"  # intron, no GT
RANDOM_REGION_LENGTH = 25

SD1_POS = len(_EXON)  # window index of SD1's G
MUT1_START = SD1_POS + len(_SD1_INTRON)
SD2_POS = MUT1_START + RANDOM_REGION_LENGTH + len(_MIDDLE)
MUT2_START = SD2_POS + len(_SD2_INTRON)
MIN_LENGTH = MUT2_START + RANDOM_REGION_LENGTH
MAX_LENGTH = MIN_LENGTH + len(_TAIL)


@dataclass(frozen=True)
class Library:
    """A simulated A5SS library: distinct sequences of one length, with ids.

    Attributes:
        ids: ``A5SS_000001`` ... in generation order.
        seqs: the sequences (``ACGT`` only, all of length `length`), same order as `ids`.
        seed: the seed that generated them.
        length: sequence length in nt.
    """

    ids: tuple[str, ...]
    seqs: tuple[str, ...]
    seed: int
    length: int

    def __len__(self) -> int:
        return len(self.ids)

    def to_frame(self) -> pd.DataFrame:
        """Return the library as a DataFrame with columns ``id, seq``."""
        return pd.DataFrame({"id": list(self.ids), "seq": list(self.seqs)})


def layout(length: int = DEFAULT_LENGTH) -> dict[str, int]:
    """Window positions of the donors and degenerate regions for sequences of `length` nt.

    Returns:
        ``sd1``/``sd2``: index of the donor's ``G``; ``mut1``/``mut2``: first index of each
        25-nt degenerate region; ``length``.

    Raises:
        InputError: `length` outside ``[MIN_LENGTH, MAX_LENGTH]``.
    """
    _check_length(length)
    return {
        "sd1": SD1_POS,
        "mut1": MUT1_START,
        "sd2": SD2_POS,
        "mut2": MUT2_START,
        "length": length,
    }


def generate_library(n: int, *, seed: int, length: int = DEFAULT_LENGTH) -> Library:
    """Draw `n` distinct library sequences, deterministically in `seed`.

    Both degenerate regions are uniform over ``ACGT``; the rest of the window is constant.

    Args:
        n: number of sequences, at least 1.
        seed: non-negative integer; the same seed gives the same library, byte for byte.
        length: sequence length, ``MIN_LENGTH`` (86) to ``MAX_LENGTH`` (150); 101 matches the
            model input.

    Returns:
        The library, ids ``A5SS_000001`` onward.

    Raises:
        InputError: bad `n`, `seed` or `length`.
    """
    _check_int(n, "n", minimum=1)
    _check_int(seed, "seed", minimum=0)
    _check_length(length)
    rng = np.random.default_rng(seed)
    random_N_R = _draw_distinct(rng, n, 2 * RANDOM_REGION_LENGTH)
    ascii_N_L = np.empty((n, length), dtype=np.uint8)
    const = np.frombuffer(_constant_window(length).encode("ascii"), dtype=np.uint8)
    ascii_N_L[:] = const
    alphabet = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
    ascii_N_L[:, MUT1_START : MUT1_START + RANDOM_REGION_LENGTH] = alphabet[
        random_N_R[:, :RANDOM_REGION_LENGTH]
    ]
    ascii_N_L[:, MUT2_START : MUT2_START + RANDOM_REGION_LENGTH] = alphabet[
        random_N_R[:, RANDOM_REGION_LENGTH:]
    ]
    blob = ascii_N_L.tobytes().decode("ascii")
    seqs = tuple(blob[i * length : (i + 1) * length] for i in range(n))
    ids = tuple(f"{ID_PREFIX}{i:06d}" for i in range(1, n + 1))
    logger.info("generate_library n=%d seed=%d length=%d", n, seed, length)
    return Library(ids=ids, seqs=seqs, seed=seed, length=length)


# --- internals -------------------------------------------------------------------------------


def _constant_window(length: int) -> str:
    """The window with ``N`` in the degenerate regions."""
    window = (
        _EXON
        + _SD1_INTRON
        + "N" * RANDOM_REGION_LENGTH
        + _MIDDLE
        + _SD2_INTRON
        + "N" * RANDOM_REGION_LENGTH
        + _TAIL[: length - MIN_LENGTH]
    )
    assert len(window) == length
    return window


def _draw_distinct(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """Draw `n` distinct rows of `width` codes 0..3; duplicates are redrawn in order.

    Returns:
        `(n, width)` uint8, deterministic in the state of `rng`.
    """
    if n > 4**width:
        raise InputError(f"n={n} exceeds the {4**width} distinct sequences of {width} random nt")
    rows = rng.integers(0, 4, size=(n, width), dtype=np.uint8)
    while True:
        keys = _pack_rows(rows)
        _, first = np.unique(keys, return_index=True)
        if len(first) == n:
            return rows
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        # Keep first occurrences in place and redraw the later copies, so the result depends only
        # on the seed.
        rows[dup] = rng.integers(0, 4, size=(int(dup.sum()), width), dtype=np.uint8)


def _pack_rows(rows_N_W: np.ndarray) -> np.ndarray:
    """Pack rows of 2-bit codes into void scalars that compare equal iff the rows are equal."""
    n, width = rows_N_W.shape
    n_words = -(-width // 32)
    packed = np.zeros((n, n_words), dtype=np.uint64)
    for j in range(width):
        packed[:, j // 32] |= rows_N_W[:, j].astype(np.uint64) << np.uint64(2 * (j % 32))
    return np.ascontiguousarray(packed).view(np.dtype((np.void, 8 * n_words))).reshape(n)


def _check_int(value: Any, name: str, *, minimum: int) -> None:
    check_int(value, name, minimum=minimum)


def _check_length(length: Any, name: str = "length") -> None:
    if not MIN_LENGTH <= check_int(length, name) <= MAX_LENGTH:
        raise InputError(
            f"{name} must be between {MIN_LENGTH} and {MAX_LENGTH} nt to hold both donors and "
            f"both 25-nt random regions, got {length}"
        )
