"""The shared argument checks: booleans are not integers, numpy scalars are, bounds are named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deimos.checks import check_int, check_number
from deimos.errors import InputError


def test_check_int_accepts_python_and_numpy_integers():
    assert check_int(3, "n", minimum=1) == 3
    value = check_int(np.int64(0), "n", minimum=0)
    assert value == 0 and type(value) is int


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        (True, 1, "n must be a positive integer, got True"),
        (2.0, None, "n must be an integer, got 2.0"),
        ("3", 0, "n must be a non-negative integer, got '3'"),
        (0, 1, "n must be a positive integer, got 0"),
        (1, 2, "n must be an integer >= 2, got 1"),
    ],
)
def test_check_int_refusals_name_the_argument(value, minimum, message):
    with pytest.raises(InputError) as err:
        check_int(value, "n", minimum=minimum)
    assert str(err.value) == message


def test_check_number_bounds():
    assert check_number(np.float32(0.5), "p", low=0.0, high=1.0, high_open=True) == 0.5
    assert check_number(1, "x") == 1.0
    for bad, message in [
        (math.nan, "x must be a finite number, got nan"),
        (False, "x must be a finite number, got False"),
    ]:
        with pytest.raises(InputError) as err:
            check_number(bad, "x")
        assert str(err.value) == message
    with pytest.raises(InputError, match=r"p must be a finite number in \[0.0, 1.0\), got 1.0"):
        check_number(1.0, "p", low=0.0, high=1.0, high_open=True)
    with pytest.raises(InputError, match=r"d must be a finite number in \(0.0, inf\), got 0"):
        check_number(0, "d", low=0.0, low_open=True)
