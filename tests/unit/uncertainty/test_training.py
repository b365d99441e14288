"""Training (determinism, early stopping, weight decay on FC layers) and safe save/load."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from deimos.config import parse_settings
from deimos.errors import InputError
from deimos.uncertainty.predict import predict_fixed_masks
from deimos.uncertainty.train import (
    TrainConfig,
    TrainResult,
    load_model,
    save_model,
    train_model,
    weight_decay_param_groups,
)
from models import MLP, DropoutModel, ImageCNN, SplicingCNN


def regression_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, generator=gen) * 4 - 2
    y = torch.sin(2 * X[:, 0]) + 0.1 * torch.randn(n, generator=gen)
    return X, y


def tiny_cnn() -> SplicingCNN:
    return SplicingCNN(conv_channels=(4, 4), kernel_sizes=(5, 3), hidden_units=(8,))


def config(**kw: object) -> TrainConfig:
    base: dict[str, object] = {"epochs": 15, "batch_size": 16, "lr": 1e-2, "patience": 100}
    return parse_settings(TrainConfig, {**base, **kw}, "train.yaml")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_gives_identical_weights_and_leaves_global_rng_alone() -> None:
    X, y = regression_data(64, 0)
    Xv, yv = regression_data(16, 1)
    rng = torch.random.get_rng_state()
    a, ra = train_model(MLP(1, hidden_units=(16,)), X, y, Xv, yv, config(seed=3))
    b, rb = train_model(MLP(1, hidden_units=(16,)), X, y, Xv, yv, config(seed=3))
    c, _ = train_model(MLP(1, hidden_units=(16,)), X, y, Xv, yv, config(seed=4))
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert same_weights(a, b) and ra == rb
    assert not same_weights(a, c)


def test_training_reduces_the_loss_and_returns_eval_mode() -> None:
    X, y = regression_data(128, 0)
    Xv, yv = regression_data(32, 1)
    model, result = train_model(MLP(1, hidden_units=(32, 32)), X, y, Xv, yv, config(epochs=40))
    assert isinstance(result, TrainResult)
    assert len(result.train_losses) == len(result.val_losses) == 40
    assert result.best_val_loss < 0.5 * result.val_losses[0]
    assert not model.training


def test_early_stopping_keeps_the_best_epochs_weights() -> None:
    # Few noisy points and a large step size: validation loss bottoms out early, then rises.
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(16, 1, generator=gen), torch.randn(16, generator=gen)
    Xv, yv = torch.randn(16, 1, generator=gen), torch.randn(16, generator=gen)
    cfg = config(epochs=300, lr=3e-2, patience=5, weight_decay_C=0.0)
    model, result = train_model(MLP(1, hidden_units=(64, 64)), X, y, Xv, yv, cfg)
    assert result.stopped_early
    assert len(result.val_losses) == result.best_epoch + cfg.patience + 1
    assert result.best_val_loss == min(result.val_losses)
    with torch.no_grad():
        val_loss = torch.nn.functional.mse_loss(model(Xv), yv)
    assert float(val_loss) == pytest.approx(result.best_val_loss, rel=1e-6)


def test_classification_training_learns_a_separable_problem() -> None:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(120, 2, generator=gen)
    y = (X[:, 0] + X[:, 1] > 0).long()
    untrained = MLP(2, hidden_units=(16,), task="classification", n_classes=2)
    model, result = train_model(
        untrained, X[:80], y[:80], X[80:], y[80:], config(task="classification")
    )
    with torch.no_grad():
        accuracy = (model(X[80:]).argmax(-1) == y[80:]).float().mean()
    assert float(accuracy) >= 0.85
    assert result.best_val_loss < result.val_losses[0]


def test_weight_decay_groups_cover_fc_layers_only() -> None:
    model = tiny_cnn()
    groups = weight_decay_param_groups(model, 0.25)
    head_ids = {id(p) for p in model.head.parameters()}
    trunk_ids = {id(p) for p in model.trunk.parameters()}
    assert {id(p) for p in groups[0]["params"]} == head_ids
    assert groups[0]["weight_decay"] == 0.5  # Adam's wd = 2 lambda for lambda ||theta||^2
    assert {id(p) for p in groups[1]["params"]} == trunk_ids
    assert groups[1]["weight_decay"] == 0.0
    assert len(weight_decay_param_groups(MLP(2), 0.1)) == 1  # identity trunk: nothing to leave out


def test_weight_decay_is_c_over_n_and_shrinks_the_head() -> None:
    # Zero targets: shrinking the weights never hurts the validation loss, so early stopping
    # keeps a late epoch and the norms show the penalty's effect alone.
    gen = torch.Generator().manual_seed(0)
    X, Xv = torch.randn(40, 1, generator=gen), torch.randn(10, 1, generator=gen)
    y, yv = torch.zeros(40), torch.zeros(10)
    cfg = {"epochs": 40, "lr": 1e-2}
    plain, r0 = train_model(
        MLP(1, hidden_units=(16,)), X, y, Xv, yv, config(weight_decay_C=0.0, **cfg)
    )
    decayed, r1 = train_model(
        MLP(1, hidden_units=(16,)), X, y, Xv, yv, config(weight_decay_C=400.0, **cfg)
    )
    assert r0.weight_decay == 0.0 and r1.weight_decay == pytest.approx(10.0)
    norm = [
        sum(float(p.detach().pow(2).sum()) for p in m.head.parameters()) for m in (plain, decayed)
    ]
    assert norm[1] < 0.5 * norm[0]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"weight_decay_C": float("nan")}, "weight_decay_C"),
        ({"patience": True}, "patience"),
        ({"task": "ranking"}, "task"),
        ({"device": "nowhere"}, "device"),
        ({"learning_rate": 0.1}, "unknown parameter .*learning_rate"),
    ],
)
def test_bad_config_raises_input_error(params: dict, fragment: str) -> None:
    with pytest.raises(InputError, match=f"^train.yaml: .*{fragment}"):
        parse_settings(TrainConfig, params, "train.yaml")
    with pytest.raises(InputError, match=fragment) as built_in_code:
        TrainConfig(**params)
    assert "TrainConfig." in str(built_in_code.value)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"y_train": torch.zeros(5)}, r"y_train must have shape \(8,\)"),
        ({"X_val": torch.zeros(4, 3)}, "X_val must have shape"),
        ({"y_train": torch.full((8,), float("nan"))}, "NaN or inf"),
        ({"config": TrainConfig(task="classification")}, "task"),
    ],
)
def test_bad_training_inputs_raise_input_error(change: dict, fragment: str) -> None:
    model = MLP(1, hidden_units=(4,))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    args = {
        "X_train": torch.zeros(8, 1),
        "y_train": torch.zeros(8),
        "X_val": torch.zeros(4, 1),
        "y_val": torch.zeros(4),
        "config": config(),
        **change,
    }
    with pytest.raises(InputError, match=fragment):
        train_model(model, **args)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [(torch.tensor([0, 1, 3, 0]), r"y_train\[2\] = 3"), (torch.zeros(4), "integer class labels")],
)
def test_bad_class_labels_raise_input_error(labels: torch.Tensor, fragment: str) -> None:
    model = MLP(2, hidden_units=(4,), task="classification", n_classes=3)
    with pytest.raises(InputError, match=fragment):
        train_model(
            model,
            torch.zeros(4, 2),
            labels,
            torch.zeros(2, 2),
            torch.zeros(2).long(),
            config(task="classification"),
        )


# --- save / load ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [tiny_cnn(), ImageCNN(n_classes=3, image_size=8, conv_channels=(4, 4)), MLP(2).double()],
)
def test_save_load_round_trip(model: DropoutModel, tmp_path: Path) -> None:
    path = save_model(model, tmp_path / "model.pt")
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.init_kwargs == model.init_kwargs
    assert same_weights(loaded, model)
    assert next(loaded.parameters()).dtype == next(model.parameters()).dtype
    X = torch.rand(5, *model.input_shape, dtype=next(model.parameters()).dtype)
    assert torch.equal(predict_fixed_masks(loaded, X, 4), predict_fixed_masks(model, X, 4))
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]  # no temporary file left behind


class _Payload:
    """An object whose unpickling runs code: it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        code = f"import pathlib; pathlib.Path({str(self.marker)!r}).write_text('pwned')"
        return (exec, (code,))


