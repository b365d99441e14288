"""Checks of one function argument, shared by the library: an integer or a finite number in range.

Configuration objects are pydantic models (`deimos.config`); these are for arguments of array
functions, where a model per call would cost more than the work. `True` is never an integer here
(`bool` subclasses `int`, and `n_masks=True` is a mistake, not 1), numpy integers and floats are
accepted, and the message names the argument and the value.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from deimos.errors import InputError

__all__ = ["check_int", "check_number"]


def _integer_words(minimum: int | None) -> str:
    if minimum == 1:
        return "a positive integer"
    if minimum == 0:
        return "a non-negative integer"
    return "an integer" if minimum is None else f"an integer >= {minimum}"


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """`value` as an `int`.

    Raises:
        InputError: `name must be a positive integer, got 0` (a bool, a float, a string, or an
            integer below `minimum`).
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputError(f"{name} must be {_integer_words(minimum)}, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise InputError(f"{name} must be {_integer_words(minimum)}, got {out}")
    return out


def check_number(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a finite `float` within the bounds (`low_open`: `> low`, else `>= low`).

    Raises:
        InputError: `name must be a finite number in (0, 1], got 2.0`.
    """
    ok = isinstance(value, Real) and not isinstance(value, bool)
    out = float(value) if ok else math.nan  # type: ignore[arg-type]
    ok = ok and math.isfinite(out)
    if ok and low is not None:
        ok = out > low if low_open else out >= low
    if ok and high is not None:
        ok = out < high if high_open else out <= high
    if not ok:
        if low is None and high is None:
            bounds = ""
        else:
            left = "(-inf" if low is None else f"{'(' if low_open else '['}{low}"
            right = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
            bounds = f" in {left}, {right}"
        raise InputError(f"{name} must be a finite number{bounds}, got {value!r}")
    return out
