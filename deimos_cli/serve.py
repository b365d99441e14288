"""`deimos serve`: a one-machine lab's scheduled deployments, served from this process."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from deimos.errors import InputError
from deimos_cli.lab_loop import _campaign, _prefect_defaults


def serve_deployments(
    campaign_dir: Path, *, cron: str | None, interval: int | None, collect_every: int
) -> list[Any]:
    """The one-machine lab's deployments of a campaign: `al-round` on `cron` (or every
    `interval` seconds), `collect-labels` every `collect_every` seconds, and `ingest-labels` and
    `benchmark` on demand."""
    from flows.al_round import al_round
    from flows.benchmark import benchmark
    from flows.collect_labels import collect_labels
    from flows.ingest_labels import ingest_labels

    name = campaign_dir.name
    where = {"campaign_dir": str(campaign_dir)}
    schedule: dict[str, Any] = {"interval": interval} if interval else {"cron": cron}
    return [
        # One round at a time: a slow round must not overlap the next tick (the campaign lock
        # would make the second wait, then find nothing to do).
        al_round.to_deployment(
            name=f"al-round-{name}", parameters=where, concurrency_limit=1, **schedule
        ),
        collect_labels.to_deployment(
            name=f"collect-labels-{name}", parameters=where, interval=collect_every
        ),
        ingest_labels.to_deployment(name=f"ingest-labels-{name}", parameters=where),
        benchmark.to_deployment(name=f"benchmark-{name}"),
    ]


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the campaign's deployments from this process (`flow.serve` for a one-machine lab)."""
    _prefect_defaults()
    campaign = _campaign(args.campaign)
    if args.interval is not None and args.interval < 1:
        raise InputError(f"--interval must be at least 1 second, got {args.interval}")
    if args.collect_every < 1:
        raise InputError(f"--collect-every must be at least 1 second, got {args.collect_every}")
    if args.interval is None:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=args.cron)
        except ValueError:
            raise InputError(f"--cron {args.cron!r} is not a cron expression") from None
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        # A temporary server has no scheduler: the schedules would never fire.
        raise InputError(
            "deimos serve needs a Prefect server that schedules runs: start one with "
            "`prefect server start` and set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)"
        )
    deployments = serve_deployments(
        campaign.root.absolute(),
        cron=args.cron,
        interval=args.interval,
        collect_every=args.collect_every,
    )
    when = f"every {args.interval} s" if args.interval else f"on cron '{args.cron}'"
    print(
        f"serving {campaign.root}: al-round {when}, collect-labels every {args.collect_every} s, "
        "ingest-labels and benchmark on demand (Ctrl-C stops)",
        flush=True,
    )
    serve(*deployments)
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="serve the campaign's scheduled deployments from this machine (flow.serve)"
    )
    p.add_argument("--campaign", type=Path, default=Path("."), help="campaign directory")
    p.add_argument("--cron", default="0 6 * * 1", help="al-round schedule (default Mon 06:00)")
    p.add_argument("--interval", type=int, help="al-round every INTERVAL seconds instead")
    p.add_argument(
        "--collect-every", type=int, default=900, help="seconds between label checks (900)"
    )
    p.set_defaults(handler=cmd_serve)
