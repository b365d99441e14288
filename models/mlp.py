"""Fully-connected network (the paper's 1-D synthetic model)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.base import (
    DropoutModel,
    Task,
    check_positive_int,
    check_positive_ints,
    seeded_construction,
)


class MLP(DropoutModel):
    """Inputs `(batch, input_dim)` -> one regression output or `n_classes` logits.

    The trunk is the identity: dropout already sits before the first Linear, so every layer is
    in the head. Head: `(Dropout -> Linear -> ReLU)` per entry of `hidden_units`, then
    `Dropout -> Linear` (identity output).

    Args:
        input_dim: number of input features.
        hidden_units: hidden layer widths; the paper uses `[256, 256, 256]`.
        dropout_p: dropout probability before every fully-connected layer (paper: 0.2).
        task: `"regression"` or `"classification"`.
        n_classes: number of classes (classification); must be None for regression.
        seed: seed of the weight initialisation (global RNG state is left untouched).
    """

    def __init__(
        self,
        input_dim: int = 1,
        hidden_units: Sequence[int] = (256, 256, 256),
        dropout_p: float = 0.2,
        task: Task = "regression",
        n_classes: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(dropout_p=dropout_p, task=task, n_classes=n_classes)
        self.input_dim = check_positive_int(input_dim, "input_dim")
        hidden = check_positive_ints(hidden_units, "hidden_units", allow_empty=True)
        self.trunk = nn.Identity()
        with seeded_construction(seed):
            self.head = self._build_head(input_dim, hidden, "identity")
        self.init_kwargs = {
            "input_dim": input_dim,
            "hidden_units": list(hidden),
            "dropout_p": float(dropout_p),
            "task": task,
            "n_classes": n_classes,
            "seed": seed,
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        """`(input_dim,)`."""
        return (self.input_dim,)
