"""The benchmark report: statistics and a markdown page, computed from result tables only.

Everything here reads tables that a benchmark produced (the tidy results table, the
Appendix A ratios, the Figure 1 curves) and writes files derived from them, so a report can be
regenerated, or restyled, without re-running a single model.

The Appendix C test: for each task and each method other than DEIMOS, a linear mixed model of the
test metric with the method as fixed effect and the acquisition iteration (round) as random
intercept is compared, by a likelihood-ratio test (both fitted by maximum likelihood), with the
same model without the method effect. A small p-value says the two methods' learning curves
differ beyond what round-to-round variation explains; the sign of the effect says which is
better.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deimos.acquisition.batch_optimality import InstanceResult, summarize
from deimos.acquisition.optimality import plot_ratios
from deimos.atomic import write_text_atomic
from deimos.errors import InputError
from deimos.experiments.figure1 import plot_figure1
from deimos.experiments.summary import (
    acquisitions_to_threshold,
    check_results,
    plot_benchmark_curves,
)

logger = logging.getLogger(__name__)

#: File names inside a benchmark results directory.
RESULTS_CSV = "results.csv"
THRESHOLDS_JSON = "thresholds.json"
APPENDIX_A_CSV = "appendix_a.csv"
FIGURE1_CURVES_CSV = "figure1_curves.csv"
FIGURE1_POINTS_CSV = "figure1_points.csv"
REPORT_MD = "report.md"
CURVES_PNG = "learning_curves.png"
THRESHOLD_CSV = "threshold_table.csv"
LMM_CSV = "mixed_model_tests.csv"
APPENDIX_A_PNG = "appendix_a_ratios.png"
FIGURE1_PNG = "figure1.png"

#: Columns of `mixed_model_tests`.
LMM_COLUMNS = (
    "task",
    "method",
    "baseline",
    "n_obs",
    "effect",
    "lr_stat",
    "p_value",
    "verdict",
)

BASELINE = "deimos"
#: The method labels-to-threshold ratios are taken against (the paper's form: 109/180 = 0.61).
RANDOM = "random"


def mixed_model_tests(results: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Appendix C: likelihood-ratio test of each method against DEIMOS, per task.

    Args:
        results: rows with `RESULT_COLUMNS` (several seeds per method make the test meaningful).
        alpha: significance level of the verdict.

    Returns:
        One row per (task, method != deimos) with `LMM_COLUMNS`: `effect` is the fixed-effect
        estimate of (method - deimos) in metric units, `lr_stat` = 2 (llf_full - llf_null),
        `p_value` from chi^2 with 1 degree of freedom, and `verdict` "deimos better",
        "<method> better" or "no significant difference" at `alpha` (for "mse" lower is better).
        When the model cannot be fitted (e.g. one round only, or identical curves) the
        statistics are NaN and the verdict says why.
    """
    import statsmodels.formula.api as smf
    from scipy.stats import chi2

    _check_results(results)
    rows = []
    for task, task_rows in results.groupby("task", sort=False):
        methods = [m for m in task_rows["method"].unique() if m != BASELINE]
        if BASELINE not in set(task_rows["method"]):
            continue
        lower_is_better = task_rows["metric_name"].iloc[0] == "mse"
        for method in methods:
            pair = task_rows[task_rows["method"].isin([BASELINE, method])].copy()
            pair["is_method"] = (pair["method"] == method).astype(float)
            stats = _lr_test(smf, chi2, pair)
            if stats is None:
                effect = lr = p = math.nan
                verdict = "not testable (too few rounds or no variation)"
            else:
                effect, lr, p = stats
                if p >= alpha:
                    verdict = "no significant difference"
                elif (effect < 0) == lower_is_better:
                    verdict = f"{method} better"
                else:
                    verdict = f"{BASELINE} better"
            rows.append((task, method, BASELINE, len(pair), effect, lr, p, verdict))
    return pd.DataFrame(rows, columns=list(LMM_COLUMNS))


def _lr_test(smf, chi2, pair: pd.DataFrame) -> tuple[float, float, float] | None:
    if pair["round"].nunique() < 2 or pair["metric"].std() == 0 or pair["is_method"].std() == 0:
        return None
    try:
        with warnings.catch_warnings():
            # Boundary fits (zero random-effect variance) warn; the likelihoods stay valid.
            warnings.simplefilter("ignore")
            full = smf.mixedlm("metric ~ is_method", pair, groups=pair["round"]).fit(reml=False)
            null = smf.mixedlm("metric ~ 1", pair, groups=pair["round"]).fit(reml=False)
    except (np.linalg.LinAlgError, ValueError) as exc:
        logger.warning("mixed model failed: %s", exc)
        return None
    lr = max(0.0, 2.0 * (float(full.llf) - float(null.llf)))
    if not math.isfinite(lr):
        return None
    return float(full.fe_params["is_method"]), lr, float(chi2.sf(lr, df=1))


def _check_results(results: object) -> None:
    check_results(results)
    assert isinstance(results, pd.DataFrame)
    if results.empty:
        raise InputError("results table is empty")


# ----------------------------------------------------------------------------------------------
# Reading a results directory


