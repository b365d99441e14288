"""Sharded pool scoring: shard planning, and Dask-sharded predictions equal the single process."""

from __future__ import annotations

import numpy as np
import pytest

from deimos.errors import InputError
from deimos.uncertainty.predict import shard_ranges


@pytest.mark.parametrize(
    ("n", "shards", "align", "expected"),
    [
        (0, 3, 256, []),
        (10, 3, 256, [(0, 10)]),
        (600, 2, 256, [(0, 512), (512, 600)]),
        (1024, 4, 256, [(0, 256), (256, 512), (512, 768), (768, 1024)]),
        (1025, 4, 256, [(0, 512), (512, 1024), (1024, 1025)]),
        (7, 7, 1, [(i, i + 1) for i in range(7)]),
    ],
)
def test_shards_cover_the_rows_in_order_on_batch_boundaries(n, shards, align, expected):
    got = shard_ranges(n, shards, align)
    assert got == expected
    assert len(got) <= shards
    assert all(start % align == 0 for start, _ in got)


def test_bad_shard_counts_are_refused():
    with pytest.raises(InputError, match="n_shards must be a positive integer"):
        shard_ranges(10, 0)
    with pytest.raises(InputError, match="n must be a non-negative integer"):
        shard_ranges(-1, 2)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    from deimos.data.a5ss_library import generate_library
    from deimos.data.fasta_writer import write_fasta
    from deimos.uncertainty.train import save_model
    from models.splicing import SplicingCNN

    d = tmp_path_factory.mktemp("pool")
    library = generate_library(700, seed=4)
    write_fasta(d / "pool.fasta", list(library.ids), list(library.seqs))
    save_model(SplicingCNN(seed=3), d / "model.pt")
    return d


@pytest.mark.slow
def test_dask_shards_give_identical_predictions_and_picks(prefect_server, pool):
    from deimos.acquisition.deimos import select_deimos
    from deimos.data.onehot import one_hot
    from deimos.data.sequences import read_fasta
    from deimos.uncertainty.predict import predict_fixed_masks
    from deimos.uncertainty.train import load_model
    from flows.score_pool import score_pool_on_dask

    model = load_model(pool / "model.pt")
    seqs = read_fasta(pool / "pool.fasta", length=int(model.input_shape[-1]))
    single = predict_fixed_masks(model, one_hot(seqs), n_masks=12, seed=9).numpy()

    result = score_pool_on_dask(
        workers=2,
        model_path=str(pool / "model.pt"),
        fasta=str(pool / "pool.fasta"),
        out=str(pool / "sharded.npy"),
        n_masks=12,
        seed=9,
        shards=3,
    )
    assert result["shards"] == [(0, 256), (256, 512), (512, 700)]
    sharded = np.load(pool / "sharded.npy")
    np.testing.assert_array_equal(sharded, single)  # bit for bit
    ids = (pool / "sharded.ids.txt").read_text().split()
    assert ids == list(seqs.ids)
    picks_single = select_deimos(single, 10, tau_inv=0.01)
    picks_sharded = select_deimos(sharded, 10, tau_inv=0.01)
    assert picks_sharded.indices == picks_single.indices


def test_cli_score_equals_cli_predict_and_refuses_missing_files(prefect_server, pool, capsys):
    from deimos_cli.main import main

    assert main(["predict", "--model", str(pool / "model.pt"), "--fasta", str(pool / "pool.fasta"),
                 "--masks", "6", "--seed", "2", "--out", str(pool / "one.npy")]) == 0  # fmt: skip
    assert main(["score", "--model", str(pool / "model.pt"), "--fasta", str(pool / "pool.fasta"),
                 "--masks", "6", "--seed", "2", "--shards", "3",
                 "--out", str(pool / "three.npy")]) == 0  # fmt: skip
    assert "from 3 shards" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(pool / "three.npy"), np.load(pool / "one.npy"))
    out = pool / "none.npy"
    assert main(["score", "--model", str(pool / "nope.pt"), "--fasta", str(pool / "pool.fasta"),
                 "--out", str(out)]) == 2  # fmt: skip
    assert "nope.pt: model file not found" in capsys.readouterr().err
    assert not out.exists()
    assert main(["score", "--model", str(pool / "model.pt"), "--fasta", str(pool / "pool.fasta"),
                 "--device", "gpu0", "--out", str(out)]) == 2  # fmt: skip
    assert "--device 'gpu0' is not a device" in capsys.readouterr().err
    assert not out.exists()
