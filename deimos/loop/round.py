"""One active-learning round, written once: fit -> predict under fixed masks -> tau -> acquire.

The lab loop's DVC stages (`deimos.campaign.stages`: train, predict, select run the three steps
in three processes with files between them), the paper benchmark (`deimos.experiments`) and
`deimos simulate` (`deimos.loop.simulation`) all call these functions, with the seeds of one
`SeedPlan`; so what the benchmark measures is what a campaign runs.

- `fit_round_model`: a fresh model (weights from `seeds.init`) trained on the round's labels
  (mini-batch order and training dropout from `seeds.order`): models are retrained from scratch
  every round, as in the paper.
- `predict_round`: the candidates, the validation set (and the labelled points, when they join
  DEIMOS' representative sample) under the same J masks drawn from `seeds.masks`; embeddings
  only for methods that need them.
- `calibrate_tau`: Appendix E: `tau^-1` (regression) or `tau_s^-1` (classification) as a factor
  of the mean dropout variance on the validation set, every round.
- `acquire`: `registry.select(method, SelectionInputs(...))`, random picks from `seeds.picks`.
- `run_round`: the four in one process, returning a `RoundResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import model_validator

from deimos.acquisition.registry import METHODS, Kind, SelectionInputs, get_method, select
from deimos.acquisition.selection import Selection
from deimos.config import MaskCount, PositiveFloat, PositiveInt, Settings, StrictBool
from deimos.errors import InputError
from deimos.loop.seeds import RoundSeeds
from deimos.uncertainty.calibration import tau_inv_regression, tau_s_inv_classification
from deimos.uncertainty.predict import penultimate_embeddings, predict_fixed_masks
from deimos.uncertainty.train import TrainConfig, TrainResult, train_model
from models import DropoutModel

#: Builds an untrained model from a weight-initialisation seed.
ModelFactory = Callable[[int], DropoutModel]


class RoundSettings(Settings):
    """How a round fits, predicts and picks (one object for the lab loop and the benchmark).

    Attributes:
        kind: "regression" or "classification"; must match the model.
        method: a registered acquisition method that applies to `kind`.
        batch_size: points acquired per round, b.
        n_masks: fixed dropout masks J.
        train: training settings; its `seed` and `task` are set per round by `fit_round_model`.
        tau_factor: regression `tau^-1 = tau_factor x` mean validation dropout variance.
        tau_s_factor: classification `tau_s^-1 = tau_s_factor x` mean class-probability
            dropout variance.
        sample_labelled: add the labelled training points to DEIMOS' representative sample S
            (the paper samples S from train and pool); False keeps S = the candidates.
    """

    kind: Kind
    method: str
    batch_size: PositiveInt
    n_masks: MaskCount
    train: TrainConfig
    tau_factor: PositiveFloat = 0.15
    tau_s_factor: PositiveFloat = 0.005
    sample_labelled: StrictBool = False

    @model_validator(mode="after")
    def _method_applies(self) -> RoundSettings:
        get_method(self.method, self.kind)
        return self

    def replace_batch(self, batch_size: int) -> RoundSettings:
        """The same settings picking `batch_size` points."""
        return self.replace(batch_size=batch_size)

    @property
    def needs_embeddings(self) -> bool:
        return "embeddings" in METHODS[self.method].needs

    @property
    def needs_predictions(self) -> bool:
        return bool(METHODS[self.method].needs & {"predictions", "tau"})


@dataclass(frozen=True, eq=False)
class RoundData:
    """The arrays of one round: rows are points, inputs in the model's input shape.

    Attributes:
        X_train, y_train: the labelled points the model is fitted on, `(L, ...)` and `(L,)`.
        X_val, y_val: the validation set (early stopping, tau calibration), `(V, ...)`, `(V,)`.
        X_candidates: the pickable points `(N, ...)`; `Selection.indices` index these rows.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_candidates: np.ndarray


@dataclass(frozen=True, eq=False)
class RoundPredictions:
    """Fixed-mask predictions (and embeddings) of one round, all under the same J masks.

    Attributes:
        candidates: `preds_N_J` or `probs_N_C_J` (float32) of the candidates; None when the
            method needs no predictions.
        validation: `(V, J)` or `(V, c, J)` of the validation set (tau calibration); None when
            the method needs no predictions.
        labelled: `(L, ...)` of the training points when they join S, else None.
        embeddings: `(N, D)` candidate embeddings for k-Center, else None.
        labelled_embeddings: `(L, D)` training-point embeddings (k-Center's centers), else None.
    """

    candidates: np.ndarray | None
    validation: np.ndarray | None
    labelled: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    labelled_embeddings: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class RoundResult:
    """What one round did: the fitted model, its predictions, tau and the batch (or None)."""

    model: DropoutModel
    train_result: TrainResult
    predictions: RoundPredictions | None
    tau_inv: float
    selection: Selection | None


