"""SeedPlan: every seed of a run from one integer, independent per round and purpose."""

from __future__ import annotations

import pytest

from deimos.errors import InputError
from deimos.loop.seeds import SeedPlan


def test_seeds_are_deterministic_and_distinct() -> None:
    plan = SeedPlan(7)
    assert plan.for_round(3) == SeedPlan(7).for_round(3)
    seen = {plan.split()}
    for k in range(20):
        s = plan.for_round(k)
        assert s.round == k
        seen |= {s.init, s.order, s.masks, s.picks}
    assert len(seen) == 1 + 20 * 4
    assert all(0 <= v < 2**63 for v in seen)


def test_no_collision_between_neighbouring_runs_and_rounds() -> None:
    # `seed + round` would give run 0 round 1 the seeds of run 1 round 0.
    assert SeedPlan(0).for_round(1).init != SeedPlan(1).for_round(0).init
    assert SeedPlan(0).split() != SeedPlan(1).split()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "0"])
def test_bad_seed_is_refused(bad: object) -> None:
    with pytest.raises(InputError, match="seed"):
        SeedPlan(bad)  # type: ignore[arg-type]


def test_bad_round_is_refused() -> None:
    with pytest.raises(InputError, match="round must be a non-negative integer"):
        SeedPlan(0).for_round(-1)
