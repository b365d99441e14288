"""Fixed-mask MC dropout: shapes, batch independence, equivalence with a naive loop, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deimos.errors import InputError
from deimos.uncertainty.predict import draw_head_masks, predict_fixed_masks, predict_mean
from models import MLP, DropoutModel, ImageCNN, SplicingCNN


def tiny_splicing() -> SplicingCNN:
    return SplicingCNN(conv_channels=(8, 8, 8), kernel_sizes=(5, 5, 3), hidden_units=(16,))


def tiny_image(task: str = "classification") -> ImageCNN:
    n_classes = 10 if task == "classification" else None
    return ImageCNN(n_classes=n_classes, task=task, conv_channels=(4, 8), hidden_units=(16,))  # type: ignore[arg-type]


def tiny_models() -> list[tuple[DropoutModel, tuple[int, ...]]]:
    return [
        (tiny_splicing(), (4, 101)),
        (tiny_image(), (1, 28, 28)),
        (tiny_image("regression"), (1, 28, 28)),
        (MLP(3, hidden_units=(16, 16)), (3,)),
        (MLP(3, hidden_units=(16, 16), task="classification", n_classes=3), (3,)),
    ]


def inputs(shape: tuple[int, ...], n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def naive_loop(model: DropoutModel, X: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """Reference: run the whole head once per mask, applying each layer's mask to its input."""
    outs = []
    with torch.no_grad():
        feats = model.features(X)
        for j in range(masks[0].shape[0]):
            h = feats
            for block, mask in zip(model.head_blocks(), masks, strict=True):
                h = block.activation(block.linear(h * mask[j]))
            outs.append(torch.softmax(h, dim=-1) if model.n_classes else h[:, 0])
    return torch.stack(outs, dim=-1)


@pytest.mark.parametrize(("model", "shape"), tiny_models())
def test_shapes_and_probabilities(model: DropoutModel, shape: tuple[int, ...]) -> None:
    P = predict_fixed_masks(model, inputs(shape, 7), n_masks=5, batch_size=4)
    if model.n_classes:
        assert tuple(P.shape) == (7, model.n_classes, 5)
        torch.testing.assert_close(P.sum(dim=1), torch.ones(7, 5))
    else:
        assert tuple(P.shape) == (7, 5)
    assert P.device.type == "cpu"


@pytest.mark.parametrize(("model", "shape"), tiny_models())
def test_a_point_is_bit_identical_alone_and_anywhere_in_a_batch(
    model: DropoutModel, shape: tuple[int, ...]
) -> None:
    # Every forward pass has the same padded shape, so only the row position and the
    # neighbours change; the module docstring explains why that gives bit-identity.
    X = inputs(shape, 45)
    P = predict_fixed_masks(model, X, n_masks=6, batch_size=16)
    for i in (0, 1, 7, 15, 16, 44):
        alone = predict_fixed_masks(model, X[i : i + 1], n_masks=6, batch_size=16)
        assert torch.equal(alone[0], P[i]), f"point {i}"
    perm = torch.randperm(45, generator=torch.Generator().manual_seed(1))
    assert torch.equal(predict_fixed_masks(model, X[perm], n_masks=6, batch_size=16), P[perm])


@pytest.mark.parametrize(("model", "shape"), tiny_models())
def test_batched_head_equals_a_naive_per_mask_loop(
    model: DropoutModel, shape: tuple[int, ...]
) -> None:
    # float64: the batched path folds the mask into the weights, the loop masks the input, so
    # they round differently; in float64 the gap is ~1e-15.
    model = model.double()
    X = inputs(shape, 9).double()
    masks = draw_head_masks(model, 7, seed=3)
    fast = predict_fixed_masks(model, X, masks=masks, batch_size=4)
    torch.testing.assert_close(fast, naive_loop(model.eval(), X, masks), rtol=1e-12, atol=1e-12)


def test_masks_differ_across_j_and_follow_dropout_statistics() -> None:
    model = MLP(4, hidden_units=(64,), dropout_p=0.3)
    masks = draw_head_masks(model, 2000, seed=0)
    assert [tuple(m.shape) for m in masks] == [(2000, 4), (2000, 64)]
    for m in masks:
        assert torch.unique(m).tolist() == [0.0, pytest.approx(1 / 0.7)]
        kept = float((m > 0).double().mean())
        assert abs(kept - 0.7) < 4 * np.sqrt(0.7 * 0.3 / m.numel())
    P = predict_fixed_masks(model, inputs((4,), 3), n_masks=10)
    assert len({tuple(P[:, j].tolist()) for j in range(10)}) == 10


