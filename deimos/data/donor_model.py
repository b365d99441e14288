"""Ground truth of the simulated A5SS assay: the true SD1 usage of each library sequence.

`donor_usage` is a simplification of splice-site choice, not a fitted model, for sequences laid
out as `deimos.data.a5ss_library` makes them:

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
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from deimos.data.a5ss_library import ALPHABET, SD1_POS, SD2_POS, _check_length
from deimos.errors import InputError

# Strings in a list/tuple, a NumPy array or a pandas Series (e.g. a column of a library frame).
Strings: TypeAlias = Sequence[str] | np.ndarray | pd.Series

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
_CHUNK_ROWS = 16384  # rows per block in donor_usage, bounds temporary memory

_CODE_OF_BYTE = np.full(256, 255, dtype=np.uint8)
for _code, _base in enumerate(ALPHABET):
    _CODE_OF_BYTE[ord(_base)] = _code


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


def _as_list(values: Any, name: str) -> list[Any]:
    """A list of the items of a sequence, NumPy array or pandas Series/Index (not a string)."""
    if isinstance(values, pd.Series | pd.Index | np.ndarray):
        return list(values.tolist())
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InputError(f"{name} must be a sequence of strings, got {type(values).__name__}")
    return list(values)
