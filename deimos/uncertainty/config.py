"""Training settings, checked without importing torch (a params file loads in milliseconds)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from deimos.config import NonNegativeFloat, PositiveFloat, PositiveInt, Settings

__all__ = ["Task", "TrainConfig"]

Task = Literal["regression", "classification"]

# torch.device's accelerator types; the index, when given, is checked by torch at training time.
DEVICE_RE = re.compile(r"(cpu|cuda|mps|xpu|meta|hpu|mtia|privateuseone)(:\d+)?")


def _device(value: str | None) -> str | None:
    if value is not None and not DEVICE_RE.fullmatch(value):
        raise ValueError("is not a device: use cpu, cuda, cuda:N, mps or null for the best one")
    return value


class TrainConfig(Settings):
    """Training settings.

    Attributes:
        epochs: maximum number of passes over the training set.
        batch_size: training mini-batch size.
        lr: Adam learning rate.
        weight_decay_C: the constant `C` in `lambda = C / N` (fully-connected layers only).
        patience: stop after this many epochs without a lower validation loss.
        seed: seed for shuffling and dropout during training.
        task: `"regression"` (MSE) or `"classification"` (cross-entropy); must match the model.
        device: `"cpu"`, `"cuda"`, ...; `None` picks CUDA when available, else CPU.
    """

    epochs: PositiveInt = 200
    batch_size: PositiveInt = 32
    lr: PositiveFloat = 1e-3
    weight_decay_C: NonNegativeFloat = 1.0  # noqa: N815  (the paper's C in lambda = C / N)
    patience: PositiveInt = 20
    seed: Annotated[int, Field(strict=True)] = 0
    task: Task = "regression"
    device: Annotated[str | None, Field(strict=True), AfterValidator(_device)] = None
