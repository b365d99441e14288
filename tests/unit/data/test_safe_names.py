"""Tests for deimos.safe_names and its use on FASTA record ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from deimos.data.sequences import read_fasta, read_genbank
from deimos.errors import InputError
from deimos.safe_names import check_object_prefix, check_path_component, check_safe_id


@pytest.mark.parametrize("value", ["A5SS_000001", "seq-1.2", "x", "é", "a.b.c", "id:1+2"])
def test_ordinary_ids_are_safe(value: str) -> None:
    assert check_safe_id(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("a/b", "contains a path separator"),
        ("../../etc/passwd", "contains a path separator"),
        ("a\\b", "contains a path separator"),
        ("..", "contains '..'"),
        ("a..b", "contains '..'"),
        ("a\x00b", "contains a control character"),
        ("tab\there", "contains a control character"),
        ("a\x1f", "contains a control character"),
        ("del\x7f", "contains a control character"),
        ("c1\x85", "contains a control character"),
    ],
)
def test_unsafe_ids_give_a_reason(value: str, reason: str) -> None:
    assert check_safe_id(value) == reason


def test_non_string_id_is_not_safe() -> None:
    assert check_safe_id(7) == "is not a string (int)"  # type: ignore[arg-type]


def test_path_component_is_returned_unchanged() -> None:
    assert check_path_component("round-3.csv", "file name") == "round-3.csv"
    assert check_path_component("a" * 255, "file name") == "a" * 255
    assert check_path_component("..a", "file name") == "..a"  # a name, not the parent


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "round name is empty"),
        (".", "round name '.' is not a file name"),
        ("..", "round name '..' is not a file name"),
        ("a/b", "round name 'a/b' contains a path separator"),
        ("a\\b", "contains a path separator"),
        ("a\nb", "contains a control character"),
        ("a\x7f", "contains a control character"),
        ("a" * 256, "256 bytes long in UTF-8, more than the limit of 255"),
        ("é" * 128, "256 bytes long in UTF-8"),
    ],
)
def test_bad_path_components_are_refused(name: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        check_path_component(name, "round name")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_path_component_must_be_a_string() -> None:
    with pytest.raises(InputError, match="round name must be a string, got int"):
        check_path_component(3, "round name")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("deimos", "deimos"),
        ("deimos/campaign-1/", "deimos/campaign-1"),
        ("", ""),
        ("a/b/c", "a/b/c"),
    ],
)
def test_object_prefix_is_normalised(prefix: str, expected: str) -> None:
    assert check_object_prefix(prefix) == expected


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/deimos", "must not start with '/'"),
        ("/", "must not start with '/'"),
        ("a//b", "segment 2 is empty"),
        ("a//", "segment 2 is empty"),
        ("a/../b", "segment 2 '..' is not a file name"),
        ("a/./b", "segment 2 '.' is not a file name"),
        ("a/b\\c", "segment 2 'b\\\\c' contains a path separator"),
        ("a/b\x00", "contains a control character"),
        ("a/" + "x" * 300, "segment 2 is 300 bytes long"),
    ],
)
def test_bad_object_prefixes_are_refused(prefix: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        check_object_prefix(prefix)
    assert message in str(err.value)
    assert f"object prefix {prefix!r}" in str(err.value)


# --- FASTA and GenBank ids --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("../../etc/passwd", "contains a path separator"),
        ("pool\\x1", "contains a path separator"),
        ("a..b", "contains '..'"),
        ("bell\x07id", "contains a control character"),
    ],
)
def test_fasta_record_with_unsafe_id_is_refused(tmp_path: Path, header: str, reason: str) -> None:
    path = tmp_path / "pool.fasta"
    path.write_text(f">ok_1\nACGT\n>ok_2\nACGA\n>{header} note\nACGT\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_fasta(path)
    assert str(err.value) == f"{path}: record 3 (id {header!r}, line 5): id {reason}"


def test_fasta_with_safe_ids_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "pool.fasta"
    path.write_text(">A5SS_1 desc/with/slash\nACGT\n>chr1:10-20(+)\nacgt\n", encoding="utf-8")
    assert read_fasta(path).ids == ("A5SS_1", "chr1:10-20(+)")


def test_genbank_record_with_unsafe_id_is_refused(tmp_path: Path) -> None:
    record = (
        "LOCUS       x..y                       8 bp    DNA     linear   UNK 01-JAN-1980\n"
        "DEFINITION  test.\n"
        "ACCESSION   x..y\n"
        "VERSION     x..y\n"
        "FEATURES             Location/Qualifiers\n"
        "ORIGIN\n"
        "        1 acgtacgt\n"
        "//\n"
    )
    path = tmp_path / "pool.gb"
    path.write_text(record, encoding="utf-8")
    with pytest.raises(InputError, match=r"pool\.gb: record 1 \(id 'x\.\.y', line 1\): id"):
        read_genbank(path)
