"""The lab-loop commands: `deimos init | round | ingest | collect | status | regenerate | demo`.

`round`, `ingest` and `demo` run the Prefect flows; with no `PREFECT_API_URL` set, Prefect
starts a temporary local server (SQLite) for the run, so nothing has to be set up first.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from deimos.errors import InputError


def _prefect_defaults() -> None:
    # Offline machines: no analytics calls from the temporary server.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _campaign(path: Path) -> Any:
    from deimos.campaign.layout import Campaign

    campaign = Campaign(path)
    campaign.check()
    return campaign


def _params_from_args(args: argparse.Namespace, simulated: bool) -> Any:
    """`params.yaml` of a new campaign: the defaults with the command line's options on top,
    checked as one mapping, so a bad option is named by its `params.yaml` key."""
    from deimos.campaign.params import CampaignParams, params_from_mapping
    from deimos.loop.config import AssaySimulation

    raw = CampaignParams().to_yaml_dict()
    raw["seed"] = args.seed
    if simulated:
        raw["simulation"] = AssaySimulation().model_dump() | {
            "pool_size": args.pool_size,
            "test_size": args.test_size,
            "n_initial": args.initial,
            "seed": args.seed,
        }
    for arg, key in (
        ("batch_size", "batch_size"),
        ("method", "method"),
        ("masks", "n_masks"),
        ("length", "sequence_length"),
    ):
        value = getattr(args, arg, None)
        if value is not None:
            raw[key] = value
    if getattr(args, "epochs", None) is not None:
        raw["train"]["epochs"] = args.epochs
    if getattr(args, "formats", None):
        raw["export"] = {
            "formats": [f.strip() for f in args.formats.split(",")],
            "plate_wells": args.plate_wells,
            "plate_order": args.plate_order,
            "control_wells": [w.strip() for w in args.control_wells.split(",") if w.strip()],
        }
    if getattr(args, "s3_bucket", None):
        raw["s3"] = {
            "bucket": args.s3_bucket,
            "prefix": args.s3_prefix,
            "endpoint_url": args.s3_endpoint,
            "profile": args.s3_profile,
        }
    return params_from_mapping(raw, "deimos init options")


def cmd_init(args: argparse.Namespace) -> int:
    """Create a campaign directory: git + DVC repo, params.yaml, dvc.yaml, tracked data/."""
    from deimos.campaign.create import create_campaign

    if (args.pool is None) == (not args.simulated):
        raise InputError("give exactly one of --pool FASTA or --simulated")
    if args.labels is not None and args.pool is None:
        raise InputError("--labels goes with --pool (a simulated campaign makes its own)")
    params = _params_from_args(args, simulated=args.simulated)
    campaign = create_campaign(
        args.dir,
        params,
        pool_fasta=args.pool,
        labels=args.labels,
        dvc_remote=args.remote,
        remote_endpoint=args.remote_endpoint,
    )
    print(f"created campaign {campaign.root}")
    print(f"next: deimos round --campaign {args.dir}")
    return 0


def cmd_round(args: argparse.Namespace) -> int:
    """Run the campaign's current round through the Prefect `al_round` flow."""
    _prefect_defaults()
    campaign = _campaign(args.campaign)
    campaign.params()  # a bad params.yaml is refused here, before Prefect and torch start
    from flows.al_round import al_round

    summary = al_round(str(campaign.root))
    _print_round(summary, campaign)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Validate and merge a lab's label file through the Prefect `ingest_labels` flow."""
    _prefect_defaults()
    campaign = _campaign(args.campaign)
    if not Path(args.file).is_file():
        raise InputError(f"{args.file}: label file not found")
    from flows.ingest_labels import ingest_labels

    report = ingest_labels(
        str(Path(args.file).resolve()),
        str(campaign.root),
        allow_unrequested=args.allow_unrequested,
        round_id=args.round,
    )
    if report["already_ingested"]:
        print(f"{args.file}: already ingested (sha256 {report['sha256'][:12]}); nothing changed")
        return 0
    print(
        f"ingested {report['n_new']} labels from {args.file} (round {report['round']}, "
        f"{report['n_replicate_rows']} replicate rows averaged)"
    )
    if report["closed_round"] is not None:
        print(
            f"round {report['closed_round']} closed; next: deimos round --campaign {args.campaign}"
        )
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    """Look once (or every --every seconds) for the lab's labels and ingest them."""
    _prefect_defaults()
    campaign = _campaign(args.campaign)
    from flows.collect_labels import collect_labels

    if args.every is not None:
        if args.every < 1:
            raise InputError(f"--every must be at least 1 second, got {args.every}")
        print(f"serving collect-labels for {campaign.root} every {args.every} s (Ctrl-C stops)")
        collect_labels.serve(
            name=f"collect-labels-{campaign.root.name}",
            interval=args.every,
            parameters={"campaign_dir": str(campaign.root)},
        )
        return 0
    result = collect_labels(str(campaign.root))
    if result["status"] == "no_open_round":
        print("no exported round waits for labels; run `deimos round`")
    elif result["status"] == "waiting":
        print(f"round {result['round']}: no labels returned yet (queue inbox / S3 inbox)")
    else:
        report = result["report"]
        print(
            f"round {result['round']}: ingested {report['n_new']} labels from "
            f"{Path(report['file']).name}"
            + ("" if report["closed_round"] is None else f"; round {report['closed_round']} closed")
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Where the campaign stands: round, labels, open requests, last metrics, git/DVC state."""
    import pandas as pd

    from deimos.campaign import repo
    from deimos.lab.store import LabelStore
    from tasks.label_tasks import open_round, requested_ids
    from tasks.round_tasks import REPORT_PLOT, REPORT_TABLE

    campaign = _campaign(args.campaign)
    params = campaign.params()
    labels = LabelStore(campaign.label_dir).labels()
    n_pool = sum(
        1 for line in campaign.pool_fasta.read_text(encoding="utf-8").splitlines()
        if line.startswith(">")
    )  # fmt: skip
    k_open = open_round(campaign)
    print(f"campaign   {campaign.root}")
    print(f"pool       {n_pool} sequences; {len(labels)} labelled")
    setting = f"{params.method}, batch {params.batch_size}, J={params.n_masks}"
    print(f"round      {params.round} ({setting})")
    if k_open is not None:
        sel = campaign.selection(k_open)
        answered = int(sel["id"].isin(labels["id"]).sum())
        print(
            f"open       round {k_open} exported to "
            f"{campaign.queue_dir(params) / 'outbox' / f'round-{k_open}'}: "
            f"{answered}/{len(sel)} labels back"
        )
    else:
        print("open       none (run `deimos round`)")
    print(f"pending    {len(requested_ids(campaign))} requested ids without a label")
    print(f"exports    {', '.join(params.export.formats)}")
    if params.s3 is not None:
        where = f"s3://{params.s3.bucket}/{params.s3.prefix}/"
        print(
            f"s3 queue   {where}"
            + (f" at {params.s3.endpoint_url}" if params.s3.endpoint_url else "")
        )
    table_path = campaign.reports_dir / REPORT_TABLE
    if table_path.is_file():
        table = pd.read_csv(table_path)
        cols = [c for c in ("round", "n_labels", "validation_mse", "test_mse") if c in table]
        print("\nlearning curve:")
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"plot: {campaign.reports_dir / REPORT_PLOT}")
    dirty = repo.run_git(campaign.root, ["status", "--porcelain"]).strip()
    head = repo.run_git(campaign.root, ["log", "-1", "--format=%h %s"], check=False).strip()
    print(f"\ngit        {head}{' (uncommitted changes)' if dirty else ''}")
    stale = repo.data_status(campaign.root, None)
    dvc_state = "up to date" if not stale else f"round {params.round} to run ({len(stale)} stages)"
    print(f"pipeline   {dvc_state}")
    if repo.has_remote(campaign.root):
        print(f"dvc remote {'pushed' if repo.pushed(campaign.root) else 'NOT pushed (dvc push)'}")
    else:
        print("dvc remote none configured")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """A simulated campaign through Prefect + DVC: init (if needed), then N rounds."""
    _prefect_defaults()
    from deimos.campaign.create import create_campaign
    from deimos.campaign.layout import Campaign

    if args.rounds < 1:
        raise InputError(f"--rounds must be at least 1, got {args.rounds}")
    from tasks.round_tasks import REPORT_PLOT, REPORT_TABLE

    root = Path(args.dir).absolute()
    if (root / "params.yaml").is_file():
        campaign = _campaign(root)
        print(f"continuing the campaign in {root}")
    else:
        remote = root.parent / f"{root.name}-dvc-remote"
        params = _params_from_args(args, simulated=True)
        print(
            f"creating a simulated campaign in {root}: {params.simulation.pool_size} sequences, "
            f"{params.simulation.n_initial} initial labels, DVC remote {remote}"
        )
        campaign = create_campaign(root, params, dvc_remote=remote)
    from flows.campaign import campaign as campaign_flow

    result = campaign_flow(str(campaign.root), rounds=args.rounds, labeller="simulated")
    import pandas as pd

    table = pd.read_csv(Campaign(root).reports_dir / REPORT_TABLE)
    cols = [c for c in ("round", "n_labels", "validation_mse", "test_mse", "tau_inv") if c in table]
    print("\nlearning curve (test MSE against the simulated assay's true donor usage):")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nstatus: {result['status']}; {result['n_labels']} labels")
    print(f"campaign (git + DVC): {root}")
    print(f"rounds:               {root / 'rounds'}")
    print(f"lab queue:            {root / 'queue'}")
    print(f"learning curve:       {root / 'reports' / REPORT_PLOT}")
    return 0


def cmd_regenerate(args: argparse.Namespace) -> int:
    """Rewrite a simulated campaign's data/ from params.yaml and check it against data.dvc."""
    from deimos.campaign.create import regenerate_data

    campaign = _campaign(args.campaign)
    regenerate_data(campaign.root)
    print(f"{campaign.data_dir}: regenerated; matches {campaign.root / 'data.dvc'}")
    return 0


def _print_round(summary: dict[str, Any], campaign: Any) -> None:
    k = summary["round"]
    if not summary["stages_run"]:
        print(f"round {k} is up to date (nothing recomputed); its batch waits for labels")
    else:
        print(f"round {k}: ran {', '.join(summary['stages_run'])}")
    print(
        f"{summary['method']} picked {summary['batch_size']} of {summary['n_candidates']} "
        f"candidates; {summary['n_labels']} labels; validation MSE "
        f"{summary['validation_mse']:.4f}"
        + (f"; test MSE {summary['test_mse']:.4f}" if "test_mse" in summary else "")
    )
    batch = summary["batch"]
    for r, i, ei in list(zip(batch["rank"], batch["id"], batch["expected_improvement"],
                             strict=True))[:5]:  # fmt: skip
        print(f"  {r:>3}  {i}  EI {ei:.4g}")
    outbox = campaign.queue_dir() / "outbox" / f"round-{k}"
    print(f"batch for the lab: {outbox}")
    print(f"learning curve:    {summary['learning_curve']}")
    print(f"labels go back with: deimos ingest FILE --campaign {campaign.root}")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("init", help="create a campaign (git + DVC repo) from a FASTA pool")
    p.add_argument("dir", type=Path, help="campaign directory to create (must not exist)")
    p.add_argument("--pool", type=Path, help="candidate sequences (FASTA, equal lengths)")
    p.add_argument("--labels", type=Path, help="initial measurements (CSV/XLSX: id, donor_usage)")
    p.add_argument("--simulated", action="store_true", help="simulated A5SS library and assay")
    p.add_argument("--length", type=int, help="sequence length (default 101)")
    p.add_argument("--pool-size", type=int, default=5000, help="--simulated: pool sequences")
    p.add_argument("--test-size", type=int, default=1000, help="--simulated: held-out sequences")
    p.add_argument("--initial", type=int, default=200, help="--simulated: initial labels")
    p.add_argument("--batch-size", type=int, help="sequences per round (default 100)")
    p.add_argument("--method", help="deimos (default), random or maxvar")
    p.add_argument("--masks", type=int, help="fixed dropout masks J (default 50)")
    p.add_argument("--epochs", type=int, help="maximum training epochs (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--remote", help="default DVC remote (a directory, or s3://bucket/path)")
    p.add_argument("--remote-endpoint", help="S3 endpoint URL of an s3:// remote that is not AWS")
    p.add_argument(
        "--formats", help="export formats, comma-separated: fasta,csv,plate_map,label_studio"
    )
    p.add_argument("--plate-wells", type=int, default=96, help="plate map: 96 or 384 wells")
    p.add_argument("--plate-order", default="row", help="plate map fill order: row or column")
    p.add_argument("--control-wells", default="", help="wells left empty, e.g. A1,H12")
    p.add_argument("--s3-bucket", help="publish batches to / collect labels from this bucket")
    p.add_argument("--s3-prefix", default="deimos", help="key prefix in the S3 bucket")
    p.add_argument("--s3-endpoint", help="S3 endpoint URL when not AWS")
    p.add_argument("--s3-profile", help="AWS profile with the credentials (default: env/role)")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("round", help="run the campaign's current round (Prefect al_round flow)")
    p.add_argument("--campaign", type=Path, default=Path("."), help="campaign directory")
    p.set_defaults(handler=cmd_round)

    p = sub.add_parser("ingest", help="ingest a lab's label file (Prefect ingest_labels flow)")
    p.add_argument("file", type=Path, help="CSV/XLSX: id, donor_usage[, replicate, ...]")
    p.add_argument("--campaign", type=Path, default=Path("."), help="campaign directory")
    p.add_argument(
        "--allow-unrequested", action="store_true", help="accept pool ids nobody requested"
    )
    p.add_argument("--round", type=int, help="record the labels under this round")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser(
        "collect", help="ingest the open round's labels if the lab has returned them (inbox/S3)"
    )
    p.add_argument("--campaign", type=Path, default=Path("."), help="campaign directory")
    p.add_argument(
        "--every",
        type=int,
        help="keep serving: a Prefect deployment that checks every EVERY seconds",
    )
    p.set_defaults(handler=cmd_collect)

    from deimos_cli import serve  # here: serve uses this module's helpers

    serve.add_commands(sub)

    p = sub.add_parser("status", help="where a campaign stands")
    p.add_argument("--campaign", type=Path, default=Path("."), help="campaign directory")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser(
        "regenerate",
        help="rebuild a simulated campaign's data/ byte-identically (no remote needed)",
    )
    p.add_argument("--campaign", type=Path, default=Path("."), help="campaign directory")
    p.set_defaults(handler=cmd_regenerate)

    p = sub.add_parser("demo", help="simulated campaign end to end through Prefect and DVC")
    p.add_argument("--dir", type=Path, default=Path("out/demo"), help="campaign directory")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--pool-size", type=int, default=5000)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--initial", type=int, default=200, help="labels before the first round")
    p.add_argument("--masks", type=int, help="fixed dropout masks J (default 50)")
    p.add_argument("--epochs", type=int, help="maximum training epochs (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_demo)
