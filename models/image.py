"""CNN for small grey-scale images (MNIST, Fashion-MNIST 28x28; scikit-learn digits 8x8)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from deimos.errors import InputError
from models.base import (
    DropoutModel,
    Task,
    check_positive_int,
    check_positive_ints,
    seeded_construction,
)


class ImageCNN(DropoutModel):
    """Images `(batch, 1, image_size, image_size)` -> class logits or one regression output.

    Trunk (deterministic): `Conv2d(3x3, "same") -> ReLU` per entry of `conv_channels`, with
    `MaxPool2d(2)` after the second convolution (the classic conv-conv-pool block), then
    `AdaptiveMaxPool2d` down to `pooled_size x pooled_size`. Head: `(Dropout -> Linear -> ReLU)`
    per entry of `hidden_units`, then `Dropout -> Linear` to `n_classes` logits
    (classification) or to one value (regression, identity output, e.g. age from faces).

    Flattening the full `64 x 14 x 14` map into the head (as Keras' MNIST example does) would
    make the 50-mask head cost ~2.5 plain passes; pooling to `3 x 3` keeps it near 1.1.

    Args:
        n_classes: number of classes (classification); must be None for regression.
        task: `"classification"` or `"regression"`.
        image_size: side of the square input (28 for MNIST, 8 for scikit-learn digits).
        conv_channels: output channels of each 3x3 convolution (at least two).
        pooled_size: side of the feature map after the final adaptive max pool.
        hidden_units: widths of the hidden fully-connected layers.
        dropout_p: dropout probability before every fully-connected layer.
        seed: seed of the weight initialisation (global RNG state is left untouched).
    """

    def __init__(
        self,
        n_classes: int | None = 10,
        task: Task = "classification",
        image_size: int = 28,
        conv_channels: Sequence[int] = (32, 64, 64),
        pooled_size: int = 3,
        hidden_units: Sequence[int] = (128,),
        dropout_p: float = 0.25,
        seed: int = 0,
    ) -> None:
        super().__init__(dropout_p=dropout_p, task=task, n_classes=n_classes)
        self.image_size = check_positive_int(image_size, "image_size")
        channels = check_positive_ints(conv_channels, "conv_channels")
        check_positive_int(pooled_size, "pooled_size")
        hidden = check_positive_ints(hidden_units, "hidden_units", allow_empty=True)
        if len(channels) < 2:
            raise InputError(f"conv_channels needs at least two entries, got {list(channels)}")
        if image_size // 2 < pooled_size:
            raise InputError(
                f"image_size={image_size} is too small: the 2x2 pool leaves {image_size // 2} "
                f"pixels a side, fewer than pooled_size={pooled_size}"
            )
        layers: list[nn.Module] = []
        in_ch = 1
        with seeded_construction(seed):
            for i, out_ch in enumerate(channels):
                layers += [nn.Conv2d(in_ch, out_ch, 3, padding="same"), nn.ReLU()]
                if i == 1:
                    layers.append(nn.MaxPool2d(2))
                in_ch = out_ch
            layers.append(nn.AdaptiveMaxPool2d(pooled_size))
            self.trunk = nn.Sequential(*layers)
            self.head = self._build_head(in_ch * pooled_size**2, hidden, "identity")
        self.init_kwargs = {
            "n_classes": n_classes,
            "task": task,
            "image_size": image_size,
            "conv_channels": list(channels),
            "pooled_size": pooled_size,
            "hidden_units": list(hidden),
            "dropout_p": float(dropout_p),
            "seed": seed,
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        """`(1, image_size, image_size)`."""
        return (1, self.image_size, self.image_size)
