"""Training with weight decay on the fully-connected layers, early stopping, and safe saving.

Weight decay follows the convention behind the paper's `tau` (Appendix E; Gal & Ghahramani):
the objective is `mean loss + lambda * sum ||theta_fc||^2` over the head's weights and biases,
with `lambda = C / N` for `N` training points, so that `tau = (1-p) l^2 / (2 N lambda)` stays
constant as the training set grows. Adam's coupled `weight_decay` adds `wd * theta` to the
gradient, i.e. the penalty `wd / 2 ||theta||^2`, so we pass `wd = 2 lambda`. The convolutional
trunk gets no decay.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional
from tqdm.auto import tqdm

from deimos.atomic import replacing
from deimos.errors import InputError
from deimos.uncertainty.config import TrainConfig
from deimos.uncertainty.predict import check_inputs, default_device
from models import MODEL_REGISTRY, DropoutModel

logger = logging.getLogger(__name__)

_FILE_FORMAT = "deimos-model"
_FILE_VERSION = 1


@dataclass(frozen=True)
class TrainResult:
    """What one training run did.

    Attributes:
        best_epoch: epoch (0-based) whose weights were kept (lowest validation loss).
        train_losses: mean training loss (without the penalty, dropout on) per epoch run.
        val_losses: validation loss (dropout off) per epoch run.
        weight_decay: the `lambda = C / N` used.
        stopped_early: True when patience ran out before `epochs`.
    """

    best_epoch: int
    train_losses: tuple[float, ...]
    val_losses: tuple[float, ...]
    weight_decay: float
    stopped_early: bool

    @property
    def best_val_loss(self) -> float:
        """Validation loss of the kept weights."""
        return self.val_losses[self.best_epoch]


def weight_decay_param_groups(model: DropoutModel, weight_decay: float) -> list[dict[str, Any]]:
    """Adam parameter groups: the head (fully-connected layers) decayed, the trunk not.

    Args:
        model: the model.
        weight_decay: `lambda` of the penalty `lambda * sum ||theta_fc||^2`.

    Returns:
        `[{"params": head params, "weight_decay": 2 lambda}, {"params": trunk params, ...: 0}]`,
        the trunk group left out when the trunk has no parameters.
    """
    head = list(model.head.parameters())
    head_ids = {id(p) for p in head}
    rest = [p for p in model.parameters() if id(p) not in head_ids]
    groups: list[dict[str, Any]] = [{"params": head, "weight_decay": 2.0 * weight_decay}]
    if rest:
        groups.append({"params": rest, "weight_decay": 0.0})
    return groups


def train_model(
    model: DropoutModel,
    X_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    X_val: np.ndarray | torch.Tensor,
    y_val: np.ndarray | torch.Tensor,
    config: TrainConfig,
    *,
    progress: bool = False,
) -> tuple[DropoutModel, TrainResult]:
    """Train `model` in place with Adam and early stopping on the validation loss.

    The same seed gives identical weights on the CPU (shuffling uses a generator made from the
    seed; dropout draws from torch's global RNG inside `torch.random.fork_rng`, so the caller's
    RNG state is untouched). On CUDA results are close but not guaranteed bit-identical.

    Args:
        model: a `DropoutModel`, usually freshly constructed.
        X_train: `(N, *model.input_shape)` training inputs.
        y_train: `(N,)` targets: floats (regression) or integer class labels (classification).
        X_val: `(n_val, *model.input_shape)` validation inputs.
        y_val: `(n_val,)` validation targets.
        config: settings; `config.task` must equal `model.task`.
        progress: show a tqdm bar over epochs with the validation loss.

    Returns:
        The model (on the training device, in eval mode, holding the best epoch's weights) and
        a `TrainResult`.

    Raises:
        InputError: mismatched task, shapes or lengths; NaN/inf; labels outside `[0, c)`.
    """
    if not isinstance(model, DropoutModel):
        raise InputError(f"model must be a models.DropoutModel, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.task != model.task:
        raise InputError(f"config.task is {config.task!r} but the model's task is {model.task!r}")
    Xt = check_inputs(model, X_train, "X_train")
    Xv = check_inputs(model, X_val, "X_val")
    yt = _check_targets(model, y_train, Xt.shape[0], "y_train")
    yv = _check_targets(model, y_val, Xv.shape[0], "y_val")
    dev = torch.device(config.device) if config.device is not None else default_device()
    n_train = Xt.shape[0]
    weight_decay = config.weight_decay_C / n_train
    model.to(dev)
    optimizer = torch.optim.Adam(weight_decay_param_groups(model, weight_decay), lr=config.lr)
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    rng_devices = [dev.index or 0] if dev.type == "cuda" else []

    train_losses: list[float] = []
    val_losses: list[float] = []
    best_epoch, best_state = -1, None
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(config.seed)
        bar = tqdm(range(config.epochs), desc="training", unit="epoch", disable=not progress)
        for epoch in bar:
            train_losses.append(
                _train_epoch(model, optimizer, Xt, yt, config.batch_size, shuffle_gen, dev)
            )
            val_losses.append(_evaluate(model, Xv, yv, config.batch_size, dev))
            bar.set_postfix(val_loss=f"{val_losses[-1]:.4g}", refresh=False)
            if best_epoch < 0 or val_losses[-1] < val_losses[best_epoch]:
                best_epoch = epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch - best_epoch >= config.patience:
                break
        bar.close()
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    stopped_early = len(val_losses) < config.epochs
    logger.info(
        "event=train_model n_train=%d epochs_run=%d best_epoch=%d best_val_loss=%.6g lambda=%.3g",
        n_train,
        len(val_losses),
        best_epoch,
        val_losses[best_epoch],
        weight_decay,
    )
    return model, TrainResult(
        best_epoch=best_epoch,
        train_losses=tuple(train_losses),
        val_losses=tuple(val_losses),
        weight_decay=weight_decay,
        stopped_early=stopped_early,
    )


def _loss(model: DropoutModel, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if model.task == "classification":
        return functional.cross_entropy(out, y)
    return functional.mse_loss(out, y)


def _train_epoch(
    model: DropoutModel,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    gen: torch.Generator,
    dev: torch.device,
) -> float:
    model.train()
    order = torch.randperm(X.shape[0], generator=gen)
    total = 0.0
    for start in range(0, X.shape[0], batch_size):
        idx = order[start : start + batch_size]
        x_b, y_b = X[idx].to(dev), y[idx].to(dev)
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(model, model(x_b), y_b)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * idx.numel()
    return total / X.shape[0]


def _evaluate(
    model: DropoutModel, X: torch.Tensor, y: torch.Tensor, batch_size: int, dev: torch.device
) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, X.shape[0], batch_size):
            x_b = X[start : start + batch_size].to(dev)
            y_b = y[start : start + batch_size].to(dev)
            total += float(_loss(model, model(x_b), y_b)) * x_b.shape[0]
    return total / X.shape[0]


def _check_targets(
    model: DropoutModel, y: np.ndarray | torch.Tensor, n: int, name: str
) -> torch.Tensor:
    if isinstance(y, np.ndarray):
        y_t = torch.from_numpy(np.ascontiguousarray(y))
    elif isinstance(y, torch.Tensor):
        y_t = y.detach().cpu()
    else:
        raise InputError(f"{name} must be a numpy array or torch tensor, got {type(y).__name__}")
    if y_t.ndim != 1 or y_t.shape[0] != n:
        raise InputError(
            f"{name} must have shape ({n},) to match its inputs, got {tuple(y_t.shape)}"
        )
    if model.task == "classification":
        if y_t.is_floating_point() or y_t.is_complex() or y_t.dtype == torch.bool:
            raise InputError(f"{name} must hold integer class labels, got dtype {y_t.dtype}")
        y_t = y_t.to(torch.int64)
        assert model.n_classes is not None
        bad = (y_t < 0) | (y_t >= model.n_classes)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise InputError(
                f"{name}[{i}] = {int(y_t[i])} is not a class label in [0, {model.n_classes})"
            )
        return y_t
    if y_t.dtype == torch.bool or y_t.is_complex():
        raise InputError(f"{name} must be real numbers, got dtype {y_t.dtype}")
    y_t = y_t.to(next(model.parameters()).dtype)
    finite = torch.isfinite(y_t)
    if not bool(finite.all()):
        raise InputError(
            f"{name} contains NaN or inf (first at {int(torch.nonzero(~finite)[0, 0])})"
        )
    return y_t


# --- saving and loading -----------------------------------------------------------------------


def save_model(model: DropoutModel, path: str | os.PathLike[str]) -> Path:
    """Write `model` to `path` atomically, in a format that loads without unpickling code.

    The file is a `torch.save` of plain data only: the class name, the constructor arguments
    as a JSON string, and the state dict (CPU tensors). It is written to a temporary file in the
    same directory and renamed over `path`, so a reader never sees half a file and a failed
    write leaves any earlier file as it was.

    Returns:
        `path` as a `Path`.

    Raises:
        InputError: a model class outside `models.MODEL_REGISTRY`, or a missing directory.
    """
    name = type(model).__name__
    if not isinstance(model, DropoutModel) or MODEL_REGISTRY.get(name) is not type(model):
        raise InputError(f"cannot save a {name}: only {sorted(MODEL_REGISTRY)} models can be saved")
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"cannot save model to {path}: directory {path.parent} does not exist")
    payload = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "class_name": name,
        "init_kwargs_json": json.dumps(model.init_kwargs, sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    # torch.save names the zip archive after the file it is given; saving through a handle gives
    # a fixed name, so the same weights always make the same bytes (DVC and audits compare them).
    with replacing(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
    logger.info("event=save_model path=%s class=%s", path, name)
    return path


def load_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> DropoutModel:
    """Load a model written by `save_model`, refusing files that would unpickle objects.

    Args:
        path: the file.
        map_location: device for the weights.

    Returns:
        The rebuilt model in eval mode.

    Raises:
        InputError: a missing or unreadable file, a file with pickled objects beyond tensors and
            plain data (refused, never executed), or contents that are not a saved model.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        # save_model writes torch's zip format; anything else is a legacy or raw pickle.
        raise InputError(
            f"refusing to load {path}: it is not a zip archive written by save_model "
            "(a raw or legacy pickle could run code)"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"refusing to load {path}: it contains pickled objects other than tensors and plain "
            f"data, which could run code; only files written by save_model load ({exc})"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise InputError(f"cannot read model file {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != _FILE_FORMAT:
        raise InputError(f"{path} is not a deimos model file (no {_FILE_FORMAT!r} marker)")
    if payload.get("version") != _FILE_VERSION:
        raise InputError(
            f"{path} has model file version {payload.get('version')!r}; "
            f"this code reads version {_FILE_VERSION}"
        )
    cls = MODEL_REGISTRY.get(str(payload.get("class_name")))
    if cls is None:
        raise InputError(
            f"{path} holds unknown model class {payload.get('class_name')!r}; "
            f"known: {sorted(MODEL_REGISTRY)}"
        )
    state = payload.get("state_dict")
    try:
        kwargs = json.loads(payload["init_kwargs_json"])
        model = cls(**kwargs)
        if not isinstance(state, dict) or not state:
            raise ValueError("no state_dict")
        model.to(next(iter(state.values())).dtype)
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path} does not hold a valid {cls.__name__}: {exc}") from exc
    model.to(map_location)
    model.eval()
    return model
