"""The campaign's label store: checked measurement files merged into one label table.

`LabelStore.ingest` reads and checks a file (`deimos.lab.readers.read_label_file`), checks it
against the campaign (`deimos.lab.checks.validate_against_campaign`), averages replicates
(`deimos.lab.checks.aggregate_replicates`) and merges the result, all or nothing.

The store is a directory holding ``labels.csv`` (one row per labelled id, with provenance:
source file, its SHA-256, round and time), ``ingestions.jsonl`` (one JSON line per ingested
file), ``raw/<sha256><suffix>`` (a byte copy of every ingested file, so the columns that do not go
into the label table, e.g. read counts, are kept) and ``.lock``. Every file is replaced
atomically (temporary file in the same directory, then `os.replace`), in the order raw copy,
label table, log; the log is written last. Ingestions of different files by concurrent
processes are serialised by `deimos.lock.exclusive_lock` on ``.lock``. A crash between the table
and the log leaves the file's SHA-256 in the table, so re-ingesting it is still a no-op and the
missing log line is rebuilt from the table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deimos.atomic import write_bytes_atomic
from deimos.errors import InputError
from deimos.lab.checks import (
    DEFAULT_VALUE_COLUMN,
    DEFAULT_VALUE_RANGE,
    aggregate_replicates,
    id_problem,
    validate_against_campaign,
)
from deimos.lab.readers import DEFAULT_MAX_BYTES, parse_label_bytes, read_file_bytes
from deimos.lock import exclusive_lock

logger = logging.getLogger(__name__)

LABEL_COLUMNS = (
    "id",
    "value",
    "n_replicates",
    "value_sd",
    "source_file",
    "source_sha256",
    "round",
    "ingested_at",
)
LABELS_FILE = "labels.csv"
LOG_FILE = "ingestions.jsonl"
LOCK_FILE = ".lock"
RAW_DIR = "raw"


@dataclass(frozen=True)
class IngestReport:
    """What one `LabelStore.ingest` call did.

    Attributes:
        n_new: ids that got a label (0 when the file was already ingested).
        n_replicate_rows: rows of the file that belong to an id measured more than once and
            were averaged (0 when the file was already ingested).
        sha256: SHA-256 of the file's bytes, hex.
        already_ingested: the file (same bytes) was ingested before; nothing was added.
    """

    n_new: int
    n_replicate_rows: int
    sha256: str
    already_ingested: bool


class LabelStore:
    """A campaign's labels: ``labels.csv`` + ``ingestions.jsonl`` + raw copies, in one directory.

    Reading (`labels`, `labelled_ids`, `ingestions`) takes no lock: every file is replaced
    atomically, so a reader sees either the old or the new version.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def labels_path(self) -> Path:
        return self.path / LABELS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    def labels(self) -> pd.DataFrame:
        """The label table: columns `LABEL_COLUMNS`, one row per labelled id, ingestion order."""
        return _read_labels(self.labels_path)

    def labelled_ids(self) -> set[str]:
        """Ids that have a label."""
        return set(self.labels()["id"].tolist())

    def ingestions(self) -> list[dict[str, Any]]:
        """The ingestion log, one dict per ingested file, oldest first."""
        return _read_log(self.log_path)

    def ingest(
        self,
        path: str | os.PathLike[str],
        *,
        round_id: int | str,
        known_ids: Collection[str],
        requested_ids: Collection[str],
        allow_unrequested: bool = False,
        now: datetime | None = None,
        value_column: str = DEFAULT_VALUE_COLUMN,
        value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> IngestReport:
        """Check a measurement file and add its labels, all or nothing.

        The file is checked on its own (`read_label_file`) and against the campaign
        (`validate_against_campaign`) before anything is written; then its raw copy, the label
        table and the log are replaced, in that order, under the store's lock. A file whose
        bytes were ingested before (its SHA-256 is in the log or in the table) is a no-op.

        Args:
            path: the lab's measurement file.
            round_id: the round the measurements answer (int >= 0, or a name).
            known_ids: ids of the campaign's library.
            requested_ids: ids requested in the open round.
            allow_unrequested: accept known ids that were not requested.
            now: ingestion time, timezone-aware; default: the current UTC time.
            value_column, value_range, max_bytes: see `read_label_file`.

        Returns:
            What was added.

        Raises:
            InputError: a bad file, bad arguments, a conflict with the campaign, or a corrupt
                store; nothing is written then.
        """
        round_value = _check_round(round_id)
        when = _check_now(now)
        name = str(path)
        data = read_file_bytes(Path(path), name, max_bytes)
        sha = hashlib.sha256(data).hexdigest()
        frame = parse_label_bytes(data, name, Path(path).suffix, value_column, value_range)
        self.path.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path / LOCK_FILE):
            table = _read_labels(self.labels_path)
            log_text = _read_text(self.log_path)
            entries = _parse_log(log_text, self.log_path)
            recovered = _missing_log_entries(table, entries)
            known_hashes = {e["sha256"] for e in entries} | set(table["source_sha256"])
            if sha in known_hashes:
                if recovered:
                    _write_log(self.log_path, log_text, recovered)
                logger.info("ingest file=%s sha256=%s already_ingested=True", name, sha[:12])
                return IngestReport(n_new=0, n_replicate_rows=0, sha256=sha, already_ingested=True)
            validate_against_campaign(
                frame,
                known_ids=known_ids,
                requested_ids=requested_ids,
                allow_unrequested=allow_unrequested,
                labelled=dict(zip(table["id"], table["source_sha256"], strict=True)),
            )
            new = aggregate_replicates(frame, value_column=value_column)
            new["source_file"] = Path(path).name
            new["source_sha256"] = sha
            new["round"] = round_value
            new["ingested_at"] = when
            _write_raw_copy(self.path / RAW_DIR, sha, Path(path).suffix, data)
            _append_labels(self.labels_path, new)
            entry = {
                "sha256": sha,
                "source_file": Path(path).name,
                "n_rows": len(frame),
                "n_labels": len(new),
                "round": round_value,
                "ingested_at": when,
            }
            _write_log(self.log_path, log_text, [*recovered, entry])
        n_replicate_rows = int(new.loc[new["n_replicates"] > 1, "n_replicates"].sum())
        logger.info(
            "ingest file=%s sha256=%s round=%s n_new=%d n_replicate_rows=%d",
            name,
            sha[:12],
            round_value,
            len(new),
            n_replicate_rows,
        )
        return IngestReport(
            n_new=len(new), n_replicate_rows=n_replicate_rows, sha256=sha, already_ingested=False
        )


