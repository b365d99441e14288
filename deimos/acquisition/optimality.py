"""Command line and report of the Appendix A study (greedy vs exhaustive-optimal batches).

The study itself (the batches, the random covariances, `run_study` and `summarize`) is in
`deimos.acquisition.batch_optimality`; this module checks the paper's 3x3 example, runs the
study, writes one CSV row per instance and plots a histogram of greedy/optimal ratios per setting.

Run: `python -m deimos.acquisition.optimality [--out DIR] [--instances 200] [--seed 0]
[--n-points 18] [--quick]`. Writes `batch_optimality.csv` and `ratios.png` to DIR and prints
a summary.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deimos.acquisition.batch_optimality import (
    DEFAULT_N_POINTS,
    PAPER_GREEDY_FIRST,
    PAPER_GREEDY_TOTAL,
    PAPER_OPTIMAL_SUBSET,
    PAPER_OPTIMAL_TOTAL,
    InstanceResult,
    SettingSummary,
    check_paper_example,
    run_study,
    summarize,
)
from deimos.errors import InputError

CSV_NAME = "batch_optimality.csv"
PNG_NAME = "ratios.png"


def write_csv(results: Sequence[InstanceResult], path: Path) -> None:
    """One row per (setting, instance): greedy and optimal totals and their ratio."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["setting", "n_masks", "batch_size", "instance", "greedy", "optimal", "ratio"]
        )
        for r in results:
            writer.writerow(
                [
                    r.setting,
                    r.n_masks,
                    r.batch_size,
                    r.instance,
                    repr(r.greedy),
                    repr(r.optimal),
                    repr(r.ratio),
                ]
            )


def plot_ratios(results: Sequence[InstanceResult], path: Path, n_points: int | None = None) -> None:
    """One histogram of greedy/optimal ratios per setting, saved as PNG (any file name)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    settings = list(dict.fromkeys(r.setting for r in results))
    n_cols = min(3, len(settings))
    n_rows = math.ceil(len(settings) / n_cols)
    fig = Figure(figsize=(4 * n_cols, 3 * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax, setting in zip(axes.flat, settings, strict=False):
        ratios = [r.ratio for r in results if r.setting == setting]
        # Fixed edges: when greedy is optimal everywhere the ratios differ only by rounding,
        # and automatic bins would have zero width.
        low = min(0.97, min(ratios))
        high = max(1.0, max(ratios)) + 1e-6
        ax.hist(ratios, bins=np.linspace(low, high, 31), color="tab:blue", edgecolor="white")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(setting if n_points is None else f"{setting} (n={n_points})")
        ax.set_xlabel("greedy / optimal trace reduction")
        ax.set_ylabel("instances")
    for ax in list(axes.flat)[len(settings) :]:
        ax.set_visible(False)
    from deimos.plots import save_png

    save_png(fig, path, dpi=100)


def _format_summary(summaries: Sequence[SettingSummary]) -> str:
    lines = [f"{'setting':<14}{'instances':>10}{'min ratio':>12}{'mean ratio':>12}{'optimal':>10}"]
    for s in summaries:
        lines.append(
            f"{s.setting:<14}{s.n_instances:>10d}{s.min_ratio:>12.4f}{s.mean_ratio:>12.4f}"
            f"{s.frac_optimal:>10.1%}"
        )
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deimos.acquisition.optimality",
        description="Appendix A: greedy vs exhaustive-optimal DEIMOS batches on random V.",
    )
    parser.add_argument("--out", type=Path, default=Path("out/batch_optimality"))
    parser.add_argument("--instances", type=int, default=None, help="per setting (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n-points", type=int, default=None, help=f"points per V (default {DEFAULT_N_POINTS})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 5 instances of 12 points unless given"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 for bad input, 1 if the paper check fails)."""
    args = _parse_args(argv)
    n_instances = args.instances if args.instances is not None else (5 if args.quick else 200)
    n_points = (
        args.n_points if args.n_points is not None else (12 if args.quick else DEFAULT_N_POINTS)
    )

    picks, greedy_total, subset, optimal_total = check_paper_example()
    print(
        f"paper 3x3 example, b=2: greedy picks {[p + 1 for p in picks]} (1-based) total "
        f"{greedy_total:.1f}; optimum {{{', '.join(str(i + 1) for i in subset)}}} total "
        f"{optimal_total:.1f}"
    )
    paper_ok = (
        picks[0] == PAPER_GREEDY_FIRST
        and round(greedy_total, 1) == PAPER_GREEDY_TOTAL
        and subset == PAPER_OPTIMAL_SUBSET
        and round(optimal_total, 1) == PAPER_OPTIMAL_TOTAL
    )
    if not paper_ok:
        print("error: the paper's 3x3 example does not reproduce", file=sys.stderr)
        return 1

    try:
        results = run_study(
            n_instances=n_instances,
            n_points=n_points,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = args.out / CSV_NAME, args.out / PNG_NAME
    write_csv(results, csv_path)
    plot_ratios(results, png_path, n_points)
    print(f"n={n_points} points, {n_instances} instances per setting, seed {args.seed}")
    print(_format_summary(summarize(results)))
    print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
