"""An annotator queue in Label Studio's formats: tasks out (with predictions), labels back.

The labelling config these tasks are made for holds the sequence as text and one number per
task (see `labeling_config`)::

    <View>
      <Text name="sequence" value="$sequence"/>
      <Number name="donor_usage" toName="sequence" step="0.001"/>
    </View>

Tasks go out in Label Studio's import format: a JSON list of ``{"data": {...}, "predictions":
[...]}``; each prediction pre-fills the number with the model's predicted mean, so annotators
correct a value rather than type one, and its ``score`` (the expected improvement, else the
predictive sd) lets the Data Manager sort tasks by how much the model wants them.

Labels come back in Label Studio's JSON export format: the same list, each task now carrying
``annotations``, each annotation a ``result`` list whose item for the Number control reads
``{"from_name": "donor_usage", "to_name": "sequence", "type": "number", "value": {"number":
0.42}}``. A task's several annotations (different annotators, or one annotator twice) are
replicate measurements of that sequence. Skipped work is not a label: tasks with no annotation,
and annotations marked ``was_cancelled`` (the annotator pressed Skip), give no row. A
``<TextArea>`` or single ``<Choices>`` result whose text is a plain decimal number is read as
the number too. The "JSON-MIN" and CSV exports are not read: export as "JSON".
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deimos.atomic import write_text_atomic
from deimos.errors import InputError
from deimos.lab.formulas import NUMBER_RE
from deimos.safe_names import check_safe_id
from deimos.text_files import decode_utf8, read_limited

logger = logging.getLogger(__name__)

DEFAULT_VALUE_NAME = "donor_usage"
DEFAULT_TO_NAME = "sequence"
#: Larger exports are refused before they are read (same limit as `deimos.lab.readers`).
MAX_EXPORT_BYTES = 64 * 1024 * 1024
TASK_COLUMNS = ("rank", "id", "sequence", "pred_mean", "pred_sd")
EI_COLUMN = "expected_improvement"
REPLICATE_COLUMN = "replicate"
ANNOTATOR_COLUMN = "annotator"
ANNOTATION_ID_COLUMN = "annotation_id"

_TEXT_RESULT_KEYS = {"textarea": "text", "choices": "choices"}
# How messages name a JSON value's type; bool before number, as a bool is an int.
_JSON_TYPES = (
    (dict, "JSON object"),
    (list, "JSON list"),
    (str, "string"),
    (bool, "boolean"),
    (int | float, "number"),
)


def labeling_config(*, value_name: str = DEFAULT_VALUE_NAME, to_name: str = DEFAULT_TO_NAME) -> str:
    """The Label Studio labelling config (XML) that `label_studio_tasks` output is made for."""
    _check_name(value_name, "value_name")
    _check_name(to_name, "to_name")
    return (
        "<View>\n"
        f'  <Text name="{to_name}" value="$sequence"/>\n'
        f'  <Number name="{value_name}" toName="{to_name}" step="0.001"/>\n'
        "</View>\n"
    )


# --- tasks out --------------------------------------------------------------------------------


def label_studio_tasks(
    batch: pd.DataFrame,
    *,
    value_name: str = DEFAULT_VALUE_NAME,
    to_name: str = DEFAULT_TO_NAME,
    model_version: str,
) -> list[dict[str, Any]]:
    """One Label Studio task per batch row, pre-filled with the model's prediction.

    Args:
        batch: the round's batch, rank order, columns ``rank, id, sequence, pred_mean,
            pred_sd`` and optionally ``expected_improvement``; other columns are ignored.
        value_name: name of the ``<Number>`` control (the label's column in the label store).
        to_name: name of the ``<Text>`` object showing the sequence.
        model_version: shown in Label Studio next to each prediction (e.g. the round).

    Returns:
        ``[{"data": {"id", "sequence", "rank", "pred_mean", "pred_sd"[,
        "expected_improvement"]}, "predictions": [{"model_version", "score", "result": [{
        "from_name": value_name, "to_name": to_name, "type": "number", "value": {"number":
        pred_mean}}]}]}, ...]``, one per row in batch order; plain Python str/int/float values.
        ``score`` is the expected improvement when the batch has it, else ``pred_sd``.

    Raises:
        InputError: missing columns (named), an unsafe or repeated id, a rank that is not an
            integer, or a prediction that is not a finite number (row and id named).
    """
    _check_name(value_name, "value_name")
    _check_name(to_name, "to_name")
    if not isinstance(model_version, str) or not model_version.strip():
        raise InputError(f"model_version must be a non-empty string, got {model_version!r}")
    if not isinstance(batch, pd.DataFrame):
        raise InputError(f"batch must be a DataFrame, got {type(batch).__name__}")
    missing = [c for c in TASK_COLUMNS if c not in batch.columns]
    if missing:
        raise InputError(
            f"label_studio_tasks: batch lacks column(s) {missing}; found {list(batch.columns)}"
        )
    has_ei = EI_COLUMN in batch.columns
    numeric = ["pred_mean", "pred_sd", *([EI_COLUMN] if has_ei else [])]
    tasks: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    # to_dict gives Python scalars, which json can write (numpy's float32 it cannot).
    records = batch.loc[:, [*TASK_COLUMNS, *([EI_COLUMN] if has_ei else [])]].to_dict("records")
    for row_idx, record in enumerate(records):
        row_id = record["id"]
        where = f"label_studio_tasks: row {row_idx} (id {row_id!r})"
        reason = check_safe_id(row_id)
        if reason:
            raise InputError(f"{where}: id {reason}")
        prev = seen.setdefault(row_id, row_idx)
        if prev != row_idx:
            raise InputError(f"{where}: id repeats row {prev}")
        sequence = record["sequence"]
        if not isinstance(sequence, str) or not sequence:
            raise InputError(f"{where}: sequence must be a non-empty string, got {sequence!r}")
        rank = record["rank"]
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer):
            raise InputError(f"{where}: rank must be an integer, got {rank!r}")
        data: dict[str, Any] = {"id": row_id, "sequence": sequence, "rank": int(rank)}
        for col in numeric:
            data[col] = _finite(record[col], f"{where}: {col}")
        score = data[EI_COLUMN] if has_ei else data["pred_sd"]
        result = {
            "from_name": value_name,
            "to_name": to_name,
            "type": "number",
            "value": {"number": data["pred_mean"]},
        }
        prediction = {"model_version": model_version, "score": score, "result": [result]}
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(f"{where} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{where} must be finite, got {number!r}")
    return number


def _check_name(name: str, what: str) -> None:
    # Names go into the XML config and result items: keep to what Label Studio names look like.
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
        raise InputError(
            f"{what} must be a name of letters, digits, '_', '.', '-' (not starting with a "
            f"digit), got {name!r}"
        )


def write_label_studio_tasks(
    tasks: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]
) -> None:
    """Write tasks as Label Studio import JSON, atomically and byte-for-byte reproducibly.

    Keys are sorted and the indent fixed, so the same tasks always give the same bytes (DVC
    and audits compare bytes); non-ASCII text is kept as UTF-8.

    Raises:
        InputError: `tasks` is not a list of dicts, or holds NaN/inf or a value JSON cannot
            represent; nothing is written then.
    """
    if isinstance(tasks, str | bytes) or not isinstance(tasks, Sequence):
        raise InputError(f"{path}: tasks must be a list of dicts, got {type(tasks).__name__}")
    for k, task in enumerate(tasks):
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
            raise InputError(f"{path}: task {k} must be a dict with a 'data' dict")
    try:
        text = json.dumps(
            list(tasks), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: tasks cannot be written as JSON ({err})") from err
    write_text_atomic(path, text + "\n")
    logger.info("write_label_studio_tasks path=%s n_tasks=%d", path, len(tasks))


# --- labels back ------------------------------------------------------------------------------


def read_label_studio_export(
    path: str | os.PathLike[str],
    *,
    value_name: str = DEFAULT_VALUE_NAME,
    max_bytes: int = MAX_EXPORT_BYTES,
) -> pd.DataFrame:
    """Read the labels of a Label Studio JSON export: one row per submitted annotation.

    Args:
        path: the export (``Export -> JSON`` in Label Studio), UTF-8 with or without a BOM.
        value_name: the ``from_name`` of the ``<Number>`` control that holds the label.
        max_bytes: larger files are refused before they are read.

    Returns:
        Columns ``id`` (str, the task's ``data.id``), `value_name` (float64), ``replicate``
        (int64, 1..k over an id's annotations in file order), then ``annotator`` (str; the
        annotator's email, else user id) and ``annotation_id`` (str) when any annotation has
        them ("" where one lacks them). Index: the 1-based task number, named ``task``. Tasks
        without annotations and cancelled (skipped) annotations give no row.

    Raises:
        InputError: naming the file, the task (number and id) and the reason, for: a missing,
            unreadable or too large file; bytes that are not UTF-8; invalid or truncated JSON;
            not a list of tasks; a task without ``data.id``, with an unsafe id or an id already
            used by another task; an annotation without the `value_name` result, with two of
            them, or with a value that is not a finite number; no submitted annotation at all.
    """
    name = str(path)
    data = read_limited(Path(path), name, max_bytes)
    return parse_label_studio_export(data, name, value_name=value_name)


def parse_label_studio_export(
    data: bytes, name: str, *, value_name: str = DEFAULT_VALUE_NAME
) -> pd.DataFrame:
    """`read_label_studio_export` on bytes already read; `name` names the file in messages."""
    _check_name(value_name, "value_name")
    if value_name in ("id", REPLICATE_COLUMN, ANNOTATOR_COLUMN, ANNOTATION_ID_COLUMN):
        raise InputError(f"value_name {value_name!r} clashes with an output column")
    tasks = _load_json(data, name)
    if not isinstance(tasks, list):
        hint = " (one task? export the project as JSON)" if isinstance(tasks, dict) else ""
        raise InputError(
            f"{name}: expected a JSON list of tasks (Label Studio's JSON export), got a "
            f"{_json_type(tasks)}{hint}"
        )
    if not tasks:
        raise InputError(f"{name}: the export holds no tasks")
    # One (id, value, replicate, annotator, annotation id) per submitted annotation.
    rows: list[tuple[str, float, int, str, str]] = []
    task_numbers: list[int] = []
    has_annotation_id = False
    first_task_of: dict[str, int] = {}
    n_replicates: dict[str, int] = {}
    for task_no, task in enumerate(tasks, start=1):
        task_id = _task_id(task, task_no, name)
        prev = first_task_of.setdefault(task_id, task_no)
        if prev != task_no:
            raise InputError(
                f"{name}: task {task_no} (id {task_id!r}): id already used by task {prev}; "
                "annotate one task per sequence (its annotations are the replicates)"
            )
        annotations = task.get("annotations")
        if annotations is None:
            continue
        if not isinstance(annotations, list):
            raise InputError(
                f"{name}: task {task_no} (id {task_id!r}): 'annotations' is a "
                f"{_json_type(annotations)}, not a list"
            )
        for ann_no, annotation in enumerate(annotations, start=1):
            where = f"{name}: task {task_no} (id {task_id!r}): annotation {ann_no}"
            if not isinstance(annotation, dict):
                raise InputError(f"{where}: is a {_json_type(annotation)}, not an object")
            cancelled = annotation.get("was_cancelled", False)
            if not isinstance(cancelled, bool):
                raise InputError(f"{where}: 'was_cancelled' is {cancelled!r}, not true/false")
            if cancelled:
                continue  # the annotator skipped the task: no measurement
            value = _annotation_value(annotation, value_name, where)
            n_replicates[task_id] = n_replicates.get(task_id, 0) + 1
            annotator = _annotator(annotation.get("completed_by"))
            raw_id = annotation.get("id")
            has_annotation_id |= raw_id is not None
            annotation_id = "" if raw_id is None else str(raw_id)
            rows.append((task_id, value, n_replicates[task_id], annotator, annotation_id))
            task_numbers.append(task_no)
    if not rows:
        raise InputError(
            f"{name}: no submitted annotations in {len(tasks)} task(s) (all unannotated or skipped)"
        )
    ids, values, replicates, annotators, annotation_ids = (list(c) for c in zip(*rows, strict=True))
    columns: dict[str, Any] = {
        "id": pd.Series(ids, dtype=object),
        value_name: np.asarray(values, dtype=np.float64),
        REPLICATE_COLUMN: np.asarray(replicates, dtype=np.int64),
    }
    if any(annotators):
        columns[ANNOTATOR_COLUMN] = pd.Series(annotators, dtype=object)
    if has_annotation_id:
        columns[ANNOTATION_ID_COLUMN] = pd.Series(annotation_ids, dtype=object)
    frame = pd.DataFrame(columns)
    frame.index = pd.Index(task_numbers, name="task")
    logger.info(
        "read_label_studio_export file=%s n_tasks=%d n_annotations=%d", name, len(tasks), len(ids)
    )
    return frame


def _load_json(data: bytes, name: str) -> Any:
    text = decode_utf8(data, name)
    if not text.strip():
        raise InputError(f"{name}: file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        cut = " (the file ends early: was it cut off?)" if err.pos >= len(text.rstrip()) else ""
        raise InputError(
            f"{name}: line {err.lineno} column {err.colno}: not valid JSON ({err.msg}){cut}"
        ) from err
    except RecursionError as err:
        raise InputError(f"{name}: JSON is nested too deeply to be a Label Studio export") from err


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((kind for t, kind in _JSON_TYPES if isinstance(value, t)), type(value).__name__)


def _task_id(task: Any, task_no: int, name: str) -> str:
    """The task's ``data.id``, checked."""
    if not isinstance(task, dict):
        raise InputError(f"{name}: task {task_no}: is a {_json_type(task)}, not an object")
    # Label Studio's own task id (an int) helps find the task in its UI when data is broken.
    ls_id = f" (Label Studio id {task['id']})" if isinstance(task.get("id"), int) else ""
    data = task.get("data")
    if not isinstance(data, dict):
        raise InputError(
            f"{name}: task {task_no}{ls_id}: has no 'data' object (is this a JSON-MIN or CSV "
            "export? export as JSON)"
        )
    if "id" not in data:
        raise InputError(f"{name}: task {task_no}{ls_id}: has no data.id (the sequence id)")
    raw = data["id"]
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InputError(
            f"{name}: task {task_no}{ls_id}: data.id must be a string, got {_json_type(raw)} "
            f"{raw!r}"
        )
    task_id = str(raw)
    reason = check_safe_id(task_id)
    if reason:
        raise InputError(f"{name}: task {task_no}{ls_id}: data.id {task_id!r} {reason}")
    return task_id


def _annotation_value(annotation: dict[str, Any], value_name: str, where: str) -> float:
    result = annotation.get("result")
    if not isinstance(result, list):
        raise InputError(f"{where}: has no 'result' list")
    items = [r for r in result if isinstance(r, dict) and r.get("from_name") == value_name]
    if not items:
        found = sorted({str(r.get("from_name")) for r in result if isinstance(r, dict)})
        raise InputError(
            f"{where}: has no {value_name!r} result (found from_name {found}); was the task "
            "submitted without a value?"
        )
    if len(items) > 1:
        raise InputError(f"{where}: has {len(items)} {value_name!r} results; expected one")
    item = items[0]
    kind = item.get("type")
    value = item.get("value")
    if not isinstance(value, dict):
        raise InputError(f"{where}: {value_name} result has no 'value' object")
    if kind == "number":
        if "number" not in value:
            raise InputError(f"{where}: {value_name} result has no value.number")
        number = value["number"]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InputError(f"{where}: {value_name} is not a number: {number!r}")
    elif kind in _TEXT_RESULT_KEYS:
        key = _TEXT_RESULT_KEYS[kind]
        texts = value.get(key)
        if not (isinstance(texts, list) and len(texts) == 1 and isinstance(texts[0], str)):
            raise InputError(f"{where}: {value_name} {kind} result must hold one text")
        text = texts[0].strip()
        if not NUMBER_RE.fullmatch(text):
            raise InputError(f"{where}: {value_name} is not a number: {texts[0]!r}")
        number = float(text)
    else:
        raise InputError(
            f"{where}: {value_name} result has type {kind!r}; expected 'number' (a <Number> "
            "control)"
        )
    if not math.isfinite(number):
        raise InputError(f"{where}: {value_name} is not finite: {number!r}")
    return float(number)


def _annotator(completed_by: Any) -> str:
    """Who annotated: an email when the export expanded the user, else the user id."""
    if completed_by is None or isinstance(completed_by, bool):
        return ""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email:
            return email
        user_id = completed_by.get("id")
        return "" if user_id is None else str(user_id)
    return str(completed_by)
