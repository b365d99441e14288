"""`benchmark`: the paper's comparisons (methods x seeds x tasks), then the report."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from deimos.experiments.params import BenchmarkParams, benchmark_runs
from tasks.benchmark_tasks import appendix_a_table, benchmark_run, figure1_tables, write_report


# One worker: training seeds torch's process-wide RNG, so runs in threads of one process would
# draw each other's random numbers. Spread runs over processes (a Dask task runner) instead.
@flow(name="benchmark", task_runner=ThreadPoolTaskRunner(max_workers=1))  # type: ignore[arg-type]
def benchmark(
    out_dir: str = "bench-results/benchmark", params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run every (task, method, seed) of `params` (a `BenchmarkParams` mapping), Appendix A and
    Figure 1, and write the results table and the report into `out_dir`.

    Returns:
        `report` (path of report.md), `results` (path of results.csv), `n_runs`, `seconds`.
    """
    logger = get_run_logger()
    settings = BenchmarkParams.from_mapping(params or {}, "benchmark flow parameter 'params'")
    runs = benchmark_runs(settings)
    logger.info("benchmark: %d runs at scale %s", len(runs), settings.scale)
    start = time.perf_counter()
    futures = [benchmark_run.submit(t, method, seed, out_dir) for t, method, seed in runs]
    frames = []
    for k, ((t, method, seed), future) in enumerate(zip(runs, futures, strict=True), start=1):
        frame = future.result()
        final = frame.iloc[-1]
        elapsed = time.perf_counter() - start
        logger.info(
            "[%d/%d] %s %s seed=%d: %s=%.4f at %d labels (%.0f s so far, ~%.0f s left)",
            k,
            len(runs),
            t.name,
            method,
            seed,
            final["metric_name"],
            final["metric"],
            final["n_labels"],
            elapsed,
            elapsed / k * (len(runs) - k),
        )
        frames.append(frame)
    results = pd.concat(frames, ignore_index=True)
    appendix = (
        appendix_a_table(settings.appendix_a_instances, settings.appendix_a_points)
        if settings.appendix_a_instances
        else None
    )
    synthetic = [t for t in settings.benchmark_tasks() if t.dataset == "synthetic_1d"]
    figure1 = figure1_tables(synthetic[0]) if settings.figure1 and synthetic else None
    thresholds = {t.name: t.threshold for t in settings.benchmark_tasks()}
    report = write_report(out_dir, results, thresholds, appendix, figure1)
    return {
        "report": report,
        "results": f"{out_dir}/results.csv",
        "n_runs": len(runs),
        "seconds": round(time.perf_counter() - start, 1),
    }
