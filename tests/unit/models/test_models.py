"""Models: shapes, dropout only before fully-connected layers, seeded initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deimos.errors import InputError
from models import MLP, MODEL_REGISTRY, DropoutModel, HeadBlock, ImageCNN, SplicingCNN


def small_models() -> list[tuple[DropoutModel, tuple[int, ...]]]:
    return [
        (
            SplicingCNN(conv_channels=(8, 8, 8), kernel_sizes=(5, 5, 3), hidden_units=(16,)),
            (4, 101),
        ),
        (SplicingCNN(seq_length=30, conv_channels=(4, 4), kernel_sizes=(3, 3)), (4, 30)),
        (ImageCNN(n_classes=10, conv_channels=(4, 8)), (1, 28, 28)),
        (ImageCNN(n_classes=None, task="regression", conv_channels=(4, 8)), (1, 28, 28)),
        (ImageCNN(n_classes=3, image_size=8, conv_channels=(4, 4, 4), pooled_size=2), (1, 8, 8)),
        (MLP(input_dim=3), (3,)),
        (MLP(input_dim=5, task="classification", n_classes=4, hidden_units=(8,)), (5,)),
    ]


@pytest.mark.parametrize(("model", "shape"), small_models())
def test_output_shapes(model: DropoutModel, shape: tuple[int, ...]) -> None:
    out = model(torch.rand(6, *shape))
    expected = (6, model.n_classes) if model.task == "classification" else (6,)
    assert tuple(out.shape) == expected
    assert model.input_shape == shape


def test_splicing_output_is_a_usage_in_unit_interval() -> None:
    model = SplicingCNN(conv_channels=(8, 8), kernel_sizes=(5, 3))
    with torch.no_grad():
        out = model(torch.randn(50, 4, 101) * 20)
    assert bool(((out >= 0) & (out <= 1)).all())


@pytest.mark.parametrize(("model", "shape"), small_models())
def test_dropout_sits_before_every_linear_and_nowhere_else(
    model: DropoutModel, shape: tuple[int, ...]
) -> None:
    trunk_kinds = {type(m) for m in model.trunk.modules()}
    assert nn.Dropout not in trunk_kinds
    assert nn.Linear not in trunk_kinds
    blocks = list(model.head)
    assert all(isinstance(b, HeadBlock) for b in blocks)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    n_dropout = sum(isinstance(m, nn.Dropout) for m in model.modules())
    assert n_linear == n_dropout == len(blocks)
    assert all(b.p == model.dropout_p for b in model.head_blocks())


@pytest.mark.parametrize(("model", "shape"), small_models())
def test_trunk_is_deterministic_in_train_mode_and_head_is_not(
    model: DropoutModel, shape: tuple[int, ...]
) -> None:
    x = torch.rand(4, *shape)
    model.train()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        assert torch.equal(model.features(x), model.features(x))
        assert not torch.equal(model(x), model(x))


def test_mlp_trunk_is_identity_and_default_is_the_papers_model() -> None:
    model = MLP(input_dim=2)
    x = torch.randn(5, 2)
    assert torch.equal(model.features(x), x)
    widths = [b.linear.out_features for b in model.head_blocks()]
    assert widths == [256, 256, 256, 1]
    assert model.dropout_p == 0.2


def test_seed_fixes_the_weights_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a, b, c = MLP(3, seed=1), MLP(3, seed=1), MLP(3, seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (_, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb)
    first_a, first_c = next(a.head_blocks()), next(c.head_blocks())
    assert not torch.equal(first_a.linear.weight, first_c.linear.weight)


def test_registry_names_every_model() -> None:
    assert {"SplicingCNN": SplicingCNN, "ImageCNN": ImageCNN, "MLP": MLP} == MODEL_REGISTRY


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: MLP(2, dropout_p=1.0), "dropout_p"),
        (lambda: MLP(2, dropout_p=-0.1), "dropout_p"),
        (lambda: MLP(0), "input_dim"),
        (lambda: MLP(2, hidden_units=(8, 0)), "hidden_units"),
        (lambda: MLP(2, task="classification", n_classes=1), "n_classes"),
        (lambda: MLP(2, task="regression", n_classes=3), "n_classes"),
        (lambda: MLP(2, task="ranking"), "task"),  # type: ignore[arg-type]
        (lambda: MLP(2, seed=1.5), "seed"),  # type: ignore[arg-type]
        (lambda: SplicingCNN(seq_length=6), "seq_length=6"),
        (lambda: SplicingCNN(kernel_sizes=(9, 9)), "kernel_sizes"),
        (lambda: ImageCNN(image_size=4, pooled_size=3), "image_size=4"),
        (lambda: ImageCNN(conv_channels=(8,)), "conv_channels"),
    ],
)
def test_bad_constructor_arguments_raise_input_error(build, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment.replace("(", r"\(")):
        build()
