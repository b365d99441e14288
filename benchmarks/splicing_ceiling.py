"""How much the simulated splicing assay lets a SplicingCNN learn: test MSE against label count.

Run as `python -m benchmarks.splicing_ceiling [--sizes N ...] [--sample-epochs E] [--out F]`.

For each size N, N library sequences are measured once by the simulated assay (the labels a lab
would get back) and a fresh `SplicingCNN` is trained on them with the lab loop's recipe
(`fit_round_model`, `campaign_train_config`; 100 validation labels for early stopping). Its test
MSE is taken against the assay's noise-free donor usage on 2,000 held-out sequences, beside two
references: the MSE of predicting the mean usage (what a model that learned nothing scores) and
the assay's noise floor (the MSE of one measurement against the truth: a model cannot be judged
below it from single measurements, though its error against the truth can go under it).

Large N train for fewer epochs so the table fits a CPU session: the epoch cap is
`min(100, sample_epochs / N)`; the table prints the epochs actually run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from deimos.atomic import write_text_atomic

DEFAULT_SIZES = (200, 1000, 5000, 20000)
TEST_SIZE = 2000
N_VALIDATION = 100


def measure_size(
    n: int,
    *,
    sample_epochs: int,
    seed: int,
    read_depth: float,
    widths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on `n` measured labels and score on the held-out truth."""
    from deimos.data.a5ss_library import generate_library
    from deimos.data.assay import SimulatedAssay
    from deimos.data.donor_model import donor_usage
    from deimos.data.onehot import one_hot
    from deimos.loop.config import campaign_train_config
    from deimos.loop.round import RoundSettings, fit_round_model
    from deimos.loop.seeds import SeedPlan
    from deimos.uncertainty.predict import predict_mean
    from models.splicing import SplicingCNN

    library = generate_library(n + N_VALIDATION + TEST_SIZE, seed=seed)
    seqs = list(library.seqs)
    ids = list(library.ids)
    X = one_hot(seqs)
    assay = SimulatedAssay(seed=seed, read_depth=read_depth)
    measured = assay.measure(ids, seqs)["donor_usage"].to_numpy(dtype=np.float32)
    truth = donor_usage(seqs)
    train, val, test = (
        slice(0, n),
        slice(n, n + N_VALIDATION),
        slice(n + N_VALIDATION, None),
    )
    base = campaign_train_config()
    epochs = max(1, min(base.epochs, sample_epochs // n))
    settings = RoundSettings(
        kind="regression",
        method="random",
        batch_size=1,
        n_masks=2,
        train=base.replace(epochs=epochs),
    )
    start = time.perf_counter()
    model, result = fit_round_model(
        lambda init_seed: SplicingCNN(seed=init_seed, **(widths or {})),
        X[train],
        measured[train],
        X[val],
        measured[val],
        settings,
        SeedPlan(seed).for_round(0),
    )
    seconds = time.perf_counter() - start
    pred = predict_mean(model, X[test], progress=False).numpy()
    truth_test = truth[test]
    return {
        "n_labels": n,
        "test_mse": float(np.mean((pred - truth_test) ** 2)),
        "mean_prediction_mse": float(np.mean((measured[train].mean() - truth_test) ** 2)),
        "noise_floor_mse": float(np.mean((measured - truth) ** 2)),
        "epochs_cap": epochs,
        "epochs_run": len(result.val_losses),
        "train_seconds": round(seconds, 1),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| labels | test MSE | mean-prediction MSE | assay noise floor | test / mean | epochs "
        "(cap) | train s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_labels']:,} | {r['test_mse']:.4f} | {r['mean_prediction_mse']:.4f} | "
            f"{r['noise_floor_mse']:.4f} | {r['test_mse'] / r['mean_prediction_mse']:.2f} | "
            f"{r['epochs_run']} ({r['epochs_cap']}) | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--sample-epochs", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--read-depth", type=float, default=100.0)
    parser.add_argument(
        "--conv-channels", type=int, nargs=3, default=None, help="SplicingCNN widths (3 convs)"
    )
    parser.add_argument("--hidden-units", type=int, nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.sizes) or args.sample_epochs < 1:
        parser.error("--sizes and --sample-epochs must be positive")
    widths: dict[str, Any] = {}
    if args.conv_channels:
        widths["conv_channels"] = tuple(args.conv_channels)
    if args.hidden_units:
        widths["hidden_units"] = tuple(args.hidden_units)
    rows = []
    for n in args.sizes:
        row = measure_size(
            n,
            sample_epochs=args.sample_epochs,
            seed=args.seed,
            read_depth=args.read_depth,
            widths=widths,
        )
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(markdown_table(rows))
    if args.out is not None:
        write_text_atomic(args.out, json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