@dataclass(frozen=True)
class BenchmarkTables:
    """Everything a report is made from.

    Attributes:
        results: the tidy table (`RESULT_COLUMNS`), one row per run and round.
        thresholds: test-metric threshold per task name.
        appendix_a: greedy/optimal rows of `deimos.acquisition.batch_optimality` or None.
        figure1_curves, figure1_points: the tables of `figure1.figure1_data` or None.
    """

    results: pd.DataFrame
    thresholds: Mapping[str, float]
    appendix_a: pd.DataFrame | None = None
    figure1_curves: pd.DataFrame | None = None
    figure1_points: pd.DataFrame | None = None


def read_results_csv(path: Path) -> pd.DataFrame:
    """Read and check a results table; errors name the file and the problem."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such results table") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV table ({exc})") from None
    try:
        _check_results(frame)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    for column in ("seed", "round", "n_labels"):
        if not pd.api.types.is_integer_dtype(frame[column]):
            raise InputError(f"{path}: column {column!r} must hold integers")
    if not pd.api.types.is_numeric_dtype(frame["metric"]):
        bad = pd.to_numeric(frame["metric"], errors="coerce").isna().to_numpy().nonzero()[0]
        line = int(bad[0]) + 2 if len(bad) else "?"
        raise InputError(f"{path}: line {line}: metric is not a number")
    return frame


def read_benchmark_tables(
    results_dir: Path, thresholds: Mapping[str, float] | None = None
) -> BenchmarkTables:
    """Load a results directory written by the benchmark flow.

    Args:
        results_dir: holds `results.csv` and optionally `thresholds.json`, `appendix_a.csv`,
            `figure1_curves.csv` and `figure1_points.csv`.
        thresholds: per-task thresholds overriding those in `thresholds.json`.

    Raises:
        InputError: a missing or malformed table, or a task without a threshold.
    """
    results = read_results_csv(results_dir / RESULTS_CSV)
    merged: dict[str, float] = {}
    saved = results_dir / THRESHOLDS_JSON
    if saved.exists():
        try:
            loaded = json.loads(saved.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{saved}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in loaded.values()
        ):
            raise InputError(f"{saved}: must map task names to numbers")
        merged.update({str(k): float(v) for k, v in loaded.items()})
    merged.update(thresholds or {})
    missing = [t for t in results["task"].unique() if t not in merged]
    if missing:
        raise InputError(
            f"no threshold for task {missing[0]!r}: give --threshold {missing[0]}=VALUE "
            f"or add it to {saved}"
        )

    def optional(name: str) -> pd.DataFrame | None:
        path = results_dir / name
        if not path.exists():
            return None
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a readable CSV table ({exc})") from None

    return BenchmarkTables(
        results=results,
        thresholds=merged,
        appendix_a=optional(APPENDIX_A_CSV),
        figure1_curves=optional(FIGURE1_CURVES_CSV),
        figure1_points=optional(FIGURE1_POINTS_CSV),
    )


# ----------------------------------------------------------------------------------------------
# Writing the report


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub markdown table of `frame` (no index); NaN shows as a dash."""

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return "-" if math.isnan(value) else format(float(value), floatfmt)
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body])


def summary_table(results: pd.DataFrame, thresholds: Mapping[str, float]) -> pd.DataFrame:
    """Tables 1-2 in one frame: labels to threshold and the final metric, per task and method."""
    table = acquisitions_to_threshold(results, thresholds)
    last = results.loc[results.groupby(["task", "method", "seed"])["round"].idxmax()]
    final = last.groupby(["task", "method"], sort=False)["metric"].agg(["mean", "std"])
    final_n = last.groupby(["task", "method"], sort=False)["n_labels"].max()
    table = table.merge(
        final.rename(columns={"mean": "final_metric", "std": "final_sd"}).reset_index(),
        on=["task", "method"],
    ).merge(final_n.rename("final_n_labels").reset_index(), on=["task", "method"])
    random_labels = table[table["method"] == RANDOM].set_index("task")["mean_n_labels"]
    table["ratio_to_random"] = table["mean_n_labels"] / table["task"].map(random_labels)
    return table


def dropout_quality_table(results: pd.DataFrame) -> pd.DataFrame | None:
    """Appendix E's MC-dropout check per task and round: mean (over methods and seeds) R^2 between
    squared test error and dropout variance; None when the results carry no `dropout_r2`."""
    if "dropout_r2" not in results.columns:
        return None
    frame = results.dropna(subset=["dropout_r2"])
    if frame.empty:
        return None
    table = frame.pivot_table(
        index="round", columns="task", values="dropout_r2", aggfunc="mean", sort=False
    )
    table = table.reset_index()
    table.columns.name = None
    return table


