"""CNN for 5' splice-donor usage from one-hot DNA (the paper's splicing experiment)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from deimos.errors import InputError
from models.base import DropoutModel, check_positive_int, check_positive_ints, seeded_construction


class SplicingCNN(DropoutModel):
    """One-hot DNA `(batch, 4, seq_length)` -> donor usage in `[0, 1]` (sigmoid output).

    Trunk (deterministic): `Conv1d(k, "same") -> ReLU` per entry of `conv_channels`, with
    `MaxPool1d(2)` after every convolution from the second on, then `AdaptiveMaxPool1d` down to
    `pooled_length` positions (coarse position: which side of the insert a motif sits on).
    Head: `(Dropout -> Linear -> ReLU)` per entry of `hidden_units`, then
    `Dropout -> Linear(., 1) -> sigmoid`.

    The trunk is kept wide and the flattened features narrow (`conv_channels[-1] *
    pooled_length`, 256 by default) so that running the head under 50 dropout masks costs a
    fraction of one trunk pass.

    Args:
        seq_length: sequence length `L` (101 for the A5SS reporter's variable region).
        conv_channels: output channels of each convolution.
        kernel_sizes: kernel width of each convolution (same length as `conv_channels`).
        pooled_length: positions kept by the final adaptive max pool.
        hidden_units: widths of the hidden fully-connected layers.
        dropout_p: dropout probability before every fully-connected layer.
        seed: seed of the weight initialisation (global RNG state is left untouched).
    """

    def __init__(
        self,
        seq_length: int = 101,
        conv_channels: Sequence[int] = (64, 128, 128),
        kernel_sizes: Sequence[int] = (9, 9, 5),
        pooled_length: int = 2,
        hidden_units: Sequence[int] = (256,),
        dropout_p: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(dropout_p=dropout_p, task="regression", n_classes=None)
        self.seq_length = check_positive_int(seq_length, "seq_length")
        channels = check_positive_ints(conv_channels, "conv_channels")
        kernels = check_positive_ints(kernel_sizes, "kernel_sizes")
        check_positive_int(pooled_length, "pooled_length")
        hidden = check_positive_ints(hidden_units, "hidden_units", allow_empty=True)
        if len(kernels) != len(channels):
            raise InputError(
                f"kernel_sizes has {len(kernels)} entries but conv_channels has {len(channels)}"
            )
        length_after_pools = seq_length // 2 ** (len(channels) - 1)
        if length_after_pools < pooled_length:
            raise InputError(
                f"seq_length={seq_length} is too short: {len(channels) - 1} pooling steps leave "
                f"{length_after_pools} positions, fewer than pooled_length={pooled_length}"
            )
        layers: list[nn.Module] = []
        in_ch = 4
        with seeded_construction(seed):
            for i, (out_ch, k) in enumerate(zip(channels, kernels, strict=True)):
                layers += [nn.Conv1d(in_ch, out_ch, k, padding="same"), nn.ReLU()]
                if i >= 1:
                    layers.append(nn.MaxPool1d(2))
                in_ch = out_ch
            layers.append(nn.AdaptiveMaxPool1d(pooled_length))
            self.trunk = nn.Sequential(*layers)
            self.head = self._build_head(in_ch * pooled_length, hidden, "sigmoid")
        self.init_kwargs = {
            "seq_length": seq_length,
            "conv_channels": list(channels),
            "kernel_sizes": list(kernels),
            "pooled_length": pooled_length,
            "hidden_units": list(hidden),
            "dropout_p": float(dropout_p),
            "seed": seed,
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        """`(4, seq_length)`: one-hot A, C, G, T along the channel axis."""
        return (4, self.seq_length)
