"""`deimos select`: the acquisition library from the command line, in a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deimos.acquisition.deimos import select_deimos


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deimos_cli.main", *args], capture_output=True, text=True
    )


@pytest.fixture
def preds_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    preds = np.random.default_rng(0).normal(size=(200, 12))
    path = tmp_path / "preds.npy"
    np.save(path, preds)
    return path, preds


def test_select_writes_the_library_picks(tmp_path, preds_file):
    path, preds = preds_file
    out = tmp_path / "batch" / "selection.csv"
    result = _run("select", "--preds", str(path), "--batch-size", "7", "--tau-inv", "0.1",
                  "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    expected = select_deimos(preds, 7, tau_inv=0.1)
    assert table["index"].tolist() == list(expected.indices)
    np.testing.assert_allclose(table["gain"], expected.gains, rtol=1e-8)
    assert table["rank"].tolist() == list(range(7))


def test_select_bad_input_exits_2_with_reason_and_writes_nothing(tmp_path, preds_file):
    path, _ = preds_file
    out = tmp_path / "selection.csv"
    result = _run("select", "--preds", str(path), "--batch-size", "500", "--tau-inv", "0.1",
                  "--out", str(out))  # fmt: skip
    assert result.returncode == 2
    assert "batch_size=500 is larger than the 200 pickable candidates" in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [path]


def test_select_missing_file_and_missing_tau(tmp_path, preds_file):
    path, _ = preds_file
    missing = _run("select", "--preds", str(tmp_path / "nope.npy"), "--batch-size", "2",
                   "--tau-inv", "0.1")  # fmt: skip
    assert missing.returncode == 2
    assert "nope.npy: predictions file not found" in missing.stderr
    no_tau = _run("select", "--preds", str(path), "--batch-size", "2")
    assert no_tau.returncode == 2
    assert "--tau-inv is required" in no_tau.stderr


def test_select_rejects_pickled_npy(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = _run("select", "--preds", str(path), "--batch-size", "1", "--tau-inv", "0.1")
    assert result.returncode == 2
    assert "cannot read predictions as a .npy array" in result.stderr
