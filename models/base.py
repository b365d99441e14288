"""The interface every model shares with the fixed-mask predictor and the trainer.

A model is a deterministic `trunk` (no dropout: convolutions, pooling, or nothing at all) followed
by a `head` of `HeadBlock`s, each `Dropout -> Linear -> activation`. So dropout sits before every
fully-connected layer and nowhere else (DEIMOS, sec. 3.2), which lets the predictor compute the
trunk once per point and run only the head under the `J` fixed masks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

from deimos.checks import check_int
from deimos.errors import InputError

Task = Literal["regression", "classification"]
Activation = Literal["relu", "sigmoid", "identity"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


class HeadBlock(nn.Module):
    """`Dropout(p) -> Linear(in_features, out_features) -> activation`.

    Attributes:
        dropout: the `nn.Dropout` applied to the block's input.
        linear: the fully-connected layer.
        activation: the element-wise output function (ReLU, sigmoid or identity).
    """

    def __init__(self, in_features: int, out_features: int, p: float, activation: Activation):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise InputError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        self.dropout = nn.Dropout(p)
        self.linear = nn.Linear(in_features, out_features)
        self.activation = _ACTIVATIONS[activation]()

    @property
    def p(self) -> float:
        """Dropout probability of this block's input."""
        return float(self.dropout.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map `(..., in_features)` to `(..., out_features)`."""
        return self.activation(self.linear(self.dropout(x)))


class DropoutModel(nn.Module):
    """Base class: `forward(x) = head(trunk(x))` with dropout in the head only.

    Subclasses build `trunk` and call `_build_head`. They also record their constructor arguments
    in `init_kwargs` (plain JSON values), which `deimos.uncertainty.train.save_model` stores next
    to the weights so that `load_model` can rebuild the model without unpickling code.

    Attributes:
        trunk: deterministic feature extractor, `(batch, ...) -> (batch, n_features)`.
        head: the `HeadBlock`s, applied in order.
        dropout_p: dropout probability used by every head block.
        task: `"regression"` (one output per point) or `"classification"` (logits).
        n_classes: number of classes for classification, `None` for regression.
        init_kwargs: constructor arguments as plain JSON values.
    """

    trunk: nn.Module
    head: nn.ModuleList

    def __init__(self, *, dropout_p: float, task: Task, n_classes: int | None) -> None:
        super().__init__()
        _check_probability(dropout_p)
        if task not in ("regression", "classification"):
            raise InputError(f"task must be 'regression' or 'classification', got {task!r}")
        if task == "classification":
            if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
                raise InputError(f"classification needs n_classes >= 2, got {n_classes!r}")
        elif n_classes is not None:
            raise InputError(f"n_classes must be None for regression, got {n_classes!r}")
        self.dropout_p = float(dropout_p)
        self.task: Task = task
        self.n_classes = n_classes
        self.init_kwargs: dict[str, Any] = {}

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input point, without the batch axis."""
        raise NotImplementedError

    @property
    def n_outputs(self) -> int:
        """Width of the last head layer: `n_classes` for classification, 1 for regression."""
        return self.n_classes if self.n_classes is not None else 1

    def _build_head(
        self, n_features: int, hidden_units: Sequence[int], output_activation: Activation
    ) -> nn.ModuleList:
        widths = [n_features, *hidden_units, self.n_outputs]
        blocks = [
            HeadBlock(
                widths[i],
                widths[i + 1],
                self.dropout_p,
                "relu" if i + 2 < len(widths) else output_activation,
            )
            for i in range(len(widths) - 1)
        ]
        return nn.ModuleList(blocks)

    def head_blocks(self) -> Iterator[HeadBlock]:
        """The head blocks in order, typed for callers."""
        for block in self.head:
            assert isinstance(block, HeadBlock)
            yield block

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic trunk features, flattened to `(batch, n_features)`."""
        return self.trunk(x).flatten(start_dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Regression: `(batch,)` outputs; classification: `(batch, n_classes)` logits."""
        h = self.features(x)
        for block in self.head_blocks():
            h = block(h)
        return h.squeeze(-1) if self.task == "regression" else h


def _check_probability(p: float) -> None:
    # p = 1 would divide by zero in the inverted-dropout scale 1 / (1 - p).
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p < 1.0:
        raise InputError(f"dropout_p must be a number in [0, 1), got {p!r}")


def check_positive_ints(values: Sequence[int], name: str, *, allow_empty: bool = False) -> tuple:
    """Return `values` as a tuple of ints, or raise InputError naming `name`."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InputError(f"{name} must be a sequence of positive integers, got {values!r}")
    out = tuple(values)
    if not out and not allow_empty:
        raise InputError(f"{name} must not be empty")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name} must hold positive integers, got {values!r}")
    return out


def check_positive_int(value: int, name: str) -> int:
    """Return `value` if it is an int >= 1, else raise InputError naming `name`."""
    return check_int(value, name, minimum=1)


@contextmanager
def seeded_construction(seed: int) -> Iterator[None]:
    """Build layers inside this block to initialise them from `seed` alone.

    PyTorch's layers draw their initial weights from the global RNG when constructed; inside a
    forked RNG seeded with `seed`, the same seed gives the same weights and no caller's random
    stream moves.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
