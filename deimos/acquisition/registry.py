"""Acquisition functions by name, so configs and the CLI can say `method: bald`.

Every selector returns a `Selection` whose `method` is its name here. All but "kcenter" take
`(preds, batch_size, *, candidates=None, pool_preds=None, ...)`; "kcenter" takes
`(embeddings, batch_size, *, labelled=None, candidates=None, n_outliers=0)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from deimos.acquisition.deimos import select_deimos
from deimos.acquisition.scores import (
    select_bald,
    select_batchbald,
    select_kcenter,
    select_max_entropy,
    select_max_variance,
    select_random,
)
from deimos.acquisition.selection import Selection
from deimos.errors import InputError

Selector = Callable[..., Selection]

SELECTORS: Mapping[str, Selector] = MappingProxyType(
    {
        "deimos": select_deimos,
        "random": select_random,
        "maxvar": select_max_variance,
        "maxent": select_max_entropy,
        "bald": select_bald,
        "batchbald": select_batchbald,
        "kcenter": select_kcenter,
    }
)


def get_selector(name: Any) -> Selector:
    """Return the acquisition function registered under `name`.

    Raises:
        InputError: `name` is not a registered method; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in SELECTORS:
        valid = ", ".join(sorted(SELECTORS))
        raise InputError(f"unknown acquisition method {name!r}; valid names: {valid}")
    return SELECTORS[name]
