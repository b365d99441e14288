"""The CUDA paths against the CPU: selection, fixed-mask prediction, training, the score-pool flow.

Every test here is marked `cuda`: without a CUDA device they are skipped with the reason (see
`tests/conftest.py`). `make gpu-check` runs them on a GPU machine; `DEIMOS_CHECK_DEVICE=cpu`
runs them on the CPU against the CPU, which checks the test code itself on a machine without one.

Tolerances. Selection runs in float64 on both devices, so the picks must be identical and the
gains equal to 1e-9 relative. Predictions are float32 and cuDNN convolutions use TF32 by default
(a 10-bit mantissa, ~5e-4 relative per product), so device predictions are held to the CPU's
within 1e-3 absolute + 1e-2 relative; the masks themselves are drawn on the CPU and are the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.acquisition import Case, default_tau_inv, make_predictions
from benchmarks.prediction import random_sequences
from deimos.acquisition.deimos import select_deimos

pytestmark = pytest.mark.cuda

PRED_ATOL = 1e-3
PRED_RTOL = 1e-2


def _on(device: torch.device, preds: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(preds).to(device)


@pytest.mark.parametrize(
    ("n", "n_classes", "batch_size"),
    [(4_000, 1, 40), (1_500, 10, 20), (4_000, 2, 40)],
    ids=["regression", "classification", "binary"],
)
def test_selection_on_device_tensors_picks_what_the_cpu_picks(
    check_device, n, n_classes, batch_size
):
    preds = make_predictions(Case("check", "deimos", n, 50, n_classes, batch_size), seed=5)
    tau = default_tau_inv(preds)
    on_cpu = select_deimos(preds, batch_size, tau_inv=tau)
    on_device = select_deimos(_on(check_device, preds), batch_size, tau_inv=tau)
    assert on_device.indices == on_cpu.indices
    np.testing.assert_allclose(on_device.gains, on_cpu.gains, rtol=1e-9)
    assert len(set(on_cpu.indices)) == batch_size


def test_selection_with_a_separate_pool_and_candidates_on_device(check_device):
    sample = make_predictions(Case("s", "deimos", 2_000, 30, 1, 10), seed=1)
    pool = make_predictions(Case("p", "deimos", 3_000, 30, 1, 10), seed=2)
    candidates = np.arange(0, 3_000, 3)
    tau = default_tau_inv(sample)
    kwargs = {"tau_inv": tau, "candidates": candidates}
    on_cpu = select_deimos(sample, 15, pool_preds=pool, **kwargs)
    on_device = select_deimos(
        _on(check_device, sample), 15, pool_preds=_on(check_device, pool), **kwargs
    )
    assert on_device.indices == on_cpu.indices
    assert set(on_cpu.indices) <= set(candidates.tolist())


def test_fixed_mask_predictions_on_device_match_the_cpu(check_device):
    from deimos.uncertainty.predict import predict_fixed_masks
    from models import ImageCNN, SplicingCNN

    seqs = random_sequences(1_000, 101, seed=0)
    splicing = SplicingCNN(seed=1)
    cpu = predict_fixed_masks(splicing, seqs, n_masks=20, seed=3, device="cpu")
    dev = predict_fixed_masks(splicing, seqs, n_masks=20, seed=3, device=check_device)
    assert dev.device.type == "cpu" and dev.shape == (1_000, 20)  # results always come back
    torch.testing.assert_close(dev, cpu, atol=PRED_ATOL, rtol=PRED_RTOL)
    # The masks differ between columns: a device bug that reused one mask would make them equal.
    assert float(dev.std(dim=1).mean()) > 1e-4
    assert next(splicing.parameters()).device.type == "cpu"  # the model is moved back

    images = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    classifier = ImageCNN(n_classes=10, seed=2)
    cpu = predict_fixed_masks(classifier, images, n_masks=10, seed=5, device="cpu")
    dev = predict_fixed_masks(classifier, images, n_masks=10, seed=5, device=check_device)
    torch.testing.assert_close(dev, cpu, atol=PRED_ATOL, rtol=PRED_RTOL)
    torch.testing.assert_close(dev.sum(dim=1), torch.ones(500, 10), atol=1e-5, rtol=0)


def test_one_training_epoch_on_device(check_device):
    from deimos.uncertainty.config import TrainConfig
    from deimos.uncertainty.train import train_model
    from models import SplicingCNN

    X = random_sequences(300, 101, seed=6)
    # A learnable target: the G+C content of the sequence, centred.
    y = X[:, 1:3].sum(dim=(1, 2)) / 101.0
    y = (y - y.mean()).numpy()
    model = SplicingCNN(seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(epochs=1, batch_size=32, lr=1e-3, device=str(check_device))
    trained, result = train_model(model, X[:240], y[:240], X[240:], y[240:], config)
    assert next(trained.parameters()).device.type == check_device.type
    assert len(result.train_losses) == 1 and np.isfinite(result.train_losses[0])
    assert np.isfinite(result.best_val_loss)
    after = [p.detach().cpu() for p in trained.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


@pytest.mark.slow
def test_score_pool_flow_on_device_matches_cpu_predictions(check_device, prefect_server, tmp_path):
    from deimos.data.a5ss_library import generate_library
    from deimos.data.fasta_writer import write_fasta
    from deimos.data.onehot import one_hot
    from deimos.uncertainty.predict import predict_fixed_masks
    from deimos.uncertainty.train import save_model
    from flows.score_pool import score_pool
    from models.splicing import SplicingCNN

    library = generate_library(600, seed=8)
    write_fasta(tmp_path / "pool.fasta", list(library.ids), list(library.seqs))
    model = SplicingCNN(seed=3)
    save_model(model, tmp_path / "model.pt")
    result = score_pool(
        model_path=str(tmp_path / "model.pt"),
        fasta=str(tmp_path / "pool.fasta"),
        out=str(tmp_path / "preds.npy"),
        n_masks=12,
        seed=9,
        shards=2,
        device=str(check_device),
    )
    assert result["n"] == 600 and result["shards"] == [(0, 512), (512, 600)]
    on_device = np.load(tmp_path / "preds.npy")
    on_cpu = predict_fixed_masks(
        model, one_hot(list(library.seqs)), n_masks=12, seed=9, device="cpu"
    ).numpy()
    np.testing.assert_allclose(on_device, on_cpu, atol=PRED_ATOL, rtol=PRED_RTOL)
    assert (tmp_path / "preds.ids.txt").read_text().split() == list(library.ids)
