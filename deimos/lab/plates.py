"""Plate maps for the wet lab: which sequence goes into which well of which plate.

A batch (rank order) is laid out over 96-well (rows A-H x columns 1-12) or 384-well (rows A-P x
columns 1-24) plates, filled row by row (A1, A2, .., A12, B1, ..) or column by column (A1, B1,
.., H1, A2, ..). Control wells are left empty on every plate, and a batch larger than one plate
spills onto plate 2, 3, ...

The map is written as CSV and XLSX for people to open in a spreadsheet, so every text cell
that a spreadsheet would run as a formula is neutralised first
(`deimos.lab.formulas.neutralise_formulas`), and the XLSX bytes are reproducible (fixed document
and zip timestamps), because DVC and audits compare files by their bytes.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from deimos.atomic import write_bytes_atomic
from deimos.checks import check_int
from deimos.errors import InputError
from deimos.lab.formulas import neutralise_formulas

logger = logging.getLogger(__name__)

#: Plate formats: wells -> (rows, columns).
PLATE_FORMATS: dict[int, tuple[int, int]] = {96: (8, 12), 384: (16, 24)}
ORDERS = ("row", "column")
MAP_COLUMNS = ("plate", "well", "rank", "id", "sequence", "pred_mean", "pred_sd")
EI_COLUMN = "expected_improvement"
SHEET_NAME = "plate_map"
#: The time written into the XLSX (document properties and zip entries), so bytes repeat.
XLSX_TIMESTAMP = datetime(2000, 1, 1)

_ROW_LETTERS = "ABCDEFGHIJKLMNOP"
# "B7", "b07": a row letter and a column number; leading zeros and lowercase are accepted.
_WELL_RE = re.compile(r"([A-Za-z])0*([1-9][0-9]*)")


@dataclass(frozen=True)
class PlateLayout:
    """How a batch is laid out on plates.

    Attributes:
        wells: 96 (rows A-H x columns 1-12) or 384 (rows A-P x columns 1-24).
        order: ``"row"`` fills A1, A2, .., A12, B1, ..; ``"column"`` fills A1, B1, .., H1, A2, ..
        control_wells: wells left empty on every plate, e.g. ``("A1", "H12")``; stored in
            canonical form (uppercase, no leading zeros: ``"a01"`` becomes ``"A1"``).

    Raises:
        InputError: another plate size, another order, or a control well that is not a well
            of the format, repeated, or that leaves no well for samples.
    """

    wells: int = 96
    order: Literal["row", "column"] = "row"
    control_wells: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.wells, bool) or self.wells not in PLATE_FORMATS:
            raise InputError(
                f"plate wells must be one of {sorted(PLATE_FORMATS)}, got {self.wells!r}"
            )
        if self.order not in ORDERS:
            raise InputError(f"plate order must be 'row' or 'column', got {self.order!r}")
        controls = self.control_wells
        if isinstance(controls, str) or not isinstance(controls, list | tuple):
            raise InputError(f"control_wells must be a list of well names, got {controls!r}")
        canonical: list[str] = []
        for well in controls:
            name = self._canonical_well(well)
            if name in canonical:
                raise InputError(f"control well {well!r} is listed twice (as {name})")
            canonical.append(name)
        if len(canonical) >= self.wells:
            raise InputError(
                f"control_wells take all {self.wells} wells of the plate; none left for samples"
            )
        object.__setattr__(self, "control_wells", tuple(canonical))

    def _canonical_well(self, well: Any) -> str:
        n_rows, n_cols = PLATE_FORMATS[self.wells]
        match = _WELL_RE.fullmatch(well.strip()) if isinstance(well, str) else None
        if match is None:
            raise InputError(f"control well {well!r} is not a well name like 'A1' or 'H12'")
        row, col = match.group(1).upper(), int(match.group(2))
        if row not in _ROW_LETTERS[:n_rows] or col > n_cols:
            raise InputError(
                f"control well {well!r} is not on a {self.wells}-well plate (rows "
                f"A-{_ROW_LETTERS[n_rows - 1]}, columns 1-{n_cols})"
            )
        return f"{row}{col}"

    @property
    def n_rows(self) -> int:
        return PLATE_FORMATS[self.wells][0]

    @property
    def n_cols(self) -> int:
        return PLATE_FORMATS[self.wells][1]

    def sample_wells(self) -> tuple[str, ...]:
        """The wells samples go into on each plate, in fill order (control wells left out)."""
        rows = _ROW_LETTERS[: self.n_rows]
        cols = range(1, self.n_cols + 1)
        if self.order == "row":
            names = [f"{r}{c}" for r in rows for c in cols]
        else:
            names = [f"{r}{c}" for c in cols for r in rows]
        controls = set(self.control_wells)
        return tuple(name for name in names if name not in controls)


def well_positions(n: int, layout: PlateLayout) -> list[tuple[int, str]]:
    """Plate and well of each of `n` samples, in fill order.

    Args:
        n: number of samples (>= 0).
        layout: plate size, fill order and control wells.

    Returns:
        ``[(plate, well), ...]`` of length `n`: plates numbered from 1, wells named like
        ``"B7"``; control wells are skipped and the samples spill onto the next plate when one
        is full.
    """
    n = check_int(n, "number of samples", minimum=0)
    wells = layout.sample_wells()
    per_plate = len(wells)
    return [(k // per_plate + 1, wells[k % per_plate]) for k in range(int(n))]


def plate_map(batch: pd.DataFrame, layout: PlateLayout) -> pd.DataFrame:
    """Give each sequence of a batch its plate and well.

    Args:
        batch: the round's batch in rank order: columns ``rank, id, sequence, pred_mean,
            pred_sd`` and optionally ``expected_improvement`` (others are dropped).
        layout: plate size, fill order and control wells.

    Returns:
        Columns ``plate`` (int64, from 1), ``well`` (str), ``rank, id, sequence, pred_mean,
        pred_sd`` [, ``expected_improvement``], one row per batch row in the same order, with
        a fresh 0..n-1 index.

    Raises:
        InputError: missing columns (named), repeated ids, or ranks not in increasing order.
    """
    if not isinstance(batch, pd.DataFrame):
        raise InputError(f"plate_map: batch must be a DataFrame, got {type(batch).__name__}")
    if not isinstance(layout, PlateLayout):
        raise InputError(f"plate_map: layout must be a PlateLayout, got {type(layout).__name__}")
    needed = MAP_COLUMNS[2:]
    missing = [c for c in needed if c not in batch.columns]
    if missing:
        raise InputError(f"plate_map: batch lacks column(s) {missing}; found {list(batch.columns)}")
    repeated = batch["id"][batch["id"].duplicated()]
    if not repeated.empty:
        raise InputError(f"plate_map: id {repeated.iloc[0]!r} appears more than once in the batch")
    # The fill order is the lab's pick order: a shuffled batch would scatter the top picks.
    if not batch["rank"].is_monotonic_increasing:
        raise InputError("plate_map: batch is not in rank order (sort it by 'rank' first)")
    columns = [*needed, *([EI_COLUMN] if EI_COLUMN in batch.columns else [])]
    positions = well_positions(len(batch), layout)
    out = batch.loc[:, columns].reset_index(drop=True)
    out.insert(0, "well", pd.Series([w for _, w in positions], dtype=object))
    out.insert(0, "plate", np.asarray([p for p, _ in positions], dtype=np.int64))
    return out


def write_plate_map(
    frame: pd.DataFrame,
    csv_path: str | os.PathLike[str],
    xlsx_path: str | os.PathLike[str],
) -> None:
    """Write a plate map as CSV and XLSX (one sheet, ``plate_map``), formulas neutralised.

    Both files are built in memory first and then each replaces its path atomically, so bad
    content writes neither. The same frame always gives the same bytes: the XLSX's document
    properties and zip entries carry `XLSX_TIMESTAMP`, not the time of writing.

    Args:
        frame: the plate map (`plate_map`'s output, or any table).
        csv_path: the CSV file (UTF-8, ``\\n`` line ends, no index).
        xlsx_path: the XLSX file; NaN cells are left empty.

    Raises:
        InputError: a cell openpyxl cannot store (e.g. a control character in a string).
    """
    safe = neutralise_formulas(frame)
    csv_bytes = safe.to_csv(index=False, lineterminator="\n").encode("utf-8")
    xlsx_bytes = _xlsx_bytes(safe, str(xlsx_path))
    write_bytes_atomic(csv_path, csv_bytes)
    write_bytes_atomic(xlsx_path, xlsx_bytes)
    logger.info("write_plate_map csv=%s xlsx=%s n_rows=%d", csv_path, xlsx_path, len(frame))


def _xlsx_bytes(frame: pd.DataFrame, name: str) -> bytes:
    import openpyxl
    from openpyxl.utils.exceptions import IllegalCharacterError
    from openpyxl.xml.functions import tostring

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook always has one sheet
    sheet.title = SHEET_NAME
    rows = [list(frame.columns), *frame.itertuples(index=False, name=None)]
    for row_no, row in enumerate(rows, start=1):
        try:
            sheet.append([_xlsx_value(v) for v in row])
        except IllegalCharacterError as err:
            raise InputError(
                f"{name}: row {row_no} holds a character a spreadsheet cannot store ({err})"
            ) from err
    workbook.properties.created = XLSX_TIMESTAMP
    buffer = io.BytesIO()
    workbook.save(buffer)
    # save() stamps the current time into docProps/core.xml; put the fixed one back, and give
    # every zip entry a fixed date, so that equal tables give equal bytes.
    workbook.properties.modified = XLSX_TIMESTAMP
    core_xml = tostring(workbook.properties.to_tree())
    out = io.BytesIO()
    with (
        zipfile.ZipFile(buffer) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = core_xml if info.filename == "docProps/core.xml" else src.read(info)
            entry = zipfile.ZipInfo(info.filename, date_time=XLSX_TIMESTAMP.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, data)
    return out.getvalue()


def _xlsx_value(value: Any) -> Any:
    """A cell value openpyxl writes as intended: Python scalars, NaN/NA as an empty cell."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
