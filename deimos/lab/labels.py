"""Label ingestion: check the lab's measurement file and merge it into the campaign's labels.

Each round the campaign sends a batch of requested sequence ids to the lab; the lab sends back a
measurement file (CSV; ``.xlsx`` too when `openpyxl` is installed) with one row per sequence and
replicate, laid out as `deimos.data.assay` writes it: ``id, donor_usage[, reads_sd1, reads_total,
replicate, ...]``. An annotation team may instead send Label Studio's JSON export (``.json``,
see `deimos.lab.label_studio`): each submitted annotation is then one row, a task's several
annotations being its replicates. This module

1. reads and checks the file on its own (`read_label_file`): encoding, shape, ids, values,
   duplicates, spreadsheet formula injection, size;
2. checks it against the campaign (`validate_against_campaign`): known ids, requested ids, ids
   that already have a label;
3. averages replicates into one label per id (`aggregate_replicates`);
4. merges the result into the campaign's label store (`LabelStore`), all or nothing.

The store is a directory holding ``labels.csv`` (one row per labelled id, with provenance:
source file, its SHA-256, round and time), ``ingestions.jsonl`` (one JSON line per ingested
file), ``raw/<sha256><suffix>`` (a byte copy of every ingested file, so the columns that do not go
into the label table, e.g. read counts, are kept) and ``.lock``. Every file is replaced
atomically (temporary file in the same directory, then `os.replace`), in the order raw copy,
label table, log; the log is written last. Ingestions of different files by concurrent
processes are serialised by `fcntl.flock` on ``.lock``. A crash between the table and the log
leaves the file's SHA-256 in the table, so re-ingesting it is still a no-op and the missing log
line is rebuilt from the table.

Line numbers in messages are 1-based physical lines of the file, the header being line 1 (rows
of a spreadsheet for ``.xlsx``); for ``.json`` messages name the 1-based task instead.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deimos.atomic import write_bytes_atomic
from deimos.errors import InputError
from deimos.lab.label_studio import parse_label_studio_export
from deimos.safe_names import check_safe_id
from deimos.text_files import UTF8_BOM, decode_utf8, read_limited

logger = logging.getLogger(__name__)

DEFAULT_VALUE_COLUMN = "donor_usage"
DEFAULT_VALUE_RANGE = (0.0, 1.0)
#: Larger label files are refused before they are read: a lab file is kilobytes, so anything
#: this big is a wrong file, and reading it whole could exhaust the worker's memory.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ID_COLUMN = "id"
REPLICATE_COLUMN = "replicate"
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

# Spreadsheets run a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Plain decimal numbers only: no "1_000", "0x1f", "nan" or "inf", which float() would accept.
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
# Characters (or "..") that make an id unacceptable; Cc control characters are \x00-\x1f, \x7f-\x9f.
_SUSPECT_ID_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f/\\]|\.\.")
_NAN_WORDS = frozenset({"nan", "na", "n/a", "null", "none", "-nan", "+nan"})
_MAX_NAMED = 5  # ids or problems named in one message


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


# --- reading one measurement file -------------------------------------------------------------


def read_label_file(
    path: str | os.PathLike[str],
    *,
    value_column: str = DEFAULT_VALUE_COLUMN,
    value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> pd.DataFrame:
    """Read and check a measurement file from the lab.

    Args:
        path: a CSV file (UTF-8, optional BOM, header on the first line), ``.xlsx`` (first
            sheet) when `openpyxl` is installed, or ``.json``: a Label Studio JSON export, read
            by `deimos.lab.label_studio.read_label_studio_export` with `value_column` as the
            Number control's name (columns ``id, <value_column>, replicate[, annotator,
            annotation_id]``).
        value_column: the column holding the label value; required, with `id`.
        value_range: inclusive ``(low, high)`` range every value must lie in.
        max_bytes: larger files are refused before they are read.

    Returns:
        One row per data row of the file, columns in file order (extra columns kept), index =
        the 1-based line number (named ``line``; for ``.json`` the 1-based task number, named
        ``task``, one row per submitted annotation). `id` and text columns are `str`; the value
        column is float64; other all-numeric columns are int64 (float64 when a cell is empty
        or has a fraction). ``attrs`` holds ``source_file`` (the path as given) and ``sha256``.

    Raises:
        InputError: naming the file, the line or id, and the reason, for: a missing, unreadable,
            empty or too large file; bytes that are not UTF-8 (UTF-16/32 and Latin-1 files
            included); a truncated last line, a truncated ``.xlsx`` or truncated JSON; a row
            with the wrong number of fields; a bad Label Studio export (see
            `deimos.lab.label_studio.read_label_studio_export`); missing `id` or value column;
            empty, non-numeric, NaN/inf or out-of-range values; empty ids or ids with
            whitespace, '/', '\\', '..' or control characters (`deimos.safe_names`); a cell of a
            text column that a spreadsheet would run as a formula; an id repeated without
            distinct `replicate` values. Up to five problems are named in one message.
    """
    name = str(path)
    data = _read_bytes(Path(path), name, max_bytes)
    return _parse(data, name, Path(path).suffix, value_column, value_range)


def _parse(
    data: bytes,
    name: str,
    suffix: str,
    value_column: str,
    value_range: tuple[float, float],
) -> pd.DataFrame:
    lo, hi = _check_range(value_range)
    if not isinstance(value_column, str) or not value_column or value_column == ID_COLUMN:
        raise InputError(
            f"value_column must be a column name other than 'id', got {value_column!r}"
        )
    unit = "line"
    if suffix.lower() == ".xlsx":
        header, rows, lines = _xlsx_rows(data, name)
    elif suffix.lower() == ".json":
        header, rows, lines = _json_rows(data, name, value_column)
        unit = "task"
    else:
        header, rows, lines = _csv_rows(data, name)
    frame = _to_frame(header, rows, lines, name, value_column, lo, hi, unit=unit)
    frame.attrs["source_file"] = name
    frame.attrs["sha256"] = hashlib.sha256(data).hexdigest()
    logger.info("read_label_file file=%s n_rows=%d", name, len(frame))
    return frame


def _read_bytes(path: Path, name: str, max_bytes: int) -> bytes:
    data = read_limited(path, name, max_bytes)
    if not data.strip() or data.strip() == UTF8_BOM:
        raise InputError(f"{name}: file is empty")
    return data


def _csv_rows(data: bytes, name: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and the line each row starts on; blank rows are skipped."""
    text = decode_utf8(data, name)  # Excel's "CSV UTF-8" adds a BOM; it is dropped
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise InputError(f"{name}: line {start}: malformed CSV ({err})") from err
        if any(cell.strip() for cell in row):  # rows of empty cells are spreadsheet leftovers
            records.append((start, row))
        start = reader.line_num + 1
    if not records:
        raise InputError(f"{name}: file is empty")
    header_line, header = records[0]
    header = _check_header(header, header_line, name)
    ends_with_newline = text.endswith(("\n", "\r"))
    rows: list[list[str]] = []
    lines: list[int] = []
    last = len(records) - 1
    for k, (line, row) in enumerate(records[1:], start=1):
        if len(row) != len(header):
            if k == last and not ends_with_newline and len(row) < len(header):
                raise InputError(
                    f"{name}: line {line}: truncated last line ({len(row)} of {len(header)} "
                    "fields and no newline at the end of the file); was the file cut off?"
                )
            raise InputError(
                f"{name}: line {line}: has {len(row)} fields, the header has {len(header)}"
            )
        rows.append(row)
        lines.append(line)
    return header, rows, lines


