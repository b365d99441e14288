"""Spreadsheet formula injection, in one place: which cells a spreadsheet would run, and how
cells are made safe before a table is written for people to open.

Files going to the lab (plate maps, batch tables) are neutralised (`neutralise_formulas`); files
coming back (`deimos.lab.checks`) are refused when a text cell starts with a formula prefix. A
plain number such as ``-0.5`` or ``+3`` starts with one too, but runs as nothing: `NUMBER_RE`
tells it apart.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from deimos.errors import InputError

# Spreadsheets run a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Plain decimal numbers only: no "1_000", "0x1f", "nan" or "inf", which float() would accept.
NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` in which no text cell can run as a spreadsheet formula.

    Every string cell and string column name that starts with ``=``, ``+``, ``-``, ``@``, a tab
    or a carriage return gets a leading ``'`` (OWASP's advice for CSV injection), so a
    spreadsheet shows it as text. Numbers stay numbers (a negative float is not touched); only
    strings change. The input is not modified.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"neutralise_formulas: expected a DataFrame, got {type(frame).__name__}")
    out = frame.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if (
            pd.api.types.is_numeric_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_datetime64_any_dtype(dtype)
        ):
            continue  # no strings in these columns
        out[col] = out[col].astype(object).map(_neutralise_cell)
    out.columns = pd.Index([_neutralise_cell(c) for c in out.columns])
    return out


def _neutralise_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
