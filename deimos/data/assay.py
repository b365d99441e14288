"""The read-count measurement simulator of the simulated A5SS assay: what the lab sends back.

Library sequences come from `deimos.data.a5ss_library` and their true SD1 usage from
`deimos.data.donor_model`; `deimos.data.assay_csv` writes the measurement table as CSV.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from deimos.checks import check_number
from deimos.data.a5ss_library import _check_int
from deimos.data.donor_model import Strings, _as_list, donor_usage
from deimos.errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_READ_DEPTH = 100.0
MEASUREMENT_COLUMNS = ("id", "donor_usage", "reads_sd1", "reads_total", "replicate")
_READ_COUNT_SIZE = 4.0  # negative binomial size: read totals vary about as much as in real runs


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


# --- internals -------------------------------------------------------------------------------


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


def _check_read_depth(read_depth: Any) -> None:
    check_number(read_depth, "read_depth", low=1.0)


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
