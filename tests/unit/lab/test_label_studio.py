"""Tests for deimos.lab.label_studio: tasks out, export back, every malformed export."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deimos.errors import InputError
from deimos.lab.label_studio import (
    label_studio_tasks,
    labeling_config,
    read_label_studio_export,
    write_label_studio_tasks,
)


def _batch(*, ei: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "rank": [1, 2, 3],
            "id": ["s1", "s2", "s3"],
            "sequence": ["ACGT", "CCGG", "TTAA"],
            "pred_mean": np.asarray([0.25, 0.5, 0.75], dtype=np.float32),
            "pred_sd": [0.1, 0.2, 0.3],
        }
    )
    if ei:
        frame["expected_improvement"] = [0.03, 0.02, 0.01]
    return frame


def _annotation(value: Any, *, user: Any = 7, ann_id: Any = 101, **extra: Any) -> dict[str, Any]:
    return {
        "id": ann_id,
        "completed_by": user,
        "was_cancelled": False,
        "result": [
            {
                "from_name": "donor_usage",
                "to_name": "sequence",
                "type": "number",
                "value": {"number": value},
            }
        ],
        **extra,
    }


def _export(tmp_path: Path, tasks: Any, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


def _annotated(tasks: list[dict[str, Any]], per_task: list[list[dict[str, Any]]]) -> list[Any]:
    """Tasks as Label Studio exports them: its own id, and the annotations added."""
    out = copy.deepcopy(tasks)
    for k, (task, task_annotations) in enumerate(zip(out, per_task, strict=True)):
        task["id"] = 1000 + k
        task["annotations"] = task_annotations
    return out


# --- tasks out --------------------------------------------------------------------------------


def test_tasks_hold_data_and_a_prefilled_prediction() -> None:
    tasks = label_studio_tasks(_batch(), model_version="deimos-round-2")
    assert len(tasks) == 3
    first = tasks[0]
    assert first["data"] == {
        "id": "s1",
        "sequence": "ACGT",
        "rank": 1,
        "pred_mean": 0.25,
        "pred_sd": 0.1,
        "expected_improvement": 0.03,
    }
    assert first["predictions"] == [
        {
            "model_version": "deimos-round-2",
            "score": 0.03,
            "result": [
                {
                    "from_name": "donor_usage",
                    "to_name": "sequence",
                    "type": "number",
                    "value": {"number": 0.25},
                }
            ],
        }
    ]
    assert [t["data"]["rank"] for t in tasks] == [1, 2, 3]
    # Plain Python values: strict JSON (no NaN) and no numpy types.
    json.dumps(tasks, allow_nan=False)
    assert type(first["data"]["pred_mean"]) is float and type(first["data"]["rank"]) is int


def test_score_is_pred_sd_without_expected_improvement_and_names_are_parameters() -> None:
    tasks = label_studio_tasks(
        _batch(ei=False), value_name="psi", to_name="seq", model_version="m1"
    )
    assert "expected_improvement" not in tasks[1]["data"]
    prediction = tasks[1]["predictions"][0]
    assert prediction["score"] == 0.2
    assert prediction["result"][0]["from_name"] == "psi"
    assert prediction["result"][0]["to_name"] == "seq"


def test_labeling_config_matches_the_tasks() -> None:
    config = labeling_config(value_name="psi", to_name="seq")
    assert '<Text name="seq" value="$sequence"/>' in config
    assert '<Number name="psi" toName="seq"' in config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.drop(columns=["pred_sd", "rank"]), r"lacks column\(s\) \['rank', 'pred_sd'\]"),
        (lambda b: b.assign(id=["s1", "../x", "s3"]), r"row 1 \(id '\.\./x'\): id contains a path"),
        (lambda b: b.assign(id=["s1", "s2", "s1"]), r"row 2 \(id 's1'\): id repeats row 0"),
        (lambda b: b.assign(pred_mean=[0.1, np.nan, 0.2]), r"row 1 .*pred_mean must be finite"),
        (
            lambda b: b.assign(expected_improvement=[0.1, 0.2, np.inf]),
            r"row 2 .*expected_improvement must be finite",
        ),
        (lambda b: b.assign(rank=[1.0, 2.5, 3.0]), r"row 0 .*rank must be an integer"),
        (lambda b: b.assign(sequence=["ACGT", "", "A"]), r"row 1 .*sequence must be a non-empty"),
    ],
)
def test_bad_batches_are_refused(change: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        label_studio_tasks(change(_batch()), model_version="m")


def test_bad_names_and_model_version_are_refused() -> None:
    with pytest.raises(InputError, match="model_version must be a non-empty string"):
        label_studio_tasks(_batch(), model_version=" ")
    with pytest.raises(InputError, match="value_name must be a name"):
        label_studio_tasks(_batch(), value_name='x" onload="', model_version="m")


def test_written_tasks_are_sorted_indented_and_reproducible(tmp_path: Path) -> None:
    tasks = label_studio_tasks(_batch(), model_version="m")
    write_label_studio_tasks(tasks, tmp_path / "a.json")
    write_label_studio_tasks(tasks, tmp_path / "b.json")
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads(text) == tasks
    assert text.endswith("]\n") and text.startswith('[\n  {\n    "data": {')
    assert text.index('"expected_improvement"') < text.index('"id"') < text.index('"pred_mean"')


def test_tasks_that_are_not_json_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(InputError, match=r"tasks\.json: tasks cannot be written as JSON"):
        write_label_studio_tasks([{"data": {"x": float("nan")}}], path)
    with pytest.raises(InputError, match="task 0 must be a dict with a 'data' dict"):
        write_label_studio_tasks([{"predictions": []}], path)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["tasks.json"]


# --- export back ------------------------------------------------------------------------------


def test_round_trip_tasks_to_export_to_labels(tmp_path: Path) -> None:
    tasks = label_studio_tasks(_batch(), model_version="m")
    write_label_studio_tasks(tasks, tmp_path / "tasks.json")
    imported = json.loads((tmp_path / "tasks.json").read_text(encoding="utf-8"))
    exported = _annotated(
        imported,
        [
            [
                _annotation(0.3, user={"id": 7, "email": "ann@lab.org"}, ann_id=1),
                _annotation(0.4, user=9, ann_id=2),
            ],
            [_annotation(0.9, ann_id=3, was_cancelled=True)],  # skipped: no label
            [_annotation(1, ann_id=4)],
        ],
    )
    frame = read_label_studio_export(_export(tmp_path, exported))
    assert list(frame.columns) == ["id", "donor_usage", "replicate", "annotator", "annotation_id"]
    assert frame["id"].tolist() == ["s1", "s1", "s3"]
    assert frame["donor_usage"].dtype == np.float64
    assert frame["donor_usage"].tolist() == [0.3, 0.4, 1.0]
    assert frame["replicate"].tolist() == [1, 2, 1]
    assert frame["annotator"].tolist() == ["ann@lab.org", "9", "7"]
    assert frame["annotation_id"].tolist() == ["1", "2", "4"]
    assert frame.index.name == "task" and frame.index.tolist() == [1, 1, 3]


def test_unannotated_tasks_are_not_labels_and_optional_columns_are_optional(
    tmp_path: Path,
) -> None:
    annotation = {"result": [_annotation(0.5)["result"][0]]}  # no id, user or was_cancelled
    tasks = [{"data": {"id": "a"}}, {"data": {"id": "b"}, "annotations": [annotation]}]
    frame = read_label_studio_export(_export(tmp_path, tasks))
    assert list(frame.columns) == ["id", "donor_usage", "replicate"]
    assert frame["id"].tolist() == ["b"] and frame.index.tolist() == [2]


def test_textarea_and_choices_numbers_and_other_value_names(tmp_path: Path) -> None:
    def item(kind: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"result": [{"from_name": "psi", "to_name": "seq", "type": kind, "value": value}]}

    tasks = [
        {"data": {"id": "a"}, "annotations": [item("textarea", {"text": [" 0.25 "]})]},
        {"data": {"id": "b"}, "annotations": [item("choices", {"choices": ["1e-2"]})]},
        {"data": {"id": 17}, "annotations": [item("number", {"number": 3})]},
    ]
    frame = read_label_studio_export(_export(tmp_path, tasks), value_name="psi")
    assert frame["psi"].tolist() == [0.25, 0.01, 3.0]
    assert frame["id"].tolist() == ["a", "b", "17"]


def _good_task() -> dict[str, Any]:
    return {"id": 55, "data": {"id": "s1"}, "annotations": [_annotation(0.5)]}


def _with(**changes: Any) -> list[Any]:
    task = _good_task()
    for key, value in changes.items():
        if key == "data":
            task["data"] = value
        elif key == "annotation":
            task["annotations"] = [value]
        else:
            task[key] = value
    return [_good_task() | {"data": {"id": "s0"}}, task]


def _result(value: Any, *, kind: str = "number", name: str = "donor_usage") -> dict[str, Any]:
    return {"result": [{"from_name": name, "to_name": "sequence", "type": kind, "value": value}]}


BAD_EXPORTS: list[tuple[str, bytes | Any, list[str]]] = [
    ("not json", b"id,donor_usage\ns1,0.5\n", ["line 1 column 1", "not valid JSON"]),
    (
        "truncated",
        json.dumps([_good_task(), _good_task()]).encode()[:-30],
        ["not valid JSON", "cut off"],
    ),
    ("empty", b"  \n", ["file is empty"]),
    ("utf-16", json.dumps([_good_task()]).encode("utf-16"), ["UTF-16", "save it as UTF-8"]),
    ("utf-16 no bom", json.dumps([_good_task()]).encode("utf-16-le"), ["line 1", "NUL bytes"]),
    ("latin-1", '[{"data": {"id": "café"}}]'.encode("latin-1"), ["line 1", "not UTF-8", "0xe9"]),
    ("object", _good_task(), ["expected a JSON list of tasks", "JSON object", "one task?"]),
    ("number", 3, ["expected a JSON list of tasks", "got a number"]),
    ("no tasks", [], ["holds no tasks"]),
    ("task not object", [_good_task(), "s2"], ["task 2:", "is a string, not an object"]),
    ("no data", [_good_task(), {"id": 9}], ["task 2 (Label Studio id 9)", "no 'data' object"]),
    ("no data.id", _with(data={"seq": "ACGT"}), ["task 2 (Label Studio id 55)", "no data.id"]),
    ("data.id list", _with(data={"id": ["s1"]}), ["task 2", "data.id must be a string"]),
    ("data.id traversal", _with(data={"id": "../../x"}), ["task 2", "path separator"]),
    ("data.id dotdot", _with(data={"id": "a..b"}), ["task 2", "data.id 'a..b' contains '..'"]),
    ("data.id control", _with(data={"id": "a\u0007"}), ["task 2", "control character"]),
    ("data.id empty", _with(data={"id": ""}), ["task 2", "is empty"]),
    (
        "duplicate data.id",
        [_good_task(), _good_task()],
        ["task 2 (id 's1')", "already used by task 1"],
    ),
    ("annotations object", _with(annotations={}), ["task 2 (id 's1')", "is a JSON object, not a"]),
    ("annotation not object", _with(annotation=3), ["task 2", "annotation 1", "not an object"]),
    ("no result", _with(annotation={"id": 1}), ["annotation 1", "no 'result' list"]),
    (
        "empty result",
        _with(annotation={"result": []}),
        ["task 2 (id 's1'): annotation 1", "no 'donor_usage' result"],
    ),
    (
        "other control",
        _with(annotation=_result({"number": 0.5}, name="psi")),
        ["no 'donor_usage' result (found from_name ['psi'])"],
    ),
    (
        "two numbers",
        _with(annotation={"result": _result({"number": 1})["result"] * 2}),
        ["annotation 1", "has 2 'donor_usage' results"],
    ),
    ("no number", _with(annotation=_result({"text": ["x"]})), ["no value.number"]),
    ("value not object", _with(annotation=_result(0.5)), ["has no 'value' object"]),
    ("string number", _with(annotation=_result({"number": "0.5"})), ["not a number: '0.5'"]),
    ("bool number", _with(annotation=_result({"number": True})), ["not a number: True"]),
    ("null number", _with(annotation=_result({"number": None})), ["not a number: None"]),
    (
        "nan number",
        b'[{"data": {"id": "s1"}, "annotations": [{"result": [{"from_name": "donor_usage", '
        b'"type": "number", "value": {"number": NaN}}]}]}]',
        ["task 1 (id 's1'): annotation 1", "donor_usage is not finite: nan"],
    ),
    (
        "text not a number",
        _with(annotation=_result({"text": ["high"]}, kind="textarea")),
        ["donor_usage is not a number: 'high'"],
    ),
    (
        "two texts",
        _with(annotation=_result({"text": ["1", "2"]}, kind="textarea")),
        ["textarea result must hold one text"],
    ),
    (
        "rating",
        _with(annotation=_result({"rating": 3}, kind="rating")),
        ["has type 'rating'; expected 'number'"],
    ),
    (
        "was_cancelled string",
        _with(annotation=_annotation(0.5, was_cancelled="no")),
        ["annotation 1", "'was_cancelled' is 'no'"],
    ),
    (
        "all skipped",
        [
            {"data": {"id": "a"}},
            {"data": {"id": "b"}, "annotations": [_annotation(0.5) | {"was_cancelled": True}]},
        ],
        ["no submitted annotations in 2 task(s)"],
    ),
    ("deep", b"[" * 100_000 + b"]" * 100_000, ["nested too deeply"]),
]


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in BAD_EXPORTS], ids=[c[0] for c in BAD_EXPORTS]
)
def test_bad_export_is_rejected_naming_file_task_and_reason(
    tmp_path: Path, content: Any, expected: list[str]
) -> None:
    path = tmp_path / "ls_export.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(InputError) as err:
        read_label_studio_export(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_missing_and_oversized_exports(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.json: file not found"):
        read_label_studio_export(tmp_path / "nope.json")
    with pytest.raises(InputError, match="not a regular file"):
        read_label_studio_export(tmp_path)
    path = _export(tmp_path, [_good_task()])
    size = path.stat().st_size
    assert len(read_label_studio_export(path, max_bytes=size)) == 1
    with pytest.raises(InputError, match=rf"file is {size} bytes, larger than the limit of 10"):
        read_label_studio_export(path, max_bytes=10)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([_good_task()]).encode())
    assert read_label_studio_export(path)["donor_usage"].tolist() == [0.5]


def test_value_name_may_not_clash_with_output_columns(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="value_name 'replicate' clashes"):
        read_label_studio_export(_export(tmp_path, [_good_task()]), value_name="replicate")
