"""Dependencies point one way: the acquisition library loads no model code, Prefect or DVC."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "module",
    ["deimos.acquisition.deimos", "deimos.acquisition.scores", "deimos.acquisition.batchbald",
     "deimos.acquisition.kcenter", "deimos.acquisition.registry", "deimos.uncertainty.calibration",
     "deimos.lab.store", "deimos.lab.queue", "deimos.data.assay", "deimos.data.sequences",
     "deimos.loop.seeds", "deimos.config"],
)  # fmt: skip
def test_library_module_does_not_pull_in_models_or_orchestration(module):
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'models', 'prefect', 'dvc', 'boto3', 'flows', 'tasks', 'deimos_cli'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


ROOT = Path(__file__).resolve().parents[3]
# flows -> tasks -> deimos, models; the CLI sits on top. Each package may not import these.
FORBIDDEN = {
    "deimos": {"tasks", "flows", "deimos_cli", "prefect", "dvc"},
    "models": {"tasks", "flows", "deimos_cli", "prefect", "dvc", "boto3"},
    "tasks": {"flows", "deimos_cli"},
    "flows": {"deimos_cli"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in files
    }
    # boto3 lives behind one adapter, the S3 queue; nothing else in the library may load it.
    if package == "deimos":
        for path in files:
            rel = str(path.relative_to(ROOT))
            if rel != "deimos/lab/queue/s3.py" and "boto3" in imported_packages(path):
                offenders[rel] = ["boto3"]
    assert {k: v for k, v in offenders.items() if v} == {}
