"""code.json: each campaign stage depends on the code it runs, and refuses other code."""

from __future__ import annotations

import json

import pytest

from deimos.campaign import code_version
from deimos.campaign.code_version import check_code_file, code_identity, write_code_file
from deimos.campaign.pipeline import pipeline_definition
from deimos.campaign.stages import main as stage_main
from deimos.errors import InputError


def test_identity_names_version_and_source_hash() -> None:
    ident = code_identity()
    assert ident["package"] == "deimos-lab"
    assert len(ident["source_sha256"]) == 64
    assert code_identity() == ident  # a pure function of the installed files


def test_source_hash_changes_with_any_library_file(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "deimos"
    (pkg / "loop").mkdir(parents=True)
    (pkg / "loop" / "round.py").write_text("x = 1\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.py").write_text("y = 2\n")
    monkeypatch.setattr(code_version, "_package_roots", lambda: [pkg, tmp_path / "models"])
    before = code_version.source_sha256()
    (pkg / "loop" / "round.py").write_text("x = 2\n")
    assert code_version.source_sha256() != before


def test_write_then_check_and_a_mismatch_is_refused(tmp_path) -> None:
    assert write_code_file(tmp_path) is True
    assert write_code_file(tmp_path) is False  # unchanged: no rewrite, DVC sees the same hash
    check_code_file(tmp_path)
    recorded = json.loads((tmp_path / "code.json").read_text())
    recorded.update(version="0.0.1", source_sha256="0" * 64)
    (tmp_path / "code.json").write_text(json.dumps(recorded))
    before = (tmp_path / "code.json").read_bytes()
    with pytest.raises(InputError, match=r"recorded with deimos-lab 0\.0\.1 .* is installed"):
        check_code_file(tmp_path)
    assert (tmp_path / "code.json").read_bytes() == before


def test_stage_refuses_to_run_without_or_against_code_json(tmp_path, capsys) -> None:
    assert stage_main(["train", "--campaign", str(tmp_path)]) == 2
    assert "code.json: missing" in capsys.readouterr().err
    (tmp_path / "code.json").write_text("{not json")
    assert stage_main(["train", "--campaign", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert stage_main(["code", "--campaign", str(tmp_path)]) == 0
    check_code_file(tmp_path)


def test_every_stage_depends_on_code_json() -> None:
    stages = pipeline_definition(with_test_set=True)["stages"]
    assert all(stage["deps"][0] == "code.json" for stage in stages.values())