def _json_rows(
    data: bytes, name: str, value_column: str
) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows (one per submitted annotation) and task numbers of a Label Studio export.

    The export is turned into the same text rows as a CSV, so it passes the same id, value and
    formula checks.
    """
    frame = parse_label_studio_export(data, name, value_name=value_column)
    header = [str(c) for c in frame.columns]
    rows = [[_json_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return header, rows, [int(t) for t in frame.index]


def _json_cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return repr(float(value))  # repr round-trips the float exactly
    return str(value)


def _xlsx_rows(data: bytes, name: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and their spreadsheet row numbers from the first sheet of an .xlsx."""
    try:
        import openpyxl
    except ImportError as err:
        raise InputError(
            f"{name}: reading .xlsx files needs the openpyxl package; install it or export the "
            "sheet as CSV"
        ) from err
    try:
        # Formulas are read as their text ("=..."), so the injection check below refuses them.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as err:  # openpyxl raises zipfile, KeyError and its own errors
        raise InputError(
            f"{name}: not a readable .xlsx file ({err}); is it truncated or another format?"
        ) from err
    try:
        sheet = workbook.worksheets[0]
        records = [
            (r, [_xlsx_cell(v) for v in values])
            for r, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        ]
    finally:
        workbook.close()
    records = [(r, cells) for r, cells in records if any(c.strip() for c in cells)]
    if not records:
        raise InputError(f"{name}: file is empty")
    header_line, header = records[0]
    while header and not header[-1].strip():
        header.pop()
    header = _check_header(header, header_line, name)
    rows: list[list[str]] = []
    lines: list[int] = []
    for line, cells in records[1:]:
        extra = cells[len(header) :]
        if any(c.strip() for c in extra):
            raise InputError(
                f"{name}: line {line}: has a value beyond the {len(header)} header columns"
            )
        rows.append((cells + [""] * len(header))[: len(header)])
        lines.append(line)
    return header, rows, lines


