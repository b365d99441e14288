"""Typed configuration: one frozen pydantic base, the shared field types, one error translation.

Every settings object of the project (campaign `params.yaml`, training, the simulator, S3, the
benchmark and its tasks) is a `Settings` subclass: frozen, unknown keys refused, and validated on
construction. `parse_settings` turns pydantic's `ValidationError` into the project's `InputError`
naming the file and the dotted key, so the CLI still prints one line and exits 2.

This module imports neither torch nor boto3, so checking a params file is fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from deimos.errors import InputError

__all__ = [
    "FiniteFloat",
    "NonNegativeInt",
    "PositiveInt",
    "Probability",
    "Settings",
    "StrictBool",
    "describe_error",
    "parse_settings",
]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# Strict ints refuse True/False and 2.5; numbers refuse booleans and strings ("1e-3" from YAML
# without a dot is a string and must be written 0.001 or 1.0e-3).
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
FiniteFloat = Annotated[float, Field(strict=True), AfterValidator(_finite)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0), AfterValidator(_finite)]
NonNegativeFloat = Annotated[float, Field(strict=True, ge=0), AfterValidator(_finite)]
#: A dropout probability: 0 <= p < 1.
Probability = Annotated[float, Field(strict=True, ge=0, lt=1)]


class Settings(BaseModel):
    """Base of every configuration object: immutable, unknown keys refused, checked on creation."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def replace(self: S, **changes: Any) -> S:
        """A copy with `changes` applied and validated again (frozen models cannot be edited)."""
        return type(self).model_validate({**self.model_dump(), **changes})


S = TypeVar("S", bound=Settings)


def describe_error(exc: ValidationError, prefix: str = "") -> str:
    """The first problem of a pydantic error as `key: reason (got value)`, keys dotted."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"])
    key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "value"
    if err["type"] == "extra_forbidden":
        return f"unknown parameter {key!r}"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{key}: {message} (got {err.get('input')!r})"


def parse_settings(cls: type[S], raw: Any, source: str, *, prefix: str = "") -> S:
    """Build `cls` from parsed YAML/JSON/CLI values; errors name `source` and the key.

    Raises:
        InputError: `raw` is not a mapping, has an unknown key, or a value fails validation.
    """
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: expected a mapping of parameters, got {type(raw).__name__}")
    try:
        return cls.model_validate(dict(raw))
    except ValidationError as exc:
        raise InputError(f"{source}: {describe_error(exc, prefix)}") from None
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from exc


def check_value(annotation: Any, value: Any, name: str) -> Any:
    """Validate one argument against an annotated type (e.g. `PositiveInt`) outside a model.

    Raises:
        InputError: `name: reason (got value)`.
    """
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        raise InputError(describe_error(exc, name)) from None
