"""params.yaml: typed, checked, and rewritten without losing the user's comments."""

from pathlib import Path

import pytest
import yaml

from deimos.campaign.create import default_simulation_params
from deimos.campaign.params import (
    CampaignParams,
    load_params,
    params_from_mapping,
    params_yaml_text,
    set_round,
)
from deimos.campaign.pipeline import pipeline_definition, pipeline_yaml
from deimos.errors import InputError

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_round_trip_through_yaml(tmp_path):
    params = default_simulation_params(pool_size=1234, seed=4)
    path = tmp_path / "params.yaml"
    path.write_text(params_yaml_text(params))
    assert load_params(path) == params


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1 (got 0)"),
        ({"batch_size": 2.5}, "batch_size: Input should be a valid integer (got 2.5)"),
        ({"batch_size": True}, "batch_size: Input should be a valid integer (got True)"),
        ({"method": "bald"}, "method: must be one of deimos, random, maxvar, kcenter (got 'bald')"),
        ({"n_masks": 1}, "n_masks: Input should be greater than or equal to 2"),
        ({"tau_factor": -1}, "tau_factor: Input should be greater than 0"),
        ({"tau_factor": "1e-3"}, "tau_factor: Input should be a valid number (got '1e-3')"),
        ({"validation_fraction": 0.9}, "validation_fraction: Input should be less than or equal"),
        ({"round": -1}, "round: Input should be greater than or equal to 0"),
        ({"queue_dir": " q"}, "queue_dir: must be a non-empty name"),
        ({"batchsize": 10}, "unknown parameter 'batchsize'"),
        ({"train": {"epoch": 3}}, "unknown parameter 'train.epoch'"),
        ({"train": {"lr": 0}}, "train.lr: Input should be greater than 0"),
        ({"train": {"device": "gpu"}}, "train.device: is not a device"),
        ({"train": {"seed": 1}}, "train: seed is not a campaign parameter"),
        ({"train": {"task": "regression"}}, "train: task is not a campaign parameter"),
        ({"train": [1, 2]}, "train: must be a mapping of parameters"),
        ({"model": {"dropout_p": 1.0}}, "model.dropout_p: Input should be less than 1"),
        ({"labels": {"value_range": [1, 0]}}, "labels: value_range must have low < high"),
        ({"labels": {"value_range": [0, 1, 2]}}, "labels.value_range: Tuple should have at most"),
        ({"export": {"formats": []}}, "export.formats: Tuple should have at least 1 item"),
        ({"export": {"plate_wells": 95}}, "export: plate wells must be one of [96, 384]"),
        ({"s3": {"bucket": "Lab"}}, "s3.bucket: S3 bucket name 'Lab'"),
        ({"s3": {"bucket": "lab-b", "attempts": 0}}, "s3.attempts: Input should be greater than"),
        ({"simulation": {"pool_size": 10, "n_initial": 20}}, "simulation: n_initial=20 exceeds"),
        ({"simulation": {"read_depth": 0}}, "simulation.read_depth: Input should be greater"),
    ],
)
def test_bad_parameters_name_the_file_and_the_key(raw, message):
    with pytest.raises(InputError) as err:
        params_from_mapping(raw, "campaign/params.yaml")
    assert str(err.value).startswith("campaign/params.yaml: ")
    assert message in str(err.value)


def test_s3_endpoint_with_credentials_is_refused_without_echoing_them():
    raw = {"s3": {"bucket": "lab-b", "endpoint_url": "http://AKIAABCDEFGHIJKLMNOP:pw0rd1@host"}}
    with pytest.raises(InputError, match="must not contain a user name or password") as err:
        params_from_mapping(raw, "campaign/params.yaml")
    assert "pw0rd1" not in str(err.value) and "AKIA" not in str(err.value)


def test_training_keys_left_out_take_the_lab_loop_defaults(tmp_path):
    params = params_from_mapping({"train": {"lr": 0.01}}, "p.yaml")
    assert (params.train.lr, params.train.epochs, params.train.patience) == (0.01, 100, 15)
    assert params.train.task == "regression"
    text = params_yaml_text(params)
    assert "seed" not in yaml.safe_load(text)["train"]
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_params(path) == params


def test_a_bad_params_file_changes_nothing(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(params_yaml_text(CampaignParams()).replace("batch_size: 100", "batch_size: 0"))
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"params.yaml: batch_size: "):
        load_params(path)
    with pytest.raises(InputError, match="round: Input should be greater than or equal to 0"):
        set_round(path, -1)
    assert path.read_bytes() == before


def test_unreadable_params_files(tmp_path):
    with pytest.raises(InputError, match="parameters file not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("round: [1,\n")
    with pytest.raises(InputError, match=r"bad.yaml: not valid YAML"):
        load_params(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="expected a mapping of parameters, got list"):
        load_params(bad)


def test_set_round_rewrites_only_the_round_line(tmp_path):
    path = tmp_path / "params.yaml"
    text = "# my notes\nround: 3  # advanced by ingest\nbatch_size: 7  # lab capacity\n"
    path.write_text(text)
    set_round(path, 4)
    assert path.read_text() == text.replace("round: 3  # advanced by ingest", "round: 4")
    assert load_params(path).round == 4
    path.write_text("batch_size: 7\n")
    with pytest.raises(InputError, match="no top-level 'round: <int>' line"):
        set_round(path, 1)
    assert path.read_text() == "batch_size: 7\n"


def test_stage_params_are_the_ones_each_stage_reads():
    stages = pipeline_definition(with_test_set=False)["stages"]
    assert list(stages) == ["prepare", "train", "predict", "select", "export"]
    assert "batch_size" in stages["select"]["params"]
    assert "batch_size" not in stages["train"]["params"] + stages["predict"]["params"]
    assert "n_masks" in stages["predict"]["params"]
    assert "n_masks" not in stages["train"]["params"]
    assert "data/test.fasta" not in stages["train"]["deps"]
    assert "data/test.fasta" in pipeline_definition(with_test_set=True)["stages"]["train"]["deps"]
    known = set(CampaignParams.model_fields)
    for stage in stages.values():
        # "labels.value_column": a single field of a section is a known parameter too.
        assert {p.split(".")[0] for p in stage["params"]} <= known


def test_project_root_is_the_default_campaign():
    """The repository's own params.yaml / dvc.yaml are what `deimos init --simulated` writes."""
    assert (ROOT / "dvc.yaml").read_text() == pipeline_yaml(with_test_set=True)
    assert (ROOT / "params.yaml").read_text() == params_yaml_text(default_simulation_params())
    lock = yaml.safe_load((ROOT / "data.dvc").read_text())
    assert lock["outs"][0]["path"] == "data"
