"""The benchmark's settings as data: the YAML task tables and `BenchmarkParams`."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from deimos.errors import InputError
from deimos.experiments.benchmark import (
    SCALE_NAMES,
    SCALES,
    TASKS_DIR,
    BenchmarkTask,
    load_task_table,
)
from deimos.experiments.params import BenchmarkParams, load_benchmark_params

ROOT = Path(__file__).resolve().parents[3]

DIGITS = {
    "kind": "classification",
    "dataset": "digits_7v9",
    "n_initial": 10,
    "batch_size": 1,
    "n_rounds": 10,
    "pool_size": None,
    "n_masks": 20,
    "epochs": 30,
    "threshold": 0.97,
    "conv_channels": [8, 16],
}


def _table(tmp_path: Path, tasks: object) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(tasks, sort_keys=False))
    return path


def test_task_table_lists_tasks_in_file_order_with_their_key_as_name(tmp_path):
    path = _table(tmp_path, {"b": DIGITS, "a": {**DIGITS, "hidden_units": [4, 4]}})
    tasks = load_task_table(path)
    assert list(tasks) == ["b", "a"]
    assert tasks["a"] == BenchmarkTask(name="a", **{**DIGITS, "hidden_units": (4, 4)})
    assert tasks["a"].hidden_units == (4, 4) and tasks["b"].conv_channels == (8, 16)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({**DIGITS, "n_layers": 3}, "unknown parameter 'digits.n_layers'"),
        ({**DIGITS, "lr": -0.1}, "digits.lr: Input should be greater than 0 (got -0.1)"),
        ({**DIGITS, "lr": "5e-3"}, "digits.lr: Input should be a valid number (got '5e-3')"),
        ({**DIGITS, "n_masks": 1}, "digits.n_masks: Input should be greater than or equal to 2"),
        ({**DIGITS, "hidden_units": [8, 0]}, "digits.hidden_units[1]: Input should be greater"),
        ({**DIGITS, "dataset": "mnist"}, "digits.dataset: must be one of splicing_sim"),
        ({**DIGITS, "kind": "regression"}, "digits: dataset 'digits_7v9' is classification"),
        ({**DIGITS, "pool_size": 5}, "digits: pool_size=5 is smaller than n_initial"),
        ({k: v for k, v in DIGITS.items() if k != "epochs"}, "digits.epochs: Field required"),
        ({**DIGITS, "name": "other"}, "digits.name: a task's name is its key"),
        ({**DIGITS, "tau_calibration": "weekly"}, "digits.tau_calibration: Input should be"),
        ({**DIGITS, "sample_labelled": "yes"}, "digits.sample_labelled: Input should be a valid"),
        ({**DIGITS, "splicing_channels": [32, 64]}, "digits.splicing_channels[2]: Field required"),
        ([1, 2], "digits: expected a mapping of task fields, got list"),
    ],
)
def test_bad_task_table_is_refused_naming_the_file_and_task_field(tmp_path, fields, message):
    path = _table(tmp_path, {"digits": fields})
    with pytest.raises(InputError, match=re.escape(f"{path}: {message}")):
        load_task_table(path)


def test_task_table_that_is_not_a_mapping_or_not_yaml_is_refused(tmp_path):
    path = tmp_path / "tasks.yaml"
    for text, message in (
        ("[]\n", "expected a mapping of task names"),
        ("digits: [1\n", "not valid YAML"),
    ):
        path.write_text(text)
        with pytest.raises(InputError, match=re.escape(f"{path}: {message}")):
            load_task_table(path)
    with pytest.raises(InputError, match="no such task table"):
        load_task_table(tmp_path / "missing.yaml")


def test_scales_are_the_packaged_tables_and_ship_with_the_package():
    assert tuple(SCALES) == SCALE_NAMES
    for scale in SCALE_NAMES:
        assert SCALES[scale] == load_task_table(TASKS_DIR / f"{scale}.yaml")
    # A `<<: *anchor` task copies its anchor's fields and changes only the ones it names.
    for scale, (b10, b25) in {"smoke": ((10, 5), (25, 4)), "paper": ((10, 30), (25, 12))}.items():
        tasks = SCALES[scale]
        assert tasks["splicing_b10"] == tasks["splicing_b1"].replace(
            name="splicing_b10", batch_size=b10[0], n_rounds=b10[1]
        )
        assert tasks["fashion_7v9_b25"] == tasks["fashion_7v9_b1"].replace(
            name="fashion_7v9_b25", batch_size=b25[0], n_rounds=b25[1]
        )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = pyproject["tool"]["setuptools"]["package-data"]["deimos.experiments"]
    assert "tasks/*.yaml" in data
    assert sorted(p.name for p in TASKS_DIR.glob("*.yaml")) == sorted(
        f"{s}.yaml" for s in SCALE_NAMES
    )


def test_params_overrides_and_thresholds_apply_to_the_chosen_tasks():
    params = BenchmarkParams.from_mapping(
        {
            "tasks": ["synthetic_1d", "digits_7v9_b1"],
            "overrides": {"*": {"epochs": 3}, "synthetic_1d": {"hidden_units": [8], "epochs": 4}},
            "thresholds": {"digits_7v9_b1": 0.5},
        }
    )
    tasks = {t.name: t for t in params.benchmark_tasks()}
    assert list(tasks) == ["synthetic_1d", "digits_7v9_b1"]
    assert tasks["synthetic_1d"].hidden_units == (8,) and tasks["synthetic_1d"].epochs == 4
    assert tasks["digits_7v9_b1"].epochs == 3 and tasks["digits_7v9_b1"].threshold == 0.5
    again = BenchmarkParams.from_mapping(params.to_dict())
    assert again == params and again.to_dict()["overrides"]["synthetic_1d"]["hidden_units"] == [8]
    # YAML's empty values are the defaults.
    empty = {"tasks": None, "methods": None, "overrides": {"splicing_b1": None}, "thresholds": None}
    assert BenchmarkParams.from_mapping(empty).benchmark_tasks() == list(SCALES["smoke"].values())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"synthetic_1d": {"lr": -1.0}},
            "overrides.synthetic_1d.lr: Input should be greater than 0",
        ),
        ({"synthetic_1d": {"epochs": True}}, "overrides.synthetic_1d.epochs: Input should be a"),
        ({"synthetic_1d": {"name": "x"}}, "overrides.synthetic_1d.name: not a task field"),
        ({"*": {"n_masks": 1}}, "overrides.*.n_masks: task 'digits_7v9_b1': Input should be"),
        ({"digits_7v9_b1": {"conv_channels": [8]}}, "overrides.digits_7v9_b1: conv_channels needs"),
    ],
)
def test_bad_override_is_refused_naming_the_file_and_key(tmp_path, overrides, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"overrides": overrides}))
    with pytest.raises(InputError, match=re.escape(f"{path}: {message}")):
        BenchmarkParams.from_yaml(path)


def test_keyword_construction_names_the_class_and_key():
    with pytest.raises(InputError, match=re.escape("BenchmarkParams.seeds: Input should be")):
        BenchmarkParams(seeds=0)
    with pytest.raises(InputError, match=re.escape("BenchmarkParams.tasks[0]: unknown task")):
        BenchmarkParams(tasks=("mnist",))


def test_command_line_changes_apply_on_top_of_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seeds": 2, "thresholds": {"synthetic_1d": 0.2}}))
    params = load_benchmark_params(path, {"thresholds": {"splicing_b1": 0.3}, "figure1": False})
    assert params.seeds == 2 and params.figure1 is False
    assert params.thresholds == {"synthetic_1d": 0.2, "splicing_b1": 0.3}
    assert load_benchmark_params() == BenchmarkParams()
    with pytest.raises(InputError, match=re.escape(f"{path}: seeds: Input should be greater")):
        load_benchmark_params(path, {"seeds": 0})
    with pytest.raises(InputError, match=re.escape("command line: unknown parameter 'batch'")):
        load_benchmark_params(None, {"batch": 3})


def test_cli_bad_override_in_the_params_file_exits_2_and_writes_nothing(tmp_path):
    """A bad value in the params file: exit 2 naming file and key; no output, file untouched."""
    bad = tmp_path / "params.yaml"
    text = "scale: smoke\noverrides:\n  synthetic_1d: {lr: -1.0}\n"
    bad.write_text(text)
    out = tmp_path / "out"
    # A fresh interpreter: the refusal must come before torch and Prefect load.
    code = (
        "import sys\n"
        "from deimos_cli.main import main\n"
        f"rc = main(['benchmark', '--params', {str(bad)!r}, '--out', {str(out)!r}])\n"
        "loaded = sorted(m for m in ('torch', 'prefect') if m in sys.modules)\n"
        "print(rc, ','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.split() == ["2"], result.stderr
    assert f"{bad}: overrides.synthetic_1d.lr: Input should be greater than 0" in result.stderr
    assert not out.exists()
    assert bad.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_run_key_follows_every_setting_of_the_curve_but_not_the_threshold():
    from tasks.benchmark_tasks import run_key

    task = SCALES["cpu"]["splicing_b25"]
    key = run_key(task, "deimos", 0)
    assert run_key(task.replace(threshold=0.05), "deimos", 0) == key
    for changed in (
        task.replace(sample_labelled=True),
        task.replace(tau_calibration="initial"),
        task.replace(splicing_channels=(16, 32, 32)),
    ):
        assert run_key(changed, "deimos", 0) != key
    assert run_key(task, "deimos", 1) != key and run_key(task, "random", 0) != key
