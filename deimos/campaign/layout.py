"""A campaign on disk: its typed parameters, its file layout and its round state.

A campaign is a git + DVC repository::

    params.yaml            CampaignParams (what `dvc repro` and the flows read)
    dvc.yaml, dvc.lock     the round pipeline prepare -> train -> predict -> select -> export
    data.dvc               tracks data/
    data/pool.fasta        every sequence that may be measured
    data/test.fasta        simulated campaigns only: held-out sequences scored against the truth
    data/labels/           the label store (deimos.lab.store.LabelStore)
    data/requested.csv     id, round: every id sent to the lab in a closed round
    data/round_log.jsonl   one JSON event per line (campaign created, round closed, labels in)
    rounds/<k>/            the outputs of round k's stages (DVC outs)
    reports/               per-round metrics table and learning curve (committed to git)
    queue/                 the local lab queue: outbox/round-<k>/ and inbox/

Round state: `params.yaml: round` is the round the pipeline computes. Round k is *exported*
when dvc.lock records its export stage and the files exist; ingesting labels *closes* it (its
ids go to requested.csv) and moves `round` to k + 1, so the next `dvc repro` starts round k + 1
and round k's recorded outputs are never recomputed from newer labels.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from deimos.atomic import write_text_atomic
from deimos.campaign.params import PARAMS_FILE, CampaignParams, load_params
from deimos.errors import InputError
from deimos.lock import exclusive_lock

STAGES = ("prepare", "train", "predict", "select", "export")


class Campaign:
    """Paths of one campaign directory, and the state read from them."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    @property
    def params_path(self) -> Path:
        return self.root / PARAMS_FILE

    def params(self) -> CampaignParams:
        return load_params(self.params_path)

    data_dir = property(lambda self: self.root / "data")
    pool_fasta = property(lambda self: self.root / "data" / "pool.fasta")
    test_fasta = property(lambda self: self.root / "data" / "test.fasta")
    label_dir = property(lambda self: self.root / "data" / "labels")
    requested_csv = property(lambda self: self.root / "data" / "requested.csv")
    round_log = property(lambda self: self.root / "data" / "round_log.jsonl")
    reports_dir = property(lambda self: self.root / "reports")
    dvc_lock = property(lambda self: self.root / "dvc.lock")

    def round_dir(self, round_id: int) -> Path:
        return self.root / "rounds" / str(int(round_id))

    def queue_dir(self, params: CampaignParams | None = None) -> Path:
        params = params or self.params()
        return (self.root / params.queue_dir).resolve()

    def check(self) -> None:
        """Fail with a clear message unless this looks like a campaign directory."""
        missing = [
            name
            for name in (PARAMS_FILE, "dvc.yaml", "data.dvc", ".dvc", ".git")
            if not (self.root / name).exists()
        ]
        if missing:
            raise InputError(
                f"{self.root}: not a deimos campaign (missing {', '.join(missing)}); "
                "create one with `deimos init`"
            )

    def exported_round(self) -> int | None:
        """The round whose export stage dvc.lock records and whose files exist, if any."""
        if not self.dvc_lock.is_file():
            return None
        try:
            lock = yaml.safe_load(self.dvc_lock.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{self.dvc_lock}: not valid YAML ({exc})") from exc
        outs = lock.get("stages", {}).get("export", {}).get("outs", [])
        for out in outs:
            match = re.fullmatch(r"rounds/(\d+)/export", str(out.get("path", "")))
            if match and (self.root / out["path"]).is_dir():
                return int(match.group(1))
        return None

    def requested(self) -> pd.DataFrame:
        """Ids sent to the lab in closed rounds: columns `id`, `round`."""
        if not self.requested_csv.is_file():
            return pd.DataFrame({"id": pd.Series(dtype=str), "round": pd.Series(dtype="int64")})
        return pd.read_csv(self.requested_csv, dtype={"id": str, "round": "int64"})

    def selection(self, round_id: int) -> pd.DataFrame:
        """Round `round_id`'s selection: rank, id, expected_improvement, pred_mean, pred_sd."""
        path = self.round_dir(round_id) / "selection.csv"
        if not path.is_file():
            raise InputError(f"{path}: round {round_id} has no selection")
        return pd.read_csv(path, dtype={"id": str})

    def events(self) -> list[dict[str, Any]]:
        """The round log, oldest first."""
        if not self.round_log.is_file():
            return []
        out = []
        for n, line in enumerate(self.round_log.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{self.round_log}: line {n} is not JSON ({exc})") from exc
        return out

    def closed_rounds(self) -> set[int]:
        return {int(e["round"]) for e in self.events() if e.get("event") == "round_closed"}


def append_event(campaign: Campaign, event: dict[str, Any]) -> None:
    """Append one event to the round log (whole file replaced atomically)."""
    old = campaign.round_log.read_text(encoding="utf-8") if campaign.round_log.is_file() else ""
    line = json.dumps(event, sort_keys=True)
    write_text_atomic(campaign.round_log, old + line + "\n")


def write_requested(campaign: Campaign, table: pd.DataFrame) -> None:
    write_text_atomic(campaign.requested_csv, table[["id", "round"]].to_csv(index=False))


LOCK_FILE = ".deimos.lock"


@contextmanager
def campaign_lock(campaign: Campaign) -> Iterator[None]:
    """One writer per campaign: a round and an ingestion never interleave (flock, blocking)."""
    with exclusive_lock(campaign.root / LOCK_FILE):
        yield
