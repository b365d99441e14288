"""`deimos train` -> `deimos predict` -> `deimos select` on a FASTA pool, in real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deimos.data.a5ss_library import generate_library
from deimos.data.assay import SimulatedAssay
from deimos.data.assay_csv import write_measurements_csv
from deimos.data.fasta_writer import write_fasta


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deimos_cli.main", *args], capture_output=True, text=True
    )


@pytest.fixture
def campaign_files(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    library = generate_library(120, seed=3)
    fasta = tmp_path / "pool.fasta"
    write_fasta(fasta, library.ids, library.seqs)
    labelled = list(range(30))
    table = SimulatedAssay(seed=3).measure(
        [library.ids[i] for i in labelled], [library.seqs[i] for i in labelled]
    )
    labels = tmp_path / "labels.csv"
    write_measurements_csv(table, labels)
    return fasta, labels, list(library.ids)


@pytest.mark.slow
def test_train_predict_select_round_trip(tmp_path, campaign_files):
    fasta, labels, ids = campaign_files
    model = tmp_path / "model.pt"
    trained = _run("train", "--fasta", str(fasta), "--labels", str(labels), "--epochs", "3",
                   "--out", str(model))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "trained on 24 sequences (validation 6)" in trained.stdout
    preds_path = tmp_path / "preds.npy"
    predicted = _run("predict", "--model", str(model), "--fasta", str(fasta), "--masks", "6",
                     "--out", str(preds_path))  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    preds = np.load(preds_path)
    assert preds.shape == (120, 6)
    assert (preds.std(axis=1) > 0).all()  # the masks differ
    assert (tmp_path / "preds.ids.txt").read_text().split() == ids
    again = tmp_path / "again.npy"
    _run("predict", "--model", str(model), "--fasta", str(fasta), "--masks", "6",
         "--out", str(again))  # fmt: skip
    np.testing.assert_array_equal(np.load(again), preds)  # same seed, same masks
    selected = _run("select", "--preds", str(preds_path), "--batch-size", "5", "--tau-inv",
                    "0.001", "--out", str(tmp_path / "batch.csv"))  # fmt: skip
    assert selected.returncode == 0, selected.stderr
    assert len(pd.read_csv(tmp_path / "batch.csv")) == 5


def test_train_rejects_labels_for_unknown_ids_and_writes_no_model(tmp_path, campaign_files):
    fasta, _, _ = campaign_files
    labels = tmp_path / "bad.csv"
    labels.write_text("id,donor_usage\nA5SS_000001,0.5\nNOT_IN_POOL,0.3\n")
    model = tmp_path / "model.pt"
    result = _run("train", "--fasta", str(fasta), "--labels", str(labels), "--out", str(model))
    assert result.returncode == 2
    assert "ids not in" in result.stderr and "NOT_IN_POOL" in result.stderr
    assert not model.exists()


def test_predict_refuses_a_file_that_is_not_a_model(tmp_path, campaign_files):
    fasta, _, _ = campaign_files
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"not a model at all")
    out = tmp_path / "preds.npy"
    result = _run("predict", "--model", str(fake), "--fasta", str(fasta), "--out", str(out))
    assert result.returncode == 2
    assert "model.pt" in result.stderr
    assert not out.exists()
