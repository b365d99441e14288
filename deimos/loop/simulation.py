"""A whole active-learning campaign against the simulated splicing assay, in one process.

Each round retrains a `SplicingCNN` from scratch on every label so far, predicts the unlabelled
pool under J fixed dropout masks, calibrates `tau^-1` on a validation set (Appendix E), picks a
batch with the chosen acquisition method, and "sends it to the lab": the simulated assay returns
noisy read-count measurements, which become labels. Test error is measured against the assay's
noise-free donor usage. This is the engine behind `deimos demo`; it writes no files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deimos.acquisition.registry import get_selector
from deimos.acquisition.selection import Selection
from deimos.data.assay import SimulatedAssay, donor_usage, generate_library
from deimos.data.sequences import one_hot
from deimos.errors import InputError
from deimos.uncertainty.calibration import tau_inv_regression
from deimos.uncertainty.predict import penultimate_embeddings, predict_fixed_masks, predict_mean
from deimos.uncertainty.train import TrainConfig, train_model
from models.splicing import SplicingCNN

logger = logging.getLogger(__name__)

# The acquisition methods that apply to a regression label (donor usage).
REGRESSION_METHODS = ("deimos", "random", "maxvar")
# The simulation also runs robust k-Center on the model's embeddings (the lab loop does not).
SIMULATION_METHODS = (*REGRESSION_METHODS, "kcenter")


@dataclass(frozen=True)
class SimulationConfig:
    """Sizes and seeds of a simulated campaign (defaults: a demo that runs in minutes on CPU)."""

    pool_size: int = 5000
    test_size: int = 1000
    n_validation: int = 100
    n_initial: int = 200
    batch_size: int = 100
    n_rounds: int = 3
    n_masks: int = 50
    methods: tuple[str, ...] = ("deimos", "random")
    seed: int = 0
    read_depth: float = 100.0
    tau_factor: float = 0.15
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(task="regression", epochs=100, patience=15, seed=0)
    )

    def __post_init__(self) -> None:
        for name in (
            "pool_size",
            "test_size",
            "n_validation",
            "n_initial",
            "batch_size",
            "n_masks",
        ):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_rounds < 0:
            raise InputError(f"n_rounds must be >= 0, got {self.n_rounds}")
        if self.n_masks < 2:
            raise InputError(f"n_masks must be at least 2, got {self.n_masks}")
        if self.n_initial + self.n_rounds * self.batch_size > self.pool_size:
            raise InputError(
                f"pool_size={self.pool_size} is too small for n_initial={self.n_initial} plus "
                f"{self.n_rounds} rounds of batch_size={self.batch_size}"
            )
        unknown = [m for m in self.methods if m not in SIMULATION_METHODS]
        if unknown or not self.methods:
            raise InputError(
                f"methods {unknown or list(self.methods)} cannot run a regression campaign; "
                f"use {', '.join(SIMULATION_METHODS)}"
            )


def run_simulated_campaign(config: SimulationConfig, *, progress: bool = True) -> pd.DataFrame:
    """Run the campaign once per method from the same initial labels.

    Returns:
        One row per (method, round): `method, round, n_labels, test_mse, tau_inv, batch_gain,
        seconds`, where round 0 is the model trained on the initial labels only.
    """
    rng = np.random.default_rng(config.seed)
    n_total = config.pool_size + config.test_size + config.n_validation
    library = generate_library(n_total, seed=config.seed)
    X_all = one_hot(list(library.seqs))
    ids = np.array(library.ids)
    order = rng.permutation(n_total)
    pool_idx = order[: config.pool_size]
    val_idx = order[config.pool_size : config.pool_size + config.n_validation]
    test_idx = order[config.pool_size + config.n_validation :]
    assay = SimulatedAssay(seed=config.seed, read_depth=config.read_depth)
    truth_test = donor_usage([library.seqs[i] for i in test_idx])
    y_val = _measure(assay, ids, library.seqs, val_idx)
    initial = rng.choice(config.pool_size, size=config.n_initial, replace=False)

    rows = []
    steps = len(config.methods) * (config.n_rounds + 1)
    with tqdm(total=steps, desc="campaign rounds", disable=not progress) as bar:
        for method in config.methods:
            labelled = list(initial)  # positions in pool_idx
            y_labelled = list(_measure(assay, ids, library.seqs, pool_idx[initial]))
            for round_id in range(config.n_rounds + 1):
                start = time.perf_counter()
                n_train = len(labelled)
                model, _ = train_model(
                    SplicingCNN(seed=config.seed + round_id),
                    X_all[pool_idx[labelled]],
                    np.asarray(y_labelled, dtype=np.float32),
                    X_all[val_idx],
                    y_val,
                    config.train,
                )
                test_pred = predict_mean(model, X_all[test_idx], progress=False).numpy()
                test_mse = float(np.mean((test_pred - truth_test) ** 2))
                val_preds = predict_fixed_masks(
                    model, X_all[val_idx], n_masks=config.n_masks, seed=round_id, progress=False
                )
                tau_inv = tau_inv_regression(val_preds.numpy(), factor=config.tau_factor)
                batch_gain = float("nan")
                if round_id < config.n_rounds:
                    unlabelled = np.setdiff1d(np.arange(config.pool_size), labelled)
                    pool_preds = predict_fixed_masks(
                        model,
                        X_all[pool_idx[unlabelled]],
                        n_masks=config.n_masks,
                        seed=round_id,
                        progress=False,
                    ).numpy()
                    if method == "kcenter":
                        # Labelled points are the initial centers, in embedding space.
                        emb = penultimate_embeddings(
                            model, X_all[pool_idx[np.concatenate([labelled, unlabelled])]]
                        )
                        n_lab = len(labelled)
                        picks = get_selector("kcenter")(
                            emb, config.batch_size, labelled=np.arange(n_lab)
                        )
                        picks = Selection(
                            tuple(i - n_lab for i in picks.indices), picks.gains, picks.method
                        )
                    else:
                        picks = _select(method, pool_preds, config, tau_inv, round_id)
                    batch_gain = float(np.sum(picks.gains))
                    new = unlabelled[list(picks.indices)]
                    y_labelled += list(_measure(assay, ids, library.seqs, pool_idx[new]))
                    labelled += list(new)
                rows.append(
                    {
                        "method": method,
                        "round": round_id,
                        "n_labels": n_train,
                        "test_mse": test_mse,
                        "tau_inv": tau_inv,
                        "batch_gain": batch_gain,
                        "seconds": round(time.perf_counter() - start, 2),
                    }
                )
                logger.info(
                    "event=round method=%s round=%d n_labels=%d test_mse=%.4f",
                    method,
                    round_id,
                    n_train,
                    test_mse,
                )
                bar.update(1)
    return pd.DataFrame(rows)


def _measure(
    assay: SimulatedAssay, ids: np.ndarray, seqs: tuple[str, ...], rows: np.ndarray
) -> np.ndarray:
    """Send `rows` of the library to the simulated lab; one mean usage per sequence."""
    table = assay.measure(ids[rows].tolist(), [seqs[i] for i in rows])
    return table.groupby("id", sort=False)["donor_usage"].mean().to_numpy(dtype=np.float32)


def _select(
    method: str, pool_preds: np.ndarray, config: SimulationConfig, tau_inv: float, round_id: int
) -> Selection:
    select = get_selector(method)
    if method == "deimos":
        return select(pool_preds, config.batch_size, tau_inv=tau_inv)
    if method == "random":
        return select(pool_preds, config.batch_size, seed=config.seed * 1000 + round_id)
    return select(pool_preds, config.batch_size)
