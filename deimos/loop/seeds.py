"""Every random seed of an active-learning run, derived from one integer.

A run (a lab campaign, a benchmark run, `deimos simulate`) has one `seed`. `SeedPlan(seed)`
derives from it, with NumPy's `SeedSequence` (independent streams, no arithmetic collisions such
as `seed + round` of run 0 round 1 == run 1 round 0):

- `split()`: the data split and the initial labelled set (once per run, every round shares it);
- `for_round(k)`: round k's `init` (model weights), `order` (mini-batch order and training
  dropout), `masks` (the J fixed dropout masks used for the candidates, the validation set and
  the labelled points alike) and `picks` (random picks, BatchBALD's sampling).

Two runs with the same seed and data get the same seeds in every round, whatever the method, so
methods are compared from the same splits, initial sets and first models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deimos.checks import check_int

# The stream of each purpose; append new purposes at the end so old plans keep their seeds.
_PURPOSES = ("split", "init", "order", "masks", "picks")
_RUN_LEVEL = -1  # the "round" of run-level seeds (the split)


def _derive(seed: int, round_id: int, purpose: str) -> int:
    entropy = [seed, round_id - _RUN_LEVEL, _PURPOSES.index(purpose)]
    word = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return int(word >> np.uint64(1))  # < 2**63: valid for torch.manual_seed and NumPy alike


@dataclass(frozen=True)
class RoundSeeds:
    """The seeds of one round (see the module docstring)."""

    round: int
    init: int
    order: int
    masks: int
    picks: int


@dataclass(frozen=True)
class SeedPlan:
    """All seeds of one run, derived from `seed` (a non-negative integer)."""

    seed: int

    def __post_init__(self) -> None:
        check_int(self.seed, "seed", minimum=0)

    def split(self) -> int:
        """Seed of the data split and the initial labelled set."""
        return _derive(int(self.seed), _RUN_LEVEL, "split")

    def for_round(self, round_id: int) -> RoundSeeds:
        """The seeds of round `round_id` (>= 0)."""
        k = check_int(round_id, "round", minimum=0)
        return RoundSeeds(
            round=k,
            **{p: _derive(int(self.seed), k, p) for p in ("init", "order", "masks", "picks")},
        )
