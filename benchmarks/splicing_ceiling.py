"""How well can the project's SplicingCNN learn the simulated splicing assay, by label count?

Run as `python -m benchmarks.splicing_ceiling [--sizes 200 1000 5000 20000] [--out FILE.json]`.
For each size N it measures N random library sequences with the simulated assay (one replicate
at the campaign's read depth), trains a fresh `SplicingCNN` with the lab loop's training recipe
(`deimos.loop.round.fit_round_model`, the kernel every campaign round runs), and scores a
held-out test set against the assay's noise-free donor usage. Beside it, the two reference
levels a learning curve lives between:

- mean-prediction MSE: predicting the training labels' mean for every test sequence;
- the assay's noise floor: the MSE of one measurement against the truth (what a perfect model
  would score against *measured* test labels; against the truth it would score 0).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deimos.atomic import write_text_atomic
from deimos.data.a5ss_library import generate_library
from deimos.data.assay import SimulatedAssay
from deimos.data.donor_model import donor_usage
from deimos.data.onehot import one_hot
from deimos.loop.config import campaign_train_config
from deimos.loop.round import RoundSettings, fit_round_model
from deimos.loop.seeds import SeedPlan
from deimos.uncertainty.predict import predict_mean
from models.splicing import SplicingCNN


def measured_usage(assay: SimulatedAssay, ids: list[str], seqs: list[str]) -> np.ndarray:
    """One mean measured donor usage per sequence, in input order."""
    table = assay.measure(ids, seqs)
    return table.groupby("id", sort=False)["donor_usage"].mean().to_numpy(dtype=np.float32)


def ceiling(
    sizes: list[int],
    *,
    n_test: int,
    n_validation: int,
    seed: int,
    read_depth: float,
    epochs: int | None,
) -> list[dict[str, float]]:
    """One row per training-set size: test MSE against the truth and the reference levels."""
    total = max(sizes) + n_validation + n_test
    library = generate_library(total, seed=seed)
    seqs, ids = list(library.seqs), list(library.ids)
    X = one_hot(seqs)
    assay = SimulatedAssay(seed=seed, read_depth=read_depth)
    order = np.random.default_rng(SeedPlan(seed).split()).permutation(total)
    test, val, train_all = (
        order[:n_test],
        order[n_test : n_test + n_validation],
        order[n_test + n_validation :],
    )
    truth_test = donor_usage([seqs[i] for i in test])
    measured_test = measured_usage(assay, [ids[i] for i in test], [seqs[i] for i in test])
    noise_floor = float(np.mean((measured_test - truth_test) ** 2))
    y_val = measured_usage(assay, [ids[i] for i in val], [seqs[i] for i in val])
    train_config = campaign_train_config()
    if epochs is not None:
        train_config = train_config.replace(epochs=epochs)
    settings = RoundSettings(
        kind="regression", method="random", batch_size=1, n_masks=2, train=train_config
    )
    rows = []
    for n in sizes:
        rows_n = train_all[:n]
        y = measured_usage(assay, [ids[i] for i in rows_n], [seqs[i] for i in rows_n])
        start = time.perf_counter()
        model, result = fit_round_model(
            lambda init: SplicingCNN(seed=init),
            X[rows_n],
            y,
            X[val],
            y_val,
            settings,
            SeedPlan(seed).for_round(0),
        )
        seconds = time.perf_counter() - start
        pred = predict_mean(model, X[test], progress=False).numpy()
        row = {
            "n_labels": n,
            "test_mse": round(float(np.mean((pred - truth_test) ** 2)), 5),
            "mean_prediction_mse": round(float(np.mean((float(y.mean()) - truth_test) ** 2)), 5),
            "noise_floor_mse": round(noise_floor, 5),
            "epochs_run": len(result.train_losses),
            "train_seconds": round(seconds, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally save) the learnability table of the simulated splicing assay."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000, 20000])
    parser.add_argument("--test", type=int, default=2000, help="held-out test sequences")
    parser.add_argument("--validation", type=int, default=100, help="validation sequences")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--read-depth", type=float, default=100.0)
    parser.add_argument("--epochs", type=int, help="cap on epochs (default: the lab loop's)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if any(n < 4 for n in args.sizes):
        parser.error("--sizes must be at least 4")
    rows = ceiling(
        sorted(args.sizes),
        n_test=args.test,
        n_validation=args.validation,
        seed=args.seed,
        read_depth=args.read_depth,
        epochs=args.epochs,
    )
    print("\n| labels | test MSE | mean-prediction MSE | assay noise floor | epochs | train s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['n_labels']:,} | {r['test_mse']:.4f} | {r['mean_prediction_mse']:.4f} | "
            f"{r['noise_floor_mse']:.4f} | {r['epochs_run']} | {r['train_seconds']} |"
        )
    if args.out is not None:
        write_text_atomic(args.out, json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
