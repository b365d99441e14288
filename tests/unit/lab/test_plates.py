"""Tests for deimos.lab.plates: wells, plate maps, formula neutralisation, CSV/XLSX files."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from deimos.errors import InputError
from deimos.lab.formulas import neutralise_formulas
from deimos.lab.plates import (
    XLSX_TIMESTAMP,
    PlateLayout,
    plate_map,
    well_positions,
    write_plate_map,
)


def _batch(n: int, *, ei: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "rank": np.arange(1, n + 1),
            "id": [f"s{k}" for k in range(n)],
            "sequence": ["ACGT"] * n,
            "pred_mean": np.linspace(0.1, 0.9, n),
            "pred_sd": np.full(n, 0.05),
        }
    )
    if ei:
        frame["expected_improvement"] = np.linspace(0.5, 0.1, n)
    return frame


# --- well positions ---------------------------------------------------------------------------


def test_96_row_major_fills_a_row_then_the_next() -> None:
    wells = [w for _, w in well_positions(14, PlateLayout())]
    assert wells == [f"A{c}" for c in range(1, 13)] + ["B1", "B2"]
    assert well_positions(96, PlateLayout())[-1] == (1, "H12")


def test_96_column_major_fills_a_column_then_the_next() -> None:
    wells = [w for _, w in well_positions(10, PlateLayout(order="column"))]
    assert wells == ["A1", "B1", "C1", "D1", "E1", "F1", "G1", "H1", "A2", "B2"]
    assert well_positions(96, PlateLayout(order="column"))[-1] == (1, "H12")


def test_384_plate_has_rows_a_to_p_and_24_columns() -> None:
    row_major = well_positions(384, PlateLayout(wells=384))
    assert [w for _, w in row_major[22:26]] == ["A23", "A24", "B1", "B2"]
    assert row_major[-1] == (1, "P24")
    assert len({w for _, w in row_major}) == 384
    column_major = well_positions(18, PlateLayout(wells=384, order="column"))
    assert [w for _, w in column_major[14:18]] == ["O1", "P1", "A2", "B2"]


def test_control_wells_are_skipped_on_every_plate() -> None:
    layout = PlateLayout(control_wells=("A1", "H12"))
    positions = well_positions(96, layout)
    assert positions[0] == (1, "A2")
    assert all(w not in ("A1", "H12") for _, w in positions)
    assert positions[93] == (1, "H11")  # 94 sample wells per plate
    assert positions[94:] == [(2, "A2"), (2, "A3")]


def test_samples_spill_onto_the_next_plates() -> None:
    positions = well_positions(200, PlateLayout())
    assert positions[95] == (1, "H12")
    assert positions[96] == (2, "A1")
    assert positions[192] == (3, "A1")
    assert [p for p, _ in positions].count(2) == 96


def test_no_samples_no_positions_and_bad_counts() -> None:
    assert well_positions(0, PlateLayout()) == []
    for bad in (-1, 2.0, True):
        with pytest.raises(InputError, match="number of samples must be a non-negative integer"):
            well_positions(bad, PlateLayout())  # type: ignore[arg-type]


# --- layout validation ------------------------------------------------------------------------


def test_control_wells_are_stored_in_canonical_form() -> None:
    assert PlateLayout(control_wells=("a01", " H12", "b7")).control_wells == ("A1", "H12", "B7")
    assert PlateLayout(wells=384, control_wells=["P24"]).control_wells == ("P24",)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wells": 48}, "plate wells must be one of [96, 384], got 48"),
        ({"wells": True}, "plate wells must be one of"),
        ({"order": "diagonal"}, "plate order must be 'row' or 'column', got 'diagonal'"),
        ({"control_wells": "A1"}, "control_wells must be a list"),
        ({"control_wells": ("I1",)}, "control well 'I1' is not on a 96-well plate (rows A-H"),
        ({"control_wells": ("A13",)}, "columns 1-12"),
        ({"wells": 384, "control_wells": ("Q1",)}, "not on a 384-well plate (rows A-P"),
        ({"control_wells": ("A0",)}, "control well 'A0' is not a well name"),
        ({"control_wells": ("1A",)}, "control well '1A' is not a well name"),
        ({"control_wells": (7,)}, "control well 7 is not a well name"),
        ({"control_wells": ("A1", "a01")}, "control well 'a01' is listed twice (as A1)"),
    ],
)
def test_bad_layouts_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as err:
        PlateLayout(**kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_control_wells_may_not_take_the_whole_plate() -> None:
    every = tuple(w for _, w in well_positions(96, PlateLayout()))
    assert len(PlateLayout(control_wells=every[:-1]).sample_wells()) == 1
    with pytest.raises(InputError, match="take all 96 wells"):
        PlateLayout(control_wells=every)


# --- plate_map --------------------------------------------------------------------------------


def test_plate_map_columns_and_positions() -> None:
    batch = _batch(5)
    batch["extra"] = "dropped"
    out = plate_map(batch, PlateLayout(control_wells=("A1",)))
    assert list(out.columns) == [
        "plate", "well", "rank", "id", "sequence", "pred_mean", "pred_sd", "expected_improvement",
    ]  # fmt: skip
    assert out["well"].tolist() == ["A2", "A3", "A4", "A5", "A6"]
    assert out["plate"].dtype == np.int64 and out["plate"].tolist() == [1] * 5
    assert out["id"].tolist() == batch["id"].tolist()
    np.testing.assert_array_equal(out["pred_mean"], batch["pred_mean"])


def test_plate_map_without_expected_improvement_and_with_spill() -> None:
    out = plate_map(_batch(98, ei=False).set_index(np.arange(100, 198)), PlateLayout())
    assert "expected_improvement" not in out.columns
    assert out.index.tolist() == list(range(98))
    assert out.iloc[-2:][["plate", "well"]].values.tolist() == [[2, "A1"], [2, "A2"]]


def test_plate_map_bad_batches() -> None:
    with pytest.raises(InputError, match=r"lacks column\(s\) \['sequence', 'pred_sd'\]"):
        plate_map(_batch(3).drop(columns=["sequence", "pred_sd"]), PlateLayout())
    with pytest.raises(InputError, match="not in rank order"):
        plate_map(_batch(3).iloc[::-1], PlateLayout())
    repeated = _batch(3)
    repeated.loc[2, "id"] = "s0"
    with pytest.raises(InputError, match="id 's0' appears more than once"):
        plate_map(repeated, PlateLayout())


# --- formula neutralisation -------------------------------------------------------------------


def test_neutralise_formulas_prefixes_text_and_leaves_numbers() -> None:
    frame = pd.DataFrame(
        {
            "text": ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "ok", "a=b", "-5"],
            "number": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, 8.0, -9.0],
            "count": np.arange(-4, 5),
        }
    )
    frame["=evil"] = "x"
    out = neutralise_formulas(frame)
    expected = ["'=1+1", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "ok", "a=b", "'-5"]
    assert out["text"].tolist() == expected
    assert out["number"].dtype == np.float64 and out["number"].tolist() == frame["number"].tolist()
    assert out["count"].dtype == frame["count"].dtype
    assert list(out.columns) == ["text", "number", "count", "'=evil"]
    assert frame["text"].iloc[0] == "=1+1" and "=evil" in frame.columns  # input untouched


def test_neutralise_formulas_handles_mixed_and_string_dtypes() -> None:
    frame = pd.DataFrame(
        {"mixed": ["=x", 3, None], "s": pd.Series(["@a", "b", None], dtype="string")}
    )
    out = neutralise_formulas(frame)
    assert out["mixed"].tolist() == ["'=x", 3, None]
    assert out["s"].tolist()[:2] == ["'@a", "b"]


# --- writing ----------------------------------------------------------------------------------


def _evil_map() -> pd.DataFrame:
    batch = _batch(3)
    batch.loc[1, "id"] = '=HYPERLINK("http://evil","x")'
    batch.loc[2, "sequence"] = "@SUM(1)"
    return plate_map(batch, PlateLayout())


def test_written_csv_has_neutralised_cells(tmp_path: Path) -> None:
    write_plate_map(_evil_map(), tmp_path / "map.csv", tmp_path / "map.xlsx")
    with open(tmp_path / "map.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "plate", "well", "rank", "id", "sequence", "pred_mean", "pred_sd", "expected_improvement",
    ]  # fmt: skip
    assert rows[2][3] == '\'=HYPERLINK("http://evil","x")'
    assert rows[3][4] == "'@SUM(1)"
    assert rows[1][:5] == ["1", "A1", "1", "s0", "ACGT"]
    assert float(rows[1][5]) == pytest.approx(0.1)


def test_written_xlsx_has_text_cells_not_formulas(tmp_path: Path) -> None:
    write_plate_map(_evil_map(), tmp_path / "map.csv", tmp_path / "map.xlsx")
    workbook = openpyxl.load_workbook(tmp_path / "map.xlsx")
    assert workbook.sheetnames == ["plate_map"]
    sheet = workbook["plate_map"]
    assert sheet["D3"].value == '\'=HYPERLINK("http://evil","x")'
    assert sheet["D3"].data_type == "s"
    assert sheet["E4"].value == "'@SUM(1)" and sheet["E4"].data_type == "s"
    assert sheet["A2"].value == 1 and sheet["B2"].value == "A1"
    assert sheet["F2"].value == pytest.approx(0.1) and sheet["F2"].data_type == "n"
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_xlsx_bytes_are_reproducible(tmp_path: Path) -> None:
    table = _evil_map()
    write_plate_map(table, tmp_path / "a.csv", tmp_path / "a.xlsx")
    write_plate_map(table, tmp_path / "b.csv", tmp_path / "b.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # Equal bytes above could be luck within one second; the stamps show they cannot drift.
    with zipfile.ZipFile(tmp_path / "a.xlsx") as archive:
        stamps = {info.date_time for info in archive.infolist()}
        core = archive.read("docProps/core.xml").decode("utf-8")
    assert stamps == {XLSX_TIMESTAMP.timetuple()[:6]}
    assert core.count("2000-01-01T00:00:00Z") == 2  # created and modified
    props = openpyxl.load_workbook(tmp_path / "a.xlsx").properties
    assert props.created == XLSX_TIMESTAMP and props.modified == XLSX_TIMESTAMP


def test_nan_cells_are_empty_in_xlsx(tmp_path: Path) -> None:
    table = plate_map(_batch(2), PlateLayout())
    table.loc[0, "pred_sd"] = np.nan
    write_plate_map(table, tmp_path / "m.csv", tmp_path / "m.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "m.xlsx")["plate_map"]
    assert sheet["G2"].value is None and sheet["G3"].value == pytest.approx(0.05)


def test_unwritable_cell_writes_neither_file(tmp_path: Path) -> None:
    csv_path, xlsx_path = tmp_path / "m.csv", tmp_path / "m.xlsx"
    write_plate_map(plate_map(_batch(2), PlateLayout()), csv_path, xlsx_path)
    before = (csv_path.read_bytes(), xlsx_path.read_bytes())
    bad = plate_map(_batch(2), PlateLayout())
    bad.loc[1, "sequence"] = "AC\x01GT"
    with pytest.raises(InputError, match=r"m\.xlsx: row 3 holds a character"):
        write_plate_map(bad, csv_path, xlsx_path)
    assert (csv_path.read_bytes(), xlsx_path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m.xlsx"]
