"""Settings of simulated campaigns, checked without importing torch.

`AssaySimulation` is how a simulated library and its measurements are generated: a campaign's
`simulation:` section and the first half of `SimulationConfig` (`deimos simulate`), so the two
agree on names, defaults and checks.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from deimos.acquisition.registry import methods_for
from deimos.config import (
    MaskCount,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Settings,
    StrictBool,
)
from deimos.uncertainty.config import TrainConfig

__all__ = ["AssaySimulation", "SimulationConfig", "campaign_train_config"]

#: A training set needs a few labels besides the validation split (`deimos.campaign.stages`).
MIN_INITIAL = 4


def campaign_train_config() -> TrainConfig:
    """Training defaults of the lab loop and the simulator: shorter than the library's."""
    return TrainConfig(task="regression", epochs=100, patience=15)


class AssaySimulation(Settings):
    """How a simulated campaign's data is generated (byte-identically) and measured.

    Attributes:
        pool_size: sequences the campaign may measure.
        test_size: held-out sequences scored against the assay's noise-free donor usage.
        n_initial: pool sequences measured before round 0.
        seed: seed of the library, the split and the assay's noise.
        read_depth: mean reads per measurement (the assay's binomial noise).
    """

    pool_size: Annotated[int, Field(strict=True, ge=2)] = 5000
    test_size: PositiveInt = 1000
    n_initial: Annotated[int, Field(strict=True, ge=MIN_INITIAL)] = 200
    seed: NonNegativeInt = 0
    read_depth: PositiveFloat = 100.0

    @model_validator(mode="after")
    def _initial_fits_the_pool(self) -> AssaySimulation:
        if self.n_initial > self.pool_size:
            raise ValueError(f"n_initial={self.n_initial} exceeds pool_size={self.pool_size}")
        return self


class SimulationConfig(AssaySimulation):
    """A whole simulated campaign in one process (defaults: a demo that runs in minutes on CPU).

    Attributes:
        n_validation: measured sequences kept for early stopping and `tau` calibration.
        batch_size: sequences acquired per round.
        n_rounds: acquisition rounds after round 0.
        n_masks: fixed dropout masks J.
        methods: regression acquisition methods to compare, each from the same start.
        tau_factor: `tau^-1 = tau_factor x` mean validation dropout variance.
        sample_labelled: DEIMOS' representative sample S also holds the labelled sequences.
        tau_calibration: `every_round` recalibrates `tau` on each round's model; `initial` keeps
            round 0's.
        conv_channels: the `SplicingCNN`'s three convolution widths; None = its defaults.
        hidden_units: the `SplicingCNN`'s hidden widths; None = its default.
        dropout_p: the `SplicingCNN`'s dropout probability.
        train: training settings (seed and task are set per round by the round kernel).
    """

    n_validation: PositiveInt = 100
    batch_size: PositiveInt = 100
    n_rounds: NonNegativeInt = 3
    n_masks: MaskCount = 50
    methods: tuple[str, ...] = ("deimos", "random")
    tau_factor: PositiveFloat = 0.15
    sample_labelled: StrictBool = False
    tau_calibration: Literal["every_round", "initial"] = "every_round"
    conv_channels: tuple[PositiveInt, PositiveInt, PositiveInt] | None = None
    hidden_units: tuple[PositiveInt, ...] | None = None
    dropout_p: Probability = 0.2
    train: TrainConfig = Field(default_factory=campaign_train_config)

    @field_validator("methods")
    @classmethod
    def _regression_methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        valid = methods_for("regression")
        unknown = [m for m in methods if m not in valid]
        if unknown or not methods:
            raise ValueError(
                f"{unknown or list(methods)} cannot run a regression campaign; "
                f"use {', '.join(valid)}"
            )
        return methods

    @model_validator(mode="after")
    def _rounds_fit_the_pool(self) -> SimulationConfig:
        if self.n_initial + self.n_rounds * self.batch_size > self.pool_size:
            raise ValueError(
                f"pool_size={self.pool_size} is too small for n_initial={self.n_initial} plus "
                f"{self.n_rounds} rounds of batch_size={self.batch_size}"
            )
        return self