def test_fixed_mask_mean_approaches_standard_mc_dropout_mean() -> None:
    model = MLP(2, hidden_units=(32, 32), dropout_p=0.5)
    X = inputs((2,), 5) * 4 - 2
    n_samples = 3000
    model.train()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(123)
        standard = torch.stack([model(X) for _ in range(n_samples)], dim=-1).double()
    fixed_many = predict_fixed_masks(model, X, n_masks=n_samples, seed=7).double()
    fixed_few = predict_fixed_masks(model, X, n_masks=10, seed=7).double()
    se = torch.sqrt((standard.var(-1) + fixed_many.var(-1)) / n_samples)
    gap_many = (fixed_many.mean(-1) - standard.mean(-1)).abs()
    assert bool((gap_many < 5 * se).all())
    gap_few = (fixed_few.mean(-1) - standard.mean(-1)).abs()
    assert float(gap_many.mean()) < float(gap_few.mean())
    assert model.training


def test_zero_dropout_gives_the_deterministic_prediction_for_every_mask() -> None:
    model = tiny_image()
    model.dropout_p = 0.0
    for block in model.head_blocks():
        block.dropout.p = 0.0
    X = inputs((1, 28, 28), 6)
    P = predict_fixed_masks(model, X, n_masks=4)
    mean = predict_mean(model, X)
    torch.testing.assert_close(P, mean.unsqueeze(-1).expand_as(P), rtol=1e-5, atol=1e-6)


def test_predict_mean_matches_an_eval_forward() -> None:
    model = tiny_image()
    X = inputs((1, 28, 28), 5)
    with torch.no_grad():
        expected = torch.softmax(model.eval()(X), dim=-1)
    model.train()
    torch.testing.assert_close(predict_mean(model, X, batch_size=2), expected)
    assert model.training


def test_same_seed_same_predictions_different_seed_different() -> None:
    model, X = tiny_splicing(), inputs((4, 101), 8)
    a = predict_fixed_masks(model, X, n_masks=5, seed=11)
    b = predict_fixed_masks(model, X, n_masks=5, seed=11)
    c = predict_fixed_masks(model, X, n_masks=5, seed=12)
    g = predict_fixed_masks(model, X, n_masks=5, seed=torch.Generator().manual_seed(11))
    assert torch.equal(a, b) and torch.equal(a, g)
    assert not torch.equal(a, c)


def test_modes_weights_and_global_rng_are_left_alone() -> None:
    model, X = tiny_image(), inputs((1, 28, 28), 4)
    model.train()
    model.head[0].eval()  # a mixed state must come back as it was
    flags = [m.training for m in model.modules()]
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    predict_fixed_masks(model, X, n_masks=3)
    predict_mean(model, X)
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_numpy_input_and_explicit_cpu_device() -> None:
    model, X = MLP(3, hidden_units=(8,)), inputs((3,), 5)
    a = predict_fixed_masks(model, X.numpy(), n_masks=4, device="cpu")
    assert torch.equal(a, predict_fixed_masks(model, X, n_masks=4))


def test_progress_bar_is_shown_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    predict_fixed_masks(MLP(3, hidden_units=(8,)), inputs((3,), 10), batch_size=2, progress=True)
    assert "fixed-mask" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"X": torch.rand(4, 5)}, r"shape \(n, 3\)"),
        ({"X": torch.rand(0, 3)}, "no points"),
        ({"X": torch.tensor([[0.0, float("nan"), 1.0]])}, "NaN or inf"),
        ({"X": [[0.0, 1.0, 2.0]]}, "numpy array or torch tensor"),
        ({"n_masks": 0}, "n_masks"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": "a"}, "seed"),
        ({"masks": [torch.ones(3, 3)]}, "masks"),
        ({"masks": [torch.ones(3, 3), torch.ones(3, 5)]}, r"masks\[1\]"),
    ],
)
def test_bad_inputs_raise_input_error(kwargs: dict, fragment: str) -> None:
    args = {"X": torch.rand(4, 3), **kwargs}
    with pytest.raises(InputError, match=fragment):
        predict_fixed_masks(MLP(3, hidden_units=(8,)), **args)


def test_a_model_without_the_interface_is_refused() -> None:
    with pytest.raises(InputError, match="DropoutModel"):
        predict_fixed_masks(torch.nn.Linear(3, 1), torch.rand(2, 3))  # type: ignore[arg-type]
