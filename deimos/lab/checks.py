"""Checks of lab measurement rows, and of a measurement table against the campaign.

`deimos.lab.readers` turns a file into text rows; `rows_to_frame` checks them (ids, values,
spreadsheet formula injection, duplicates) and builds the table; `validate_against_campaign`
checks the table against the campaign (known ids, requested ids, ids that already have a
label); `aggregate_replicates` averages replicates into one label per id. Up to five problems
are named in one message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deimos.errors import InputError
from deimos.lab.formulas import FORMULA_PREFIXES, NUMBER_RE
from deimos.safe_names import check_safe_id

DEFAULT_VALUE_COLUMN = "donor_usage"
DEFAULT_VALUE_RANGE = (0.0, 1.0)
ID_COLUMN = "id"
REPLICATE_COLUMN = "replicate"

_INT_RE = re.compile(r"[+-]?\d+")
# Characters (or "..") that make an id unacceptable; Cc control characters are \x00-\x1f, \x7f-\x9f.
_SUSPECT_ID_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f/\\]|\.\.")
_NAN_WORDS = frozenset({"nan", "na", "n/a", "null", "none", "-nan", "+nan"})
_MAX_NAMED = 5  # ids or problems named in one message


# --- checking the rows of one measurement file ------------------------------------------------


def rows_to_frame(
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
        and all(not c or NUMBER_RE.fullmatch(c) for c in cells)
    }
    id_col = header.index(ID_COLUMN)
    text_cols = [h for h in header if h not in (ID_COLUMN, value_column, *numeric_cols)]
    problems: list[str] = []
    values: list[float] = []
    for i, line in enumerate(lines):
        row_id = rows[i][id_col]
        reason = id_problem(row_id)
        if reason:
            problems.append(f"{unit} {line}: id {row_id!r} {reason}")
        raw = cells_by_col[value_column][i]
        value, reason = _value_problem(raw, lo, hi)
        values.append(value)
        if reason:
            problems.append(f"{unit} {line}: id {row_id!r}: {value_column} {reason}")
        for h in text_cols:
            cell = cells_by_col[h][i]
            if cell.startswith(FORMULA_PREFIXES) and not NUMBER_RE.fullmatch(cell):
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


def id_problem(row_id: str) -> str | None:
    """Why an id is not acceptable, or None."""
    if row_id and not _SUSPECT_ID_RE.search(row_id) and not row_id.startswith(FORMULA_PREFIXES):
        return None  # the common case, without a pass per character
    # Ids become file names and object keys downstream: the project-wide rule comes first.
    reason = check_safe_id(row_id)
    if reason:
        return reason
    if any(ch.isspace() for ch in row_id):
        return "contains whitespace"
    if row_id.startswith(FORMULA_PREFIXES):
        return f"starts with {row_id[0]!r}, which a spreadsheet would run as a formula"
    return None


def _value_problem(raw: str, lo: float, hi: float) -> tuple[float, str | None]:
    """The parsed value and why it is not acceptable (or None)."""
    if not raw or raw.lower() in _NAN_WORDS:
        return math.nan, "is missing (empty or NaN)"
    if not NUMBER_RE.fullmatch(raw):
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


def check_value_range(value_range: tuple[float, float]) -> tuple[float, float]:
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
