"""The round pipeline as `dvc.yaml`: which stage reads which files and parameters.

Output paths carry `${round}`, so each round's outputs land in `rounds/<k>/` and the previous
round's stay where they are (and in git history through dvc.lock). A stage's `params` list is
exactly what its code reads, so `dvc repro` after a parameter change re-runs from the first stage
that reads it: `batch_size` re-runs select and export, `n_masks` predict onwards.
"""

from __future__ import annotations

from typing import Any

import yaml

from deimos.campaign.code_version import CODE_FILE

STAGE_COMMAND = "python -m deimos.campaign.stages {stage}"
ROUND = "rounds/${round}"


def pipeline_definition(*, with_test_set: bool) -> dict[str, Any]:
    """The `dvc.yaml` mapping. `with_test_set`: simulated campaigns score data/test.fasta."""
    train_deps = ["data/pool.fasta", f"{ROUND}/training_set.csv"]
    if with_test_set:
        train_deps.append("data/test.fasta")
    stages: dict[str, Any] = {
        "prepare": {
            "desc": "split the labels into train/validation; list the unlabelled candidates",
            "deps": ["data/pool.fasta", "data/labels/labels.csv", "data/requested.csv"],
            "params": ["round", "seed", "validation_fraction"],
            "outs": [f"{ROUND}/training_set.csv", f"{ROUND}/candidates.txt"],
        },
        "train": {
            "desc": "train a SplicingCNN from scratch on every label so far",
            "deps": train_deps,
            "params": ["round", "seed", "sequence_length", "model", "train"],
            "outs": [f"{ROUND}/model.pt"],
            "metrics": [{f"{ROUND}/train_metrics.json": {"cache": False}}],
        },
        "predict": {
            "desc": "predict candidates and validation labels under n_masks fixed dropout masks",
            "deps": [
                "data/pool.fasta",
                f"{ROUND}/model.pt",
                f"{ROUND}/training_set.csv",
                f"{ROUND}/candidates.txt",
            ],
            "params": ["round", "seed", "n_masks", "method"],
            "outs": [f"{ROUND}/predictions"],
        },
        "select": {
            "desc": "pick the batch (DEIMOS or a baseline) from the fixed-mask predictions",
            "deps": [f"{ROUND}/predictions"],
            "params": ["round", "seed", "batch_size", "method", "tau_factor"],
            "outs": [f"{ROUND}/selection.csv"],
            "metrics": [{f"{ROUND}/metrics.json": {"cache": False}}],
        },
        "export": {
            "desc": "write the batch for the lab in every format of export.formats",
            "deps": ["data/pool.fasta", f"{ROUND}/selection.csv"],
            "params": ["round", "export", "labels.value_column"],
            "outs": [f"{ROUND}/export"],
        },
    }
    for name, stage in stages.items():
        # Every stage depends on the code it runs (deimos.campaign.code_version).
        stage["deps"] = [CODE_FILE, *stage["deps"]]
        stage_out = {"cmd": STAGE_COMMAND.format(stage=name)}
        stage_out.update(stage)
        stages[name] = stage_out
    return {"stages": stages}


def pipeline_yaml(*, with_test_set: bool) -> str:
    header = "# Written by `deimos init` (tasks/pipeline.py); one DEIMOS round, outputs in rounds/<k>/.\n"  # noqa: E501
    body = yaml.safe_dump(pipeline_definition(with_test_set=with_test_set), sort_keys=False)
    return header + body
