"""Fixed-mask MC-dropout predictions (DEIMOS, sec. 3.2).

DEIMOS needs the `J` dropout predictions of *different* points to be made under the *same* `J`
masks, so that their covariance across masks is meaningful. `predict_fixed_masks` draws the
masks once from a seed, for every dropout layer of the model's head, and applies mask `j` to
every point in every mini-batch.

Cost. Dropout sits only in the head (see `models.base`), so the trunk is computed once per point.
The head then runs under all `J` masks at once: mask `j` of a layer is folded into that layer's
weights, `(h * m_j / (1 - p)) W^T = h (W * m_j / (1 - p))^T`, so the first head layer is a single
matrix product `(B, H) x (H, J * O)` and later layers one batched product over `J`. No
`(B, J, H)` masked copy of the features is ever built.

Batch independence. A point's predictions must not depend on which other points share its
mini-batch. The masks guarantee that mathematically; for bit-identical floats we also fix the
shapes: every mini-batch is zero-padded to exactly `batch_size` rows before it reaches the model.
BLAS and oneDNN pick kernels (and so summation orders) by problem shape, so a point predicted
alone would otherwise take a different code path (e.g. a matrix-vector kernel) than inside a
batch of 256; with one shape per call, each output row is computed by the same kernel from its own
input row only. `tests/test_mc_dropout.py` checks bit-identity alone vs at several positions.
The price is that a call on fewer than `batch_size` points still does `batch_size` rows of work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from tqdm.auto import tqdm

from deimos.checks import check_int
from deimos.errors import InputError
from models.base import DropoutModel

logger = logging.getLogger(__name__)

#: Mini-batches before the progress bar is shown when `progress=None`.
_AUTO_PROGRESS_MIN_BATCHES = 50


def default_device() -> torch.device:
    """CUDA when available, else CPU (chosen at call time, never at import)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def draw_head_masks(
    model: DropoutModel, n_masks: int = 50, seed: int | torch.Generator = 0
) -> list[torch.Tensor]:
    """Draw `J` inverted-dropout masks for every head layer of `model`.

    Each mask entry is `0` (dropped, probability `p`) or `1 / (1 - p)` (kept), as `nn.Dropout`
    does in training mode, so averages over masks estimate the standard MC-dropout mean. Masks
    are drawn on the CPU, layer by layer in head order, so the same seed gives the same masks on
    every device.

    Args:
        model: the model whose head the masks are for.
        n_masks: number of masks `J`.
        seed: an int seed or a `torch.Generator` (CPU) to draw from; a generator is advanced.

    Returns:
        One `(J, in_features)` float tensor per head block, on the CPU, in the model's dtype.
    """
    _check_model(model)
    n_masks = check_int(n_masks, "n_masks", minimum=1)
    gen = _generator(seed)
    dtype = _param_dtype(model)
    masks = []
    for block in model.head_blocks():
        p = block.p
        keep_J_H = torch.rand(int(n_masks), block.linear.in_features, generator=gen) >= p
        masks.append(keep_J_H.to(dtype) / (1.0 - p))
    return masks


