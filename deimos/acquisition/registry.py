"""The acquisition methods by name: the only list of methods and the task kinds they apply to.

Every caller (the lab loop's select stage, the round kernel, the benchmark, `deimos select`)
builds one `SelectionInputs` and calls `select(name, inputs)`; what a method needs from it is
stated here once (`Method.needs`). Importing this module loads neither torch nor NumPy, so
parameter files can be checked against `methods_for(kind)` in milliseconds; the implementations
are imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from deimos.errors import InputError

if TYPE_CHECKING:
    from deimos.acquisition.selection import Selection

Kind = Literal["regression", "classification"]
KINDS: tuple[Kind, ...] = ("regression", "classification")
Need = Literal["predictions", "embeddings", "tau"]


@dataclass(frozen=True, eq=False)
class SelectionInputs:
    """Everything any acquisition method may use for one batch, in one typed object.

    Candidates (the pickable points) come first in every array; the labelled points are given
    apart, so the returned `Selection.indices` always index the candidates `0..n-1`.

    Attributes:
        batch_size: points to pick, b.
        preds: candidates' fixed-mask predictions, `preds_N_J` (regression) or `probs_N_C_J`
            (classification); NumPy or torch.
        labelled_preds: the labelled points' predictions under the same masks (`(L, J)` or
            `(L, c, J)`). DEIMOS adds them to its representative sample S, as the paper samples
            S from train and pool; None keeps S = the candidates.
        embeddings: candidates' penultimate-layer embeddings `emb_N_D` (k-Center).
        labelled_embeddings: labelled points' embeddings `(L, D)`: k-Center's initial centers.
        tau_inv: DEIMOS' `tau^-1` (regression) or `tau_s^-1` (classification).
        seed: the round's pick seed (random picks, BatchBALD's configuration sampling).
        progress: show a progress bar over picks where the method has one.
        n_points: number of candidates, for methods that need no arrays (random); defaults to
            the length of `preds` or `embeddings`.
    """

    batch_size: int
    preds: Any = None
    labelled_preds: Any = None
    embeddings: Any = None
    labelled_embeddings: Any = None
    tau_inv: float | None = None
    seed: int = 0
    progress: bool = False
    n_points: int | None = None

    @property
    def n_candidates(self) -> int:
        if self.n_points is not None:
            return int(self.n_points)
        for arr in (self.preds, self.embeddings):
            if arr is not None:
                return int(arr.shape[0])
        raise InputError("SelectionInputs has no preds, embeddings or n_points: nothing to pick")


class Selector(Protocol):
    """An acquisition function: the round's inputs in, a batch of candidate positions out."""

    def __call__(self, inputs: SelectionInputs) -> Selection: ...


@dataclass(frozen=True)
class Method:
    """One registered acquisition method.

    Attributes:
        name: the name configs and the CLI use (`method: bald`).
        kinds: task kinds it applies to.
        needs: what it reads from `SelectionInputs` besides the batch size.
        summary: one line for help texts.
        run: `module:function` of the `Selector`, imported on first use.
    """

    name: str
    kinds: tuple[Kind, ...]
    needs: frozenset[Need]
    summary: str
    run: str

    def selector(self) -> Selector:
        module, func = self.run.split(":")
        fn: Selector = getattr(importlib.import_module(module), func)
        return fn


_HERE = "deimos.acquisition.registry"

METHODS: Mapping[str, Method] = MappingProxyType(
    {
        m.name: m
        for m in (
            Method(
                "deimos",
                KINDS,
                frozenset({"predictions", "tau"}),
                "greedy expected reduction of total predictive variance (eq. 5/6, Algorithm 1)",
                f"{_HERE}:_run_deimos",
            ),
            Method(
                "random",
                KINDS,
                frozenset(),
                "uniform random candidates (seeded)",
                f"{_HERE}:_run_random",
            ),
            Method(
                "maxvar",
                ("regression",),
                frozenset({"predictions"}),
                "largest predictive variance",
                f"{_HERE}:_run_maxvar",
            ),
            Method(
                "maxent",
                ("classification",),
                frozenset({"predictions"}),
                "largest entropy of the mean class probabilities",
                f"{_HERE}:_run_maxent",
            ),
            Method(
                "bald",
                ("classification",),
                frozenset({"predictions"}),
                "largest mutual information between label and masks (BALD)",
                f"{_HERE}:_run_bald",
            ),
            Method(
                "batchbald",
                ("classification",),
                frozenset({"predictions"}),
                "greedy joint mutual information of the batch (BatchBALD)",
                f"{_HERE}:_run_batchbald",
            ),
            Method(
                "kcenter",
                KINDS,
                frozenset({"embeddings"}),
                "greedy k-Center core set on penultimate-layer embeddings",
                f"{_HERE}:_run_kcenter",
            ),
        )
    }
)


