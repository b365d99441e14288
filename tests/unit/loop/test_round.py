"""The round kernel: one fit -> predict -> tau -> acquire, staged or in one call, same batch."""

from __future__ import annotations

import numpy as np
import pytest

from deimos.errors import InputError
from deimos.loop.round import (
    RoundData,
    RoundSettings,
    acquire,
    calibrate_tau,
    fit_round_model,
    predict_round,
    run_round,
)
from deimos.loop.seeds import SeedPlan
from deimos.uncertainty.predict import penultimate_embeddings, predict_fixed_masks
from deimos.uncertainty.train import TrainConfig
from models import MLP

RNG = np.random.default_rng(0)
X = RNG.uniform(-2, 2, size=(160, 1)).astype(np.float32)
Y = (np.sin(2 * X[:, 0]) + 0.1 * RNG.normal(size=160)).astype(np.float32)
DATA = RoundData(X[:20], Y[:20], X[20:40], Y[20:40], X[40:])
TRAIN = TrainConfig(epochs=15, patience=15, batch_size=8, lr=3e-3, task="regression")


def build(init_seed: int) -> MLP:
    return MLP(input_dim=1, hidden_units=(16,), dropout_p=0.2, task="regression", seed=init_seed)


def settings(method: str = "deimos", **kw: object) -> RoundSettings:
    return RoundSettings(
        kind="regression", method=method, batch_size=4, n_masks=8, train=TRAIN, **kw
    )


def test_staged_round_equals_one_call() -> None:
    seeds = SeedPlan(3).for_round(2)
    whole = run_round(build, DATA, settings(), seeds)
    model, _ = fit_round_model(
        build, DATA.X_train, DATA.y_train, DATA.X_val, DATA.y_val, settings(), seeds
    )
    preds = predict_round(model, DATA.X_candidates, DATA.X_val, settings(), seeds)
    tau = calibrate_tau(preds.validation, settings())
    picks = acquire(preds, tau, settings(), seeds, n_candidates=len(DATA.X_candidates))
    assert whole.selection is not None
    assert picks.indices == whole.selection.indices
    assert tau == whole.tau_inv > 0
    assert len(set(picks.indices)) == 4


def test_seeds_drive_the_round_and_other_rounds_differ() -> None:
    plan = SeedPlan(1)
    a = run_round(build, DATA, settings(), plan.for_round(0))
    b = run_round(build, DATA, settings(), plan.for_round(0))
    c = run_round(build, DATA, settings(), plan.for_round(1))
    assert a.selection == b.selection
    assert a.predictions is not None and c.predictions is not None
    assert not np.array_equal(a.predictions.candidates, c.predictions.candidates)


def test_candidates_and_validation_share_the_masks() -> None:
    seeds = SeedPlan(0).for_round(0)
    result = run_round(build, DATA, settings(), seeds)
    assert result.predictions is not None
    together = predict_fixed_masks(
        result.model, np.concatenate([DATA.X_candidates, DATA.X_val]), n_masks=8, seed=seeds.masks
    ).numpy()
    n = len(DATA.X_candidates)
    np.testing.assert_array_equal(result.predictions.candidates, together[:n])
    np.testing.assert_array_equal(result.predictions.validation, together[n:])


def test_last_round_fits_without_picking() -> None:
    result = run_round(build, DATA, settings(), SeedPlan(0).for_round(5), select_batch=False)
    assert result.selection is None and result.predictions is None


def test_kcenter_round_uses_labelled_points_as_centres() -> None:
    seeds = SeedPlan(0).for_round(0)
    result = run_round(build, DATA, settings("kcenter"), seeds)
    assert result.predictions is not None and result.selection is not None
    assert result.predictions.candidates is None  # k-Center needs no fixed-mask predictions
    assert result.predictions.labelled_embeddings is not None
    assert result.predictions.labelled_embeddings.shape[0] == len(DATA.X_train)
    with pytest.raises(InputError, match="needs the labelled points"):
        predict_round(result.model, DATA.X_candidates, DATA.X_val, settings("kcenter"), seeds)


def test_labelled_points_in_the_sample_change_deimos_gains() -> None:
    seeds = SeedPlan(0).for_round(0)
    plain = run_round(build, DATA, settings(), seeds)
    with_s = run_round(build, DATA, settings(sample_labelled=True), seeds)
    assert with_s.predictions is not None and with_s.predictions.labelled is not None
    assert with_s.selection is not None and plain.selection is not None
    assert sum(with_s.selection.gains) > sum(plain.selection.gains)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"method": "maxent"}, "does not apply to regression"),
        ({"method": "nope"}, "unknown acquisition method"),
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
        ({"n_masks": 1}, "n_masks: Input should be greater than or equal to 2"),
    ],
)
def test_bad_settings_are_refused(kw: dict[str, object], match: str) -> None:
    base: dict[str, object] = {
        "kind": "regression", "method": "deimos", "batch_size": 4, "n_masks": 8, "train": TRAIN,
    }  # fmt: skip
    with pytest.raises(InputError, match=match):
        RoundSettings(**{**base, **kw})  # type: ignore[arg-type]


def test_embeddings_do_not_depend_on_the_batch() -> None:
    model = build(0)
    full = penultimate_embeddings(model, X, batch_size=64)
    alone = penultimate_embeddings(model, X[37:38], batch_size=64)
    np.testing.assert_array_equal(full[37:38].numpy(), alone.numpy())
    assert full.shape == (160, 16)


def test_a_given_tau_replaces_the_rounds_calibration() -> None:
    seeds = SeedPlan(2).for_round(1)
    calibrated = run_round(build, DATA, settings(), seeds)
    fixed = 50 * calibrated.tau_inv  # so large that the gains shrink visibly
    kept = run_round(build, DATA, settings(), seeds, tau_inv=fixed)
    assert kept.tau_inv == fixed
    assert kept.selection is not None and calibrated.selection is not None
    assert sum(kept.selection.gains) < sum(calibrated.selection.gains)
