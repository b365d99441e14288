"""The benchmark report: the Appendix C test, reading tables back, and bad result files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from deimos.errors import InputError
from deimos.experiments import report as report
from deimos.experiments.summary import RESULT_COLUMNS


def _curves(task, metric_name, offsets, n_seeds=4, n_rounds=8, noise=0.01, seed=0):
    """Learning curves: a shared round effect, a per-method offset, small noise."""
    rng = np.random.default_rng(seed)
    round_effect = rng.normal(0.0, 0.1, size=n_rounds)
    rows = []
    for method, offset in offsets.items():
        for s in range(n_seeds):
            for r in range(n_rounds):
                base = 0.5 + 0.05 * r if metric_name == "accuracy" else 1.0 - 0.1 * r
                metric = base + round_effect[r] + offset + rng.normal(0.0, noise)
                rows.append((task, method, s, r, 10 + r, metric, metric_name))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def test_lr_test_finds_a_real_difference_and_its_direction():
    results = pd.concat(
        [
            _curves("reg", "mse", {"deimos": 0.0, "random": 0.05, "maxvar": 0.0}),
            _curves("cls", "accuracy", {"deimos": 0.0, "bald": 0.05}, seed=1),
        ],
        ignore_index=True,
    )
    table = report.mixed_model_tests(results)
    assert tuple(table.columns) == report.LMM_COLUMNS
    rows = {(r.task, r.method): r for r in table.itertuples()}
    assert set(rows) == {("reg", "random"), ("reg", "maxvar"), ("cls", "bald")}
    random = rows[("reg", "random")]
    assert random.p_value < 1e-6 and random.effect == pytest.approx(0.05, abs=0.01)
    assert random.verdict == "deimos better"  # higher MSE is worse
    assert random.n_obs == 2 * 4 * 8
    assert rows[("reg", "maxvar")].p_value > 0.01
    assert rows[("reg", "maxvar")].verdict in (
        "no significant difference",
        "maxvar better",
        "deimos better",
    )
    bald = rows[("cls", "bald")]
    assert bald.p_value < 1e-6 and bald.verdict == "bald better"  # higher accuracy is better


def test_lr_statistic_matches_a_direct_likelihood_comparison():
    import statsmodels.formula.api as smf

    results = _curves("reg", "mse", {"deimos": 0.0, "random": 0.01}, noise=0.02, seed=5)
    got = report.mixed_model_tests(results).iloc[0]
    data = results.assign(is_method=(results["method"] == "random").astype(float))
    full = smf.mixedlm("metric ~ is_method", data, groups=data["round"]).fit(reml=False)
    null = smf.mixedlm("metric ~ 1", data, groups=data["round"]).fit(reml=False)
    assert got.lr_stat == pytest.approx(2 * (full.llf - null.llf), rel=1e-6)


def test_untestable_pairs_say_so():
    one_round = _curves("reg", "mse", {"deimos": 0.0, "random": 0.1}, n_rounds=1)
    row = report.mixed_model_tests(one_round).iloc[0]
    assert math.isnan(row.p_value) and row.verdict.startswith("not testable")
    no_deimos = _curves("reg", "mse", {"random": 0.0, "maxvar": 0.1})
    assert report.mixed_model_tests(no_deimos).empty


def _results_dir(tmp_path):
    results = _curves("reg", "mse", {"deimos": 0.0, "random": 0.05})
    d = tmp_path / "results"
    d.mkdir()
    results.to_csv(d / report.RESULTS_CSV, index=False)
    (d / report.THRESHOLDS_JSON).write_text(json.dumps({"reg": 0.6}))
    return d


def test_report_from_the_results_table_alone(tmp_path):
    d = _results_dir(tmp_path)
    path = report.write_benchmark_report(report.read_benchmark_tables(d), d)
    text = path.read_text()
    assert "## Learning curves" in text and "## Is the difference to DEIMOS significant?" in text
    assert "| reg | random | deimos |" in text and "deimos better" in text
    assert "Appendix A" not in text and "Figure 1" not in text  # their tables are absent
    for name in (report.CURVES_PNG, report.THRESHOLD_CSV, report.LMM_CSV):
        assert (d / name).is_file()
    summary = pd.read_csv(d / report.THRESHOLD_CSV)
    assert set(summary["threshold"]) == {0.6}
    # Same tables, same report: regeneration is deterministic.
    again = report.write_benchmark_report(report.read_benchmark_tables(d), tmp_path / "again")
    assert again.read_text() == text


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "results.csv").unlink(), r"results\.csv: no such results table"),
        (
            lambda d: (
                pd.read_csv(d / "results.csv")
                .drop(columns="seed")
                .to_csv(d / "results.csv", index=False)
            ),
            r"results\.csv: results lacks column 'seed'",
        ),
        (
            lambda d: (d / "results.csv").write_text(
                (d / "results.csv")
                .read_text()
                .replace("\nreg,deimos,0,2,12,", "\nreg,deimos,0,2,12,x", 1)
            ),
            r"results\.csv: line 4: metric is not a number",
        ),
        (lambda d: (d / "results.csv").write_text(""), r"results\.csv: not a readable CSV"),
        (lambda d: (d / "thresholds.json").write_text("{"), r"thresholds\.json: not valid JSON"),
        (
            lambda d: (d / "thresholds.json").write_text('{"reg": "high"}'),
            r"thresholds\.json: must map task names to numbers",
        ),
        (
            lambda d: (d / "thresholds.json").write_text("{}"),
            r"no threshold for task 'reg': give --threshold reg=VALUE",
        ),
    ],
)
def test_bad_results_directory_is_refused_and_nothing_is_written(tmp_path, damage, message):
    d = _results_dir(tmp_path)
    damage(d)
    before = _snapshot(d)
    with pytest.raises(InputError, match=message):
        report.write_benchmark_report(report.read_benchmark_tables(d), d)
    assert _snapshot(d) == before


def test_cli_report_regenerates_and_rejects_bad_threshold(tmp_path, capsys):
    from deimos_cli.main import main

    d = _results_dir(tmp_path)
    (d / report.THRESHOLDS_JSON).unlink()
    before = _snapshot(d)
    assert main(["benchmark-report", str(d), "--threshold", "reg=abc"]) == 2
    assert "--threshold wants TASK=NUMBER, got 'reg=abc'" in capsys.readouterr().err
    assert main(["benchmark-report", str(d)]) == 2
    assert "no threshold for task 'reg'" in capsys.readouterr().err
    assert _snapshot(d) == before
    assert main(["benchmark-report", str(d), "--threshold", "reg=0.7"]) == 0
    out = capsys.readouterr().out
    assert "labels to reach the threshold" in out and "deimos better" in out
    assert (d / report.REPORT_MD).is_file()
