"""Tests of the simulated A5SS splicing assay: library (`deimos.data.a5ss_library`), ground
truth (`deimos.data.donor_model`), measurement (`deimos.data.assay`) and CSV writers
(`deimos.data.assay_csv`)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deimos.data import a5ss_library, assay_csv, donor_model
from deimos.data.a5ss_library import Library, generate_library, layout
from deimos.data.assay import MEASUREMENT_COLUMNS, SimulatedAssay, measure
from deimos.data.assay_csv import write_library_csv, write_measurements_csv
from deimos.data.donor_model import donor_usage
from deimos.errors import InputError

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"


@pytest.fixture(scope="module")
def library() -> Library:
    return generate_library(3000, seed=11)


@pytest.fixture(scope="module")
def truth(library: Library) -> np.ndarray:
    return donor_usage(library.seqs)


def _replace(seq: str, pos: int, text: str) -> str:
    return seq[:pos] + text + seq[pos + len(text) :]


# --- library -------------------------------------------------------------------------------------


def test_layout_matches_the_plasmid_distances() -> None:
    # Distances read off the published A5SS plasmid map: donor GT -> Mut1, Mut1 -> SD2 GT, ...
    lay = layout()
    assert lay["mut1"] - lay["sd1"] == 8
    assert lay["sd2"] - (lay["mut1"] + 25) == 11
    assert lay["mut2"] - lay["sd2"] == 7
    assert lay["length"] == 101


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = write_library_csv(generate_library(500, seed=3), tmp_path / "a.csv")
    b = write_library_csv(generate_library(500, seed=3), tmp_path / "b.csv")
    c = write_library_csv(generate_library(500, seed=4), tmp_path / "c.csv")
    assert a.read_bytes() == b.read_bytes()
    assert hashlib.sha256(a.read_bytes()).digest() != hashlib.sha256(c.read_bytes()).digest()
    assert a.read_text().splitlines()[0] == "id,seq"


def test_library_sequences_are_distinct_fixed_length_acgt(library: Library) -> None:
    assert len(library) == 3000
    assert len(set(library.seqs)) == 3000
    assert {len(s) for s in library.seqs} == {101}
    assert set("".join(library.seqs)) == set("ACGT")
    assert library.ids[0] == "A5SS_000001"
    assert library.ids[-1] == "A5SS_003000"
    assert len(set(library.ids)) == 3000
    lay = layout()
    for pos in (lay["sd1"], lay["sd2"]):
        assert {s[pos : pos + 2] for s in library.seqs} == {"GT"}
    # Only the two degenerate regions vary.
    arr = np.array([list(s) for s in library.seqs[:200]])
    varies = (arr != arr[0]).any(axis=0)
    expected = np.zeros(101, dtype=bool)
    expected[lay["mut1"] : lay["mut1"] + 25] = True
    expected[lay["mut2"] : lay["mut2"] + 25] = True
    np.testing.assert_array_equal(varies, expected)
    frame = library.to_frame()
    assert list(frame.columns) == ["id", "seq"]
    assert frame["seq"].tolist() == list(library.seqs)


@pytest.mark.parametrize("length", [a5ss_library.MIN_LENGTH, 120, a5ss_library.MAX_LENGTH])
def test_other_lengths_keep_the_donors_in_place(length: int) -> None:
    lib = generate_library(50, seed=1, length=length)
    assert {len(s) for s in lib.seqs} == {length}
    assert {s[a5ss_library.SD1_POS : a5ss_library.SD1_POS + 2] for s in lib.seqs} == {"GT"}
    usage = donor_usage(lib.seqs)
    assert usage.shape == (50,)


def test_draw_distinct_resolves_collisions_deterministically() -> None:
    # 3 random nt allow only 64 sequences: asking for all 64 forces redraws.
    rows = a5ss_library._draw_distinct(np.random.default_rng(0), 64, 3)
    again = a5ss_library._draw_distinct(np.random.default_rng(0), 64, 3)
    assert len({tuple(r) for r in rows}) == 64
    np.testing.assert_array_equal(rows, again)
    with pytest.raises(InputError, match="exceeds"):
        a5ss_library._draw_distinct(np.random.default_rng(0), 65, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0, "seed": 1}, "n must be a positive integer"),
        ({"n": -5, "seed": 1}, "n must be a positive integer"),
        ({"n": 2.0, "seed": 1}, "n must be a positive integer"),
        ({"n": True, "seed": 1}, "n must be a positive integer"),
        ({"n": 5, "seed": -1}, "seed must be a non-negative integer"),
        ({"n": 5, "seed": "1"}, "seed must be a non-negative integer"),
        ({"n": 5, "seed": 1, "length": a5ss_library.MIN_LENGTH - 1}, "length must be between"),
        ({"n": 5, "seed": 1, "length": a5ss_library.MAX_LENGTH + 1}, "length must be between"),
        ({"n": 5, "seed": 1, "length": 101.0}, "length must be an integer"),
    ],
)
def test_generate_library_rejects_bad_input(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        generate_library(**kwargs)


# --- ground truth --------------------------------------------------------------------------------


def test_usage_is_in_unit_interval_with_spread(truth: np.ndarray) -> None:
    assert truth.shape == (3000,)
    assert np.all((truth >= 0) & (truth <= 1))
    assert truth.std() > 0.2
    assert (truth < 0.2).mean() > 0.1
    assert (truth > 0.8).mean() > 0.1
    assert ((truth > 0.3) & (truth < 0.7)).mean() > 0.2


def test_usage_is_per_sequence_and_chunk_invariant(
    library: Library, truth: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = np.random.default_rng(0).permutation(500)
    permuted = donor_usage([library.seqs[i] for i in order])
    np.testing.assert_allclose(permuted, truth[order], rtol=1e-12)
    monkeypatch.setattr(donor_model, "_CHUNK_ROWS", 7)
    np.testing.assert_allclose(donor_usage(library.seqs[:500]), truth[:500], rtol=1e-12)


def test_pandas_and_numpy_inputs_are_accepted(library: Library, truth: np.ndarray) -> None:
    frame = library.to_frame().iloc[:50]
    np.testing.assert_allclose(donor_usage(frame["seq"]), truth[:50], rtol=1e-12)
    np.testing.assert_allclose(donor_usage(np.array(library.seqs[:50])), truth[:50], rtol=1e-12)
    pd.testing.assert_frame_equal(
        measure(frame["id"], frame["seq"], seed=1),
        measure(library.ids[:50], library.seqs[:50], seed=1),
    )


def test_destroying_a_donor_moves_usage_to_the_other(library: Library, truth: np.ndarray) -> None:
    seqs = library.seqs[:300]
    for base in "ACT":
        no_sd1 = donor_usage([_replace(s, a5ss_library.SD1_POS, base) for s in seqs])
        assert np.all(no_sd1 < truth[:300])
        assert no_sd1.max() < 0.05
        assert np.median(no_sd1) < 0.005
    no_sd2 = donor_usage([_replace(s, a5ss_library.SD2_POS + 1, "A") for s in seqs])
    assert np.all(no_sd2 > truth[:300])


def test_a_strong_cryptic_donor_takes_reads_from_sd1(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same sequences, cryptic donors switched off: isolates the competition from context effects.
    seqs = [_replace(s, a5ss_library.MUT1_START + 10, "CAGGTAAGT") for s in library.seqs[:300]]
    with_cryptic = donor_usage(seqs)
    monkeypatch.setattr(donor_model, "_CRYPTIC_PENALTY", 1e3)
    without_cryptic = donor_usage(seqs)
    assert np.all(with_cryptic < without_cryptic)
    assert (without_cryptic - with_cryptic).mean() > 0.01


def test_enhancer_direction_agrees_with_published_ese_list() -> None:
    path = SHARED_DATA / "ese_hexamers.txt"
    if not path.is_file():
        pytest.fail(f"reference file {path} is missing; this test checks design fidelity")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    ese = [h for h in lines if len(h) == 6 and set(h) <= set("ACGT")]
    assert len(ese) > 200
    ese_set = set(ese)
    others = [h for h in map("".join, itertools.product("ACGT", repeat=6)) if h not in ese_set]
    rng = np.random.default_rng(0)
    controls = [others[i] for i in rng.choice(len(others), 300, replace=False)]
    backgrounds = generate_library(60, seed=9).seqs
    # Mut1 is exon for SD2: an enhancer there should pull reads to SD2, i.e. away from SD1.
    pos = a5ss_library.MUT1_START + 9

    def mean_usage(hexamers: list[str]) -> np.ndarray:
        seqs = [_replace(b, pos, h) for h in hexamers for b in backgrounds]
        return donor_usage(seqs).reshape(len(hexamers), len(backgrounds)).mean(axis=1)

    ese_usage, control_usage = mean_usage(ese), mean_usage(controls)
    assert ese_usage.mean() < control_usage.mean() - 0.05
    assert np.mean(ese_usage < np.median(control_usage)) > 0.7
    assert donor_model.exonic_effect(ese).mean() > donor_model.exonic_effect(controls).mean()


def test_enhancer_effect_depends_on_position(library: Library) -> None:
    seqs = library.seqs[:400]
    base = donor_usage(seqs)
    in_mut1 = donor_usage([_replace(s, a5ss_library.MUT1_START + 12, "GAAGAA") for s in seqs])
    in_mut2 = donor_usage([_replace(s, a5ss_library.MUT2_START + 12, "GAAGAA") for s in seqs])
    # Exonic for SD2 in Mut1; in Mut2 it is intron for both donors and mostly irrelevant.
    assert (base - in_mut1).mean() > 0.05
    assert abs((base - in_mut2).mean()) < (base - in_mut1).mean() / 2


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda s: [], "seqs is empty"),
        (lambda s: s[0], "sequence of strings"),
        (lambda s: [s[0], s[1][:-1]], r"seqs\[1\] has length 100"),
        (lambda s: [s[0], _replace(s[1], 30, "N")], r"seqs\[1\] has 'N' at position 30"),
        (lambda s: [_replace(s[0], 5, "a")], r"seqs\[0\] has 'a' at position 5"),
        (lambda s: [_replace(s[0], 5, "é")], r"seqs\[0\] contains a character outside ACGT"),
        (lambda s: [s[0], 7], r"seqs\[1\] must be a string"),
        (lambda s: [s[0][:80]], "sequence length must be between"),
    ],
)
def test_donor_usage_rejects_bad_sequences(
    library: Library, make: Callable[[tuple[str, ...]], Any], match: str
) -> None:
    with pytest.raises(InputError, match=match):
        donor_usage(make(library.seqs))


def test_hexamer_effect_lookup_rejects_bad_hexamers() -> None:
    with pytest.raises(InputError, match="6 nt"):
        donor_model.exonic_effect(["GAAGA"])
    with pytest.raises(InputError, match="only A, C, G, T"):
        donor_model.intronic_effect(["GAAGAN"])
    with pytest.raises(InputError, match="not one string"):
        donor_model.exonic_effect("GAAGAA")


# --- measurement ---------------------------------------------------------------------------------


def test_measurement_format(library: Library) -> None:
    df = measure(library.ids[:40], library.seqs[:40], seed=2, replicates=3)
    assert tuple(df.columns) == MEASUREMENT_COLUMNS
    assert len(df) == 120
    assert df["id"].tolist() == [i for i in library.ids[:40] for _ in range(3)]
    assert df["replicate"].tolist() == [1, 2, 3] * 40
    assert df["reads_sd1"].dtype == np.int64 and df["reads_total"].dtype == np.int64
    assert (df["reads_total"] >= 1).all()
    assert ((df["reads_sd1"] >= 0) & (df["reads_sd1"] <= df["reads_total"])).all()
    np.testing.assert_array_equal(df["donor_usage"], df["reads_sd1"] / df["reads_total"])


def test_measurement_is_deterministic_and_batch_independent(library: Library) -> None:
    ids, seqs = library.ids[:200], library.seqs[:200]
    a = measure(ids, seqs, seed=5, replicates=2)
    pd.testing.assert_frame_equal(a, measure(ids, seqs, seed=5, replicates=2))
    other = measure(ids, seqs, seed=6, replicates=2)
    assert not a["reads_sd1"].equals(other["reads_sd1"])
    # Replicates differ from each other.
    assert not np.array_equal(a["reads_total"].to_numpy()[::2], a["reads_total"].to_numpy()[1::2])
    # A subset in another order gets the same rows: noise is keyed by (seed, id, replicate).
    order = np.random.default_rng(1).permutation(200)[:50]
    sub = measure([ids[i] for i in order], [seqs[i] for i in order], seed=5, replicates=2)
    expected = a.set_index(["id", "replicate"]).loc[
        list(zip(sub["id"], sub["replicate"], strict=True))
    ]
    np.testing.assert_array_equal(sub["reads_sd1"], expected["reads_sd1"])
    np.testing.assert_array_equal(sub["reads_total"], expected["reads_total"])


def test_measured_usage_is_unbiased_and_noise_shrinks_with_depth(
    library: Library, truth: np.ndarray
) -> None:
    errors = {}
    for depth in (20.0, 2000.0):
        df = measure(library.ids, library.seqs, seed=8, read_depth=depth)
        err = df["donor_usage"].to_numpy() - truth
        se = err.std() / np.sqrt(len(err))
        assert abs(err.mean()) < 4 * se + 1e-4
        assert abs(df["reads_total"].mean() / depth - 1) < 0.06
        errors[depth] = err.std()
    assert errors[2000.0] < 0.2 * errors[20.0]


def test_depth_one_gives_one_read(library: Library) -> None:
    df = measure(library.ids[:30], library.seqs[:30], seed=0, read_depth=1)
    assert (df["reads_total"] == 1).all()
    assert set(df["donor_usage"]) <= {0.0, 1.0}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"ids": ["A5SS_000001"]}, "ids has 1 entries but seqs has 3"),
        ({"ids": ["x", "y", "x"]}, r"ids\[2\] = 'x' appears more than once"),
        ({"ids": ["x", "", "z"]}, r"ids\[1\] must be a non-empty string"),
        ({"ids": ["x", 2, "z"]}, r"ids\[1\] must be a non-empty string"),
        ({"ids": "xyz"}, "ids must be a sequence of strings"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"read_depth": 0.5}, r"read_depth must be a finite number in \[1.0, inf\)"),
        ({"read_depth": float("nan")}, r"read_depth must be a finite number in \[1.0, inf\)"),
        ({"read_depth": True}, "read_depth must be a finite number"),
        ({"replicates": 0}, "replicates must be a positive integer"),
        ({"seqs_edit": "N"}, r"seqs\[2\] has 'N'"),
    ],
)
def test_measure_rejects_bad_input(library: Library, change: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "ids": list(library.ids[:3]),
        "seqs": list(library.seqs[:3]),
        "seed": 1,
        "read_depth": 50.0,
        "replicates": 1,
    }
    if "seqs_edit" in change:
        args["seqs"][2] = _replace(args["seqs"][2], 40, change.pop("seqs_edit"))
    args.update(change)
    with pytest.raises(InputError, match=match):
        measure(args.pop("ids"), args.pop("seqs"), **args)


def test_simulated_assay_is_a_frozen_front_for_measure(library: Library) -> None:
    lab = SimulatedAssay(seed=4, read_depth=30.0, replicates=2)
    got = lab.measure(library.ids[:20], library.seqs[:20])
    want = measure(library.ids[:20], library.seqs[:20], seed=4, read_depth=30.0, replicates=2)
    pd.testing.assert_frame_equal(got, want)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lab.seed = 5  # type: ignore[misc]
    with pytest.raises(InputError, match="seed"):
        SimulatedAssay(seed=-2)
    with pytest.raises(InputError, match="read_depth"):
        SimulatedAssay(seed=1, read_depth=0)
    with pytest.raises(InputError, match="replicates"):
        SimulatedAssay(seed=1, replicates=0)


# --- writers -------------------------------------------------------------------------------------


def test_write_measurements_round_trips(library: Library, tmp_path: Path) -> None:
    df = measure(library.ids[:25], library.seqs[:25], seed=3, replicates=2)
    path = write_measurements_csv(df, tmp_path / "m.csv")
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, df)
    assert path.read_text().splitlines()[0] == ",".join(MEASUREMENT_COLUMNS)
    assert sorted(os.listdir(tmp_path)) == ["m.csv"]


def test_writers_reject_bad_input_and_change_nothing(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = measure(library.ids[:5], library.seqs[:5], seed=3)
    target = tmp_path / "m.csv"
    target.write_text("old\n")
    with pytest.raises(InputError, match="must have columns"):
        write_measurements_csv(df.drop(columns=["replicate"]), target)
    with pytest.raises(InputError, match="must have columns"):
        write_measurements_csv(df[list(reversed(MEASUREMENT_COLUMNS))], target)
    with pytest.raises(InputError, match="pandas DataFrame"):
        write_measurements_csv(df.to_dict(), target)
    with pytest.raises(InputError, match="must be a Library"):
        write_library_csv(df, target)
    with pytest.raises(InputError, match="does not exist"):
        write_measurements_csv(df, tmp_path / "missing" / "m.csv")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(assay_csv.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_measurements_csv(df, target)
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["m.csv"]
