"""`deimos deploy`: register the deployments of `prefect.yaml` with the Prefect server.

`prefect deploy --all` does the same from the same file, but with Prefect 3.8.8 and the FastAPI
this project pins, its final "is a worker online?" query is rejected by the server (HTTP 422 on
the null paging fields the client sends), so the command fails after the first deployment. This
command reads `prefect.yaml` itself and registers every deployment through `to_deployment` /
`apply`, which this server accepts.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from deimos.errors import InputError
from deimos.yaml_files import read_yaml

#: Work pools `deimos deploy` creates when missing (one machine); others come from infra/.
PROCESS_POOLS = ("deimos-process",)


def read_deployments(path: Path) -> list[dict[str, Any]]:
    """The `deployments` list of a prefect.yaml, each with a name, entrypoint and work pool."""
    config = read_yaml(path)
    deployments = config.get("deployments") if isinstance(config, dict) else None
    if not isinstance(deployments, list) or not deployments:
        raise InputError(f"{path}: needs a non-empty 'deployments' list")
    for k, d in enumerate(deployments):
        for key in ("name", "entrypoint"):
            if not isinstance(d, dict) or not isinstance(d.get(key), str):
                raise InputError(f"{path}: deployment {k + 1} lacks a string {key!r}")
        pool = d.get("work_pool", {})
        if not isinstance(pool, dict) or not isinstance(pool.get("name"), str):
            raise InputError(f"{path}: deployment {d['name']!r} lacks work_pool.name")
    return deployments


def _schedule_kwargs(entry: dict[str, Any], where: str) -> dict[str, Any]:
    crons = [s["cron"] for s in entry.get("schedules", []) if "cron" in s]
    intervals = [s["interval"] for s in entry.get("schedules", []) if "interval" in s]
    if crons and intervals:
        raise InputError(f"{where}: give cron or interval schedules, not both")
    if crons:
        return {"cron": crons}
    if intervals:
        return {"interval": intervals}
    return {}


async def _ensure_pools(names: set[str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        missing = []
        for name in sorted(names):
            try:
                await client.read_work_pool(name)
            except ObjectNotFound:
                missing.append(name)
        # Check every pool before creating any, so a refusal changes nothing on the server.
        for name in missing:
            if name not in PROCESS_POOLS:
                raise InputError(
                    f"work pool {name!r} does not exist; create it from infra/ "
                    "(see infra/README.md)"
                )
        for name in missing:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def deploy_all(path: Path, campaign_dir: Path | None = None) -> list[str]:
    """Register every deployment of `path`; `campaign_dir` replaces their `campaign_dir`."""
    from prefect.flows import load_flow_from_entrypoint

    entries = read_deployments(path)
    root = path.parent.absolute()
    asyncio.run(_ensure_pools({e["work_pool"]["name"] for e in entries}))
    names = []
    for entry in entries:
        where = f"{path}: deployment {entry['name']!r}"
        flow: Any = load_flow_from_entrypoint(str(root / entry["entrypoint"]))
        params = dict(entry.get("parameters") or {})
        if campaign_dir is not None and "campaign_dir" in params:
            params["campaign_dir"] = str(campaign_dir.absolute())
        deployment = flow.to_deployment(
            name=entry["name"],
            parameters=params,
            description=entry.get("description"),
            concurrency_limit=entry.get("concurrency_limit"),
            work_pool_name=entry["work_pool"]["name"],
            **_schedule_kwargs(entry, where),
        )
        deployment.apply(work_pool_name=entry["work_pool"]["name"])
        names.append(f"{flow.name}/{entry['name']}")
    return names


def cmd_deploy(args: argparse.Namespace) -> int:
    from deimos_cli.lab_loop import _campaign, _prefect_defaults

    _prefect_defaults()
    campaign = _campaign(args.campaign) if args.campaign is not None else None
    names = deploy_all(args.file, campaign.root if campaign else None)
    for name in names:
        print(f"registered {name}")
    print("start a worker: prefect worker start --pool deimos-process")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("deploy", help="register prefect.yaml's deployments with the server")
    p.add_argument("--file", type=Path, default=Path("prefect.yaml"))
    p.add_argument("--campaign", type=Path, help="campaign directory the deployments act on")
    p.set_defaults(handler=cmd_deploy)
