"""A whole active-learning campaign against the simulated splicing assay, in one process.

Each round retrains a `SplicingCNN` from scratch on every label so far, predicts the unlabelled
pool under J fixed dropout masks, calibrates `tau^-1` on a validation set (Appendix E), picks a
batch with the chosen acquisition method, and "sends it to the lab": the simulated assay returns
noisy read-count measurements, which become labels. Test error is measured against the assay's
noise-free donor usage. This is `deimos simulate` (the lab loop's `deimos demo` runs the same
rounds through Prefect and DVC); it writes no files.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deimos.data.a5ss_library import generate_library
from deimos.data.assay import SimulatedAssay
from deimos.data.donor_model import donor_usage
from deimos.data.onehot import one_hot
from deimos.loop.config import SimulationConfig
from deimos.loop.round import RoundData, RoundSettings, run_round
from deimos.loop.seeds import SeedPlan
from deimos.uncertainty.calibration import variance_error_r2
from deimos.uncertainty.predict import predict_fixed_masks, predict_mean
from models.splicing import SplicingCNN

logger = logging.getLogger(__name__)


def run_simulated_campaign(config: SimulationConfig, *, progress: bool = True) -> pd.DataFrame:
    """Run the campaign once per method from the same split, initial labels and round seeds.

    Every round is `deimos.loop.round.run_round` with the seeds of `SeedPlan(config.seed)`, the
    same kernel the lab loop's stages and the benchmark run.

    Returns:
        One row per (method, round): `method, round, n_labels, test_mse, tau_inv, dropout_r2,
        batch_gain, seconds` (`dropout_r2`: Appendix E's R^2 between squared test error and
        dropout variance), where round 0 is the model trained on the initial labels only.
    """
    plan = SeedPlan(config.seed)
    rng = np.random.default_rng(plan.split())
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
            settings = RoundSettings(
                kind="regression",
                method=method,
                batch_size=config.batch_size,
                n_masks=config.n_masks,
                train=config.train,
                tau_factor=config.tau_factor,
                sample_labelled=config.sample_labelled,
            )
            fixed_tau: float | None = None
            labelled = list(initial)  # positions in pool_idx
            y_labelled = list(_measure(assay, ids, library.seqs, pool_idx[initial]))
            for round_id in range(config.n_rounds + 1):
                start = time.perf_counter()
                n_train = len(labelled)
                unlabelled = np.setdiff1d(np.arange(config.pool_size), labelled)
                data = RoundData(
                    X_train=X_all[pool_idx[labelled]],
                    y_train=np.asarray(y_labelled, dtype=np.float32),
                    X_val=X_all[val_idx],
                    y_val=y_val,
                    X_candidates=X_all[pool_idx[unlabelled]],
                )
                result = run_round(
                    lambda init_seed: _splicing_model(config, init_seed),
                    data,
                    settings,
                    plan.for_round(round_id),
                    select_batch=round_id < config.n_rounds,
                    tau_inv=fixed_tau,
                )
                if config.tau_calibration == "initial" and round_id == 0:
                    fixed_tau = result.tau_inv
                test_pred = predict_mean(result.model, X_all[test_idx], progress=False).numpy()
                test_mse = float(np.mean((test_pred - truth_test) ** 2))
                masked = predict_fixed_masks(
                    result.model, X_all[test_idx], n_masks=config.n_masks, seed=0, progress=False
                ).numpy()
                dropout_r2 = variance_error_r2(masked, truth_test)
                batch_gain = float("nan")
                if result.selection is not None:
                    batch_gain = float(np.sum(result.selection.gains))
                    new = unlabelled[list(result.selection.indices)]
                    y_labelled += list(_measure(assay, ids, library.seqs, pool_idx[new]))
                    labelled += list(new)
                rows.append(
                    {
                        "method": method,
                        "round": round_id,
                        "n_labels": n_train,
                        "test_mse": test_mse,
                        "tau_inv": result.tau_inv,
                        "dropout_r2": dropout_r2,
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


def _splicing_model(config: SimulationConfig, init_seed: int) -> SplicingCNN:
    widths: dict[str, Any] = {}
    if config.conv_channels is not None:
        widths["conv_channels"] = config.conv_channels
    if config.hidden_units is not None:
        widths["hidden_units"] = config.hidden_units
    return SplicingCNN(seed=init_seed, dropout_p=config.dropout_p, **widths)


def _measure(
    assay: SimulatedAssay, ids: np.ndarray, seqs: tuple[str, ...], rows: np.ndarray
) -> np.ndarray:
    """Send `rows` of the library to the simulated lab; one mean usage per sequence."""
    table = assay.measure(ids[rows].tolist(), [seqs[i] for i in rows])
    return table.groupby("id", sort=False)["donor_usage"].mean().to_numpy(dtype=np.float32)
