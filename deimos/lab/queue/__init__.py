"""Lab queues: where a round's batch goes out to the lab and where its labels come back.

Two queues speak the same protocol (a batch is complete once its ``manifest.json`` exists, the
manifest being written last; labels come back as ``round-<k>.csv|.xlsx|.json``):

- `LocalQueue` (`deimos.lab.queue.local`): ``outbox/round-<k>/`` and ``inbox/`` in a folder;
- `S3Queue` (`deimos.lab.queue.s3`, `deimos.lab.queue.s3_batches`): ``s3://BUCKET/PREFIX/``.

Both implement `LabQueue`. Importing this package does not import boto3: `S3Queue` loads the S3
modules when one of its methods first runs.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from deimos.lab.queue.local import LocalQueue

if TYPE_CHECKING:
    from deimos.lab.queue.settings import S3Settings

__all__ = ["LabQueue", "LabelsRef", "LocalQueue", "S3Queue"]

#: Where a queue found returned labels: a local path, or an object key.
LabelsRef = str | Path


class LabQueue(Protocol):
    """What the lab-loop tasks need of a queue."""

    def publish(self, round_id: int, export_dir: Path) -> dict[str, Any]:
        """Publish every file of `export_dir` as round `round_id`'s batch, manifest last; return
        the manifest ``{"round": k, "files": [{"name", "bytes", "sha256"}, ...]}``. Publishing
        the same files again is a no-op."""
        ...

    def read_manifest(self, round_id: int) -> dict[str, Any] | None:
        """The round's manifest after checking every file against it; None if not published."""
        ...

    def find_returned_labels(self, round_id: int) -> LabelsRef | None:
        """Where the lab's labels for round `round_id` are, if they have arrived."""
        ...

    def fetch(self, labels_ref: LabelsRef, dest_dir: Path) -> Path:
        """The labels at `labels_ref` as a local file in `dest_dir`, under their own name."""
        ...


class S3Queue:
    """The S3 queue of `settings`, behind `LabQueue` (module functions in
    `deimos.lab.queue.s3_batches`; boto3 is imported on first use)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings

    def publish(self, round_id: int, export_dir: Path) -> dict[str, Any]:
        """`publish_batch_s3` of the export's files (sorted by name)."""
        from deimos.lab.queue.s3_batches import publish_batch_s3

        files = sorted(p for p in Path(export_dir).iterdir() if p.is_file())
        return publish_batch_s3(self.settings, round_id, files)

    def read_manifest(self, round_id: int) -> dict[str, Any] | None:
        """`read_batch_manifest_s3`."""
        from deimos.lab.queue.s3_batches import read_batch_manifest_s3

        return read_batch_manifest_s3(self.settings, round_id)

    def find_returned_labels(self, round_id: int) -> str | None:
        """`find_returned_labels_s3`: the key of ``PREFIX/inbox/round-<k>.*``, if any."""
        from deimos.lab.queue.s3_batches import find_returned_labels_s3

        return find_returned_labels_s3(self.settings, round_id)

    def fetch(self, labels_ref: LabelsRef, dest_dir: Path) -> Path:
        """`download_object` of key `labels_ref` to ``dest_dir/<the key's last segment>``."""
        from deimos.lab.queue.s3_batches import download_object

        key = str(labels_ref)
        return download_object(self.settings, key, Path(dest_dir) / PurePosixPath(key).name)