def write_benchmark_report(tables: BenchmarkTables, out_dir: Path) -> Path:
    """Write the plots, the tables and `report.md` into `out_dir`; return the report's path.

    Every file is written to a temporary name and renamed, the markdown last, so a reader that
    finds `report.md` finds everything it links to.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results = tables.results
    plot_benchmark_curves(results, out_dir / CURVES_PNG)
    summary = summary_table(results, tables.thresholds)
    write_text_atomic(out_dir / THRESHOLD_CSV, summary.to_csv(index=False))
    lmm = mixed_model_tests(results)
    write_text_atomic(out_dir / LMM_CSV, lmm.to_csv(index=False))

    n_seeds = results.groupby(["task", "method"])["seed"].nunique()
    lines = [
        "# DEIMOS benchmark report",
        "",
        f"{results['task'].nunique()} tasks, {results['method'].nunique()} methods, "
        f"{int(n_seeds.min())}-{int(n_seeds.max())} seeds per method, "
        f"{len(results)} (run, round) rows. Regenerate with "
        "`deimos benchmark-report RESULTS_DIR`.",
        "",
        "## Learning curves",
        "",
        "Test metric against the number of labels (mean +/- 1 sd over seeds).",
        "",
        f"![learning curves]({CURVES_PNG})",
        "",
        "## Labels needed to reach the threshold (Tables 1-2)",
        "",
        "`mean_n_labels` averages the seeds that reached the threshold (`n_reached` of "
        "`n_seeds`); a dash means no seed reached it within the run. `final_metric` is the "
        "test metric after the last round (mean, sd over seeds). `ratio_to_random` is "
        "`mean_n_labels` over random's (the paper's form: 109/180 = 0.61; below 1 saves labels).",
        "",
        markdown_table(
            summary[
                [
                    "task",
                    "method",
                    "metric_name",
                    "threshold",
                    "n_reached",
                    "n_seeds",
                    "mean_n_labels",
                    "sd_n_labels",
                    "ratio_to_random",
                    "final_n_labels",
                    "final_metric",
                    "final_sd",
                ]
            ]
        ),
        "",
        "## Is the difference to DEIMOS significant? (Appendix C)",
        "",
        "Linear mixed model `metric ~ method` with the acquisition round as random intercept, "
        "fitted by maximum likelihood, against the model without the method; likelihood-ratio "
        "test, 1 degree of freedom. `effect` is method minus DEIMOS in metric units.",
        "",
        markdown_table(lmm) if not lmm.empty else "(no task ran DEIMOS and another method)",
        "",
    ]
    quality = dropout_quality_table(results)
    if quality is not None:
        lines += [
            "## Does the dropout variance track the error? (Appendix E)",
            "",
            "Per round: R^2 between each test point's squared error and its fixed-mask dropout "
            "variance, averaged over methods and seeds (0: the variance says nothing about "
            "where the model is wrong).",
            "",
            markdown_table(quality, floatfmt=".3f"),
            "",
        ]
    if tables.appendix_a is not None and not tables.appendix_a.empty:
        instances = _instance_results(tables.appendix_a)
        plot_ratios(instances, out_dir / APPENDIX_A_PNG)
        summaries = pd.DataFrame([s.__dict__ for s in summarize(instances)])
        lines += [
            "## Greedy vs optimal batches (Appendix A)",
            "",
            "Trace reduction of the greedy DEIMOS batch divided by the best batch found by "
            "exhaustive search, on random covariances.",
            "",
            f"![greedy/optimal ratios]({APPENDIX_A_PNG})",
            "",
            markdown_table(summaries),
            "",
        ]
    if tables.figure1_curves is not None and tables.figure1_points is not None:
        plot_figure1(tables.figure1_curves, tables.figure1_points, out_dir / FIGURE1_PNG)
        picked = tables.figure1_points[tables.figure1_points["pick_order"] > 0].sort_values(
            "pick_order"
        )
        lines += [
            "## Figure 1: the acquisition function on the 1-D task",
            "",
            "Model mean +/- 1 sd on the initial labels, the DEIMOS acquisition function over the "
            "pool with one batch in pick order, and the refit after labelling it.",
            "",
            f"![figure 1]({FIGURE1_PNG})",
            "",
            markdown_table(picked[["pick_order", "x", "y", "ei"]]),
            "",
        ]
    report = out_dir / REPORT_MD
    write_text_atomic(report, "\n".join(lines))
    logger.info("event=benchmark_report path=%s", report)
    return report


def _instance_results(frame: pd.DataFrame) -> list[InstanceResult]:
    columns = ("setting", "n_masks", "batch_size", "instance", "greedy", "optimal")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{APPENDIX_A_CSV} lacks column {missing[0]!r}")
    return [
        InstanceResult(
            setting=str(r.setting),
            n_masks=int(r.n_masks),
            batch_size=int(r.batch_size),
            instance=int(r.instance),
            greedy=float(r.greedy),
            optimal=float(r.optimal),
        )
        for r in frame.itertuples(False)
    ]


def appendix_a_frame(instances: Sequence[InstanceResult]) -> pd.DataFrame:
    """The Appendix A rows as a table (the columns `optimality.write_csv` writes)."""
    return pd.DataFrame(
        [
            {
                "setting": r.setting,
                "n_masks": r.n_masks,
                "batch_size": r.batch_size,
                "instance": r.instance,
                "greedy": r.greedy,
                "optimal": r.optimal,
                "ratio": r.ratio,
            }
            for r in instances
        ]
    )