def _check_header(header: list[str], line: int, name: str) -> list[str]:
    header = [h.strip() for h in header]
    for col, h in enumerate(header, start=1):
        if not h:
            raise InputError(f"{name}: line {line}: column {col} of the header has no name")
    for col, h in enumerate(header):
        if h in header[:col]:
            raise InputError(f"{name}: line {line}: column {h!r} appears twice in the header")
    return header


def _xlsx_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _to_frame(
    header: list[str],
    rows: list[list[str]],
    lines: list[int],
    name: str,
    value_column: str,
    lo: float,
    hi: float,
    *,
    unit: str = "line",
) -> pd.DataFrame:
    """Check the rows and build the table; `unit` names a row's position in messages."""
    missing = [c for c in (ID_COLUMN, value_column) if c not in header]
    if missing:
        raise InputError(
            f"{name}: line 1: missing required column(s) {missing}; found columns {header}"
        )
    if not rows:
        raise InputError(f"{name}: no data rows after the header")
    cells_by_col = {h: [row[j].strip() for row in rows] for j, h in enumerate(header)}
    numeric_cols = {
        h
        for h, cells in cells_by_col.items()
        if h not in (ID_COLUMN, value_column)
        and any(cells)
        and all(not c or _NUMBER_RE.fullmatch(c) for c in cells)
    }
    id_col = header.index(ID_COLUMN)
    text_cols = [h for h in header if h not in (ID_COLUMN, value_column, *numeric_cols)]
    problems: list[str] = []
    values: list[float] = []
    for i, line in enumerate(lines):
        row_id = rows[i][id_col]
        reason = _id_problem(row_id)
        if reason:
            problems.append(f"{unit} {line}: id {row_id!r} {reason}")
        raw = cells_by_col[value_column][i]
        value, reason = _value_problem(raw, lo, hi)
        values.append(value)
        if reason:
            problems.append(f"{unit} {line}: id {row_id!r}: {value_column} {reason}")
        for h in text_cols:
            cell = cells_by_col[h][i]
            if cell.startswith(_FORMULA_PREFIXES) and not _NUMBER_RE.fullmatch(cell):
                problems.append(
                    f"{unit} {line}: id {row_id!r}: column {h!r} starts with {cell[0]!r}, which a "
                    "spreadsheet would run as a formula"
                )
    _raise_problems(name, problems)
    ids = [row[id_col] for row in rows]
    columns: dict[str, Any] = {}
    for h in header:
        if h == ID_COLUMN:
            columns[h] = pd.Series(ids, dtype=object)
        elif h == value_column:
            columns[h] = np.asarray(values, dtype=np.float64)
        elif h in numeric_cols:
            columns[h] = _numeric_column(cells_by_col[h])
        else:
            col = header.index(h)
            columns[h] = pd.Series([row[col] for row in rows], dtype=object)
    frame = pd.DataFrame(columns)
    frame.index = pd.Index(lines, name=unit)
    _check_duplicates(frame, name)
    return frame


