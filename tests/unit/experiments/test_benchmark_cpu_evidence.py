"""The committed `cpu` benchmark evidence (docs/benchmark-cpu/) is what its tables say.

`deimos benchmark-report` run on a copy of the committed tables must write the committed report
and derived tables byte for byte: nobody edited a number by hand, and the report code that
the README quotes is the code in this checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from deimos.experiments import report
from deimos.experiments.benchmark import SCALES

EVIDENCE = Path(__file__).resolve().parents[3] / "docs" / "benchmark-cpu"
INPUTS = (
    report.RESULTS_CSV,
    report.THRESHOLDS_JSON,
    report.APPENDIX_A_CSV,
    report.FIGURE1_CURVES_CSV,
    report.FIGURE1_POINTS_CSV,
)
DERIVED_TEXT = (report.REPORT_MD, report.THRESHOLD_CSV, report.LMM_CSV)
PNGS = (report.CURVES_PNG, report.APPENDIX_A_PNG, report.FIGURE1_PNG)


def test_committed_report_regenerates_byte_for_byte(tmp_path):
    from deimos_cli.main import main

    for name in INPUTS:
        shutil.copyfile(EVIDENCE / name, tmp_path / name)
    assert main(["benchmark-report", str(tmp_path)]) == 0
    for name in DERIVED_TEXT:
        assert (tmp_path / name).read_bytes() == (EVIDENCE / name).read_bytes(), name
    for name in PNGS:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (EVIDENCE / name).is_file(), name


def test_committed_results_cover_the_cpu_grid():
    results = pd.read_csv(EVIDENCE / report.RESULTS_CSV)
    from deimos.acquisition.registry import methods_for

    for name, task in SCALES["cpu"].items():
        rows = results[results["task"] == name]
        assert set(rows["method"]) == set(methods_for(task.kind)), name
        per_run = rows.groupby(["method", "seed"])["round"].nunique()
        assert (per_run == task.n_rounds + 1).all(), name
        assert rows.groupby("method")["seed"].nunique().min() >= 5, name
