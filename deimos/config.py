"""Typed configuration: one frozen pydantic base, the shared field types, one error translation.

Every settings object of the project (campaign `params.yaml`, training, the simulator, S3, the
benchmark and its tasks) is a `Settings` subclass: frozen, unknown keys refused, and validated on
construction. `parse_settings` turns pydantic's `ValidationError` into the project's `InputError`
naming the file and the dotted key, so the CLI still prints one line and exits 2.

This module imports neither torch nor boto3, so checking a params file is fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from deimos.errors import InputError

__all__ = [
    "FiniteFloat",
    "MaskCount",
    "Name",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "Probability",
    "Settings",
    "StrictBool",
    "check_value",
    "describe_error",
    "parse_settings",
]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _name(value: str) -> str:
    if not value or value != value.strip():
        raise ValueError("must be a non-empty name without leading or trailing blanks")
    return value


# Strict ints refuse True/False and 2.5; numbers refuse booleans and strings ("1e-3" from YAML
# without a dot is a string and must be written 0.001 or 1.0e-3).
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
FiniteFloat = Annotated[float, Field(strict=True), AfterValidator(_finite)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0), AfterValidator(_finite)]
NonNegativeFloat = Annotated[float, Field(strict=True, ge=0), AfterValidator(_finite)]
#: J, the number of fixed dropout masks: a covariance needs at least two.
MaskCount = Annotated[int, Field(strict=True, ge=2)]
#: A dropout probability: 0 <= p < 1.
Probability = Annotated[float, Field(strict=True, ge=0, lt=1)]
#: A non-empty name without surrounding blanks (a column, a task, a directory).
Name = Annotated[str, Field(strict=True), AfterValidator(_name)]

# True while pydantic validates a whole tree (`parse_settings`, or an outer `Settings(...)`):
# the nested models' `__init__` then leaves their errors to the outer call, which names the
# dotted key; only the outermost call turns a `ValidationError` into an `InputError`.
_VALIDATING: ContextVar[bool] = ContextVar("deimos_config_validating", default=False)


@contextmanager
def _validating() -> Iterator[bool]:
    """Yield whether this is the outermost validation, marking the ones inside as nested."""
    outer = not _VALIDATING.get()
    token = _VALIDATING.set(True)
    try:
        yield outer
    finally:
        _VALIDATING.reset(token)


class Settings(BaseModel):
    """Base of every configuration object: immutable, unknown keys refused, checked on creation.

    Built with keywords in code (`TrainConfig(epochs=0)`), a bad value raises `InputError`
    naming the class and key (`TrainConfig.epochs: ...`), so the CLI reports it like any other
    bad input; from a file, use `parse_settings`, which names the file instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def __init__(self, /, **data: Any) -> None:
        with _validating() as outer:
            if not outer:
                super().__init__(**data)
                return
            try:
                super().__init__(**data)
            except ValidationError as exc:
                name = type(self).__name__
                raise InputError(describe_error(exc, f"{name}.", owner=name)) from None

    def replace(self: S, **changes: Any) -> S:
        """A copy with `changes` applied and validated again (frozen models cannot be edited)."""
        return type(self)(**{**dict(self), **changes})


S = TypeVar("S", bound=Settings)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def describe_error(exc: ValidationError, prefix: str = "", *, owner: str = "") -> str:
    """The first problem of a pydantic error as `key: reason (got value)`, keys dotted.

    A whole-object check (a model validator) has no key: the message is then `prefix: reason`
    (`owner: reason` when given); a mapping input is not repeated after the reason.
    """
    err = exc.errors(include_url=False)[0]
    loc = _dotted(tuple(err["loc"]))
    key = f"{prefix}{loc}" if loc else owner or prefix.rstrip(".") or "value"
    if err["type"] == "extra_forbidden":
        return f"unknown parameter {key!r}"
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key}: must be a mapping of parameters (got {err.get('input')!r})"
    message = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    got = "" if isinstance(value, Mapping | BaseModel) else f" (got {value!r})"
    return f"{key}: {message}{got}"


def parse_settings(cls: type[S], raw: Any, source: str, *, prefix: str = "") -> S:
    """Build `cls` from parsed YAML/JSON/CLI values; errors name `source` and the key.

    Raises:
        InputError: `raw` is not a mapping, has an unknown key, or a value fails validation.
    """
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: expected a mapping of parameters, got {type(raw).__name__}")
    with _validating():
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
