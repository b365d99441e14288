"""User YAML files: a repeated key is refused with its line, not silently resolved."""

from __future__ import annotations

import pytest

from deimos.campaign.params import CampaignParams, load_params, params_yaml_text
from deimos.errors import InputError
from deimos.yaml_files import parse_yaml, read_yaml


def test_a_repeated_key_is_refused_with_its_line():
    with pytest.raises(InputError, match=r"p.yaml: .*found the key 'b' twice.*line 3") as err:
        parse_yaml("a: 1\nb: 2\nb: 3\n", "p.yaml")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="found the key 'lr' twice"):
        parse_yaml("train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n", "p.yaml")


def test_merge_keys_may_be_overridden_and_equal_keys_in_different_maps_are_fine():
    text = "base: &b {x: 1, y: 2}\ncopy:\n  <<: *b\n  y: 3\nother: {x: 1}\n"
    assert parse_yaml(text, "t.yaml") == {
        "base": {"x": 1, "y": 2},
        "copy": {"x": 1, "y": 3},
        "other": {"x": 1},
    }


def test_a_params_file_with_a_repeated_key_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(params_yaml_text(CampaignParams()) + "batch_size: 7\n")
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"params.yaml: not valid YAML .*'batch_size' twice"):
        load_params(path)
    assert path.read_bytes() == before


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(InputError, match=r"nope\.yaml: no such file"):
        read_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("a: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.yaml: not UTF-8 text"):
        read_yaml(bad)
