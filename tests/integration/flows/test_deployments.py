"""Deployments: prefect.yaml loads and registers, `deimos serve` runs a scheduled round."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from deimos.campaign import repo
from tests.helpers.lab_loop_helpers import make_campaign

ROOT = Path(__file__).resolve().parents[3]


def _prefect_yaml() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def test_prefect_yaml_deployments_load_their_flows_with_valid_parameters():
    from prefect.flows import load_flow_from_entrypoint

    config = _prefect_yaml()
    names = {d["name"] for d in config["deployments"]}
    assert {"al-round", "ingest-labels", "collect-labels", "benchmark"} <= names
    for deployment in config["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        params = deployment.get("parameters", {})
        signature = inspect.signature(flow.fn)
        assert set(params) <= set(signature.parameters), deployment["name"]
        # Only the label file is given at run time; everything else is in prefect.yaml.
        at_run_time = {
            name: "/tmp/labels.csv"
            for name, p in signature.parameters.items()
            if p.default is inspect.Parameter.empty and name not in params
        }
        assert set(at_run_time) <= {"label_file"}, deployment["name"]
        flow.validate_parameters({**params, **at_run_time})  # types as the flow declares them
        assert deployment["work_pool"]["name"] in ("deimos-process", "deimos-docker", "deimos-gpu")
    al_round = next(d for d in config["deployments"] if d["name"] == "al-round")
    from prefect.client.schemas.schedules import CronSchedule

    assert CronSchedule(cron=al_round["schedules"][0]["cron"])


def test_infra_templates_name_the_gpu_and_the_image():
    k8s = yaml.safe_load((ROOT / "infra" / "k8s-gpu-work-pool.yaml").read_text())
    text = yaml.safe_dump(k8s)
    assert "nvidia.com/gpu" in text
    docker = yaml.safe_load((ROOT / "infra" / "docker-work-pool.yaml").read_text())
    assert docker["job_configuration"]["image"].startswith("{{")
    text = (ROOT / "infra" / "Dockerfile").read_text()
    # Logical lines: comments dropped, backslash continuations joined.
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    assert not current, "a continuation runs past the end of the file"
    instructions = [line.split()[0] for line in logical]
    assert instructions[0] == "FROM" and logical[0].startswith("FROM nvidia/cuda:")
    assert set(instructions) <= {"FROM", "ARG", "ENV", "RUN", "WORKDIR", "COPY", "CMD", "USER",
                                 "LABEL", "ENTRYPOINT"}  # fmt: skip
    assert "docker build -f infra/Dockerfile" in text  # says how to build it
    # Every COPY source exists in the repository (the build context).
    for line in logical:
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


@pytest.mark.slow
def test_deimos_deploy_registers_every_deployment(prefect_server, tmp_path):
    """Real registration against the test server (what `prefect deploy --all` would do)."""
    from prefect.client.orchestration import get_client

    from deimos_cli.main import main

    campaign = make_campaign(tmp_path / "c")

    async def make_pools():
        from prefect.client.schemas.actions import WorkPoolCreate

        async with get_client() as client:
            for name in ("deimos-gpu",):  # the Kubernetes pool, as a process pool here
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))

    async def read(name):
        async with get_client() as client:
            return await client.read_deployment_by_name(name)

    import asyncio

    # Without the GPU pool: a clear error, and it names where the template is.
    assert main(["deploy", "--file", str(ROOT / "prefect.yaml"),
                 "--campaign", str(campaign.root)]) == 2  # fmt: skip

    async def pool_exists(name):
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                await client.read_work_pool(name)
            except ObjectNotFound:
                return False
            return True

    assert not asyncio.run(pool_exists("deimos-process"))  # the refusal created nothing
    asyncio.run(make_pools())
    assert main(["deploy", "--file", str(ROOT / "prefect.yaml"),
                 "--campaign", str(campaign.root)]) == 0  # fmt: skip
    al_round = asyncio.run(read("al-round/al-round"))
    assert al_round.parameters == {"campaign_dir": str(campaign.root.absolute())}
    assert al_round.work_pool_name == "deimos-process"
    assert al_round.schedules and al_round.schedules[0].schedule.cron == "0 6 * * 1"
    collect = asyncio.run(read("collect-labels/collect-labels"))
    assert collect.schedules[0].schedule.interval.total_seconds() == 900
    bench = asyncio.run(read("benchmark/benchmark"))
    assert bench.work_pool_name == "deimos-gpu" and bench.parameters["params"]["scale"] == "paper"
    assert asyncio.run(read("ingest-labels/ingest-labels")).work_pool_name == "deimos-process"


def _stop(proc: subprocess.Popen, sig: int) -> None:
    """Signal a child and reap it, killing it if it lingers (an unreaped child would be a
    ResourceWarning, an error under this suite's warning filter)."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def _wait_for(predicate, timeout, what, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what} {detail()}")


@pytest.fixture
def scheduling_server(tmp_path):
    """A real `prefect server start` (SQLite) with its scheduler service, which the temporary
    test server lacks; the scheduler looks for due runs every 2 s instead of every 60 s."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path / "prefect-home"
    home.mkdir()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    }
    env.pop("PREFECT_API_URL", None)
    prefect = str(Path(sys.executable).parent / "prefect")
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/api"

    def healthy():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        _wait_for(healthy, timeout=120, what="prefect server start")
        yield url
    finally:
        _stop(server, signal.SIGTERM)


@pytest.mark.slow
def test_served_deployment_runs_a_scheduled_round(scheduling_server, tmp_path):
    campaign = make_campaign(tmp_path / "served")
    env = {**os.environ, "PREFECT_API_URL": scheduling_server}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deimos_cli.main",
            "serve",
            "--campaign",
            str(campaign.root),
            "--interval",
            "30",
            "--collect-every",
            "3600",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def runs():
        # The REST API directly, every paging field explicit (this FastAPI rejects nulls).
        import json
        import urllib.request

        body = {
            "deployments": {"name": {"any_": ["al-round-served"]}},
            "sort": "START_TIME_ASC",
            "limit": 10,
            "offset": 0,
        }
        request = urllib.request.Request(
            f"{scheduling_server}/flow_runs/filter",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    seen: list = []

    def completed_scheduled_run():
        found = runs()
        seen.append([(r["name"], r["state_name"], r["auto_scheduled"]) for r in found])
        # Created by the schedule (not by hand), and finished.
        return any(r["state_name"] == "Completed" and r["auto_scheduled"] for r in found)

    try:
        _wait_for(
            completed_scheduled_run,
            timeout=300,
            what="a completed scheduled al-round",
            detail=lambda: seen[-1:],
        )
    finally:
        _stop(proc, signal.SIGINT)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "al-round every 30 s" in output
    assert "round-0" in repo.run_git(campaign.root, ["tag"]).split()
    assert (campaign.root / "queue" / "outbox" / "round-0" / "manifest.json").is_file()


def test_serve_refuses_bad_schedules(tmp_path, capsys):
    from deimos_cli.main import main

    campaign = make_campaign(tmp_path / "c")
    assert main(["serve", "--campaign", str(campaign.root), "--cron", "61 * * *"]) == 2
    assert "--cron '61 * * *' is not a cron expression" in capsys.readouterr().err
    assert main(["serve", "--campaign", str(campaign.root), "--interval", "0"]) == 2
    assert "--interval must be at least 1 second" in capsys.readouterr().err


def test_serve_without_a_prefect_server_says_how_to_start_one(tmp_path):
    campaign = make_campaign(tmp_path / "c")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "deimos_cli.main", "serve", "--campaign", str(campaign.root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "start one with `prefect server start` and set PREFECT_API_URL" in done.stderr
