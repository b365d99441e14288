"""PyTorch models with dropout only before fully-connected layers and a deterministic trunk.

Every model is a `DropoutModel`: `trunk(x)` (deterministic features) followed by a `head` of
`HeadBlock`s (`Dropout -> Linear -> activation`), plus `dropout_p`, `task` and `n_classes`.
`deimos.uncertainty.predict` relies on exactly this interface.
"""

from models.base import DropoutModel, HeadBlock
from models.image import ImageCNN
from models.mlp import MLP
from models.splicing import SplicingCNN

#: Model classes by name, for rebuilding a saved model from its constructor arguments.
MODEL_REGISTRY: dict[str, type[DropoutModel]] = {
    "SplicingCNN": SplicingCNN,
    "ImageCNN": ImageCNN,
    "MLP": MLP,
}

__all__ = ["MLP", "MODEL_REGISTRY", "DropoutModel", "HeadBlock", "ImageCNN", "SplicingCNN"]
