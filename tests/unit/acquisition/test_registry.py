"""The method registry: the one list of methods, kinds, needs, and `select(name, inputs)`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from deimos.acquisition.deimos import select_deimos
from deimos.acquisition.registry import METHODS, SelectionInputs, get_method, methods_for, select
from deimos.errors import InputError

RNG = np.random.default_rng(3)
REG_N_J = RNG.normal(size=(12, 8))
CLS_N_C_J = RNG.dirichlet(np.ones(3), size=(12, 8)).transpose(0, 2, 1)
EMB_N_D = RNG.normal(size=(12, 4))


def test_every_method_is_listed_once_with_its_kinds() -> None:
    assert set(METHODS) == {"deimos", "random", "maxvar", "maxent", "bald", "batchbald", "kcenter"}
    assert methods_for("regression") == ("deimos", "random", "maxvar", "kcenter")
    assert methods_for("classification") == (
        "deimos", "random", "maxent", "bald", "batchbald", "kcenter",
    )  # fmt: skip
    with pytest.raises(TypeError):
        METHODS["mine"] = METHODS["random"]  # type: ignore[index]


@pytest.mark.parametrize("name", ["DEIMOS", "coreset", "", None])
def test_unknown_method_lists_valid_names(name: Any) -> None:
    with pytest.raises(InputError, match="valid names: bald, batchbald, deimos, kcenter"):
        get_method(name)


def test_method_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(InputError, match="'maxent' does not apply to regression"):
        select("maxent", SelectionInputs(2, preds=REG_N_J), kind="regression")


def test_missing_inputs_are_named() -> None:
    with pytest.raises(InputError, match="'deimos' needs tau"):
        select("deimos", SelectionInputs(2, preds=REG_N_J))
    with pytest.raises(InputError, match="'kcenter' needs embeddings"):
        select("kcenter", SelectionInputs(2, preds=REG_N_J))


@pytest.mark.parametrize(
    ("name", "inputs"),
    [
        ("deimos", SelectionInputs(3, preds=REG_N_J, tau_inv=0.1)),
        ("deimos", SelectionInputs(3, preds=CLS_N_C_J, tau_inv=1e-3)),
        ("random", SelectionInputs(3, n_points=12, seed=5)),
        ("maxvar", SelectionInputs(3, preds=REG_N_J)),
        ("maxent", SelectionInputs(3, preds=CLS_N_C_J)),
        ("bald", SelectionInputs(3, preds=CLS_N_C_J)),
        ("batchbald", SelectionInputs(3, preds=CLS_N_C_J, seed=1)),
        ("kcenter", SelectionInputs(3, embeddings=EMB_N_D)),
    ],
)
def test_each_method_picks_distinct_candidates(name: str, inputs: SelectionInputs) -> None:
    picks = select(name, inputs)
    assert picks.method == name
    assert len(set(picks.indices)) == 3
    assert all(0 <= i < 12 for i in picks.indices)


def test_random_depends_only_on_seed_and_count() -> None:
    a = select("random", SelectionInputs(4, n_points=12, seed=9))
    b = select("random", SelectionInputs(4, preds=REG_N_J, seed=9))
    c = select("random", SelectionInputs(4, n_points=12, seed=10))
    assert a.indices == b.indices
    assert a.indices != c.indices


def test_labelled_points_join_the_deimos_sample_but_are_never_picked() -> None:
    labelled = RNG.normal(size=(5, 8))
    picks = select(
        "deimos", SelectionInputs(4, preds=REG_N_J, labelled_preds=labelled, tau_inv=0.2)
    )
    # Reference: S = labelled + candidates, candidates are the last 12 rows.
    direct = select_deimos(
        np.concatenate([labelled, REG_N_J]), 4, tau_inv=0.2, candidates=np.arange(5, 17)
    )
    assert picks.indices == tuple(i - 5 for i in direct.indices)
    assert picks.gains == pytest.approx(direct.gains, rel=1e-12)
    # A larger S changes what is worth labelling (the gains count the labelled points' variance).
    alone = select("deimos", SelectionInputs(4, preds=REG_N_J, tau_inv=0.2))
    assert picks.gains != pytest.approx(alone.gains)


def test_labelled_embeddings_are_kcenter_centres() -> None:
    # Candidates on a line; a labelled point at 0 makes the far end (10) the first pick.
    line = np.arange(11, dtype=float)[:, None]
    picks = select("kcenter", SelectionInputs(1, embeddings=line[1:], labelled_embeddings=line[:1]))
    assert picks.indices == (9,)


def test_registry_import_loads_no_torch() -> None:
    code = "import sys, deimos.acquisition.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
