"""Create a campaign (`deimos init`), and regenerate a simulated campaign's data byte for byte.

A new campaign is built in a temporary directory beside its destination and renamed into place
only when complete, so a failed `deimos init` leaves nothing behind.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from deimos.atomic import write_text_atomic
from deimos.campaign import repo
from deimos.campaign.code_version import write_code_file
from deimos.campaign.layout import Campaign, append_event
from deimos.campaign.params import CampaignParams, load_params, params_yaml_text
from deimos.campaign.pipeline import pipeline_yaml
from deimos.data.a5ss_library import generate_library
from deimos.data.assay import SimulatedAssay
from deimos.data.assay_csv import write_measurements_csv
from deimos.data.fasta_writer import write_fasta
from deimos.data.sequences import read_fasta
from deimos.errors import InputError
from deimos.lab.store import LabelStore
from deimos.loop.config import AssaySimulation

logger = logging.getLogger(__name__)

# Simulated data carries this timestamp, not the wall clock, so regenerating it gives the bytes
# that data.dvc records.
SIMULATED_DATA_TIME = datetime(2026, 1, 1, tzinfo=UTC)
GITIGNORE = "/rounds/\n/queue/\n/.deimos.lock\n"
INITIAL_ROUND = "initial"


def write_simulated_data(campaign: Campaign, params: CampaignParams) -> None:
    """Write a simulated campaign's `data/`: pool, test set, initial labels, empty round state.

    Deterministic in `params.simulation` and `params.sequence_length`: the same parameters give
    the same bytes on any machine.
    """
    sim = params.simulation
    if sim is None:
        raise InputError(f"{campaign.params_path}: has no 'simulation' section to generate from")
    library = generate_library(
        sim.pool_size + sim.test_size, seed=sim.seed, length=params.sequence_length
    )
    ids, seqs = list(library.ids), list(library.seqs)
    campaign.data_dir.mkdir(parents=True, exist_ok=True)
    write_fasta(campaign.pool_fasta, ids[: sim.pool_size], seqs[: sim.pool_size])
    write_fasta(campaign.test_fasta, ids[sim.pool_size :], seqs[sim.pool_size :])
    rng = np.random.default_rng(sim.seed)
    initial = np.sort(rng.choice(sim.pool_size, size=sim.n_initial, replace=False))
    assay = SimulatedAssay(seed=sim.seed, read_depth=sim.read_depth)
    table = assay.measure([ids[i] for i in initial], [seqs[i] for i in initial])
    with tempfile.TemporaryDirectory() as tmp:
        measurements = Path(tmp) / "initial_measurements.csv"
        write_measurements_csv(table, measurements)
        _reset_labels(campaign)
        LabelStore(campaign.label_dir).ingest(
            measurements,
            round_id=INITIAL_ROUND,
            known_ids=ids[: sim.pool_size],
            requested_ids=(),
            allow_unrequested=True,
            now=SIMULATED_DATA_TIME,
            value_column=params.labels.value_column,
            value_range=params.labels.value_range,
        )
    write_text_atomic(campaign.requested_csv, "id,round\n")
    campaign.round_log.unlink(missing_ok=True)
    append_event(
        campaign,
        {
            "event": "campaign_created",
            "time": SIMULATED_DATA_TIME.isoformat(timespec="seconds"),
            "pool_size": sim.pool_size,
            "n_initial_labels": sim.n_initial,
            "source": f"simulated A5SS library, seed {sim.seed}",
        },
    )


def create_campaign(
    root: str | Path,
    params: CampaignParams,
    *,
    pool_fasta: str | Path | None = None,
    labels: str | Path | None = None,
    dvc_remote: str | Path | None = None,
    remote_endpoint: str | None = None,
) -> Campaign:
    """Make a new campaign directory at `root` (which must not exist or be empty).

    Args:
        root: the campaign directory to create.
        params: its parameters; with `params.simulation` set and no `pool_fasta`, the data is
            simulated (`write_simulated_data`).
        pool_fasta: the lab's candidate sequences (all of length `params.sequence_length`).
        labels: measurements to start from (CSV/XLSX with `id` and the value column); ingested
            as round "initial" without a request.
        dvc_remote: a directory (or URL, e.g. s3://bucket/path) to use as the default DVC
            remote.
        remote_endpoint: the S3 endpoint of an `s3://` remote that is not AWS (e.g. SeaweedFS
            or MinIO); credentials come from the environment or AWS profile, never the config.

    Raises:
        InputError: a non-empty `root`, a bad pool or label file; nothing is created then.
    """
    root = Path(root).absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InputError(f"{root}: exists and is not an empty directory")
    if pool_fasta is None and params.simulation is None:
        raise InputError("a campaign needs --pool FASTA (or --simulated)")
    if pool_fasta is not None:
        pool = read_fasta(pool_fasta, length=params.sequence_length)
        params = params.replace(simulation=None)
    repo.require_tools()
    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        campaign = Campaign(building)
        write_text_atomic(campaign.params_path, params_yaml_text(params))
        write_text_atomic(
            building / "dvc.yaml", pipeline_yaml(with_test_set=params.simulation is not None)
        )
        write_text_atomic(building / ".gitignore", GITIGNORE)
        if pool_fasta is None:
            write_simulated_data(campaign, params)
            n_labels = len(LabelStore(campaign.label_dir).labels())
            source = "simulated"
        else:
            campaign.data_dir.mkdir()
            write_fasta(campaign.pool_fasta, list(pool.ids), list(pool.seqs))
            n_labels = 0
            if labels is not None:
                n_labels = (
                    LabelStore(campaign.label_dir)
                    .ingest(
                        labels,
                        round_id=INITIAL_ROUND,
                        known_ids=pool.ids,
                        requested_ids=(),
                        allow_unrequested=True,
                        value_column=params.labels.value_column,
                        value_range=params.labels.value_range,
                    )
                    .n_new
                )
            else:
                _empty_label_table(campaign)
            write_text_atomic(campaign.requested_csv, "id,round\n")
            append_event(
                campaign,
                {
                    "event": "campaign_created",
                    "time": datetime.now(UTC).isoformat(timespec="seconds"),
                    "pool_size": len(pool),
                    "n_initial_labels": n_labels,
                    "source": str(pool_fasta),
                },
            )
            source = Path(pool_fasta).name
        repo.init_repo(building)
        if dvc_remote is not None and str(dvc_remote).startswith("s3://"):
            repo.configure_s3_remote(
                building, str(dvc_remote), name="campaign", endpoint_url=remote_endpoint
            )
        elif dvc_remote is not None:
            if remote_endpoint is not None:
                raise InputError("--remote-endpoint goes with an s3:// remote")
            repo.run_dvc(building, ["remote", "add", "-d", "campaign", str(dvc_remote)])
        repo.run_dvc(building, ["add", "-q", "data"])
        write_code_file(building)
        repo.commit(
            building,
            ["."],
            f"deimos campaign: {source} pool, {n_labels} initial labels",
        )
        if root.exists():
            root.rmdir()
        building.rename(root)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    logger.info("created campaign %s", root)
    return Campaign(root)


def regenerate_data(root: str | Path) -> None:
    """Rewrite a simulated campaign's data/ and check it against data.dvc.

    This is how a fresh clone of the project gets the default campaign's data without a DVC
    remote: the bytes are a function of params.yaml's `simulation` section.

    Raises:
        InputError: no `simulation` section, or the regenerated data differs from data.dvc
            (then data.dvc is left as it was).
    """
    campaign = Campaign(root)
    params = load_params(campaign.params_path)
    write_simulated_data(campaign, params)
    status = repo.data_status(campaign.root)
    if _differs(status):
        raise InputError(
            f"{campaign.root / 'data.dvc'}: regenerated data/ does not match it ({status}); "
            "params.yaml's simulation section or the generator changed"
        )
    repo.run_dvc(campaign.root, ["commit", "-q", "-f", "data.dvc"])


def restore_data(root: str | Path) -> str:
    """Make sure the campaign's tracked data/ is in the workspace, as on a fresh clone.

    Data already matching data.dvc is left alone. Missing data comes from the DVC remote when
    one is configured and holds it; otherwise a simulated campaign regenerates it byte for byte.

    Returns:
        "present", "pulled" or "regenerated".

    Raises:
        InputError: the data is missing or differs from data.dvc and can be neither pulled nor
            regenerated; the message says which file and what to do.
    """
    campaign = Campaign(root)
    if campaign.data_dir.is_dir() and any(campaign.data_dir.iterdir()):
        status = repo.data_status(campaign.root)
        if not _differs(status):
            if status:  # matching data that is not in the DVC cache yet
                repo.run_dvc(campaign.root, ["commit", "-q", "-f", "data.dvc"])
            return "present"
        raise InputError(
            f"{campaign.data_dir}: differs from {campaign.root / 'data.dvc'}; commit the change "
            "(dvc add data && git commit) or restore it (dvc checkout data.dvc)"
        )
    if repo.has_remote(campaign.root):
        try:
            repo.run_dvc(campaign.root, ["pull", "-q", "data.dvc"])
            return "pulled"
        except (repo.CommandError, InputError) as exc:
            logger.warning("dvc pull failed (%s); trying to regenerate", exc)
    if load_params(campaign.params_path).simulation is None:
        raise InputError(
            f"{campaign.data_dir}: missing, and no DVC remote holds it; configure the remote "
            "(dvc remote add -d NAME URL) and run `dvc pull data.dvc`"
        )
    regenerate_data(campaign.root)
    return "regenerated"


def _differs(status: dict[str, object]) -> bool:
    """Whether `dvc status data.dvc --json` reports a workspace that differs from data.dvc.

    A fresh clone has an empty DVC cache, so data matching data.dvc byte for byte is still
    reported as "not in cache"; that is a match (`dvc commit` then fills the cache).
    """
    for changes in status.values():
        for change in changes if isinstance(changes, list) else [changes]:
            outs = change.get("changed outs", {}) if isinstance(change, dict) else {}
            if not outs or any(state != "not in cache" for state in outs.values()):
                return True
    return False


def default_simulation_params(**overrides: Any) -> CampaignParams:
    """Parameters of a simulated campaign (the defaults of `deimos demo` / the project root)."""
    sim_keys = set(AssaySimulation.model_fields)
    sim = AssaySimulation(**{k: v for k, v in overrides.items() if k in sim_keys})
    rest = {k: v for k, v in overrides.items() if k not in sim_keys}
    return CampaignParams(simulation=sim, **rest)


def _reset_labels(campaign: Campaign) -> None:
    if campaign.label_dir.exists():
        shutil.rmtree(campaign.label_dir)


def _empty_label_table(campaign: Campaign) -> None:
    from deimos.lab.store import LABEL_COLUMNS

    campaign.label_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(campaign.label_dir / "labels.csv", ",".join(LABEL_COLUMNS) + "\n")
    write_text_atomic(campaign.label_dir / "ingestions.jsonl", "")
