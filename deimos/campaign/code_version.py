"""The code a campaign's stages run, pinned: package version and a hash of the library source.

`code.json` in the campaign root records `{package, version, source_sha256}` of the installed
deimos-lab (every `.py` and `.yaml` file of the `deimos` and `models` packages). Each stage of
`dvc.yaml` depends on it, so `dvc.lock` records which code produced each output, and a round run
with different code re-runs every stage instead of reporting stale outputs as up to date.

`deimos round` (the `al_round` flow) rewrites `code.json` before running DVC, so upgrades are
picked up. A bare `dvc repro` with other code installed than `code.json` names is refused by the
stage itself, with both versions in the message: an audit reproduces a round with the code that
made it (`pip install deimos-lab==<version>`), not silently with whatever is installed.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from deimos.atomic import write_text_atomic
from deimos.errors import InputError

CODE_FILE = "code.json"
PACKAGE = "deimos-lab"
_SOURCE_SUFFIXES = (".py", ".yaml")


def _package_roots() -> list[Path]:
    import deimos
    import models

    return [Path(deimos.__file__).parent, Path(models.__file__).parent]


def source_sha256() -> str:
    """SHA-256 over the library's source files (relative path and bytes, in path order)."""
    digest = hashlib.sha256()
    for root in _package_roots():
        files = sorted(
            p
            for p in root.rglob("*")
            if p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts
        )
        for path in files:
            rel = f"{root.name}/{path.relative_to(root).as_posix()}"
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def code_identity() -> dict[str, Any]:
    """`{package, version, source_sha256}` of the code running now."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    return {"package": PACKAGE, "version": version, "source_sha256": source_sha256()}


def code_file_text(identity: dict[str, Any] | None = None) -> str:
    return json.dumps(identity or code_identity(), indent=2, sort_keys=True) + "\n"


def write_code_file(root: str | Path) -> bool:
    """Record the running code in `root/code.json`; True when the file changed."""
    path = Path(root) / CODE_FILE
    text = code_file_text()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text_atomic(path, text)
    return True


def check_code_file(root: str | Path) -> None:
    """Raise InputError unless `root/code.json` names the code running now."""
    path = Path(root) / CODE_FILE
    if not path.is_file():
        raise InputError(
            f"{path}: missing; run `deimos round` (or `python -m deimos.campaign.stages code`) "
            "to record the code this campaign runs"
        )
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    running = code_identity()
    if not isinstance(recorded, dict) or recorded.get("source_sha256") != running["source_sha256"]:
        old = recorded.get("version") if isinstance(recorded, dict) else None
        raise InputError(
            f"{path}: this round was recorded with {PACKAGE} {old} (source "
            f"{str(recorded.get('source_sha256', '?'))[:12] if isinstance(recorded, dict) else '?'}"
            f"), but {running['version']} (source {running['source_sha256'][:12]}) is installed; "
            f"install the recorded version to reproduce it, or run `deimos round` to adopt the "
            "installed code (every stage then re-runs)"
        )