def predict_fixed_masks(
    model: DropoutModel,
    X: np.ndarray | torch.Tensor,
    n_masks: int = 50,
    seed: int | torch.Generator = 0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    masks: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Predict every point under the same `J` fixed dropout masks.

    Args:
        model: a `DropoutModel` (dropout only in its head).
        X: inputs `(n, *model.input_shape)`, NumPy or torch, any device.
        n_masks: number of masks `J` (ignored when `masks` is given).
        seed: int seed or CPU `torch.Generator` for `draw_head_masks`.
        batch_size: rows per forward pass; every pass is padded to exactly this many rows (see
            the module docstring), which bounds memory and fixes the kernels' shapes.
        device: where to compute; `None` picks CUDA when available, else CPU. The model is moved
            there for the call and moved back afterwards.
        progress: show a tqdm bar; `None` shows it for runs of 50 mini-batches or more.
        masks: precomputed masks from `draw_head_masks` (to share masks across calls).

    Returns:
        A CPU tensor in the model's dtype: `(n, J)` outputs for regression, or `(n, c, J)` class
        probabilities (softmax of the logits under each mask) for classification. The model's
        train/eval flags, device and weights are as they were.
    """
    _check_model(model)
    if masks is None:
        masks = draw_head_masks(model, n_masks, seed)
    else:
        _check_masks(model, masks)
    n_masks = int(masks[0].shape[0])
    X = check_inputs(model, X)
    _check_batch_size(batch_size)
    dev = torch.device(device) if device is not None else default_device()
    n = X.shape[0]
    out = torch.empty((n, model.n_classes, n_masks) if model.n_classes else (n, n_masks))
    out = out.to(_param_dtype(model))
    logger.info(
        "event=predict_fixed_masks n=%d n_masks=%d batch_size=%d device=%s",
        n,
        n_masks,
        batch_size,
        dev,
    )
    with _prediction_mode(model, dev), torch.inference_mode():
        weights = _masked_head_weights(model, [m.to(dev) for m in masks])
        for start, x_B in _padded_batches(X, batch_size, dev, progress, "fixed-mask"):
            feats_B_H = model.features(x_B)
            out_J_O_B = _head_under_masks(model, weights, feats_B_H)
            stop = min(start + batch_size, n)
            out_J_O_b = out_J_O_B[..., : stop - start]
            if model.task == "classification":
                # Probabilities, not logits: the paper's V is over class probabilities (eq. 3).
                # Softmax over a contiguous class axis: along a strided axis the kernel
                # vectorises across points and treats the tail points differently.
                logits_b_J_O = out_J_O_b.permute(2, 0, 1).contiguous()
                probs_b_J_O = torch.softmax(logits_b_J_O, dim=-1)
                out[start:stop] = probs_b_J_O.transpose(1, 2).cpu()
            else:
                out[start:stop] = out_J_O_b[:, 0].T.cpu()
    return out


def shard_ranges(n: int, n_shards: int, align: int = 256) -> list[tuple[int, int]]:
    """Split `n` rows into at most `n_shards` contiguous `[start, stop)` ranges.

    Shard boundaries are multiples of `align` (use the prediction `batch_size`), so each shard's
    mini-batches are the same rows the single-process call would form; with the padding of
    `predict_fixed_masks` every row is then computed by the same kernels either way.

    Returns:
        Non-empty ranges in order, covering `0..n`; fewer than `n_shards` when `n` is small.
    """
    n = check_int(n, "n", minimum=0)
    n_shards = check_int(n_shards, "n_shards", minimum=1)
    align = check_int(align, "align", minimum=1)
    blocks = -(-n // align)  # ceil
    per_shard = -(-blocks // n_shards) if blocks else 0
    ranges = []
    for start_block in range(0, blocks, max(per_shard, 1)):
        start = start_block * align
        stop = min(n, (start_block + per_shard) * align)
        ranges.append((start, stop))
    return ranges


def predict_mean(
    model: DropoutModel,
    X: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """Deterministic prediction with dropout off (weight-scaling inference).

    Args:
        model: a `DropoutModel`.
        X: inputs `(n, *model.input_shape)`.
        batch_size: rows per (padded) forward pass, as in `predict_fixed_masks`.
        device: as in `predict_fixed_masks`.
        progress: as in `predict_fixed_masks`.

    Returns:
        A CPU tensor: `(n,)` outputs for regression or `(n, c)` class probabilities. The model's
        train/eval flags and device are as they were.
    """
    _check_model(model)
    X = check_inputs(model, X)
    _check_batch_size(batch_size)
    dev = torch.device(device) if device is not None else default_device()
    n = X.shape[0]
    out = torch.empty((n, model.n_classes) if model.n_classes else (n,))
    out = out.to(_param_dtype(model))
    with _prediction_mode(model, dev), torch.inference_mode():
        for start, x_B in _padded_batches(X, batch_size, dev, progress, "deterministic"):
            y_B = model(x_B)
            stop = min(start + batch_size, n)
            y_b = y_B[: stop - start]
            out[start:stop] = (torch.softmax(y_b, dim=-1) if model.n_classes else y_b).cpu()
    return out


# --- the batched head -------------------------------------------------------------------------


def penultimate_embeddings(
    model: DropoutModel,
    X: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool | None = False,
) -> torch.Tensor:
    """Deterministic inputs of the last fully-connected layer (the core-set embedding).

    Uses the same padded, fixed-shape batches as `predict_fixed_masks`, so a point's embedding
    does not depend on which other points share its batch.

    Args:
        model: a trained `DropoutModel`.
        X: `(n, *model.input_shape)` inputs.
        batch_size: rows per (padded) forward pass.
        device: as in `predict_fixed_masks`.
        progress: as in `predict_fixed_masks`.

    Returns:
        `emb_N_D`: `(n, d)` float CPU tensor, dropout off.
    """
    _check_model(model)
    X = check_inputs(model, X)
    _check_batch_size(batch_size)
    dev = torch.device(device) if device is not None else default_device()
    blocks = list(model.head_blocks())[:-1]
    n = X.shape[0]
    parts: list[torch.Tensor] = []
    with _prediction_mode(model, dev), torch.inference_mode():
        for start, x_B in _padded_batches(X, batch_size, dev, progress, "embeddings"):
            h_B = model.features(x_B)
            for block in blocks:
                h_B = block(h_B)
            parts.append(h_B[: min(start + batch_size, n) - start].cpu())
    return torch.cat(parts)


def _masked_head_weights(
    model: DropoutModel, masks: list[torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fold each layer's masks into its weights, once per call.

    Returns per head block `(weight, bias)`: the first block as `(H, J * O)` and `(J * O,)` so
    that it is one plain matrix product; later blocks as `(J, O, I)` and `(1, O, 1)` for `baddbmm`
    with the points along the last axis.
    """
    out = []
    for i, (block, mask_J_I) in enumerate(zip(model.head_blocks(), masks, strict=True)):
        W_O_I = block.linear.weight
        b_O = block.linear.bias
        n_masks = mask_J_I.shape[0]
        W_J_O_I = W_O_I.unsqueeze(0) * mask_J_I.unsqueeze(1)
        if i == 0:
            n_out, n_in = W_O_I.shape
            # (I, J * O): column j * O + o is output o under mask j.
            W_I_JO = W_J_O_I.reshape(n_masks * n_out, n_in).T.contiguous()
            out.append((W_I_JO, b_O.repeat(n_masks)))
        else:
            out.append((W_J_O_I.contiguous(), b_O.reshape(1, -1, 1)))
    return out


def _head_under_masks(
    model: DropoutModel,
    weights: list[tuple[torch.Tensor, torch.Tensor]],
    feats_B_H: torch.Tensor,
) -> torch.Tensor:
    """Run the head under all `J` masks: `(B, H)` features -> `(J, O, B)` outputs.

    Points run along the rows of the first product and along the columns of the later batched
    products: MKL's batched kernel for a narrow output (e.g. 10 classes) with points as rows
    computes odd and even rows differently, while with points as columns each point came out
    bit-identical wherever it sat in the batch, for every layer shape we tried. Fixed shapes plus
    this layout are what `tests/test_mc_dropout.py` checks; BLAS itself promises no such thing.
    """
    blocks = list(model.head_blocks())
    W_I_JO, b_JO = weights[0]
    n_batch = feats_B_H.shape[0]
    n_masks = b_JO.shape[0] // blocks[0].linear.out_features
    # The activation in place saves one pass over the `(B, J * O)` activations. Two faster forms
    # were measured and not taken because they change the float32 rounding of the predictions
    # (the committed benchmark evidence is reproduced bit for bit): `mm` then adding the bias
    # (addmm's broadcast bias is a third of the product's time) and handing `baddbmm` the
    # permuted view instead of a contiguous copy. See `benchmarks.prediction --breakdown`.
    z_B_JO = torch.addmm(b_JO, feats_B_H, W_I_JO)
    h_B_J_O = _activation_(blocks[0].activation, z_B_JO).reshape(n_batch, n_masks, -1)
    h_J_O_B = h_B_J_O.permute(1, 2, 0).contiguous()
    for block, (W_J_O_I, b_1_O_1) in zip(blocks[1:], weights[1:], strict=True):
        h_J_O_B = block.activation(torch.baddbmm(b_1_O_1, W_J_O_I, h_J_O_B))
    return h_J_O_B


def _activation_(activation: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`activation(x)`, overwriting `x` when the activation has an in-place form."""
    if isinstance(activation, torch.nn.ReLU):
        return torch.relu_(x)
    if isinstance(activation, torch.nn.Sigmoid):
        return torch.sigmoid_(x)
    if isinstance(activation, torch.nn.Identity):
        return x
    return activation(x)


# --- plumbing ---------------------------------------------------------------------------------


def _padded_batches(
    X: torch.Tensor, batch_size: int, device: torch.device, progress: bool | None, desc: str
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield `(start, x)` with `x` exactly `(batch_size, ...)`: the last batch is zero-padded."""
    n = X.shape[0]
    n_batches = -(-n // batch_size)
    show = n_batches >= _AUTO_PROGRESS_MIN_BATCHES if progress is None else progress
    pad = None
    for start in tqdm(range(0, n, batch_size), total=n_batches, disable=not show, desc=desc):
        x = X[start : start + batch_size]
        if x.shape[0] < batch_size:
            if pad is None:
                pad = X.new_zeros((batch_size - x.shape[0], *X.shape[1:]))
            x = torch.cat([x, pad[: batch_size - x.shape[0]]])
        yield start, x.to(device, non_blocking=True)


@contextmanager
def _prediction_mode(model: DropoutModel, device: torch.device) -> Iterator[None]:
    """Eval mode on `device` for the duration; restore every module's flag and the device."""
    flags = [(m, m.training) for m in model.modules()]
    original = next(model.parameters()).device
    model.eval()
    model.to(device)
    try:
        yield
    finally:
        model.to(original)
        for m, flag in flags:
            m.training = flag


def _check_model(model: object) -> None:
    if not isinstance(model, DropoutModel):
        raise InputError(
            f"model must be a models.DropoutModel (trunk + dropout head), "
            f"got {type(model).__name__}"
        )


def _param_dtype(model: DropoutModel) -> torch.dtype:
    return next(model.parameters()).dtype


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise InputError(f"seed generator must be a CPU generator, got device {seed.device}")
        return seed
    return torch.Generator().manual_seed(check_int(seed, "seed (an int or a torch.Generator)"))


def _check_batch_size(batch_size: int) -> None:
    check_int(batch_size, "batch_size", minimum=1)


def _check_masks(model: DropoutModel, masks: list[torch.Tensor]) -> None:
    blocks = list(model.head_blocks())
    if not isinstance(masks, list | tuple) or len(masks) != len(blocks):
        raise InputError(f"masks must be a list of {len(blocks)} tensors, one per head block")
    n_masks = None
    for i, (block, m) in enumerate(zip(blocks, masks, strict=True)):
        ok = isinstance(m, torch.Tensor) and m.ndim == 2 and m.shape[0] >= 1
        if not ok or m.shape[1] != block.linear.in_features:
            shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise InputError(
                f"masks[{i}] must have shape (J, {block.linear.in_features}), got {shape}"
            )
        if n_masks is not None and m.shape[0] != n_masks:
            raise InputError(f"masks[{i}] has {m.shape[0]} masks, masks[0] has {n_masks}")
        n_masks = m.shape[0]


def check_inputs(
    model: DropoutModel, X: np.ndarray | torch.Tensor, name: str = "X"
) -> torch.Tensor:
    """Return `X` as a tensor in the model's dtype (same device), checking shape and values.

    Raises:
        InputError: not an array, wrong shape for the model, no points, or NaN/inf values.
    """
    if isinstance(X, np.ndarray):
        X_t = torch.from_numpy(np.ascontiguousarray(X))
    elif isinstance(X, torch.Tensor):
        X_t = X.detach()
    else:
        raise InputError(f"{name} must be a numpy array or torch tensor, got {type(X).__name__}")
    if tuple(X_t.shape[1:]) != model.input_shape or X_t.ndim != len(model.input_shape) + 1:
        raise InputError(
            f"{name} must have shape (n, {', '.join(map(str, model.input_shape))}) for "
            f"{type(model).__name__}, got {tuple(X_t.shape)}"
        )
    if X_t.shape[0] == 0:
        raise InputError(f"{name} has no points")
    if X_t.dtype == torch.bool or X_t.is_complex():
        raise InputError(f"{name} must be real numbers, got dtype {X_t.dtype}")
    X_t = X_t.to(_param_dtype(model))
    finite_n = torch.isfinite(X_t.reshape(X_t.shape[0], -1)).all(dim=1)
    if not bool(finite_n.all()):
        bad = int(torch.nonzero(~finite_n)[0, 0])
        raise InputError(f"{name} contains NaN or inf (first at point {bad})")
    return X_t
