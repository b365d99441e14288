"""`deimos` console script.

Exit codes: 0 success, 2 bad input (one-line reason on stderr), 1 internal error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deimos.atomic import replacing, write_text_atomic
from deimos.errors import InputError

logger = logging.getLogger("deimos")


def _load_array(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: cannot read {what} as a .npy array ({exc})") from exc


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def cmd_select(args: argparse.Namespace) -> int:
    """Pick a batch from saved fixed-mask predictions with any registered method."""
    from deimos.acquisition.registry import SelectionInputs, get_method, select

    preds = _load_array(args.preds, "predictions")
    method = get_method(args.method)
    if "tau" in method.needs and args.tau_inv is None:
        raise InputError(f"--tau-inv is required for --method {args.method}")
    candidates = None
    if args.candidates is not None:
        candidates = _load_array(args.candidates, "candidate indices")
    if args.method == "deimos":
        # DEIMOS' own form: S = --preds, picks from --candidates (of S, or of --pool-preds).
        from deimos.acquisition.deimos import select_deimos

        pool = None if args.pool_preds is None else _load_array(args.pool_preds, "pool preds")
        selection = select_deimos(
            preds, args.batch_size, tau_inv=args.tau_inv, pool_preds=pool, candidates=candidates
        )
    elif args.pool_preds is not None:
        raise InputError("--pool-preds goes with --method deimos (a sample S apart from the pool)")
    else:
        from deimos.acquisition.selection import check_candidates

        rows = check_candidates(candidates, len(preds)).numpy()
        picked = select(
            args.method,
            SelectionInputs(
                batch_size=args.batch_size,
                preds=preds[rows] if candidates is not None else preds,
                embeddings=preds.reshape(len(preds), -1)[rows] if "embeddings" in method.needs
                else None,
                tau_inv=args.tau_inv,
                seed=args.seed,
            ),
        )  # fmt: skip
        selection = type(picked)(
            tuple(int(rows[i]) for i in picked.indices), picked.gains, picked.method
        )
    lines = ["rank,index,gain"]
    lines += [
        f"{r},{i},{g:.10g}"
        for r, (i, g) in enumerate(zip(selection.indices, selection.gains, strict=True))
    ]
    text = "\n".join(lines) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        _write_text_atomic(args.out, text)
        print(f"wrote {len(selection)} picks to {args.out}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """In-process simulated splicing campaign, DEIMOS against random, with a learning curve."""
    from deimos.loop.config import SimulationConfig

    config = SimulationConfig(
        pool_size=args.pool_size,
        n_rounds=args.rounds,
        batch_size=args.batch_size,
        n_initial=args.initial,
        methods=tuple(args.methods),
        seed=args.seed,
    )
    out_dir: Path = args.dir
    print(
        f"simulated campaign: pool {config.pool_size} sequences, {config.n_initial} initial "
        f"labels, {config.n_rounds} rounds of {config.batch_size}, methods {list(config.methods)}"
    )
    # Bad sizes are refused above, before torch and the models load.
    from deimos.loop.simulation import run_simulated_campaign
    from deimos.plots import plot_learning_curves

    curves = run_simulated_campaign(config, progress=True)
    csv_path = out_dir / "learning_curve.csv"
    _write_text_atomic(csv_path, curves.to_csv(index=False))
    png_path = plot_learning_curves(
        curves, out_dir / "learning_curve.png", title="Simulated splicing assay: test MSE"
    )
    table = curves.pivot(index="n_labels", columns="method", values="test_mse")
    print("\ntest MSE against the assay's true donor usage, by number of labels:")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\nwrote {csv_path}\nwrote {png_path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a SplicingCNN from scratch on the labelled sequences of a FASTA pool."""
    from deimos.data.datasets import split_indices
    from deimos.data.onehot import one_hot
    from deimos.data.sequences import read_fasta
    from deimos.lab.checks import aggregate_replicates
    from deimos.lab.readers import read_label_file
    from deimos.uncertainty.train import TrainConfig, save_model, train_model
    from models.splicing import SplicingCNN

    pool = read_fasta(args.fasta, length=args.length)
    labels = aggregate_replicates(read_label_file(args.labels, value_column=args.value_column),
                                  value_column=args.value_column)  # fmt: skip
    row_of = {seq_id: row for row, seq_id in enumerate(pool.ids)}
    unknown = [i for i in labels["id"] if i not in row_of]
    if unknown:
        raise InputError(f"{args.labels}: ids not in {args.fasta}: {', '.join(unknown[:5])}")
    if len(labels) < 4:
        raise InputError(f"{args.labels}: {len(labels)} labelled sequences; at least 4 needed")
    rows = np.array([row_of[i] for i in labels["id"]])
    X = one_hot(pool)[rows]
    y = labels["value"].to_numpy(dtype=np.float32)
    n_val = max(1, round(args.val_fraction * len(rows)))
    train_idx, val_idx = split_indices(len(rows), seed=args.seed, sizes=(len(rows) - n_val, n_val))
    config = TrainConfig(task="regression", epochs=args.epochs, seed=args.seed)
    model, result = train_model(
        SplicingCNN(seq_length=args.length, seed=args.seed),
        X[train_idx], y[train_idx], X[val_idx], y[val_idx], config,
    )  # fmt: skip
    save_model(model, args.out)
    print(
        f"trained on {len(train_idx)} sequences (validation {n_val}): best epoch "
        f"{result.best_epoch}, validation MSE {result.best_val_loss:.4f}; wrote {args.out}"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Fixed-mask MC-dropout predictions of every sequence of a FASTA pool, as a .npy."""
    from deimos.data.onehot import one_hot
    from deimos.data.sequences import read_fasta
    from deimos.uncertainty.predict import predict_fixed_masks
    from deimos.uncertainty.train import load_model

    model = load_model(args.model)
    length = int(model.input_shape[-1])
    pool = read_fasta(args.fasta, length=length)
    preds = predict_fixed_masks(
        model, one_hot(pool), n_masks=args.masks, seed=args.seed, progress=True
    ).numpy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ids_path = args.out.with_suffix(".ids.txt")
    with replacing(args.out) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, preds)
        _write_text_atomic(ids_path, "\n".join(pool.ids) + "\n")
    print(f"wrote {args.out} {preds.shape} and {ids_path} ({len(pool.ids)} ids, row order)")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """`deimos predict` in shards through the Prefect `score-pool` flow (Dask when asked)."""
    from deimos.uncertainty.config import DEVICE_RE
    from deimos_cli.lab_loop import _prefect_defaults

    if args.shards < 1 or args.workers < 1:
        raise InputError("--shards and --workers must be at least 1")
    for path, what in ((args.model, "model"), (args.fasta, "FASTA pool")):
        if not path.is_file():
            raise InputError(f"{path}: {what} file not found")
    if args.device is not None and not DEVICE_RE.fullmatch(args.device):
        raise InputError(f"--device {args.device!r} is not a device: use cpu, cuda or cuda:N")
    _prefect_defaults()
    params = {
        "model_path": str(args.model),
        "fasta": str(args.fasta),
        "out": str(args.out),
        "n_masks": args.masks,
        "seed": args.seed,
        "shards": args.shards,
        "device": args.device,
    }
    if args.dask_address or args.workers > 1:
        from flows.score_pool import score_pool_on_dask

        result = score_pool_on_dask(workers=args.workers, dask_address=args.dask_address, **params)
    else:
        from flows.score_pool import score_pool

        result = score_pool(**params)
    print(
        f"wrote {result['out']} ({result['n']} x {result['n_masks']}) from "
        f"{len(result['shards'])} shards"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deimos", description="Active learning for lab loops.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("select", help="pick a batch from fixed-mask predictions (.npy)")
    p.add_argument("--preds", type=Path, required=True, help="(n, J) or (n, c, J) .npy sample")
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--method", default="deimos", help="deimos, random, maxvar, maxent, bald, ...")
    p.add_argument("--tau-inv", type=float, help="tau^-1 (regression) or tau_s^-1 (classification)")
    p.add_argument("--pool-preds", type=Path, help="(m, J) / (m, c, J) .npy of pool points")
    p.add_argument("--candidates", type=Path, help=".npy of integer indices that may be picked")
    p.add_argument("--seed", type=int, default=0, help="seed for --method random")
    p.add_argument("--out", type=Path, help="CSV to write (default: stdout)")
    p.set_defaults(handler=cmd_select)

    p = sub.add_parser("train", help="train a SplicingCNN on labelled sequences of a FASTA pool")
    p.add_argument("--fasta", type=Path, required=True, help="pool of sequences (FASTA)")
    p.add_argument("--labels", type=Path, required=True, help="CSV/XLSX with id and a value")
    p.add_argument("--value-column", default="donor_usage")
    p.add_argument("--length", type=int, default=101, help="sequence length of the model input")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="model file to write")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("predict", help="fixed-mask MC-dropout predictions of a FASTA pool")
    p.add_argument("--model", type=Path, required=True, help="a file written by deimos train")
    p.add_argument("--fasta", type=Path, required=True)
    p.add_argument("--masks", type=int, default=50, help="number of fixed dropout masks J")
    p.add_argument("--seed", type=int, default=0, help="seed of the masks")
    p.add_argument("--out", type=Path, required=True, help=".npy to write; ids go beside it")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser(
        "score", help="fixed-mask predictions in shards (Prefect flow; Dask with --workers)"
    )
    p.add_argument("--model", type=Path, required=True, help="a file written by deimos train")
    p.add_argument("--fasta", type=Path, required=True)
    p.add_argument("--masks", type=int, default=50, help="number of fixed dropout masks J")
    p.add_argument("--seed", type=int, default=0, help="seed of the masks (shared by shards)")
    p.add_argument("--shards", type=int, default=4, help="prediction tasks")
    p.add_argument("--workers", type=int, default=1, help="local Dask worker processes")
    p.add_argument("--dask-address", help="scheduler of an existing Dask cluster")
    p.add_argument(
        "--device", help="where shards compute: cpu, cuda, cuda:N (default: CUDA when available)"
    )
    p.add_argument("--out", type=Path, required=True, help=".npy to write; ids go beside it")
    p.set_defaults(handler=cmd_score)

    p = sub.add_parser(
        "simulate", help="in-process simulated campaign comparing methods (no Prefect/DVC)"
    )
    p.add_argument("--dir", type=Path, default=Path("out/simulate"), help="where results go")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--initial", type=int, default=200, help="labels before the first round")
    p.add_argument("--pool-size", type=int, default=5000)
    p.add_argument("--methods", nargs="+", default=["deimos", "random"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_simulate)

    from deimos_cli import benchmark, deploy, lab_loop

    lab_loop.add_commands(sub)
    benchmark.add_commands(sub)
    deploy.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except InputError as exc:
        print(f"deimos: error: {exc}", file=sys.stderr)
        return 2
    except Exception:
        logger.exception("internal error")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
