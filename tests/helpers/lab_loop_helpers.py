"""Small campaigns for the lab-loop tests, and a snapshot to prove that nothing changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from deimos.campaign import repo
from deimos.campaign.create import create_campaign, default_simulation_params
from deimos.campaign.params import CampaignParams

POOL, TEST, INITIAL, BATCH = 300, 100, 40, 10


def tiny_params(**changes: object) -> CampaignParams:
    """A simulated campaign that trains in a second: 300 sequences, 40 initial labels."""
    params = default_simulation_params(pool_size=POOL, test_size=TEST, n_initial=INITIAL)
    params = params.replace(
        batch_size=BATCH, n_masks=8, train=params.train.replace(epochs=3, patience=2)
    )
    return params.replace(**changes)


def make_campaign(root: Path, **changes: object):
    return create_campaign(root, tiny_params(**changes))


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file that records campaign state, plus git HEAD."""
    out = {"HEAD": repo.head(root)}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (
            path.is_file()
            and rel.parts[0] not in (".git", ".dvc")
            and path.name not in (".lock", ".deimos.lock")
        ):
            out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
