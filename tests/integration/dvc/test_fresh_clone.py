"""A fresh clone has no data/ (DVC tracks it, git does not): it is pulled or regenerated."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from deimos.campaign import repo
from deimos.campaign.create import create_campaign, restore_data
from deimos.campaign.layout import Campaign
from deimos.errors import InputError
from tests.helpers.lab_loop_helpers import make_campaign, tiny_params

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[3]


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def clone(source: Path, target: Path) -> Path:
    repo.run_git(target.parent, ["clone", "-q", str(source), target.name])
    return target


def test_simulated_campaign_clone_regenerates_identical_data(tmp_path):
    original = make_campaign(tmp_path / "origin")
    copy = clone(original.root, tmp_path / "clone")
    assert not (copy / "data").exists()
    assert restore_data(copy) == "regenerated"
    assert digest_tree(copy / "data") == digest_tree(original.data_dir)
    assert repo.data_status(copy) == {}
    assert repo.run_git(copy, ["status", "--porcelain"]).strip() == ""
    assert restore_data(copy) == "present"


def test_lab_campaign_clone_pulls_from_the_remote_or_says_how(tmp_path):
    from deimos.data.a5ss_library import generate_library
    from deimos.data.fasta_writer import write_fasta

    lib = generate_library(50, seed=3)
    fasta = tmp_path / "library.fasta"
    write_fasta(fasta, list(lib.ids), list(lib.seqs))
    params = tiny_params(simulation=None)
    remote = tmp_path / "remote"
    lab = create_campaign(tmp_path / "lab", params, pool_fasta=fasta, dvc_remote=remote)

    copy = clone(lab.root, tmp_path / "clone")
    with pytest.raises(InputError, match=r"clone/data: missing, and no DVC remote holds it"):
        restore_data(copy)
    assert not (copy / "data").exists()

    repo.run_dvc(lab.root, ["push", "-q"])
    assert restore_data(copy) == "pulled"
    assert digest_tree(copy / "data") == digest_tree(lab.data_dir)


def test_changed_data_is_not_overwritten(tmp_path):
    campaign = make_campaign(tmp_path / "c")
    pool = campaign.pool_fasta
    pool.write_text(pool.read_text() + ">extra\n" + "A" * 101 + "\n")
    before = pool.read_bytes()
    with pytest.raises(InputError, match=r"c/data: differs from .*data.dvc"):
        restore_data(campaign.root)
    assert pool.read_bytes() == before


def test_project_default_campaign_regenerates_to_its_data_dvc(tmp_path):
    """The project repository is itself the default campaign: data.dvc must stay in step with
    params.yaml and the generator, or a fresh clone cannot rebuild its data."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("params.yaml", "dvc.yaml", "data.dvc", ".dvcignore"):
        shutil.copy2(PROJECT / name, root / name)
    shutil.copytree(PROJECT / ".dvc", root / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    repo.run_git(root, ["init", "-q"])
    Campaign(root).check()
    assert restore_data(root) == "regenerated"
    assert repo.data_status(root) == {}
