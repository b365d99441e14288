"""The `benchmark` Prefect flow, its parameters, the CLI and the DVC stage, at a tiny scale."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deimos.campaign import repo
from deimos.errors import InputError
from deimos.experiments import report as report
from deimos.experiments.params import BenchmarkParams, benchmark_runs
from tasks.benchmark_tasks import RUNS_DIR

ROOT = Path(__file__).resolve().parents[3]

# Two tasks cut to 2 rounds of a few epochs; maxvar applies only to the regression task.
TINY = {
    "scale": "smoke",
    "tasks": ["synthetic_1d", "digits_7v9_b1"],
    "methods": ["deimos", "random", "maxvar"],
    "seeds": 2,
    "overrides": {"*": {"n_rounds": 2, "epochs": 3, "n_masks": 6}},
    "appendix_a_instances": 2,
    "appendix_a_points": 10,
    "figure1": True,
}


@pytest.fixture(scope="module")
def flow_run(prefect_server, tmp_path_factory):
    from flows.benchmark import benchmark

    out = tmp_path_factory.mktemp("bench") / "out"
    result = benchmark(str(out), TINY)
    return out, result


def test_flow_writes_the_tidy_table_and_the_report(flow_run):
    out, result = flow_run
    assert result["n_runs"] == 3 * 2 + 2 * 2
    results = pd.read_csv(out / report.RESULTS_CSV)
    assert list(results.columns) == ["task", "method", "seed", "round", "n_labels", "metric",
                                     "metric_name", "dropout_r2"]  # fmt: skip
    counts = results.groupby(["task", "method"]).size().to_dict()
    assert counts == {
        ("synthetic_1d", "deimos"): 6,
        ("synthetic_1d", "random"): 6,
        ("synthetic_1d", "maxvar"): 6,
        ("digits_7v9_b1", "deimos"): 6,
        ("digits_7v9_b1", "random"): 6,
    }
    digits = results[results["task"] == "digits_7v9_b1"]
    assert sorted(digits["n_labels"].unique()) == [10, 11, 12]
    for name in (
        report.REPORT_MD,
        report.CURVES_PNG,
        report.THRESHOLD_CSV,
        report.LMM_CSV,
        report.APPENDIX_A_CSV,
        report.APPENDIX_A_PNG,
        report.FIGURE1_PNG,
        report.FIGURE1_CURVES_CSV,
        report.FIGURE1_POINTS_CSV,
    ):
        assert (out / name).is_file(), name
    text = (out / report.REPORT_MD).read_text()
    assert "Appendix A" in text and "Figure 1" in text and "| digits_7v9_b1 | random |" in text
    assert len(list((out / RUNS_DIR).glob("*.csv"))) == result["n_runs"]


def test_flow_publishes_the_report_as_an_artifact(flow_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    async def latest():
        async with get_client() as client:
            # Every field explicit: this FastAPI rejects the nulls the client sends by default.
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["deimos-benchmark-report"])
                ),
                flow_run_filter=FlowRunFilter(),
                task_run_filter=TaskRunFilter(),
                sort=ArtifactSort.CREATED_DESC,
                limit=1,
            )

    out, _ = flow_run
    artifacts = asyncio.run(latest())
    assert artifacts and "# DEIMOS benchmark report" in artifacts[0].data
    assert str(out.absolute()) in artifacts[0].data


def test_rerun_reuses_finished_runs_and_gives_the_same_table(flow_run):
    from flows.benchmark import benchmark

    out, _ = flow_run
    runs = {p: p.stat().st_mtime_ns for p in (out / RUNS_DIR).glob("*.csv")}
    before = (out / report.RESULTS_CSV).read_bytes()
    benchmark(str(out), TINY)
    assert {p: p.stat().st_mtime_ns for p in (out / RUNS_DIR).glob("*.csv")} == runs
    assert (out / report.RESULTS_CSV).read_bytes() == before


def test_report_regenerates_from_the_tables_alone(flow_run, tmp_path):
    from deimos_cli.main import main

    out, _ = flow_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (report.RESULTS_CSV, report.THRESHOLDS_JSON, report.APPENDIX_A_CSV,
                 report.FIGURE1_CURVES_CSV, report.FIGURE1_POINTS_CSV):  # fmt: skip
        shutil.copy(out / name, copy / name)
    assert main(["benchmark-report", str(copy)]) == 0
    assert (copy / report.REPORT_MD).read_text() == (out / report.REPORT_MD).read_text()
    for name in (report.CURVES_PNG, report.APPENDIX_A_PNG, report.FIGURE1_PNG):
        assert (copy / name).read_bytes()[:4] == b"\x89PNG"


def test_same_seeds_give_every_method_the_same_start(flow_run):
    out, _ = flow_run
    results = pd.read_csv(out / report.RESULTS_CSV)
    round0 = results[results["round"] == 0]
    # Same seed -> same split, initial set and round-0 model, whatever the method.
    assert (round0.groupby(["task", "seed"])["metric"].nunique() == 1).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"scale": "huge"}, "scale: must be one of smoke, cpu, paper"),
        ({"tasks": ["mnist"]}, "tasks[0]: unknown task at scale 'smoke'"),
        ({"methods": ["coreset"]}, "methods[0]: unknown method; valid: bald"),
        ({"seeds": 0}, "seeds: Input should be greater than or equal to 1 (got 0)"),
        ({"seeds": "3"}, "seeds: Input should be a valid integer (got '3')"),
        (
            {"overrides": {"synthetic_1d": {"n_layers": 3}}},
            "overrides.synthetic_1d.n_layers: not a task field that may be overridden",
        ),
        ({"overrides": {"synthetic_1d": {"pool_size": 5}}}, "synthetic_1d: pool_size=5 is smaller"),
        ({"overrides": {"nope": {}}}, "overrides.nope: unknown task at scale 'smoke'"),
        (
            {"thresholds": {"synthetic_1d": "low"}},
            "thresholds.synthetic_1d: Input should be a valid number (got 'low')",
        ),
        ({"batch": 3}, "unknown parameter 'batch'"),
        ({"tasks": "synthetic_1d"}, "tasks: must be a list of names"),
        ({"figure1": "yes"}, "figure1: Input should be a valid boolean"),
        ({"overrides": {"synthetic_1d": [1, 2]}}, "overrides.synthetic_1d: must be a mapping"),
        ({"appendix_a_points": 8}, "appendix_a_points: must be at least 10"),
        ({"appendix_a_points": 40}, "small enough for exhaustive search (got 40)"),
    ],
)
def test_bad_parameters_are_refused_with_the_file_name(tmp_path, params, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: .*{re.escape(message)}"):
        BenchmarkParams.from_yaml(path)


def test_params_expand_to_runs_that_fit_each_task():
    params = BenchmarkParams.from_mapping({**TINY, "methods": ["maxent", "maxvar"]})
    runs = [(t.name, m, s) for t, m, s in benchmark_runs(params)]
    assert runs == [("synthetic_1d", "maxvar", 0), ("synthetic_1d", "maxvar", 1),
                    ("digits_7v9_b1", "maxent", 0), ("digits_7v9_b1", "maxent", 1)]  # fmt: skip
    tasks = {t.name: t for t in params.benchmark_tasks()}
    assert tasks["synthetic_1d"].n_rounds == 2 and tasks["digits_7v9_b1"].epochs == 3
    # Every default: all smoke tasks, all methods that apply, splicing without BALD & co.
    every = {(t.name, m) for t, m, _ in benchmark_runs(BenchmarkParams(seeds=1))}
    assert ("splicing_b1", "kcenter") in every and ("splicing_b1", "bald") not in every
    assert ("fashion_10_b100", "batchbald") in every and ("digits_7v9_b1", "maxvar") not in every


def test_cli_bad_params_exit_2_and_create_nothing(tmp_path, capsys):
    from deimos_cli.main import main

    bad = tmp_path / "bench.yaml"
    bad.write_text("seeds: [1\n")
    out = tmp_path / "out"
    assert main(["benchmark", "--params", str(bad), "--out", str(out)]) == 2
    assert f"{bad}: not valid YAML" in capsys.readouterr().err
    assert main(["benchmark", "--tasks", "nope", "--out", str(out)]) == 2
    assert "command line: tasks[0]: unknown task at scale 'smoke'" in capsys.readouterr().err
    assert main(["benchmark", "--workers", "0", "--out", str(out)]) == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err
    assert not out.exists()


def test_committed_stage_params_are_the_defaults():
    committed = BenchmarkParams.from_yaml(ROOT / "benchmarks" / "params.yaml")
    assert committed == BenchmarkParams()


@pytest.mark.slow
def test_dvc_stage_runs_the_benchmark_and_is_then_up_to_date(prefect_server, tmp_path, monkeypatch):
    """`dvc repro benchmarks/dvc.yaml` in a git + DVC repo holding the stage and its deps."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    stage = yaml.safe_load((ROOT / "benchmarks" / "dvc.yaml").read_text())["stages"]["benchmark"]
    (tmp_path / "benchmarks").mkdir()
    assert sorted(stage["deps"]) == ["../deimos", "../flows", "../models", "../tasks"]
    for dep in stage["deps"]:
        target = (tmp_path / "benchmarks" / dep).resolve()
        shutil.copytree(
            (ROOT / "benchmarks" / dep).resolve(),
            target,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / ".dvcignore", tmp_path / ".dvcignore")
    shutil.copy(ROOT / "benchmarks" / "dvc.yaml", tmp_path / "benchmarks" / "dvc.yaml")
    params = {**TINY, "tasks": ["synthetic_1d"], "methods": ["deimos", "random"], "seeds": 1,
              "figure1": False, "appendix_a_instances": 0}  # fmt: skip
    (tmp_path / "benchmarks" / "params.yaml").write_text(yaml.safe_dump(params))
    repo.run_git(tmp_path, ["init", "-q"])
    repo.run_dvc(tmp_path, ["init", "-q"])
    first = repo.run_dvc(tmp_path, ["repro", "benchmarks/dvc.yaml"])
    assert "Running stage 'benchmarks/dvc.yaml:benchmark'" in first
    results = pd.read_csv(tmp_path / "benchmarks" / "results" / report.RESULTS_CSV)
    assert set(results["method"]) == {"deimos", "random"} and len(results) == 2 * 3
    assert (tmp_path / "benchmarks" / "results" / report.REPORT_MD).is_file()
    assert (tmp_path / "benchmarks" / "dvc.lock").is_file()
    second = repo.run_dvc(tmp_path, ["repro", "benchmarks/dvc.yaml"])
    assert "Running stage" not in second
    # A parameter change re-runs the stage.
    params["seeds"] = 2
    (tmp_path / "benchmarks" / "params.yaml").write_text(yaml.safe_dump(params))
    third = repo.run_dvc(tmp_path, ["repro", "benchmarks/dvc.yaml"])
    assert "Running stage 'benchmarks/dvc.yaml:benchmark'" in third
    results = pd.read_csv(tmp_path / "benchmarks" / "results" / report.RESULTS_CSV)
    assert sorted(results["seed"].unique()) == [0, 1]
    # So does any change to the library's code (the whole package is a dependency).
    (tmp_path / "deimos" / "loop" / "round.py").write_text(
        (tmp_path / "deimos" / "loop" / "round.py").read_text() + "\n# changed\n"
    )
    status = repo.run_dvc(tmp_path, ["status", "benchmarks/dvc.yaml"])
    assert "modified:" in status and "deimos" in status


@pytest.mark.slow
def test_runs_spread_over_dask_processes_agree_with_one_process(flow_run, tmp_path):
    from deimos_cli.main import main

    out, _ = flow_run
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**TINY, "appendix_a_instances": 0, "figure1": False}))
    spread = tmp_path / "spread"
    assert main(["benchmark", "--params", str(params), "--out", str(spread), "--workers", "2"]) == 0
    one = pd.read_csv(out / report.RESULTS_CSV)
    two = pd.read_csv(spread / report.RESULTS_CSV)
    key = ["task", "method", "seed", "round", "n_labels"]
    pd.testing.assert_frame_equal(one[key], two[key])
    # Single-threaded workers sum in another order than the 2-thread process: last bits only.
    np.testing.assert_allclose(two["metric"], one["metric"], rtol=1e-6)