def round_train_config(settings: RoundSettings, seeds: RoundSeeds) -> TrainConfig:
    """The round's training config: the settings' with this round's data-order seed."""
    return settings.train.replace(seed=seeds.order, task=settings.kind)


def fit_round_model(
    build_model: ModelFactory,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    settings: RoundSettings,
    seeds: RoundSeeds,
    *,
    progress: bool = False,
) -> tuple[DropoutModel, TrainResult]:
    """Train a fresh model (weights from `seeds.init`) on the round's labels."""
    return train_model(
        build_model(seeds.init),
        X_train,
        y_train,
        X_val,
        y_val,
        round_train_config(settings, seeds),
        progress=progress,
    )


def predict_round(
    model: DropoutModel,
    X_candidates: np.ndarray,
    X_val: np.ndarray,
    settings: RoundSettings,
    seeds: RoundSeeds,
    *,
    X_train: np.ndarray | None = None,
    progress: bool = False,
) -> RoundPredictions:
    """Everything the round's method needs, under the J masks drawn from `seeds.masks`.

    `X_train` is needed when `settings.sample_labelled` (DEIMOS' S includes the labelled points)
    or the method needs embeddings (the labelled points are k-Center's initial centers).
    """

    def under_masks(X: np.ndarray, show: bool = False) -> np.ndarray:
        preds = predict_fixed_masks(
            model, X, n_masks=settings.n_masks, seed=seeds.masks, progress=show
        )
        return preds.numpy()

    cand = val = lab = emb = lab_emb = None
    if settings.needs_predictions:
        cand = under_masks(X_candidates, progress)
        val = under_masks(X_val)
        if settings.sample_labelled and settings.method == "deimos":
            lab = under_masks(_require(X_train, "sample_labelled"))
    if settings.needs_embeddings:
        emb = penultimate_embeddings(model, X_candidates).numpy()
        lab_emb = penultimate_embeddings(model, _require(X_train, "k-Center")).numpy()
    return RoundPredictions(cand, val, lab, emb, lab_emb)


def calibrate_tau(val_preds: np.ndarray | None, settings: RoundSettings) -> float:
    """Appendix E: `tau^-1` / `tau_s^-1` from the validation set's dropout variance (0 without
    predictions: the method does not use it)."""
    if val_preds is None:
        return 0.0
    if settings.kind == "regression":
        return tau_inv_regression(val_preds, factor=settings.tau_factor)
    return tau_s_inv_classification(val_preds, factor=settings.tau_s_factor)


def acquire(
    predictions: RoundPredictions,
    tau_inv: float,
    settings: RoundSettings,
    seeds: RoundSeeds,
    *,
    n_candidates: int,
    batch_size: int | None = None,
    progress: bool = False,
) -> Selection:
    """Pick the batch with `settings.method`; indices are candidate rows `0..n_candidates-1`.

    `batch_size` overrides `settings.batch_size` (the lab loop's last rounds may have fewer
    candidates than b).
    """
    inputs = SelectionInputs(
        batch_size=settings.batch_size if batch_size is None else batch_size,
        preds=predictions.candidates,
        labelled_preds=predictions.labelled,
        embeddings=predictions.embeddings,
        labelled_embeddings=predictions.labelled_embeddings,
        tau_inv=tau_inv if settings.needs_predictions else None,
        seed=seeds.picks,
        progress=progress,
        n_points=n_candidates,
    )
    return select(settings.method, inputs, kind=settings.kind)


def run_round(
    build_model: ModelFactory,
    data: RoundData,
    settings: RoundSettings,
    seeds: RoundSeeds,
    *,
    select_batch: bool = True,
    tau_inv: float | None = None,
    progress: bool = False,
) -> RoundResult:
    """Fit, predict, calibrate and (when `select_batch`) acquire, in one process.

    `select_batch=False` is a run's last round: the model is fitted and scored, nothing picked.
    `tau_inv` given: use it instead of this round's calibration (DEIMOS.md sec. 2 reads Appendix
    E as one `tau` from the initial model, kept over rounds).
    """
    model, result = fit_round_model(
        build_model, data.X_train, data.y_train, data.X_val, data.y_val, settings, seeds
    )
    if not select_batch:
        return RoundResult(model, result, None, float("nan"), None)
    preds = predict_round(
        model, data.X_candidates, data.X_val, settings, seeds, X_train=data.X_train
    )
    if tau_inv is None or not settings.needs_predictions:
        tau_inv = calibrate_tau(preds.validation, settings)
    picks = acquire(
        preds, tau_inv, settings, seeds, n_candidates=len(data.X_candidates), progress=progress
    )
    return RoundResult(model, result, preds, tau_inv, picks)


def _require(X: np.ndarray | None, why: str) -> np.ndarray:
    if X is None:
        raise InputError(f"{why} needs the labelled points' inputs (X_train)")
    return X
