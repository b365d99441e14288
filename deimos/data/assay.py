"""A seeded stand-in for the alternative-5'-splice-site (A5SS) reporter assay.

The lab loop must run with no lab. This module simulates the A5SS library of Rosenberg et al.
(Cell 163:698, 2015): a reporter exon that ends in donor SD1, followed by a 25-nt degenerate
region (Mut1), a second donor SD2 and a second 25-nt degenerate region (Mut2). The cell splices
at either donor; the assay counts RNA-seq reads for each and reports the fraction that used SD1.

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

Ground truth (`donor_usage`), a simplification of splice-site choice, not a fitted model:

- Each donor's strength is a position weight score of its 9-nt site (-3..+6 around ``GT``;
  weights written here after the familiar ``MAG|GTRAGT`` consensus, in nats) plus hexamer
  effects from its neighbourhood: hexamers upstream of the site are exonic for that donor and
  add ``exonic_effect(h) * exp(-distance / 20)``; hexamers downstream of +6 are intronic and add
  ``intronic_effect(h) * exp(-distance / 15)``. So an exonic enhancer in Mut1 helps SD2 and
  lowers SD1 usage, and a G run just downstream of a donor helps that donor.
- Hexamer effects are a seeded random draw (a fixed model seed: the same "biology" for every
  library) plus hand-chosen motifs: purine ``GAA``/``AAG``/``AGA`` runs as exonic enhancers;
  ``TAG``, ``GGT``, ``GTT``, ``TTT``, ``GGG`` as exonic silencers; ``GGG`` runs and ``TGCATG`` as
  intronic enhancers.
- Any other ``GT`` in the window is a cryptic donor scored by the same position weights minus a
  fixed penalty, without context effects.
- SD1 usage is the softmax share of SD1 among all donors.

Measurement (`measure`): per sequence and replicate, total reads are ``1 +`` a negative binomial
count with mean ``read_depth - 1``; SD1 reads are binomial(total reads, true SD1 usage). The
reported usage ``reads_sd1 / reads_total`` is thus an unbiased, noisy estimate of the truth whose
noise shrinks with read depth. The random numbers for one row come from a hash of
``(seed, id, replicate)``, so a sequence's measurement does not depend on which other sequences
are in the batch or in which order they come.

Measurement table (what the lab sends back), one row per sequence and replicate, in input order,
replicates 1..R for each id; CSV with this header and these columns:

- ``id`` (str): the sequence id, as given.
- ``donor_usage`` (float in [0, 1]): ``reads_sd1 / reads_total``.
- ``reads_sd1`` (int >= 0): reads spliced at SD1.
- ``reads_total`` (int >= 1): all reads of that sequence in that replicate.
- ``replicate`` (int >= 1): replicate number.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from scipy import stats

from deimos.atomic import write_text_atomic
from deimos.errors import InputError

logger = logging.getLogger(__name__)

ALPHABET = "ACGT"
DEFAULT_LENGTH = 101
DEFAULT_READ_DEPTH = 100.0
MEASUREMENT_COLUMNS = ("id", "donor_usage", "reads_sd1", "reads_total", "replicate")
ID_PREFIX = "A5SS_"

# Strings in a list/tuple, a NumPy array or a pandas Series (e.g. a column of a library frame).
Strings: TypeAlias = Sequence[str] | np.ndarray | pd.Series

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

# 5'SS position weights, rows -3..+6 around the GT, columns A C G T, in nats. Written after the
# MAG|GTRAGT consensus; -6 off the GT makes a site without GT practically dead.
_DONOR_PWM_9_4 = np.array(
    [
        [0.4, 0.5, -0.2, -0.6],  # -3
        [1.0, -0.6, -0.4, -0.5],  # -2
        [-0.4, -0.8, 1.2, -0.7],  # -1
        [-6.0, -6.0, 3.0, -6.0],  # +1 G
        [-6.0, -6.0, -6.0, 3.0],  # +2 T
        [0.9, -1.0, 0.6, -1.1],  # +3
        [1.0, -0.6, -0.3, -0.6],  # +4
        [-0.7, -1.0, 1.3, -0.6],  # +5
        [-0.3, -0.4, -0.3, 0.8],  # +6
    ]
)
_CRYPTIC_PENALTY = 4.0  # cryptic sites lack the reporter's exon definition
_EXONIC_DECAY_NT = 20.0
_INTRONIC_DECAY_NT = 15.0
_CONTEXT_REACH_NT = 60  # hexamers farther than this from a donor do not act on it
_MODEL_SEED = 20151105  # fixes the random part of the hexamer effects: one "biology" for all
_RANDOM_EFFECT_SD = 0.22
_READ_COUNT_SIZE = 4.0  # negative binomial size: read totals vary about as much as in real runs
_CHUNK_ROWS = 16384  # rows per block in donor_usage, bounds temporary memory

_CODE_OF_BYTE = np.full(256, 255, dtype=np.uint8)
for _code, _base in enumerate(ALPHABET):
    _CODE_OF_BYTE[ord(_base)] = _code


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


def donor_usage(seqs: Strings) -> np.ndarray:
    """True fraction of reads spliced at SD1, from the competing-donor model.

    Args:
        seqs: sequences of one common length in ``[MIN_LENGTH, MAX_LENGTH]``, laid out as
            `generate_library` makes them (see `layout`), ``ACGT`` only.

    Returns:
        `(n,)` float64 in [0, 1].

    Raises:
        InputError: no sequences, mixed or unsupported lengths, or a character outside ``ACGT``.
    """
    codes_N_L = encode(seqs)
    n, length = codes_N_L.shape
    tables = _hexamer_tables()
    weights = _context_weights(length)
    usage_N = np.empty(n, dtype=np.float64)
    for lo in range(0, n, _CHUNK_ROWS):
        block = codes_N_L[lo : lo + _CHUNK_ROWS]
        usage_N[lo : lo + len(block)] = _sd1_share(block, tables, weights)
    return usage_N


def measure(
    ids: Strings,
    seqs: Strings,
    *,
    seed: int,
    read_depth: float = DEFAULT_READ_DEPTH,
    replicates: int = 1,
) -> pd.DataFrame:
    """Simulate the lab's read counts for a batch of sequences.

    Args:
        ids: distinct, non-empty sequence ids.
        seqs: the sequences, same order and length as `ids`.
        seed: non-negative integer; with the same seed a given (id, sequence, replicate) always
            gets the same row, whatever else is in the batch.
        read_depth: mean total reads per sequence and replicate, at least 1.
        replicates: independent replicate measurements per sequence, at least 1.

    Returns:
        Columns ``id, donor_usage, reads_sd1, reads_total, replicate`` (see the module
        docstring); ``len(ids) * replicates`` rows, replicates of one id together.

    Raises:
        InputError: bad arguments, mismatched or duplicate ids, or bad sequences.
    """
    _check_int(seed, "seed", minimum=0)
    _check_read_depth(read_depth)
    _check_int(replicates, "replicates", minimum=1)
    id_list = _check_ids(ids, seqs)
    truth_N = donor_usage(seqs)
    keys_N = np.array([_hash64(f"id:{i}") for i in id_list], dtype=np.uint64)
    seed_key = _hash64(f"seed:{seed}")
    n = len(id_list)
    reads_total_N_R = np.empty((n, replicates), dtype=np.int64)
    reads_sd1_N_R = np.empty((n, replicates), dtype=np.int64)
    for r in range(replicates):
        u_total = _uniforms(seed_key, keys_N, replicate=r + 1, stream=0)
        u_sd1 = _uniforms(seed_key, keys_N, replicate=r + 1, stream=1)
        extra_mean = float(read_depth) - 1.0
        if extra_mean > 0:
            prob = _READ_COUNT_SIZE / (_READ_COUNT_SIZE + extra_mean)
            extra = stats.nbinom.ppf(u_total, _READ_COUNT_SIZE, prob)
        else:
            extra = np.zeros(n)
        total = 1 + extra.astype(np.int64)
        reads_total_N_R[:, r] = total
        reads_sd1_N_R[:, r] = stats.binom.ppf(u_sd1, total, truth_N).astype(np.int64)
    frame = pd.DataFrame(
        {
            "id": np.repeat(np.array(id_list, dtype=object), replicates),
            "donor_usage": (reads_sd1_N_R / reads_total_N_R).reshape(-1),
            "reads_sd1": reads_sd1_N_R.reshape(-1),
            "reads_total": reads_total_N_R.reshape(-1),
            "replicate": np.tile(np.arange(1, replicates + 1, dtype=np.int64), n),
        }
    )
    logger.info("measure n=%d seed=%d read_depth=%s replicates=%d", n, seed, read_depth, replicates)
    return frame


def write_measurements_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a measurement table as CSV, atomically (temporary file, then rename).

    Raises:
        InputError: columns other than `MEASUREMENT_COLUMNS` (in that order), or a missing
            parent directory. Nothing is written then.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"measurements must be a pandas DataFrame, got {type(df).__name__}")
    if tuple(df.columns) != MEASUREMENT_COLUMNS:
        raise InputError(
            f"measurements must have columns {list(MEASUREMENT_COLUMNS)}, got {list(df.columns)}"
        )
    return _atomic_write(Path(path), df.to_csv(index=False, lineterminator="\n"))


def write_library_csv(library: Library, path: str | os.PathLike[str]) -> Path:
    """Write a library as CSV (``id,seq``), atomically; the same library gives the same bytes.

    Raises:
        InputError: `library` is not a `Library`, or the parent directory is missing.
    """
    if not isinstance(library, Library):
        raise InputError(f"library must be a Library, got {type(library).__name__}")
    body = "".join(f"{i},{s}\n" for i, s in zip(library.ids, library.seqs, strict=True))
    return _atomic_write(Path(path), "id,seq\n" + body)


@dataclass(frozen=True)
class SimulatedAssay:
    """The simulated lab as a campaign's labeller: ``assay.measure(ids, seqs)``.

    Attributes:
        seed: measurement seed (non-negative).
        read_depth: mean total reads per sequence and replicate.
        replicates: replicate measurements per sequence.
    """

    seed: int
    read_depth: float = DEFAULT_READ_DEPTH
    replicates: int = 1

    def __post_init__(self) -> None:
        _check_int(self.seed, "seed", minimum=0)
        _check_read_depth(self.read_depth)
        _check_int(self.replicates, "replicates", minimum=1)

    def measure(self, ids: Strings, seqs: Strings) -> pd.DataFrame:
        """Measure a batch; see the module-level `measure`."""
        return measure(
            ids, seqs, seed=self.seed, read_depth=self.read_depth, replicates=self.replicates
        )


def encode(seqs: Strings) -> np.ndarray:
    """Encode equal-length ``ACGT`` strings as codes 0..3.

    Returns:
        `(n, L)` uint8.

    Raises:
        InputError: no sequences, a non-string, mixed or unsupported lengths, or a character
            outside ``ACGT`` (the message names the sequence index and the character).
    """
    seqs = _as_list(seqs, "seqs")
    n = len(seqs)
    if n == 0:
        raise InputError("seqs is empty")
    first = seqs[0]
    if not isinstance(first, str):
        raise InputError(f"seqs[0] must be a string, got {type(first).__name__}")
    length = len(first)
    for i, s in enumerate(seqs):
        if not isinstance(s, str):
            raise InputError(f"seqs[{i}] must be a string, got {type(s).__name__}")
        if len(s) != length:
            raise InputError(f"seqs[{i}] has length {len(s)}, but seqs[0] has length {length}")
    _check_length(length, name="sequence length")
    try:
        raw = "".join(seqs).encode("ascii")
    except UnicodeEncodeError as err:
        bad = next(i for i, s in enumerate(seqs) if not s.isascii())
        raise InputError(f"seqs[{bad}] contains a character outside ACGT") from err
    codes_N_L = _CODE_OF_BYTE[np.frombuffer(raw, dtype=np.uint8)].reshape(n, length)
    invalid = codes_N_L == 255
    if invalid.any():
        row, col = (int(v[0]) for v in np.nonzero(invalid))
        raise InputError(
            f"seqs[{row}] has {seqs[row][col]!r} at position {col}; only A, C, G, T are allowed"
        )
    return codes_N_L


def exonic_effect(hexamers: Sequence[str]) -> np.ndarray:
    """Exonic effect (nats) of each hexamer on a donor downstream of it. `(n,)` float64."""
    return _hexamer_tables()[0][_hexamer_index(hexamers)]


def intronic_effect(hexamers: Sequence[str]) -> np.ndarray:
    """Intronic effect (nats) of each hexamer on a donor upstream of it. `(n,)` float64."""
    return _hexamer_tables()[1][_hexamer_index(hexamers)]


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


def _hexamer_index(hexamers: Sequence[str]) -> np.ndarray:
    if isinstance(hexamers, str):
        raise InputError("hexamers must be a sequence of strings, not one string")
    if any(not isinstance(h, str) or len(h) != 6 for h in hexamers):
        raise InputError("every hexamer must be a string of 6 nt")
    codes = _CODE_OF_BYTE[np.frombuffer("".join(hexamers).encode("ascii"), dtype=np.uint8)]
    if (codes == 255).any():
        raise InputError("hexamers may contain only A, C, G, T")
    codes_N_6 = codes.reshape(-1, 6).astype(np.int64)
    return codes_N_6 @ (4 ** np.arange(5, -1, -1))


def _count(hexamer: str, motif: str) -> int:
    return sum(hexamer.startswith(motif, i) for i in range(len(hexamer) - len(motif) + 1))


@lru_cache(maxsize=1)
def _hexamer_tables() -> tuple[np.ndarray, np.ndarray]:
    """Exonic and intronic effects of all 4096 hexamers, indexed by base-4 code (A=0 .. T=3)."""
    rng = np.random.default_rng(_MODEL_SEED)
    exonic = rng.normal(0.0, _RANDOM_EFFECT_SD, size=4096)
    intronic = rng.normal(0.0, _RANDOM_EFFECT_SD, size=4096)
    for idx in range(4096):
        h = "".join(ALPHABET[(idx >> (2 * (5 - j))) & 3] for j in range(6))
        exonic[idx] += 0.3 * sum(_count(h, m) for m in ("GAA", "AAG", "AGA"))
        exonic[idx] -= 0.25 * sum(_count(h, m) for m in ("TAG", "GGT", "GTT", "TTT", "GGG"))
        intronic[idx] += 0.35 * _count(h, "GGG") + (1.0 if h == "TGCATG" else 0.0)
    exonic.setflags(write=False)
    intronic.setflags(write=False)
    return exonic, intronic


@lru_cache(maxsize=8)
def _context_weights(length: int) -> np.ndarray:
    """Distance weights of each hexamer start on each donor.

    Returns:
        `(2, 2, length - 5)`: donor (SD1, SD2) x context (exonic, intronic) x hexamer start.
    """
    starts = np.arange(length - 5)
    weights = np.zeros((2, 2, length - 5))
    for d, pos in enumerate((SD1_POS, SD2_POS)):
        # Exonic: the hexamer ends before the site's -3; intronic: it starts after +6.
        up = (pos - 3) - (starts + 6)
        down = starts - (pos + 6)
        exonic = (up >= 0) & (up < _CONTEXT_REACH_NT)
        intronic = (down >= 0) & (down < _CONTEXT_REACH_NT)
        weights[d, 0, exonic] = np.exp(-up[exonic] / _EXONIC_DECAY_NT)
        weights[d, 1, intronic] = np.exp(-down[intronic] / _INTRONIC_DECAY_NT)
    weights.setflags(write=False)
    return weights


def _sd1_share(
    codes_N_L: np.ndarray, tables: tuple[np.ndarray, np.ndarray], weights: np.ndarray
) -> np.ndarray:
    """Softmax share of SD1 among SD1, SD2 and cryptic donors for one block of rows."""
    n, length = codes_N_L.shape
    codes = codes_N_L.astype(np.int64)
    # Site scores at every possible G position p (3 <= p <= length - 6): `(n, length - 8)`.
    n_sites = length - 8
    site_N_P = np.zeros((n, n_sites))
    for j in range(9):
        site_N_P += _DONOR_PWM_9_4[j][codes[:, j : j + n_sites]]
    hex_N_H = np.zeros((n, length - 5), dtype=np.int64)
    for j in range(6):
        hex_N_H = hex_N_H * 4 + codes[:, j : j + length - 5]
    exonic_N_H = tables[0][hex_N_H]
    intronic_N_H = tables[1][hex_N_H]
    strength_N_2 = np.empty((n, 2))
    for d, pos in enumerate((SD1_POS, SD2_POS)):
        context_N = exonic_N_H @ weights[d, 0] + intronic_N_H @ weights[d, 1]
        strength_N_2[:, d] = site_N_P[:, pos - 3] + context_N
    cryptic = np.ones(n_sites, dtype=bool)
    cryptic[[SD1_POS - 3, SD2_POS - 3]] = False
    cryptic_N_P = site_N_P[:, cryptic] - _CRYPTIC_PENALTY
    all_N_D = np.concatenate([strength_N_2, cryptic_N_P], axis=1)
    # Softmax share of column 0, shifted by the row max for stability.
    shifted = all_N_D - all_N_D.max(axis=1, keepdims=True)
    expd = np.exp(shifted)
    return expd[:, 0] / expd.sum(axis=1)


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic is intended)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniforms(seed_key: int, keys_N: np.ndarray, *, replicate: int, stream: int) -> np.ndarray:
    """Uniforms in (0, 1), one per key, from a hash of (seed, key, replicate, stream)."""
    salt = np.array([seed_key ^ _hash64(f"rep:{replicate}:{stream}")], dtype=np.uint64)
    z = _splitmix64(_splitmix64(keys_N ^ _splitmix64(salt)))
    # Top 53 bits, centred in their bin so that 0 and 1 never occur.
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _atomic_write(path: Path, text: str) -> Path:
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    write_text_atomic(path, text)
    return path


def _as_list(values: Any, name: str) -> list[Any]:
    """A list of the items of a sequence, NumPy array or pandas Series/Index (not a string)."""
    if isinstance(values, pd.Series | pd.Index | np.ndarray):
        return list(values.tolist())
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InputError(f"{name} must be a sequence of strings, got {type(values).__name__}")
    return list(values)


def _check_int(value: Any, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}")


def _check_length(length: Any, name: str = "length") -> None:
    if isinstance(length, bool) or not isinstance(length, int | np.integer):
        raise InputError(f"{name} must be an integer, got {length!r}")
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise InputError(
            f"{name} must be between {MIN_LENGTH} and {MAX_LENGTH} nt to hold both donors and "
            f"both 25-nt random regions, got {length}"
        )


def _check_read_depth(read_depth: Any) -> None:
    if isinstance(read_depth, bool) or not isinstance(read_depth, int | float | np.number):
        raise InputError(f"read_depth must be a number, got {read_depth!r}")
    if not np.isfinite(read_depth) or read_depth < 1:
        raise InputError(f"read_depth must be a finite number >= 1, got {read_depth}")


def _check_ids(ids: Strings, seqs: Strings) -> list[str]:
    id_list = _as_list(ids, "ids")
    n_seqs = len(_as_list(seqs, "seqs"))
    if len(id_list) != n_seqs:
        raise InputError(f"ids has {len(id_list)} entries but seqs has {n_seqs}")
    seen: set[str] = set()
    for i, row_id in enumerate(id_list):
        if not isinstance(row_id, str) or not row_id:
            raise InputError(f"ids[{i}] must be a non-empty string, got {row_id!r}")
        if row_id in seen:
            raise InputError(f"ids[{i}] = {row_id!r} appears more than once")
        seen.add(row_id)
    return id_list
