"""The lab-loop commands: `deimos init | round | ingest | status | demo`.

`round`, `ingest` and `demo` run the Prefect flows; with no `PREFECT_API_URL` set, Prefect
starts a temporary local server (SQLite) for the run, so nothing has to be set up first.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from deimos.errors import InputError


def _prefect_defaults() -> None:
    # Offline machines: no analytics calls from the temporary server.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _campaign(path: Path) -> Any:
    from tasks.campaign import Campaign

    campaign = Campaign(path)
    campaign.check()
    return campaign


def _params_from_args(args: argparse.Namespace, simulated: bool) -> Any:
    from tasks.campaign import CampaignParams, TrainParams
    from tasks.create import default_simulation_params

    if simulated:
        params = default_simulation_params(
            pool_size=args.pool_size,
            test_size=args.test_size,
            n_initial=args.initial,
            seed=args.seed,
        )
    else:
        params = CampaignParams()
    changes: dict[str, Any] = {"seed": args.seed}
    for arg, field in (
        ("batch_size", "batch_size"),
        ("method", "method"),
        ("masks", "n_masks"),
        ("length", "sequence_length"),
    ):
        value = getattr(args, arg, None)
        if value is not None:
            changes[field] = value
    if getattr(args, "epochs", None) is not None:
        changes["train"] = replace(TrainParams(), epochs=args.epochs)
    return replace(params, **changes)


def cmd_init(args: argparse.Namespace) -> int:
    """Create a campaign directory: git + DVC repo, params.yaml, dvc.yaml, tracked data/."""
    from tasks.create import create_campaign

    if (args.pool is None) == (not args.simulated):
        raise InputError("give exactly one of --pool FASTA or --simulated")
    if args.labels is not None and args.pool is None:
        raise InputError("--labels goes with --pool (a simulated campaign makes its own)")
    params = _params_from_args(args, simulated=args.simulated)
    campaign = create_campaign(
        args.dir, params, pool_fasta=args.pool, labels=args.labels, dvc_remote=args.remote
    )
    print(f"created campaign {campaign.root}")
    print(f"next: deimos round --campaign {args.dir}")
    return 0


def cmd_round(args: argparse.Namespace) -> int:
    """Run the campaign's current round through the Prefect `al_round` flow."""
    _prefect_defaults()
    campaign = _campaign(args.campaign)
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


def cmd_status(args: argparse.Namespace) -> int:
    """Where the campaign stands: round, labels, open requests, last metrics, git/DVC state."""
    import pandas as pd

    from deimos.labels import LabelStore
    from tasks import repo
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
        print(f"dvc remote {'pushed' if _pushed(campaign.root) else 'NOT pushed (dvc push)'}")
    else:
        print("dvc remote none configured")
    return 0


def _pushed(root: Path) -> bool:
    from tasks import repo

    out = repo.run_dvc(root, ["status", "--cloud", "--json"])
    start = out.find("{")
    return start < 0 or out[start:].strip() in ("{}", "")


def cmd_demo(args: argparse.Namespace) -> int:
    """A simulated campaign through Prefect + DVC: init (if needed), then N rounds."""
    _prefect_defaults()
    from tasks.campaign import Campaign
    from tasks.create import create_campaign

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
    from tasks.create import regenerate_data

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
    p.add_argument("--remote", help="default DVC remote (a directory or URL)")
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
