"""Dependencies point one way: the acquisition library loads no model code, Prefect or DVC."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["deimos.acquisition", "deimos.baselines", "deimos.registry", "deimos.calibration",
     "deimos.labels", "deimos.assay", "deimos.sequences"],
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
