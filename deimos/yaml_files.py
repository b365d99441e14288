"""Reading a user's YAML file: one set of refusals for params.yaml, benchmark params, task tables
and prefect.yaml.

PyYAML keeps the last of two equal keys silently; a params file with `batch_size` twice would
then run with whichever the user did not mean, so a repeated key is refused with its line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from deimos.errors import InputError

__all__ = ["parse_yaml", "read_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader refusing a key written twice in one mapping (a `<<` merge may be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    """Parse `text`; a syntax error or a repeated key is an `InputError` naming `source`."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({exc})".replace("\n", " ")) from None


def read_yaml(path: str | os.PathLike[str], *, missing: str = "no such file") -> Any:
    """Read and parse the YAML file at `path`.

    Raises:
        InputError: `path: <missing>` when it is not a file, or it is not UTF-8, not YAML, or
            repeats a key (with the line).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: {missing}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text") from None
    return parse_yaml(text, str(p))
