"""The local filesystem lab queue: batches go out to `outbox/round-<k>/`, labels come back to
`inbox/`.

A published batch is complete once its `manifest.json` exists: the manifest (file names, sizes,
SHA-256) is written last, so a reader polling the outbox never picks up half a batch, and a
re-publish of the same round is a no-op when the manifest already matches.

`LocalQueue` puts these functions behind the queue interface (`deimos.lab.queue.LabQueue`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from deimos.atomic import replacing, write_text_atomic
from deimos.errors import InputError

MANIFEST = "manifest.json"
LABEL_SUFFIXES = (".csv", ".xlsx", ".json")


def outbox(queue_dir: Path, round_id: int) -> Path:
    return queue_dir / "outbox" / f"round-{int(round_id)}"


def inbox(queue_dir: Path) -> Path:
    return queue_dir / "inbox"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_batch(export_dir: Path, queue_dir: Path, round_id: int) -> dict[str, Any]:
    """Copy a round's export files to its outbox, manifest last; return the manifest."""
    files = sorted(p for p in export_dir.iterdir() if p.is_file())
    if not files:
        raise InputError(f"{export_dir}: no exported files to publish")
    manifest = {
        "round": int(round_id),
        "files": [
            {"name": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files
        ],
    }
    target = outbox(queue_dir, round_id)
    existing = read_manifest(target) if (target / MANIFEST).is_file() else None
    if existing == manifest:
        return manifest
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).unlink(missing_ok=True)
    for p in files:
        with replacing(target / p.name) as tmp:
            shutil.copyfile(p, tmp)
    write_text_atomic(target / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(batch_dir: Path) -> dict[str, Any]:
    """The manifest of a published batch, after checking every file against it."""
    path = batch_dir / MANIFEST
    if not path.is_file():
        raise InputError(f"{batch_dir}: no {MANIFEST}; the batch is not (completely) published")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    for entry in manifest.get("files", []):
        name = str(entry.get("name", ""))
        if not name or "/" in name or name.startswith("."):
            raise InputError(f"{path}: bad file name {name!r}")
        f = batch_dir / name
        if not f.is_file() or f.stat().st_size != entry.get("bytes"):
            raise InputError(f"{f}: missing or not the size the manifest records")
        if sha256_file(f) != entry.get("sha256"):
            raise InputError(f"{f}: SHA-256 differs from the manifest")
    return manifest


def returned_label_file(queue_dir: Path, round_id: int) -> Path | None:
    """The lab's label file for a round in the inbox (`round-<k>.csv` / `.xlsx`), if any."""
    for suffix in LABEL_SUFFIXES:
        candidate = inbox(queue_dir) / f"round-{int(round_id)}{suffix}"
        if candidate.is_file():
            return candidate
    return None


class LocalQueue:
    """The local filesystem queue in `queue_dir`, behind `deimos.lab.queue.LabQueue`."""

    def __init__(self, queue_dir: str | os.PathLike[str]) -> None:
        self.queue_dir = Path(queue_dir)

    def publish(self, round_id: int, export_dir: Path) -> dict[str, Any]:
        """`publish_batch`: the export's files to the round's outbox, manifest last."""
        return publish_batch(Path(export_dir), self.queue_dir, round_id)

    def read_manifest(self, round_id: int) -> dict[str, Any] | None:
        """The round's checked manifest (`read_manifest`), or None when it is not published."""
        batch_dir = outbox(self.queue_dir, round_id)
        return read_manifest(batch_dir) if (batch_dir / MANIFEST).is_file() else None

    def find_returned_labels(self, round_id: int) -> Path | None:
        """`returned_label_file`: the round's label file in the inbox, if any."""
        return returned_label_file(self.queue_dir, round_id)

    def fetch(self, labels_ref: str | os.PathLike[str], dest_dir: Path) -> Path:
        """The label file in `dest_dir`: itself when it lies there already, else a copy."""
        source = Path(labels_ref)
        target = Path(dest_dir) / source.name
        if target.exists() and target.samefile(source):
            return source
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target) as tmp:
            shutil.copyfile(source, tmp)
        return target
