"""Reading the lab's measurement files into checked tables.

Each round the campaign sends a batch of requested sequence ids to the lab; the lab sends back a
measurement file (CSV; ``.xlsx`` too when `openpyxl` is installed) with one row per sequence and
replicate, laid out as `deimos.data.assay_csv` writes it: ``id, donor_usage[, reads_sd1,
reads_total, replicate, ...]``. An annotation team may instead send Label Studio's JSON export
(``.json``, see `deimos.lab.label_studio`): each submitted annotation is then one row, a task's
several annotations being its replicates.

This module reads a file on its own (`read_label_file`): encoding, shape, size; the rows are
then checked by `deimos.lab.checks` (ids, values, duplicates, spreadsheet formula injection).
The campaign checks and the label store are `deimos.lab.checks.validate_against_campaign` and
`deimos.lab.store.LabelStore`.

Line numbers in messages are 1-based physical lines of the file, the header being line 1 (rows
of a spreadsheet for ``.xlsx``); for ``.json`` messages name the 1-based task instead.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deimos.errors import InputError
from deimos.lab.checks import (
    DEFAULT_VALUE_COLUMN,
    DEFAULT_VALUE_RANGE,
    ID_COLUMN,
    check_value_range,
    rows_to_frame,
)
from deimos.lab.label_studio import parse_label_studio_export
from deimos.text_files import UTF8_BOM, decode_utf8, read_limited

logger = logging.getLogger(__name__)

#: Larger label files are refused before they are read: a lab file is kilobytes, so anything
#: this big is a wrong file, and reading it whole could exhaust the worker's memory.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


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
    data = read_file_bytes(Path(path), name, max_bytes)
    return parse_label_bytes(data, name, Path(path).suffix, value_column, value_range)


def parse_label_bytes(
    data: bytes,
    name: str,
    suffix: str,
    value_column: str,
    value_range: tuple[float, float],
) -> pd.DataFrame:
    lo, hi = check_value_range(value_range)
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
    frame = rows_to_frame(header, rows, lines, name, value_column, lo, hi, unit=unit)
    frame.attrs["source_file"] = name
    frame.attrs["sha256"] = hashlib.sha256(data).hexdigest()
    logger.info("read_label_file file=%s n_rows=%d", name, len(frame))
    return frame


def read_file_bytes(path: Path, name: str, max_bytes: int) -> bytes:
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
