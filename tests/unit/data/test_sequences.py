"""FASTA/GenBank readers, the FASTA writer and one-hot encoding: behaviour and every error path."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np
import pytest
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord
from hypothesis import given, settings
from hypothesis import strategies as st

import deimos.data.fasta_writer as fasta_writer
from deimos.data.fasta_writer import write_fasta
from deimos.data.onehot import one_hot
from deimos.data.sequences import SequenceSet, read_fasta, read_genbank
from deimos.errors import InputError


def _write(tmp_path: Path, text: str | bytes, name: str = "in.fa") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


# ----------------------------------------------------------------------------------------------
# read_fasta


def test_read_fasta_wrapped_lowercase_and_descriptions(tmp_path: Path) -> None:
    p = _write(tmp_path, "\n>s1 first record\nACGT\nacg\n>s2\nTTTT\nGGG\n\n>s3\tx\nnNAC\n")
    got = read_fasta(p, allow_n=True)
    assert got.ids == ("s1", "s2", "s3")
    assert got.seqs == ("ACGTACG", "TTTTGGG", "NNAC")
    assert got.source == str(p)
    assert len(got) == 3
    assert got.lengths().tolist() == [7, 7, 4]


def test_read_fasta_checks_length(tmp_path: Path) -> None:
    p = _write(tmp_path, ">a\nACGT\n>b\nACG\n>c\nAC\n")
    with pytest.raises(InputError) as err:
        read_fasta(p, length=4)
    msg = str(err.value)
    assert str(p) in msg
    assert "record 2 (id 'b', line 3)" in msg
    assert "3 bases, expected 4" in msg
    assert "2 of 3 records" in msg
    assert read_fasta(p).lengths().tolist() == [4, 3, 2]


@pytest.mark.parametrize(
    ("text", "allow_n", "expected"),
    [
        (
            ">a\nACGT\n>b\nACXT\n",
            False,
            r"record 2 \(id 'b', line 3\): position 3: invalid character 'X'",
        ),
        (
            ">a\nACGT\n>b\nAC\nGN\n",
            False,
            r"record 2 \(id 'b', line 3\): position 4: invalid character 'N'.*allow_n=True",
        ),
        (
            ">a\nAC-T\n",
            True,
            r"record 1 \(id 'a', line 1\): position 3: invalid character '-'; "
            r"expected A, C, G, T or N",
        ),
        (
            ">a\nACGT\n>b\nACĞT\n",
            False,
            r"record 2 \(id 'b', line 3\): position 3: invalid character 'Ğ'",
        ),
        (">a\nAC\tGT\n", False, r"position 3: invalid character '\\t'"),
        (">a\nACGT\n>b\n\n>c\nA\n", False, r"record 2 \(id 'b', line 3\): empty sequence"),
        (">a\nACGT\n>\nACGT\n", False, r"record 2 \(id '', line 3\): empty record id"),
        (">a\nACGT\n>   \nACGT\n", False, r"record 2 \(id '', line 3\): empty record id"),
        (
            ">a\nACGT\n>b\nAAAA\n>a desc\nCCCC\n",
            False,
            r"duplicate id 'a': record 1 \(line 1\) and record 3 \(line 5\)",
        ),
        (
            "ACGT\n>a\nACGT\n",
            False,
            r"line 1: not a FASTA file: expected a header line starting with '>', got 'ACGT'",
        ),
        ("\n\n  \nLOCUS x\n", False, r"line 4: not a FASTA file"),
        ("\n \n\n", False, r"only blank lines"),
    ],
)
def test_read_fasta_errors_name_file_record_and_reason(
    tmp_path: Path, text: str, allow_n: bool, expected: str
) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(InputError, match=expected) as err:
        read_fasta(p, allow_n=allow_n)
    assert str(err.value).startswith(str(p))


def test_read_fasta_n_only_with_allow_n(tmp_path: Path) -> None:
    p = _write(tmp_path, ">a\nACNT\n")
    assert read_fasta(p, allow_n=True).seqs == ("ACNT",)
    with pytest.raises(InputError, match="allow_n"):
        read_fasta(p)


def test_read_fasta_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'nope.fa'}: file not found")):
        read_fasta(tmp_path / "nope.fa")
    with pytest.raises(InputError, match="not a regular file"):
        read_fasta(tmp_path)
    empty = _write(tmp_path, "", "empty.fa")
    with pytest.raises(InputError, match=re.escape(f"{empty}: file is empty")):
        read_fasta(empty)
    binary = _write(tmp_path, b">a\nACGT\n>b\n\xff\xfe\x00\n", "bin.fa")
    with pytest.raises(InputError, match=re.escape(f"{binary}: line 4: not a text file")):
        read_fasta(binary)


@pytest.mark.parametrize("length", [0, -3, 2.5, True, "101"])
def test_read_fasta_rejects_bad_length_argument(tmp_path: Path, length: object) -> None:
    p = _write(tmp_path, ">a\nACGT\n")
    with pytest.raises(InputError, match=r"length \(or None\) must be a positive integer"):
        read_fasta(p, length=length)  # type: ignore[arg-type]


def test_read_fasta_handles_crlf(tmp_path: Path) -> None:
    p = _write(tmp_path, b">a x\r\nAC\r\nGT\r\n>b\r\nTT\r\n")
    got = read_fasta(p)
    assert got.ids == ("a", "b")
    assert got.seqs == ("ACGT", "TT")


# ----------------------------------------------------------------------------------------------
# read_genbank


def _genbank_text(records: list[tuple[str, str]]) -> str:
    handle = io.StringIO()
    SeqIO.write(
        [
            SeqRecord(Seq(s), id=i, name=i, description="", annotations={"molecule_type": "DNA"})
            for i, s in records
        ],
        handle,
        "genbank",
    )
    return handle.getvalue()


def test_read_genbank_reads_all_records(tmp_path: Path) -> None:
    p = _write(tmp_path, _genbank_text([("r1", "acgtac"), ("r2", "GGNNT")]), "lib.gb")
    got = read_genbank(p, allow_n=True)
    assert got.ids == ("r1", "r2")
    assert got.seqs == ("ACGTAC", "GGNNT")


def test_read_genbank_errors(tmp_path: Path) -> None:
    text = _genbank_text([("r1", "ACGT"), ("r2", "GGNN")])
    p = _write(tmp_path, text, "lib.gb")
    second_locus = text.split("\n").index(next(x for x in text.split("\n") if "r2" in x)) + 1
    with pytest.raises(InputError, match=rf"record 2 \(id 'r2', line {second_locus}\): position 3"):
        read_genbank(p)
    with pytest.raises(
        InputError, match=r"record 1 \(id 'r1', line 1\): sequence has 4 bases, expected 5"
    ):
        read_genbank(p, length=5, allow_n=True)
    fasta = _write(tmp_path, ">a\nACGT\n", "not.gb")
    with pytest.raises(InputError, match=r"line 1: not a GenBank file"):
        read_genbank(fasta)
    dup = _write(tmp_path, _genbank_text([("r1", "ACGT"), ("r1", "ACGT")]), "dup.gb")
    with pytest.raises(InputError, match=r"duplicate id 'r1': record 1 \(line 1\) and record 2"):
        read_genbank(dup)
    # A record cut off before its sequence: Biopython raises, we name the file and record.
    broken = _write(tmp_path, text.split("ORIGIN")[0] + "//\n", "broken.gb")
    with pytest.raises(
        InputError, match=rf"{re.escape(str(broken))}: cannot parse GenBank record 1"
    ):
        read_genbank(broken)
    with pytest.raises(InputError, match="file not found"):
        read_genbank(tmp_path / "missing.gb")


# ----------------------------------------------------------------------------------------------
# one_hot


def test_one_hot_hand_example() -> None:
    got = one_hot(["ACGTN", "ttgca"])
    expected = np.array(
        [
            # A  C  G  T  N
            [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]],
            # T  T  G  C  A
            [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0], [1, 1, 0, 0, 0]],
        ],
        dtype=np.float32,
    )
    assert got.dtype == np.float32
    assert got.shape == (2, 4, 5)
    np.testing.assert_array_equal(got, expected)
    # N is the only all-zero column; every other column sums to one.
    np.testing.assert_array_equal(got.sum(axis=1), [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])


def test_one_hot_matches_per_base_reference() -> None:
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGTN"), size=17)) for _ in range(50)]
    got = one_hot(seqs, length=17)
    ref = np.zeros((50, 4, 17), dtype=np.float32)
    for i, s in enumerate(seqs):
        for pos, base in enumerate(s):
            if base != "N":
                ref[i, "ACGT".index(base), pos] = 1.0
    np.testing.assert_array_equal(got, ref)


def test_one_hot_errors_name_the_sequence() -> None:
    with pytest.raises(InputError, match=r"sequence 'b' has 3 bases, the first sequence has 4"):
        one_hot(["ACGT", "ACG"], ids=["a", "b"])
    with pytest.raises(InputError, match=r"sequence at index 1 has 3 bases"):
        one_hot(["ACGT", "ACG"])
    with pytest.raises(InputError, match=r"sequence 'a' has 4 bases, expected 5"):
        one_hot(SequenceSet(ids=("a",), seqs=("ACGT",), source="x.fa"), length=5)
    with pytest.raises(InputError, match=r"sequence 'b': position 2: invalid character 'U'"):
        one_hot(["ACGT", "AUGT"], ids=["a", "b"])
    with pytest.raises(InputError, match="no sequences"):
        one_hot([])
    with pytest.raises(InputError, match="single str"):
        one_hot("ACGT")
    with pytest.raises(InputError, match="2 ids for 1 sequences"):
        one_hot(["ACGT"], ids=["a", "b"])
    with pytest.raises(InputError, match="empty"):
        one_hot(["", ""])


def test_one_hot_of_a_sequence_set_uses_its_ids(tmp_path: Path) -> None:
    p = _write(tmp_path, ">x\nACGT\n>y\nTGCA\n")
    s = read_fasta(p)
    np.testing.assert_array_equal(one_hot(s), one_hot(list(s.seqs)))


# ----------------------------------------------------------------------------------------------
# write_fasta


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "out.fa"
    ids = ["a", "b|2", "c.3"]
    seqs = ["ACGT" * 30, "ggcc", "T"]
    write_fasta(p, ids, seqs)
    got = read_fasta(p)
    assert got.ids == tuple(ids)
    assert got.seqs == tuple(s.upper() for s in seqs)
    assert oct(p.stat().st_mode & 0o777) == oct(0o644)
    assert [q.name for q in tmp_path.iterdir()] == ["out.fa"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet="ACGTacgt", min_size=1, max_size=40), min_size=1, max_size=20))
def test_round_trip_property(seqs: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.fa"
        ids = [f"id{k}" for k in range(len(seqs))]
        write_fasta(p, ids, seqs)
        got = read_fasta(p)
    assert got.ids == tuple(ids)
    assert got.seqs == tuple(s.upper() for s in seqs)


@pytest.mark.parametrize(
    ("ids", "seqs", "expected"),
    [
        (["a", "a"], ["ACGT", "ACGT"], r"duplicate id 'a' at indices 0 and 1"),
        (["a", "b c"], ["ACGT", "ACGT"], r"id at index 1 \('b c'\) must be a non-empty string"),
        (["a", ""], ["ACGT", "ACGT"], r"id at index 1 \(''\)"),
        (
            ["a", "b"],
            ["ACGT", "ACXT"],
            r"sequence 'b' \(index 1\): position 3: invalid character 'X'",
        ),
        (
            ["a", "b"],
            ["ACGT", "ACNT"],
            r"sequence 'b' \(index 1\): position 3: invalid character 'N'",
        ),
        (["a", "b"], ["ACGT", ""], r"sequence 'b' \(index 1\) is empty"),
        (["a"], ["ACGT", "ACGT"], r"1 ids but 2 sequences"),
        ([], [], r"no sequences"),
    ],
)
def test_write_fasta_bad_input_leaves_old_file(
    tmp_path: Path, ids: list[str], seqs: list[str], expected: str
) -> None:
    p = tmp_path / "out.fa"
    p.write_text(">old\nAAAA\n")
    with pytest.raises(InputError, match=expected) as err:
        write_fasta(p, ids, seqs)
    assert str(p) in str(err.value)
    assert p.read_text() == ">old\nAAAA\n"
    assert [q.name for q in tmp_path.iterdir()] == ["out.fa"]


def test_write_fasta_failure_mid_write_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "out.fa"
    p.write_text(">old\nAAAA\n")
    real_write = SeqIO.write

    def failing_write(records: Iterator[SeqRecord], handle: TextIO, fmt: str) -> int:
        real_write(next(records), handle, fmt)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fasta_writer.SeqIO, "write", failing_write)
    with pytest.raises(InputError, match=r"cannot write: No space left on device"):
        write_fasta(p, ["a", "b"], ["ACGT", "GGGG"])
    assert p.read_text() == ">old\nAAAA\n"
    assert [q.name for q in tmp_path.iterdir()] == ["out.fa"]


def test_write_fasta_failure_at_rename_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "out.fa"
    p.write_text(">old\nAAAA\n")

    def failing_replace(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fasta_writer.os, "replace", failing_replace)
    with pytest.raises(InputError, match="Permission denied"):
        write_fasta(p, ["a"], ["ACGT"])
    assert p.read_text() == ">old\nAAAA\n"
    assert [q.name for q in tmp_path.iterdir()] == ["out.fa"]


def test_write_fasta_path_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        write_fasta(tmp_path / "no" / "such" / "x.fa", ["a"], ["ACGT"])
    with pytest.raises(InputError, match="is a directory"):
        write_fasta(tmp_path, ["a"], ["ACGT"])
    with pytest.raises(InputError, match="not one str"):
        write_fasta(tmp_path / "x.fa", "a", "ACGT")
    assert not (tmp_path / "x.fa").exists()


def test_write_fasta_keeps_mode_of_replaced_file(tmp_path: Path) -> None:
    p = tmp_path / "out.fa"
    p.write_text(">old\nAAAA\n")
    os.chmod(p, 0o640)
    write_fasta(p, ["a"], ["ACGT"])
    assert p.stat().st_mode & 0o777 == 0o640
    assert read_fasta(p).seqs == ("ACGT",)