def test_loading_a_file_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "deimos-model", "payload": _Payload(tmp_path / "marker.txt")}, path)
    with pytest.raises(InputError, match=r"refusing to load .*evil\.pt"):
        load_model(path)
    assert not (tmp_path / "marker.txt").exists()
    # The payload is live: an unsafe load does run it.
    torch.load(path, weights_only=False)
    assert (tmp_path / "marker.txt").read_text() == "pwned"


def test_a_plain_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(MLP(1, hidden_units=(2,))))
    with pytest.raises(InputError, match=r"model\.pkl"):
        load_model(path)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"weights": torch.zeros(2)}, "not a deimos model file"),
        ({"format": "deimos-model", "version": 99}, "version 99"),
        ({"format": "deimos-model", "version": 1, "class_name": "os.system"}, "unknown model"),
        (
            {
                "format": "deimos-model",
                "version": 1,
                "class_name": "MLP",
                "init_kwargs_json": '{"input_dim": 2}',
                "state_dict": {"head.0.linear.weight": torch.zeros(3, 3)},
            },
            "not hold a valid MLP",
        ),
    ],
)
def test_files_that_are_not_saved_models_are_refused(
    content: dict, fragment: str, tmp_path: Path
) -> None:
    path = tmp_path / "x.pt"
    torch.save(content, path)
    with pytest.raises(InputError, match=fragment):
        load_model(path)


def test_missing_and_garbage_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(InputError, match=r"junk\.pt"):
        load_model(tmp_path / "junk.pt")


def test_failed_saves_change_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        save_model(MLP(1), tmp_path / "missing" / "m.pt")
    assert not (tmp_path / "missing").exists()

    class Custom(MLP):
        pass

    target = tmp_path / "m.pt"
    save_model(MLP(1, seed=5), target)
    before = target.read_bytes()
    with pytest.raises(InputError, match="cannot save a Custom"):
        save_model(Custom(1), target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]
