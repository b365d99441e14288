"""Dependencies point one way: the acquisition library loads no model code, Prefect or DVC."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ORCHESTRATION = {"models", "prefect", "dvc", "boto3", "flows", "tasks", "deimos_cli"}
HEAVY = {"torch", "boto3", "botocore", "models", "prefect", "dvc", "tasks", "flows"}


def modules_loaded_by(code: str, forbidden: set[str]) -> list[str]:
    """Run `code` in a fresh interpreter; the top-level packages in `forbidden` it loaded."""
    probe = (
        f"{code}\nimport sys\n"
        f"loaded = {{m.split('.')[0] for m in sys.modules}}\n"
        f"print(','.join(sorted(loaded & set({sorted(forbidden)!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return [m for m in result.stdout.strip().split(",") if m]


def test_the_probe_sees_what_a_module_loads():
    assert modules_loaded_by("import deimos.uncertainty.predict", HEAVY) == ["models", "torch"]


@pytest.mark.parametrize(
    "module",
    ["deimos.acquisition.deimos", "deimos.acquisition.scores", "deimos.acquisition.batchbald",
     "deimos.acquisition.kcenter", "deimos.acquisition.registry", "deimos.uncertainty.calibration",
     "deimos.lab.store", "deimos.lab.queue", "deimos.data.assay", "deimos.data.assay_csv",
     "deimos.data.sequences", "deimos.data.onehot", "deimos.data.fasta_writer",
     "deimos.loop.seeds", "deimos.config"],
)  # fmt: skip
def test_library_module_does_not_pull_in_models_or_orchestration(module):
    assert modules_loaded_by(f"import {module}", ORCHESTRATION) == []


def test_benchmark_params_load_without_torch_boto3_or_prefect():
    """`deimos benchmark` refuses a bad params file before loading models or the flow."""
    code = (
        "from pathlib import Path\n"
        "from deimos.errors import InputError\n"
        "from deimos.experiments.params import BenchmarkParams, load_benchmark_params\n"
        "assert load_benchmark_params(Path('benchmarks/params.yaml')) == BenchmarkParams()\n"
        "try:\n"
        "    load_benchmark_params(None, {'overrides': {'synthetic_1d': {'lr': -1.0}}})\n"
        "except InputError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('a bad override was accepted')\n"
    )
    assert modules_loaded_by(code, HEAVY) == []


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


def test_loading_and_checking_params_imports_neither_torch_nor_boto3(tmp_path):
    """A bad params.yaml must be refused fast: the parameter models are torch- and boto3-free."""
    path = tmp_path / "params.yaml"
    code = (
        "from deimos.campaign.create import default_simulation_params\n"
        "from deimos.campaign.params import load_params, params_yaml_text\n"
        "from deimos.lab.queue.settings import S3Settings\n"
        "from deimos.loop.config import SimulationConfig\n"
        "params = default_simulation_params().replace(s3=S3Settings(bucket='lab-b'))\n"
        f"open({str(path)!r}, 'w').write(params_yaml_text(params))\n"
        f"assert load_params({str(path)!r}) == params\n"
        "SimulationConfig(pool_size=400, n_initial=20, batch_size=10)\n"
    )
    assert modules_loaded_by(code, HEAVY) == []
