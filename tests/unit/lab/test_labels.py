"""Tests for deimos.lab.readers, .checks and .store: lab files, campaign checks, the store."""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
import pytest

from deimos.data.a5ss_library import generate_library
from deimos.data.assay import measure
from deimos.data.assay_csv import write_measurements_csv
from deimos.errors import InputError
from deimos.lab import store as store_mod
from deimos.lab.checks import aggregate_replicates, validate_against_campaign
from deimos.lab.readers import read_label_file
from deimos.lab.store import LABEL_COLUMNS, IngestReport, LabelStore

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
LIBRARY = generate_library(12, seed=3)
ALL_IDS = list(LIBRARY.ids)


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _assay_file(tmp_path: Path, name: str, ids: list[str], *, replicates: int = 1) -> Path:
    seqs = [LIBRARY.seqs[ALL_IDS.index(i)] for i in ids]
    frame = measure(ids, seqs, seed=7, read_depth=50.0, replicates=replicates)
    return write_measurements_csv(frame, tmp_path / name)


def _snapshot(store_dir: Path) -> dict[str, bytes]:
    """Every file of the store (temporary files included) with its bytes."""
    return {
        str(p.relative_to(store_dir)): p.read_bytes()
        for p in sorted(store_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _ingest(store: LabelStore, path: Path, **kwargs: Any) -> IngestReport:
    args: dict[str, Any] = {
        "round_id": 1,
        "known_ids": ALL_IDS,
        "requested_ids": ALL_IDS,
        "now": NOW,
    }
    args.update(kwargs)
    return store.ingest(path, **args)


# --- read_label_file: good files --------------------------------------------------------------


def test_reads_the_simulated_assay_file(tmp_path: Path) -> None:
    path = _assay_file(tmp_path, "round1.csv", ALL_IDS[:3], replicates=2)
    frame = read_label_file(path)
    expected = pd.read_csv(path)
    assert list(frame.columns) == ["id", "donor_usage", "reads_sd1", "reads_total", "replicate"]
    assert list(frame.index) == [2, 3, 4, 5, 6, 7]  # header is line 1
    assert frame.index.name == "line"
    assert frame["id"].tolist() == expected["id"].tolist()
    np.testing.assert_array_equal(frame["donor_usage"], expected["donor_usage"])
    assert frame["reads_total"].dtype == np.int64
    assert frame.attrs["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert frame.attrs["source_file"] == str(path)


def test_keeps_extra_columns_and_allows_negative_numbers_in_numeric_columns(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        "m.csv",
        "id,donor_usage,delta,note\nNA,0.5,-3,fine\nnull,1,2,-5\nA3,0,-1.5e-2,\n",
    )
    frame = read_label_file(path)
    # Ids that pandas would read as missing values stay strings.
    assert frame["id"].tolist() == ["NA", "null", "A3"]
    assert frame["delta"].tolist() == [-3.0, 2.0, -0.015]
    assert frame["note"].tolist() == ["fine", "-5", ""]


def test_bom_crlf_and_quoted_newlines_keep_line_numbers(tmp_path: Path) -> None:
    text = 'id,donor_usage,note\r\nA1,0.5,"two\r\nlines"\r\n\r\nA2,0.25,x\r\nA3,1.5,y\r\n'
    path = _write(tmp_path, "m.csv", b"\xef\xbb\xbf" + text.encode())
    with pytest.raises(InputError) as err:
        read_label_file(path)
    # A1 spans lines 2-3, line 4 is blank, A2 is line 5, A3 line 6.
    assert "line 6" in str(err.value) and "'A3'" in str(err.value)
    good = _write(tmp_path, "g.csv", b"\xef\xbb\xbf" + text.replace("1.5", "1").encode())
    frame = read_label_file(good)
    assert list(frame.index) == [2, 5, 6]
    assert frame["note"].iloc[0] == "two\r\nlines"


def test_value_range_and_column_are_parameters(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", "id,psi\nA1,42\n")
    frame = read_label_file(path, value_column="psi", value_range=(0.0, 100.0))
    assert frame["psi"].tolist() == [42.0]
    with pytest.raises(InputError, match="outside"):
        read_label_file(path, value_column="psi")
    with pytest.raises(InputError, match="value_range"):
        read_label_file(path, value_column="psi", value_range=(1.0, 0.0))


# --- read_label_file: every error path --------------------------------------------------------

BAD_FILES = [
    ("empty", b"", ["file is empty"]),
    ("header only", b"id,donor_usage\n", ["no data rows"]),
    ("not utf-8", b"id,donor_usage\nA1,0.5\nA\xff2,0.3\n", ["line 3", "not UTF-8", "offset 23"]),
    (
        "truncated last line",
        b"id,donor_usage,replicate\nA1,0.5,1\nA2,0.3",
        ["line 3", "truncated last line"],
    ),
    ("too many fields", b"id,donor_usage\nA1,0.5,7\nA2,0.3\n", ["line 2", "has 3 fields"]),
    ("too few fields", b"id,donor_usage,x\nA1,0.5\nA2,0.3,1\n", ["line 2", "has 2 fields"]),
    (
        "missing value column",
        b"id,usage\nA1,0.5\n",
        ["missing required column", "donor_usage", "['id', 'usage']"],
    ),
    ("missing id column", b"name,donor_usage\nA1,0.5\n", ["missing required column", "'id'"]),
    ("duplicate header", b"id,donor_usage,id\nA1,0.5,x\n", ["line 1", "appears twice"]),
    ("empty value", b"id,donor_usage\nA1,\n", ["line 2", "'A1'", "missing"]),
    ("nan value", b"id,donor_usage\nA1,0.5\nA2,NaN\n", ["line 3", "'A2'", "missing"]),
    ("non-numeric", b"id,donor_usage\nA1,high\n", ["line 2", "not a number", "'high'"]),
    ("inf", b"id,donor_usage\nA1,inf\n", ["line 2", "not a number"]),
    ("above range", b"id,donor_usage\nA1,1.01\n", ["line 2", "outside", "[0.0, 1.0]"]),
    ("below range", b"id,donor_usage\nA1,-0.2\n", ["line 2", "outside"]),
    ("empty id", b"id,donor_usage\n,0.5\n", ["line 2", "is empty"]),
    ("id with space", b"id,donor_usage\nA 1,0.5\n", ["line 2", "'A 1'", "whitespace"]),
    ("id with slash", b"id,donor_usage\na/b,0.5\n", ["line 2", "path separator"]),
    ("id with dotdot", b"id,donor_usage\n..x,0.5\n", ["line 2", "'..'"]),
    ("id with control", b"id,donor_usage\nA\x071,0.5\n", ["line 2", "control character"]),
    ("id formula =", b"id,donor_usage\n=cmd(),0.5\n", ["line 2", "formula"]),
    ("id formula +", b"id,donor_usage\n+A1,0.5\n", ["line 2", "formula"]),
    ("id formula -", b"id,donor_usage\n-2,0.5\n", ["line 2", "formula"]),
    ("id formula @", b"id,donor_usage\n@SUM(A1),0.5\n", ["line 2", "formula"]),
    (
        "text cell formula",
        b'id,donor_usage,note\nA1,0.5,ok\nA2,0.5,=HYPERLINK("http://x")\n',
        ["line 3", "'A2'", "column 'note'", "formula"],
    ),
    (
        "text cell formula -",
        b"id,donor_usage,note\nA1,0.5,-2+3+cmd|' /C calc'!A0\n",
        ["line 2", "column 'note'", "'-'"],
    ),
    (
        "text cell formula @",
        b"id,donor_usage,note\nA1,0.5,ok\nA2,0.5, @SUM(1)\n",
        ["line 3", "formula"],
    ),
    (
        "duplicate id without replicate column",
        b"id,donor_usage\nA1,0.5\nA2,0.1\nA1,0.6\n",
        ["'A1'", "lines 2, 4", "replicate"],
    ),
    (
        "duplicate replicate value",
        b"id,donor_usage,replicate\nA1,0.5,1\nA1,0.6,1\n",
        ["'A1'", "replicate 1 more than once", "lines 2, 3"],
    ),
    (
        "repeated id with empty replicate",
        b"id,donor_usage,replicate\nA1,0.5,1\nA1,0.6,\n",
        ["line 3", "'A1'", "no replicate value"],
    ),
    ("unterminated quote", b'id,donor_usage\nA1,"0.5\n', ["line 2", "malformed CSV"]),
]


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_file_is_rejected_with_file_line_and_reason(
    tmp_path: Path, content: bytes, expected: list[str]
) -> None:
    path = _write(tmp_path, "lab_round1.csv", content)
    with pytest.raises(InputError) as err:
        read_label_file(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_missing_and_directory_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        read_label_file(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="not a regular file"):
        read_label_file(tmp_path)
    path = _write(tmp_path, "big.csv", "id,donor_usage\nA1,0.5\n")
    assert len(read_label_file(path, max_bytes=22)) == 1
    with pytest.raises(InputError, match=r"big\.csv: file is 22 bytes, larger than .* 21"):
        read_label_file(path, max_bytes=21)


def test_unreadable_file_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "locked.csv", "id,donor_usage\nA1,0.5\n")

    def deny(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    # chmod would not stop root, so the refusal is injected.
    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(InputError, match=r"locked\.csv: cannot read file \(Permission denied\)"):
        read_label_file(path)


def test_many_problems_are_named_up_to_five(tmp_path: Path) -> None:
    rows = "".join(f"A{i},2\n" for i in range(8))
    path = _write(tmp_path, "m.csv", "id,donor_usage\n" + rows)
    with pytest.raises(InputError) as err:
        read_label_file(path)
    message = str(err.value)
    assert "line 6" in message and "line 7" not in message
    assert "(and 3 more)" in message


def test_replicates_with_distinct_values_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", "id,donor_usage,replicate\nA1,0.5,a\nA1,0.7,b\nA2,0.1,\n")
    frame = read_label_file(path)
    assert frame["replicate"].tolist() == ["a", "b", ""]


# --- xlsx -------------------------------------------------------------------------------------


def _xlsx(tmp_path: Path, rows: list[list[Any]]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    path = tmp_path / "plate.xlsx"
    workbook.save(path)
    return path


def test_xlsx_is_read_like_csv(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path,
        [["id", "donor_usage", "replicate"], ["A1", 0.25, 1], ["A1", 0.75, 2], ["A2", 1, 1]],
    )
    frame = read_label_file(path)
    assert frame["id"].tolist() == ["A1", "A1", "A2"]
    assert frame["donor_usage"].tolist() == [0.25, 0.75, 1.0]
    assert list(frame.index) == [2, 3, 4]


def test_xlsx_formula_cell_is_rejected(tmp_path: Path) -> None:
    path = _xlsx(tmp_path, [["id", "donor_usage", "note"], ["A1", 0.5, "=1+1"]])
    with pytest.raises(InputError, match=r"plate\.xlsx: line 2: .*formula"):
        read_label_file(path)


def test_xlsx_without_openpyxl_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "plate.xlsx", b"PK\x03\x04 not really")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # makes `import openpyxl` fail
    with pytest.raises(InputError, match=r"plate\.xlsx: .*openpyxl"):
        read_label_file(path)


def test_corrupt_xlsx_is_an_input_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "plate.xlsx", b"PK\x03\x04 not really")
    with pytest.raises(InputError, match=r"plate\.xlsx: not a readable \.xlsx"):
        read_label_file(path)


# --- campaign checks and replicate averaging --------------------------------------------------


def _frame(tmp_path: Path, ids: list[str]) -> pd.DataFrame:
    body = "".join(f"{i},0.5\n" for i in ids)
    return read_label_file(_write(tmp_path, "batch7.csv", "id,donor_usage\n" + body))


def test_unknown_ids_are_rejected_naming_up_to_five(tmp_path: Path) -> None:
    frame = _frame(tmp_path, [ALL_IDS[0], *[f"X{i}" for i in range(7)]])
    with pytest.raises(InputError) as err:
        validate_against_campaign(frame, known_ids=ALL_IDS, requested_ids=ALL_IDS)
    message = str(err.value)
    assert "batch7.csv" in message and "7 ids not in the campaign's library" in message
    assert "X0, X1, X2, X3, X4 (and 2 more)" in message and "X5" not in message


def test_unrequested_ids_are_rejected_unless_allowed(tmp_path: Path) -> None:
    frame = _frame(tmp_path, ALL_IDS[:3])
    requested = pd.Series(ALL_IDS[:2], index=[10, 20])  # a Series: its values count, not index
    with pytest.raises(InputError, match=f"1 id not requested in the open round: {ALL_IDS[2]}"):
        validate_against_campaign(frame, known_ids=ALL_IDS, requested_ids=requested)
    validate_against_campaign(
        frame, known_ids=ALL_IDS, requested_ids=requested, allow_unrequested=True
    )


def test_already_labelled_ids_are_rejected_unless_from_the_same_file(tmp_path: Path) -> None:
    frame = _frame(tmp_path, ALL_IDS[:3])
    other = {ALL_IDS[1]: "0" * 64}
    with pytest.raises(InputError, match=f"already labelled by another file: {ALL_IDS[1]}"):
        validate_against_campaign(frame, known_ids=ALL_IDS, requested_ids=ALL_IDS, labelled=other)
    same = {ALL_IDS[1]: frame.attrs["sha256"]}
    validate_against_campaign(frame, known_ids=ALL_IDS, requested_ids=ALL_IDS, labelled=same)


def test_aggregate_replicates_matches_numpy() -> None:
    frame = pd.DataFrame(
        {
            "id": ["b", "a", "b", "b", "a", "c"],
            "donor_usage": [0.1, 0.4, 0.3, 0.8, 0.6, 0.9],
            "replicate": [1, 1, 2, 3, 2, 1],
        }
    )
    out = aggregate_replicates(frame)
    assert out["id"].tolist() == ["b", "a", "c"]  # order of first appearance
    np.testing.assert_allclose(out["value"], [0.4, 0.5, 0.9])
    assert out["n_replicates"].tolist() == [3, 2, 1]
    np.testing.assert_allclose(
        out["value_sd"][:2], [np.std([0.1, 0.3, 0.8], ddof=1), np.std([0.4, 0.6], ddof=1)]
    )
    assert np.isnan(out["value_sd"].iloc[2])


# --- LabelStore -------------------------------------------------------------------------------


def test_ingest_averages_replicates_and_keeps_provenance(tmp_path: Path) -> None:
    path = _assay_file(tmp_path, "round1.csv", ALL_IDS[:4], replicates=3)
    raw = pd.read_csv(path)
    store = LabelStore(tmp_path / "store")
    report = _ingest(store, path, requested_ids=ALL_IDS[:4])
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert report == IngestReport(n_new=4, n_replicate_rows=12, sha256=sha, already_ingested=False)
    table = store.labels()
    assert tuple(table.columns) == LABEL_COLUMNS
    assert table["id"].tolist() == ALL_IDS[:4]
    means = raw.groupby("id", sort=False)["donor_usage"].mean()
    sds = raw.groupby("id", sort=False)["donor_usage"].std()
    np.testing.assert_allclose(table["value"], means.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(table["value_sd"], sds.to_numpy(), rtol=1e-12)
    assert table["n_replicates"].tolist() == [3] * 4
    assert set(table["source_sha256"]) == {sha}
    assert set(table["source_file"]) == {"round1.csv"}
    assert table["round"].tolist() == [1] * 4
    assert set(table["ingested_at"]) == {"2025-03-01T12:00:00+00:00"}
    assert store.labelled_ids() == set(ALL_IDS[:4])
    (entry,) = store.ingestions()
    assert entry == {
        "sha256": sha,
        "source_file": "round1.csv",
        "n_rows": 12,
        "n_labels": 4,
        "round": 1,
        "ingested_at": "2025-03-01T12:00:00+00:00",
    }
    # The raw file is kept byte for byte, extras (read counts) included.
    assert (store.path / "raw" / f"{sha}.csv").read_bytes() == path.read_bytes()


def test_reingest_same_bytes_is_a_no_op(tmp_path: Path) -> None:
    path = _assay_file(tmp_path, "round1.csv", ALL_IDS[:3], replicates=2)
    store = LabelStore(tmp_path / "store")
    first = _ingest(store, path)
    before = _snapshot(store.path)
    again = _ingest(store, path, round_id=2)
    copy = _write(tmp_path, "renamed.csv", path.read_bytes())
    renamed = _ingest(store, copy)
    assert again == renamed == IngestReport(0, 0, first.sha256, already_ingested=True)
    assert _snapshot(store.path) == before


def test_second_file_appends_and_keeps_old_rows_byte_for_byte(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "store")
    _ingest(store, _assay_file(tmp_path, "r1.csv", ALL_IDS[:3]), round_id=1)
    before = store.labels_path.read_bytes()
    report = _ingest(store, _assay_file(tmp_path, "r2.csv", ALL_IDS[3:5]), round_id="r2")
    after = store.labels_path.read_bytes()
    assert after.startswith(before) and report.n_new == 2 and report.n_replicate_rows == 0
    table = store.labels()
    assert table["id"].tolist() == ALL_IDS[:5]
    assert table["round"].tolist() == ["1", "1", "1", "r2", "r2"]  # mixed rounds read as text
    assert [e["source_file"] for e in store.ingestions()] == ["r1.csv", "r2.csv"]


def _bad_ingestions(tmp_path: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    return [
        ("bad value", _write(tmp_path, "v.csv", f"id,donor_usage\n{ALL_IDS[5]},7\n"), {}),
        ("unknown id", _write(tmp_path, "u.csv", "id,donor_usage\nZZZ_1,0.5\n"), {}),
        (
            "unrequested",
            _write(tmp_path, "q.csv", f"id,donor_usage\n{ALL_IDS[6]},0.5\n"),
            {"requested_ids": ALL_IDS[:6]},
        ),
        (
            "already labelled",
            _write(tmp_path, "l.csv", f"id,donor_usage\n{ALL_IDS[0]},0.4\n{ALL_IDS[7]},0.5\n"),
            {},
        ),
        ("formula", _write(tmp_path, "f.csv", f"id,donor_usage,c\n{ALL_IDS[8]},0.5,=1\n"), {}),
        (
            "naive time",
            _assay_file(tmp_path, "t.csv", ALL_IDS[9:10]),
            {"now": datetime(2025, 1, 1)},
        ),
        ("bad round", _assay_file(tmp_path, "b.csv", ALL_IDS[9:10]), {"round_id": -1}),
    ]


def test_rejected_files_leave_the_store_byte_identical(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "store")
    _ingest(store, _assay_file(tmp_path, "r1.csv", ALL_IDS[:3], replicates=2))
    before = _snapshot(store.path)
    assert {"labels.csv", "ingestions.jsonl"} <= set(before)
    for label, path, kwargs in _bad_ingestions(tmp_path):
        with pytest.raises(InputError) as err:
            _ingest(store, path, **kwargs)
        assert (
            path.name in str(err.value) or "round_id" in str(err.value) or "now" in str(err.value)
        )
        assert _snapshot(store.path) == before, label
    already = next(p for name, p, _ in _bad_ingestions(tmp_path) if name == "already labelled")
    with pytest.raises(InputError, match=f"already labelled by another file: {ALL_IDS[0]}$"):
        _ingest(store, already)


def test_rejected_first_file_creates_no_store(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "store")
    with pytest.raises(InputError):
        _ingest(store, _write(tmp_path, "v.csv", "id,donor_usage\nA1,x\n"))
    assert not store.path.exists()
    assert store.labels().empty and tuple(store.labels().columns) == LABEL_COLUMNS
    assert store.labelled_ids() == set() and store.ingestions() == []


def test_unrequested_ids_accepted_with_the_flag(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "store")
    path = _assay_file(tmp_path, "r1.csv", ALL_IDS[:3])
    with pytest.raises(InputError, match="not requested"):
        _ingest(store, path, requested_ids=ALL_IDS[:1])
    report = _ingest(store, path, requested_ids=ALL_IDS[:1], allow_unrequested=True)
    assert report.n_new == 3 and store.labelled_ids() == set(ALL_IDS[:3])


def test_crash_between_table_and_log_does_not_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LabelStore(tmp_path / "store")
    _ingest(store, _assay_file(tmp_path, "r1.csv", ALL_IDS[:2]))
    log_before = store.log_path.read_bytes()
    path = _assay_file(tmp_path, "r2.csv", ALL_IDS[2:5], replicates=2)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("simulated crash before the log was written")

    with monkeypatch.context() as patch:
        patch.setattr(store_mod, "_write_log", crash)
        with pytest.raises(OSError, match="simulated crash"):
            _ingest(store, path, round_id=2)
    assert store.labelled_ids() == set(ALL_IDS[:5])  # the table landed ...
    assert store.log_path.read_bytes() == log_before  # ... the log did not
    table_after_crash = store.labels_path.read_bytes()

    report = _ingest(store, path, round_id=2)
    assert report.already_ingested and report.n_new == 0
    assert store.labels_path.read_bytes() == table_after_crash
    assert len(store.labels()) == 5
    entries = store.ingestions()
    assert [e["source_file"] for e in entries] == ["r1.csv", "r2.csv"]
    assert entries[1]["recovered"] is True
    assert entries[1]["n_rows"] == 6 and entries[1]["n_labels"] == 3 and entries[1]["round"] == 2


def test_crash_then_other_file_also_repairs_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LabelStore(tmp_path / "store")
    with monkeypatch.context() as patch:
        patch.setattr(store_mod, "_write_log", lambda *a, **k: (_ for _ in ()).throw(OSError()))
        with pytest.raises(OSError):
            _ingest(store, _assay_file(tmp_path, "r1.csv", ALL_IDS[:2]))
    _ingest(store, _assay_file(tmp_path, "r2.csv", ALL_IDS[2:4]))
    assert [e["source_file"] for e in store.ingestions()] == ["r1.csv", "r2.csv"]
    assert store.labels()["id"].tolist() == ALL_IDS[:4]


def test_failed_table_write_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LabelStore(tmp_path / "store")
    _ingest(store, _assay_file(tmp_path, "r1.csv", ALL_IDS[:2]))
    before = {k: v for k, v in _snapshot(store.path).items() if not k.startswith("raw/")}
    real_replace = os.replace

    def failing_replace(src: str, dst: str | Path) -> None:
        if Path(dst).name == "labels.csv":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(store_mod.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        _ingest(store, _assay_file(tmp_path, "r2.csv", ALL_IDS[2:4]))
    after = {k: v for k, v in _snapshot(store.path).items() if not k.startswith("raw/")}
    assert after == before  # no temporary file left behind either


def test_corrupt_store_is_reported(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "store")
    store.path.mkdir()
    store.labels_path.write_text("id,value\nA1,0.5\n")
    with pytest.raises(InputError, match=r"labels\.csv: corrupt label table"):
        store.labels()
    store.labels_path.unlink()
    store.log_path.write_text('{"sha256": "x"}\nnot json\n')
    with pytest.raises(InputError, match=r"ingestions\.jsonl: line 2: corrupt"):
        _ingest(store, _assay_file(tmp_path, "r1.csv", ALL_IDS[:1]))
    assert not store.labels_path.exists()


# --- concurrency (real processes) -------------------------------------------------------------


def _ingest_in_process(store_dir: str, path: str, barrier: Any) -> None:
    if barrier is not None:
        barrier.wait(timeout=60)
    LabelStore(store_dir).ingest(
        path, round_id=1, known_ids=ALL_IDS, requested_ids=ALL_IDS, now=NOW
    )


@pytest.mark.slow
def test_concurrent_processes_ingesting_different_files_all_land(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    store = LabelStore(tmp_path / "store")
    groups = [ALL_IDS[0:4], ALL_IDS[4:8], ALL_IDS[8:12]]
    paths = [_assay_file(tmp_path, f"r{k}.csv", g, replicates=2) for k, g in enumerate(groups)]
    barrier = ctx.Barrier(len(paths))
    procs = [
        ctx.Process(target=_ingest_in_process, args=(str(store.path), str(p), barrier))
        for p in paths
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)
    table = store.labels()
    assert sorted(table["id"]) == sorted(ALL_IDS) and len(table) == len(ALL_IDS)
    entries = store.ingestions()
    assert sorted(e["source_file"] for e in entries) == [p.name for p in paths]
    # Table and log were written in the same order: each file's rows form one block.
    files_in_table_order = list(dict.fromkeys(table["source_file"]))
    assert files_in_table_order == [e["source_file"] for e in entries]
    assert not [p for p in store.path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_ingest_waits_for_the_store_lock(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    store = LabelStore(tmp_path / "store")
    store.path.mkdir()
    path = _assay_file(tmp_path, "r1.csv", ALL_IDS[:2])
    with (store.path / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = ctx.Process(target=_ingest_in_process, args=(str(store.path), str(path), None))
        proc.start()
        time.sleep(3.0)  # long enough for the child to import and block on the lock
        assert proc.is_alive() and not store.labels_path.exists()
        fcntl.flock(lock, fcntl.LOCK_UN)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert store.labelled_ids() == set(ALL_IDS[:2])
    assert json.loads(store.log_path.read_text())["source_file"] == "r1.csv"
