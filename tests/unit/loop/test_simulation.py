"""The in-process simulated campaign and `deimos demo`, at a tiny scale."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from deimos.errors import InputError
from deimos.loop.simulation import SimulationConfig, run_simulated_campaign
from deimos.uncertainty.train import TrainConfig

TINY = {
    "pool_size": 300,
    "test_size": 100,
    "n_validation": 30,
    "n_initial": 20,
    "batch_size": 10,
    "n_rounds": 2,
    "n_masks": 8,
    "train": TrainConfig(task="regression", epochs=3, patience=2, seed=0),
}


@pytest.mark.slow
def test_campaign_grows_labels_by_batch_and_is_reproducible():
    config = SimulationConfig(**TINY)
    first = run_simulated_campaign(config, progress=False)
    assert list(first["method"].unique()) == ["deimos", "random"]
    for _, curve in first.groupby("method"):
        assert curve["n_labels"].tolist() == [20, 30, 40]
        assert curve["round"].tolist() == [0, 1, 2]
        assert (curve["test_mse"] > 0).all()
    # Both methods start from the same initial labels, hence the same round-0 model.
    round0 = first[first["round"] == 0]["test_mse"]
    assert round0.nunique() == 1
    deimos_gain = first[(first["method"] == "deimos") & (first["round"] < 2)]["batch_gain"]
    assert (deimos_gain > 0).all()
    again = run_simulated_campaign(config, progress=False)
    pd.testing.assert_frame_equal(first.drop(columns="seconds"), again.drop(columns="seconds"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pool_size": 25}, "pool_size=25 is too small"),
        ({"n_masks": 1}, "n_masks: Input should be greater than or equal to 2"),
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
        ({"methods": ("bald",)}, "cannot run a regression campaign"),
        ({"methods": ("nope",)}, "cannot run a regression campaign"),
    ],
)
def test_bad_configuration_is_rejected(overrides, message):
    with pytest.raises(InputError, match=message):
        SimulationConfig(**(TINY | overrides))


def test_demo_cli_rejects_bad_sizes_and_writes_nothing(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deimos_cli.main",
            "simulate",
            "--dir",
            str(out),
            "--pool-size",
            "50",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "exceeds pool_size=50" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_demo_cli_writes_curve_and_plot(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "deimos_cli.main", "simulate", "--dir", str(out),
         "--pool-size", "300", "--initial", "20", "--batch-size", "10", "--rounds", "1"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    curve = pd.read_csv(out / "learning_curve.csv")
    assert curve["n_labels"].tolist() == [20, 30, 20, 30]
    png = (out / "learning_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert "test MSE" in result.stdout


@pytest.mark.slow
def test_kcenter_campaign_picks_new_points_from_the_pool():
    config = SimulationConfig(**{**TINY, "methods": ("kcenter", "random")})
    curve = run_simulated_campaign(config, progress=False)
    kcenter = curve[curve["method"] == "kcenter"]
    assert kcenter["n_labels"].tolist() == [20, 30, 40]
    # A pick's gain is its distance to the nearest labelled point: new points are far from them.
    assert (kcenter[kcenter["round"] < 2]["batch_gain"] > 0).all()
    assert (kcenter["test_mse"] > 0).all()


def test_lab_loop_and_simulation_accept_the_registrys_regression_methods():
    # One list: the campaign's params.yaml and the simulation both take the registry's methods.
    from deimos.acquisition.registry import methods_for
    from deimos.campaign.params import CampaignParams

    for method in methods_for("regression"):
        assert CampaignParams(method=method).method == method
        assert SimulationConfig(methods=(method,)).methods == (method,)
    with pytest.raises(InputError, match="deimos, random, maxvar, kcenter"):
        CampaignParams(method="maxent")


def test_tau_from_round_0_is_kept_and_the_network_is_configurable():
    small = {**TINY, "methods": ("deimos",), "conv_channels": (8, 16, 16), "hidden_units": (8,)}
    every = run_simulated_campaign(SimulationConfig(**small), progress=False)
    kept = run_simulated_campaign(
        SimulationConfig(**small, tau_calibration="initial"), progress=False
    )
    picked = every["round"] < 2  # the last round fits and scores, it picks nothing
    assert every.loc[picked, "tau_inv"].nunique() == 2  # recalibrated on each round's model
    assert kept.loc[picked, "tau_inv"].nunique() == 1
    assert kept["tau_inv"].iloc[0] == every["tau_inv"].iloc[0]
    assert every["dropout_r2"].between(0.0, 1.0).all()
    with pytest.raises(InputError, match=r"SimulationConfig\.tau_calibration"):
        SimulationConfig(**small, tau_calibration="weekly")
