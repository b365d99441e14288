"""Label files the store must refuse (or accept): encodings, truncation, size, ids, Label Studio.

Every refused file must give one line naming the file and the reason, and leave the label
store byte-for-byte as it was.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
import pytest

from deimos.data.a5ss_library import generate_library
from deimos.errors import InputError
from deimos.lab.label_studio import label_studio_tasks, write_label_studio_tasks
from deimos.lab.readers import DEFAULT_MAX_BYTES, read_label_file
from deimos.lab.store import IngestReport, LabelStore

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
LIBRARY = generate_library(12, seed=3)
IDS = list(LIBRARY.ids)
SEQ_OF = dict(zip(LIBRARY.ids, LIBRARY.seqs, strict=True))


def _snapshot(store_dir: Path) -> dict[str, bytes]:
    """Every file of the store (temporary files included) with its bytes."""
    return {
        str(p.relative_to(store_dir)): p.read_bytes()
        for p in sorted(store_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _ingest(store: LabelStore, path: Path, **kwargs: Any) -> IngestReport:
    args: dict[str, Any] = {"round_id": 1, "known_ids": IDS, "requested_ids": IDS, "now": NOW}
    args.update(kwargs)
    return store.ingest(path, **args)


@pytest.fixture
def store(tmp_path: Path) -> LabelStore:
    """A store holding one ingested file, so a refusal has something to leave alone."""
    first = tmp_path / "first.csv"
    first.write_text(f"id,donor_usage\n{IDS[0]},0.5\n", encoding="utf-8")
    label_store = LabelStore(tmp_path / "store")
    _ingest(label_store, first)
    return label_store


def _xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _ls_export(values_by_id: dict[str, list[float]], *, value_name: str = "donor_usage") -> bytes:
    """A Label Studio JSON export: our tasks, each annotated once per value, by user 1, 2, .."""
    batch = pd.DataFrame(
        {
            "rank": np.arange(1, len(values_by_id) + 1),
            "id": list(values_by_id),
            "sequence": [SEQ_OF[i] for i in values_by_id],
            "pred_mean": np.full(len(values_by_id), 0.5),
            "pred_sd": np.full(len(values_by_id), 0.1),
        }
    )
    tasks: list[dict[str, Any]] = label_studio_tasks(
        batch, value_name=value_name, model_version="round-1"
    )
    for k, task in enumerate(tasks):
        task["id"] = 500 + k
        task["annotations"] = [
            {
                "id": 10 * k + user,
                "completed_by": user,
                "was_cancelled": False,
                "result": [
                    {
                        "from_name": value_name,
                        "to_name": "sequence",
                        "type": "number",
                        "value": {"number": value},
                    }
                ],
            }
            for user, value in enumerate(values_by_id[task["data"]["id"]], start=1)
        ]
    return json.dumps(tasks, indent=1).encode("utf-8")


GOOD_CSV = f"id,donor_usage,note\n{IDS[1]},0.25,ok\n{IDS[2]},0.75,ok\n"
GOOD_JSON = _ls_export({IDS[1]: [0.2], IDS[2]: [0.6]})
GOOD_XLSX = _xlsx_bytes([["id", "donor_usage"], [IDS[1], 0.25], [IDS[2], 0.75]])

BAD_FILES: list[tuple[str, str, bytes, list[str]]] = [
    ("utf-16 with bom", "lab.csv", GOOD_CSV.encode("utf-16"), ["UTF-16", "save it as UTF-8"]),
    (
        "utf-16 without bom",
        "lab.csv",
        GOOD_CSV.encode("utf-16-le"),
        ["line 1", "NUL bytes", "UTF-16"],
    ),
    ("utf-32", "lab.csv", GOOD_CSV.encode("utf-32"), ["UTF-32"]),
    (
        "latin-1",
        "lab.csv",
        f"id,donor_usage,note\n{IDS[1]},0.25,ok\n{IDS[2]},0.75,café\n".encode("latin-1"),
        ["line 3", "not UTF-8", "invalid byte 0xe9"],
    ),
    (
        "csv cut mid-row",
        "lab.csv",
        GOOD_CSV.encode()[: GOOD_CSV.rindex(",0.75")],
        ["line 3", "truncated last line"],
    ),
    (
        "csv cut inside a quoted cell",
        "lab.csv",
        f'id,donor_usage,note\n{IDS[1]},0.25,"first half'.encode(),
        ["line 2", "malformed CSV"],
    ),
    (
        "xlsx cut in half",
        "lab.xlsx",
        GOOD_XLSX[: len(GOOD_XLSX) // 2],
        ["not a readable .xlsx file", "truncated"],
    ),
    (
        "json cut off",
        "lab.json",
        GOOD_JSON[: len(GOOD_JSON) - 40],
        ["not valid JSON", "cut off"],
    ),
    (
        "wrong columns",
        "lab.csv",
        f"sample,usage\n{IDS[1]},0.25\n".encode(),
        ["line 1", "missing required column(s) ['id', 'donor_usage']"],
    ),
    (
        "json wrong control name",
        "lab.json",
        _ls_export({IDS[1]: [0.2]}, value_name="psi"),
        ["task 1", f"id {IDS[1]!r}", "no 'donor_usage' result (found from_name ['psi'])"],
    ),
    (
        "csv id traversal",
        "lab.csv",
        f"id,donor_usage\n{IDS[1]},0.25\n../../etc/passwd,0.5\n".encode(),
        ["line 3", "'../../etc/passwd'", "path separator"],
    ),
    (
        "csv id backslash",
        "lab.csv",
        f"id,donor_usage\n..\\\\x,0.5\n{IDS[1]},0.25\n".encode(),
        ["line 2", "path separator"],
    ),
    ("csv id dotdot", "lab.csv", b"id,donor_usage\nA..B,0.5\n", ["line 2", "'A..B'", "'..'"]),
    (
        "csv id control",
        "lab.csv",
        b"id,donor_usage\nA\x1bB,0.5\n",
        ["line 2", "control character"],
    ),
    (
        "json id traversal",
        "lab.json",
        GOOD_JSON.replace(IDS[2].encode(), b"../" + IDS[2].encode()),
        ["task 2 (Label Studio id 501)", f"data.id '../{IDS[2]}' contains a path separator"],
    ),
    (
        "json value out of range",
        "lab.json",
        _ls_export({IDS[1]: [0.2, 1.4]}),
        ["task 1", f"id {IDS[1]!r}: donor_usage 1.4 is outside the allowed range"],
    ),
    (
        "json formula annotator",
        "lab.json",
        GOOD_JSON.replace(b'"completed_by": 1', b'"completed_by": {"email": "=cmd|x"}', 1),
        ["task 1", "column 'annotator' starts with '='"],
    ),
    ("formula cell", "lab.csv", f"id,donor_usage,c\n{IDS[1]},0.5,=1+1\n".encode(), ["formula"]),
]


@pytest.mark.parametrize(
    ("file_name", "content", "expected"),
    [c[1:] for c in BAD_FILES],
    ids=[c[0] for c in BAD_FILES],
)
def test_bad_file_names_file_and_reason_and_changes_nothing(
    tmp_path: Path, store: LabelStore, file_name: str, content: bytes, expected: list[str]
) -> None:
    path = tmp_path / file_name
    path.write_bytes(content)
    before = _snapshot(store.path)
    for read in (lambda: read_label_file(path), lambda: _ingest(store, path)):
        with pytest.raises(InputError) as err:
            read()
        message = str(err.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        for part in expected:
            assert part in message, message
    assert _snapshot(store.path) == before
    assert store.labelled_ids() == {IDS[0]}


@pytest.mark.parametrize(
    ("file_name", "content"),
    [("lab.csv", GOOD_CSV.encode()), ("lab.json", GOOD_JSON), ("lab.xlsx", GOOD_XLSX)],
)
def test_oversized_file_is_refused_before_reading(
    tmp_path: Path, store: LabelStore, file_name: str, content: bytes
) -> None:
    path = tmp_path / file_name
    path.write_bytes(content)
    size = len(content)
    assert len(read_label_file(path, max_bytes=size)) == 2  # exactly the limit is fine
    before = _snapshot(store.path)
    with pytest.raises(InputError) as err:
        _ingest(store, path, max_bytes=size - 1)
    assert str(err.value) == (f"{path}: file is {size} bytes, larger than the limit of {size - 1}")
    assert _snapshot(store.path) == before


def test_default_size_limit_is_64_mib() -> None:
    assert DEFAULT_MAX_BYTES == 64 * 1024 * 1024


def test_utf8_bom_is_still_accepted(tmp_path: Path, store: LabelStore) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_CSV.encode())
    report = _ingest(store, path)
    assert report.n_new == 2
    assert store.labels().set_index("id").loc[IDS[2], "value"] == 0.75


def test_label_studio_export_is_ingested_with_provenance(tmp_path: Path, store: LabelStore) -> None:
    path = tmp_path / "ls_round1.json"
    path.write_bytes(GOOD_JSON)
    frame = read_label_file(path)
    assert frame.index.name == "task" and frame.index.tolist() == [1, 2]
    assert list(frame.columns) == ["id", "donor_usage", "replicate", "annotator", "annotation_id"]
    report = _ingest(store, path)
    assert report.n_new == 2 and not report.already_ingested
    table = store.labels().set_index("id")
    assert table.loc[IDS[1], "value"] == 0.2 and table.loc[IDS[2], "value"] == 0.6
    assert table.loc[IDS[1], "source_file"] == "ls_round1.json"
    raw = store.path / "raw" / f"{report.sha256}.json"
    assert raw.read_bytes() == GOOD_JSON
    assert store.ingestions()[-1]["source_file"] == "ls_round1.json"
    assert _ingest(store, path).already_ingested


def test_two_annotators_are_replicates_averaged_by_the_store(
    tmp_path: Path, store: LabelStore
) -> None:
    path = tmp_path / "ls.json"
    path.write_bytes(_ls_export({IDS[3]: [0.3, 0.5], IDS[4]: [0.9]}))
    report = _ingest(store, path)
    assert report.n_new == 2 and report.n_replicate_rows == 2
    table = store.labels().set_index("id")
    assert table.loc[IDS[3], "value"] == pytest.approx(0.4)
    assert table.loc[IDS[3], "n_replicates"] == 2
    assert table.loc[IDS[3], "value_sd"] == pytest.approx(np.std([0.3, 0.5], ddof=1))
    assert table.loc[IDS[4], "n_replicates"] == 1 and np.isnan(table.loc[IDS[4], "value_sd"])


def test_label_studio_export_with_another_value_column(tmp_path: Path) -> None:
    path = tmp_path / "psi.json"
    path.write_bytes(_ls_export({IDS[5]: [42.0]}, value_name="psi"))
    frame = read_label_file(path, value_column="psi", value_range=(0.0, 100.0))
    assert frame["psi"].tolist() == [42.0]


def test_label_studio_tasks_file_round_trips_into_the_store(
    tmp_path: Path, store: LabelStore
) -> None:
    """The file we send out, annotated by Label Studio, comes back in through the store."""
    batch = pd.DataFrame(
        {
            "rank": [1, 2],
            "id": IDS[6:8],
            "sequence": [SEQ_OF[i] for i in IDS[6:8]],
            "pred_mean": [0.4, 0.6],
            "pred_sd": [0.1, 0.2],
            "expected_improvement": [0.05, 0.01],
        }
    )
    out = tmp_path / "tasks.json"
    write_label_studio_tasks(label_studio_tasks(batch, model_version="r1"), out)
    tasks = json.loads(out.read_text(encoding="utf-8"))
    for k, task in enumerate(tasks):
        prediction = task["predictions"][0]["result"][0]
        prediction["value"]["number"] += 0.1  # the annotator corrects the pre-filled value
        task["annotations"] = [{"id": k, "completed_by": 3, "result": [prediction]}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")
    _ingest(store, export, requested_ids=IDS[6:8])
    table = store.labels().set_index("id")
    assert table.loc[IDS[6], "value"] == pytest.approx(0.5)
    assert table.loc[IDS[7], "value"] == pytest.approx(0.7)