def _id_problem(row_id: str) -> str | None:
    """Why an id is not acceptable, or None."""
    if row_id and not _SUSPECT_ID_RE.search(row_id) and not row_id.startswith(_FORMULA_PREFIXES):
        return None  # the common case, without a pass per character
    # Ids become file names and object keys downstream: the project-wide rule comes first.
    reason = check_safe_id(row_id)
    if reason:
        return reason
    if any(ch.isspace() for ch in row_id):
        return "contains whitespace"
    if row_id.startswith(_FORMULA_PREFIXES):
        return f"starts with {row_id[0]!r}, which a spreadsheet would run as a formula"
    return None


def _value_problem(raw: str, lo: float, hi: float) -> tuple[float, str | None]:
    """The parsed value and why it is not acceptable (or None)."""
    if not raw or raw.lower() in _NAN_WORDS:
        return math.nan, "is missing (empty or NaN)"
    if not _NUMBER_RE.fullmatch(raw):
        return math.nan, f"is not a number: {raw!r}"
    value = float(raw)
    if not math.isfinite(value):
        return value, f"is not finite: {raw!r}"
    if not lo <= value <= hi:
        return value, f"{raw} is outside the allowed range [{lo}, {hi}]"
    return value, None


def _numeric_column(cells: list[str]) -> np.ndarray:
    if all(_INT_RE.fullmatch(c) for c in cells):
        return np.asarray([int(c) for c in cells], dtype=np.int64)
    return np.asarray([float(c) if c else math.nan for c in cells], dtype=np.float64)


def _check_duplicates(frame: pd.DataFrame, name: str) -> None:
    """Ids may repeat only as replicates: a `replicate` column with distinct values per id."""
    ids = frame[ID_COLUMN]
    repeated = ids.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    lines = frame.index.to_numpy()
    lines_of: dict[str, list[int]] = {}
    for row_id, line in zip(ids[repeated], lines[repeated], strict=True):
        lines_of.setdefault(row_id, []).append(int(line))
    problems: list[str] = []
    if REPLICATE_COLUMN not in frame.columns:
        for row_id, id_lines in lines_of.items():
            problems.append(
                f"id {row_id!r} appears on lines {_join(id_lines)}; mark replicate measurements "
                f"with a {REPLICATE_COLUMN!r} column"
            )
        _raise_problems(name, problems)
    reps = frame[REPLICATE_COLUMN]
    blank = (reps.isna() | reps.astype(str).str.strip().eq("")).to_numpy() & repeated
    doubled = frame.duplicated([ID_COLUMN, REPLICATE_COLUMN], keep=False).to_numpy()
    doubled = doubled & repeated & ~blank
    lines_of_rep: dict[tuple[str, Any], list[int]] = {}
    for pos in np.flatnonzero(doubled):
        lines_of_rep.setdefault((ids.iat[pos], reps.iat[pos]), []).append(int(lines[pos]))
    seen: set[str] = set()
    for pos in np.flatnonzero(blank | doubled):
        row_id = ids.iat[pos]
        if row_id in seen:
            continue
        seen.add(row_id)
        if blank[pos]:
            problems.append(
                f"line {lines[pos]}: id {row_id!r} appears on lines {_join(lines_of[row_id])} "
                f"but has no {REPLICATE_COLUMN} value"
            )
        else:
            rep = reps.iat[pos]
            problems.append(
                f"id {row_id!r} has {REPLICATE_COLUMN} {rep!s} more than once "
                f"(lines {_join(lines_of_rep[(row_id, rep)])})"
            )
    _raise_problems(name, problems)


def _join(numbers: Sequence[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def _raise_problems(name: str, problems: list[str]) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:_MAX_NAMED])
    more = f" (and {len(problems) - _MAX_NAMED} more)" if len(problems) > _MAX_NAMED else ""
    raise InputError(f"{name}: {shown}{more}")