def _check_round(round_id: int | str) -> int | str:
    if isinstance(round_id, bool):
        raise InputError(f"round_id must be an int >= 0 or a name, got {round_id!r}")
    if isinstance(round_id, int | np.integer):
        if round_id < 0:
            raise InputError(f"round_id must be >= 0, got {round_id}")
        return int(round_id)
    if isinstance(round_id, str):
        reason = id_problem(round_id)
        if reason:
            raise InputError(f"round_id {round_id!r} {reason}")
        return round_id
    raise InputError(f"round_id must be an int >= 0 or a name, got {type(round_id).__name__}")


def _check_now(now: datetime | None) -> str:
    if now is None:
        now = datetime.now(UTC)
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise InputError(f"now must be a timezone-aware datetime, got {now!r}")
    return now.isoformat(timespec="seconds")


def _read_labels(path: Path) -> pd.DataFrame:
    if not path.exists():
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in LABEL_COLUMNS})
        return frame.astype({"value": np.float64, "n_replicates": np.int64, "value_sd": np.float64})
    # All text first: ids such as "NA" or "null" must stay strings.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    if tuple(frame.columns) != LABEL_COLUMNS:
        raise InputError(
            f"{path}: corrupt label table: expected columns {list(LABEL_COLUMNS)}, found "
            f"{list(frame.columns)}"
        )
    try:
        frame["value"] = frame["value"].astype(np.float64)
        frame["n_replicates"] = frame["n_replicates"].astype(np.int64)
        # An empty value_sd is a single measurement (no spread to report).
        frame["value_sd"] = np.asarray(
            [float(v) if v else math.nan for v in frame["value_sd"]], dtype=np.float64
        )
    except ValueError as err:
        raise InputError(f"{path}: corrupt label table ({err})") from err
    if len(frame) and frame["round"].str.fullmatch(r"\d+").all():
        frame["round"] = frame["round"].astype(np.int64)
    dup = frame["id"][frame["id"].duplicated()]
    if not dup.empty:
        raise InputError(f"{path}: corrupt label table: id {dup.iloc[0]!r} appears twice")
    return frame


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _parse_log(text: str, path: Path) -> list[dict[str, Any]]:
    entries = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: line {line_no}: corrupt ingestion log ({err})") from err
        if not isinstance(entry, dict) or "sha256" not in entry:
            raise InputError(f"{path}: line {line_no}: corrupt ingestion log (no sha256)")
        entries.append(entry)
    return entries


def _read_log(path: Path) -> list[dict[str, Any]]:
    return _parse_log(_read_text(path), path)


def _missing_log_entries(
    table: pd.DataFrame, entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Log entries rebuilt from the table for files whose log line was lost in a crash."""
    logged = {e["sha256"] for e in entries}
    recovered = []
    for sha, group in table.groupby("source_sha256", sort=False):
        if sha in logged:
            continue
        first = group.iloc[0]
        round_value = first["round"]
        recovered.append(
            {
                "sha256": sha,
                "source_file": first["source_file"],
                "n_rows": int(group["n_replicates"].sum()),
                "n_labels": len(group),
                "round": int(round_value) if isinstance(round_value, np.integer) else round_value,
                "ingested_at": first["ingested_at"],
                "recovered": True,
            }
        )
        logger.warning("ingestion log lacked file sha256=%s; rebuilt from the table", sha[:12])
    return recovered


def _append_labels(path: Path, new: pd.DataFrame) -> None:
    # Old rows are kept byte for byte: only new rows are serialised.
    body = new.loc[:, list(LABEL_COLUMNS)].to_csv(index=False, header=False, lineterminator="\n")
    if path.exists():
        old = path.read_bytes()
        if old and not old.endswith(b"\n"):
            old += b"\n"
    else:
        old = (",".join(LABEL_COLUMNS) + "\n").encode("utf-8")
    _atomic_write(path, old + body.encode("utf-8"))


def _write_raw_copy(raw_dir: Path, sha: str, suffix: str, data: bytes) -> None:
    raw_dir.mkdir(exist_ok=True)
    safe_suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""
    target = raw_dir / f"{sha}{safe_suffix}"
    if not target.exists():
        _atomic_write(target, data)


def _write_log(path: Path, old_text: str, new_entries: list[dict[str, Any]]) -> None:
    """Replace the log with `old_text` plus one JSON line per new entry."""
    if old_text and not old_text.endswith("\n"):
        old_text += "\n"
    lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in new_entries)
    _atomic_write(path, (old_text + lines).encode("utf-8"))


def _atomic_write(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data)