def methods_for(kind: str) -> tuple[str, ...]:
    """Names of the methods that apply to `kind`, in registry order."""
    if kind not in KINDS:
        raise InputError(f"unknown task kind {kind!r}; expected one of {', '.join(KINDS)}")
    return tuple(name for name, m in METHODS.items() if kind in m.kinds)


def get_method(name: object, kind: str | None = None) -> Method:
    """The registered method `name`, checked against `kind` when given.

    Raises:
        InputError: unknown name (the message lists the valid ones), or a method that does not
            apply to `kind`.
    """
    if not isinstance(name, str) or name not in METHODS:
        raise InputError(
            f"unknown acquisition method {name!r}; valid names: {', '.join(sorted(METHODS))}"
        )
    method = METHODS[name]
    if kind is not None and kind not in method.kinds:
        raise InputError(
            f"method {name!r} does not apply to {kind}; valid: {', '.join(methods_for(kind))}"
        )
    return method


def select(name: str, inputs: SelectionInputs, *, kind: str | None = None) -> Selection:
    """Pick `inputs.batch_size` candidates with the method registered as `name`.

    Raises:
        InputError: unknown method, wrong kind, or inputs lacking what the method needs.
    """
    method = get_method(name, kind)
    missing = [
        need
        for need, value in (
            ("predictions", inputs.preds),
            ("embeddings", inputs.embeddings),
            ("tau", inputs.tau_inv),
        )
        if need in method.needs and value is None
    ]
    if missing:
        raise InputError(f"method {name!r} needs {' and '.join(missing)}, which were not given")
    return method.selector()(inputs)


# --- the adapters: SelectionInputs -> each implementation's own arguments -------------------


def _run_deimos(inputs: SelectionInputs) -> Selection:
    from deimos.acquisition.deimos import select_deimos
    from deimos.acquisition.selection import as_tensor

    assert inputs.tau_inv is not None
    if inputs.labelled_preds is None or len(inputs.labelled_preds) == 0:
        return select_deimos(
            inputs.preds, inputs.batch_size, tau_inv=inputs.tau_inv, progress=inputs.progress
        )
    import torch

    cand = as_tensor(inputs.preds, "preds")
    lab = as_tensor(inputs.labelled_preds, "labelled_preds").to(cand.device, cand.dtype)
    n_lab = lab.shape[0]
    # S = labelled + candidates; only the candidates (after the labelled rows) may be picked.
    picks = select_deimos(
        torch.cat([lab, cand]),
        inputs.batch_size,
        tau_inv=inputs.tau_inv,
        candidates=torch.arange(n_lab, n_lab + cand.shape[0]),
        progress=inputs.progress,
    )
    return _shift(picks, n_lab)


def _run_random(inputs: SelectionInputs) -> Selection:
    import numpy as np

    from deimos.acquisition.scores import select_random

    # Only the number of candidates matters.
    return select_random(np.zeros((inputs.n_candidates, 2)), inputs.batch_size, seed=inputs.seed)


def _run_maxvar(inputs: SelectionInputs) -> Selection:
    from deimos.acquisition.scores import select_max_variance

    return select_max_variance(inputs.preds, inputs.batch_size)


def _run_maxent(inputs: SelectionInputs) -> Selection:
    from deimos.acquisition.scores import select_max_entropy

    return select_max_entropy(inputs.preds, inputs.batch_size)


def _run_bald(inputs: SelectionInputs) -> Selection:
    from deimos.acquisition.scores import select_bald

    return select_bald(inputs.preds, inputs.batch_size)


def _run_batchbald(inputs: SelectionInputs) -> Selection:
    from deimos.acquisition.batchbald import select_batchbald

    return select_batchbald(
        inputs.preds, inputs.batch_size, seed=inputs.seed, progress=inputs.progress
    )


def _run_kcenter(inputs: SelectionInputs) -> Selection:
    import torch

    from deimos.acquisition.kcenter import select_kcenter
    from deimos.acquisition.selection import as_tensor

    emb = as_tensor(inputs.embeddings, "embeddings")
    if inputs.labelled_embeddings is None or len(inputs.labelled_embeddings) == 0:
        return select_kcenter(emb, inputs.batch_size)
    lab = as_tensor(inputs.labelled_embeddings, "labelled_embeddings").to(emb.device, emb.dtype)
    n_lab = lab.shape[0]
    # Labelled points are the initial centers; indices shift back to candidate positions.
    picks = select_kcenter(torch.cat([lab, emb]), inputs.batch_size, labelled=range(n_lab))
    return _shift(picks, n_lab)


def _shift(picks: Selection, offset: int) -> Selection:
    from deimos.acquisition.selection import Selection

    return Selection(tuple(i - offset for i in picks.indices), picks.gains, picks.method)


#: Each method's adapter, for code that wants the callables themselves.
def selectors() -> dict[str, Callable[[SelectionInputs], Selection]]:
    return {name: m.selector() for name, m in METHODS.items()}