def _check_range(value_range: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError) as err:
        raise InputError(f"value_range must be (low, high), got {value_range!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise InputError(f"value_range must be finite with low <= high, got {value_range!r}")
    return lo, hi


# --- checks against the campaign and replicate averaging --------------------------------------


def validate_against_campaign(
    df: pd.DataFrame,
    *,
    known_ids: Collection[str],
    requested_ids: Collection[str],
    allow_unrequested: bool = False,
    labelled: Mapping[str, str] | None = None,
) -> None:
    """Check a measurement table (from `read_label_file`) against the campaign's state.

    Args:
        df: the measurement table; ``df.attrs`` ``source_file``/``sha256`` name the file.
        known_ids: ids of the campaign's library.
        requested_ids: ids requested from the lab in the open round.
        allow_unrequested: accept known ids that were not requested.
        labelled: ids that already have a label, each mapped to the SHA-256 of the file it came
            from. An id labelled by this same file (same hash) is no conflict.

    Raises:
        InputError: ids not in the library, ids not requested (unless `allow_unrequested`),
            ids already labelled from another file; each kind names up to five ids and the file.
    """
    name = str(df.attrs.get("source_file", "measurement table"))
    if ID_COLUMN not in df.columns:
        raise InputError(f"{name}: has no {ID_COLUMN!r} column; found {list(df.columns)}")
    known = _id_set(known_ids)
    requested = _id_set(requested_ids)
    sha = df.attrs.get("sha256")
    ids = list(dict.fromkeys(df[ID_COLUMN].tolist()))
    problems = []
    unknown = [i for i in ids if i not in known]
    if unknown:
        problems.append(f"{_count_ids(unknown)} not in the campaign's library: {_name(unknown)}")
    if not allow_unrequested:
        unrequested = [i for i in ids if i in known and i not in requested]
        if unrequested:
            problems.append(
                f"{_count_ids(unrequested)} not requested in the open round: "
                f"{_name(unrequested)} (allow_unrequested / --allow-unrequested accepts them)"
            )
    if labelled:
        relabelled = [i for i in ids if i in labelled and labelled[i] != sha]
        if relabelled:
            problems.append(
                f"{_count_ids(relabelled)} already labelled by another file: {_name(relabelled)}"
            )
    if problems:
        raise InputError(f"{name}: " + "; ".join(problems))


def aggregate_replicates(
    df: pd.DataFrame, *, value_column: str = DEFAULT_VALUE_COLUMN
) -> pd.DataFrame:
    """Average replicate rows into one label per id.

    Args:
        df: a checked measurement table with columns `id` and `value_column`.
        value_column: the label value column.

    Returns:
        Columns ``id, value, n_replicates, value_sd``, one row per id in order of first
        appearance: the mean, the row count and the sample standard deviation (ddof=1; NaN for
        a single row).
    """
    grouped = df.groupby(ID_COLUMN, sort=False)[value_column]
    out = pd.DataFrame(
        {
            "value": grouped.mean(),
            "n_replicates": grouped.count().astype(np.int64),
            "value_sd": grouped.std(ddof=1),
        }
    )
    out.index.name = ID_COLUMN
    return out.reset_index()


def _id_set(ids: Collection[str]) -> set[str] | frozenset[str]:
    if isinstance(ids, str):
        raise InputError("an id collection must not be a single string")
    # set() of a Series iterates its values; `in Series` would test its index instead.
    return ids if isinstance(ids, set | frozenset) else set(ids)


def _count_ids(ids: Sequence[str]) -> str:
    return f"{len(ids)} id{'s' if len(ids) != 1 else ''}"


def _name(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_MAX_NAMED])
    return shown + (f" (and {len(ids) - _MAX_NAMED} more)" if len(ids) > _MAX_NAMED else "")


# --- the label store --------------------------------------------------------------------------


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
        data = _read_bytes(Path(path), name, max_bytes)
        sha = hashlib.sha256(data).hexdigest()
        frame = _parse(data, name, Path(path).suffix, value_column, value_range)
        self.path.mkdir(parents=True, exist_ok=True)
        with _locked(self.path / LOCK_FILE):
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
        reason = _id_problem(round_id)
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


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_path` (released when the descriptor is closed)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
