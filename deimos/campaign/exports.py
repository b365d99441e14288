"""The export stage's writers: one per format named in `params.yaml: export.formats`.

Each exporter takes the round's batch table (rank, id, sequence, pred_mean, pred_sd,
expected_improvement; rank order) and a directory, writes its files there and returns their
names. Adding a format is adding a function here and its name to
`deimos.campaign.params.EXPORT_FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from deimos.atomic import write_text_atomic
from deimos.campaign.params import EXPORT_FORMATS, CampaignParams
from deimos.data.fasta_writer import write_fasta
from deimos.lab.formulas import neutralise_formulas
from deimos.lab.label_studio import label_studio_tasks, write_label_studio_tasks
from deimos.lab.plates import plate_map, write_plate_map

Exporter = Callable[[pd.DataFrame, Path, CampaignParams], list[str]]


def export_fasta(batch: pd.DataFrame, out: Path, params: CampaignParams) -> list[str]:
    """`batch.fasta`: the synthesis order, in pick order (Biopython writer)."""
    write_fasta(out / "batch.fasta", list(batch["id"]), list(batch["sequence"]))
    return ["batch.fasta"]


def export_csv(batch: pd.DataFrame, out: Path, params: CampaignParams) -> list[str]:
    """`batch.csv`: the batch with its predictions and expected improvements."""
    text = neutralise_formulas(batch).to_csv(index=False, float_format="%.10g")
    write_text_atomic(out / "batch.csv", text)
    return ["batch.csv"]


def export_plate_map(batch: pd.DataFrame, out: Path, params: CampaignParams) -> list[str]:
    """`plate_map.csv` and `plate_map.xlsx`: a well for every sequence, controls left empty."""
    table = plate_map(batch, params.export.plate_layout())
    write_plate_map(table, out / "plate_map.csv", out / "plate_map.xlsx")
    return ["plate_map.csv", "plate_map.xlsx"]


def export_label_studio(batch: pd.DataFrame, out: Path, params: CampaignParams) -> list[str]:
    """`label_studio_tasks.json`: one task per sequence, pre-filled with the predicted mean."""
    tasks = label_studio_tasks(
        batch,
        value_name=params.labels.value_column,
        model_version=f"deimos-round-{params.round}",
    )
    write_label_studio_tasks(tasks, out / "label_studio_tasks.json")
    return ["label_studio_tasks.json"]


EXPORTERS: dict[str, Exporter] = {
    "fasta": export_fasta,
    "csv": export_csv,
    "plate_map": export_plate_map,
    "label_studio": export_label_studio,
}
assert tuple(EXPORTERS) == EXPORT_FORMATS


def export_batch(batch: pd.DataFrame, out: Path, params: CampaignParams) -> list[str]:
    """Run every exporter of `params.export.formats` into `out`; return the file names."""
    names: list[str] = []
    for fmt in params.export.formats:
        names += EXPORTERS[fmt](batch, out, params)
    return names
