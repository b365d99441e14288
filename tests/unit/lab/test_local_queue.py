"""Tests for deimos.lab.queue.LocalQueue: the local queue behind the LabQueue interface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deimos.errors import InputError
from deimos.lab.queue import LabQueue, LocalQueue, local


def _export(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "batch.csv").write_text("id\na\n", encoding="utf-8")
    (folder / "batch.fasta").write_text(">a\nACGT\n", encoding="utf-8")
    return folder


def test_publish_read_find_fetch(tmp_path: Path) -> None:
    lab: LabQueue = LocalQueue(tmp_path / "queue")
    assert lab.read_manifest(2) is None
    manifest = lab.publish(2, _export(tmp_path / "export"))
    assert [f["name"] for f in manifest["files"]] == ["batch.csv", "batch.fasta"]
    assert manifest == local.publish_batch(tmp_path / "export", tmp_path / "queue", 2)
    assert lab.read_manifest(2) == manifest
    manifest_file = local.outbox(tmp_path / "queue", 2) / local.MANIFEST
    assert json.loads(manifest_file.read_text(encoding="utf-8")) == manifest

    assert lab.find_returned_labels(2) is None
    inbox = local.inbox(tmp_path / "queue")
    inbox.mkdir()
    (inbox / "round-2.xlsx").write_bytes(b"xlsx")
    found = lab.find_returned_labels(2)
    assert found == inbox / "round-2.xlsx"
    assert lab.fetch(found, inbox) == found  # already in place: no copy
    copied = lab.fetch(found, tmp_path / "elsewhere")
    assert copied == tmp_path / "elsewhere" / "round-2.xlsx"
    assert copied.read_bytes() == b"xlsx"


def test_a_damaged_batch_is_refused(tmp_path: Path) -> None:
    lab = LocalQueue(tmp_path / "queue")
    lab.publish(0, _export(tmp_path / "export"))
    (local.outbox(tmp_path / "queue", 0) / "batch.csv").write_text("id\nb\n", encoding="utf-8")
    with pytest.raises(InputError, match="SHA-256 differs"):
        lab.read_manifest(0)
