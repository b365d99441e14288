"""CSV files of the simulated A5SS assay: the library and the measurement table.

Both writers check their input first and then write atomically (temporary file, then rename), so
a failure leaves no partial file. The measurement table's columns are those documented in
`deimos.data.assay`; the library is written as ``id,seq``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from deimos.atomic import write_text_atomic
from deimos.data.a5ss_library import Library
from deimos.data.assay import MEASUREMENT_COLUMNS
from deimos.errors import InputError


def write_measurements_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a measurement table as CSV, atomically (temporary file, then rename).

    Raises:
        InputError: columns other than `MEASUREMENT_COLUMNS` (in that order), or a missing
            parent directory. Nothing is written then.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"measurements must be a pandas DataFrame, got {type(df).__name__}")
    if tuple(df.columns) != MEASUREMENT_COLUMNS:
        raise InputError(
            f"measurements must have columns {list(MEASUREMENT_COLUMNS)}, got {list(df.columns)}"
        )
    return _atomic_write(Path(path), df.to_csv(index=False, lineterminator="\n"))


def write_library_csv(library: Library, path: str | os.PathLike[str]) -> Path:
    """Write a library as CSV (``id,seq``), atomically; the same library gives the same bytes.

    Raises:
        InputError: `library` is not a `Library`, or the parent directory is missing.
    """
    if not isinstance(library, Library):
        raise InputError(f"library must be a Library, got {type(library).__name__}")
    body = "".join(f"{i},{s}\n" for i, s in zip(library.ids, library.seqs, strict=True))
    return _atomic_write(Path(path), "id,seq\n" + body)


def _atomic_write(path: Path, text: str) -> Path:
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    write_text_atomic(path, text)
    return path
