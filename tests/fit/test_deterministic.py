"""Deterministic mode: the same model, bit for bit, on any number of ranks, under every strategy
that supports it (ps-async applies gradients in arrival order and is refused)."""
import numpy as np
import pytest

from mpireg.comm.fixed_point import agree_exponents, decode, encode_sum
from mpireg.config import load_job
from mpireg.errors import ConfigError
from tests.helpers import train_job


class _OneRank:
    def allreduce_max(self, buf):
        pass


def test_fixed_point_sum_does_not_depend_on_grouping(rng):
    """Blocks split among 'ranks' in different ways give the same integer sum, bit for bit."""
    partials = rng.standard_normal((40, 7)) * np.logspace(-8, 3, 7)
    groups = [slice(0, 6)]
    partials[:, 6] = rng.integers(1, 64, 40)  # row counts
    exponents = agree_exponents(_OneRank(), partials, groups, 40)
    results = []
    for cuts in ([40], [13, 27], [1, 2, 3, 34], [10] * 4):
        total = np.zeros(7, np.int64)
        lo = 0
        for size in cuts:  # each 'rank' encodes its own blocks, then the ints are summed
            part = np.zeros(7, np.int64)
            encode_sum(partials[lo:lo + size], groups, exponents, 6, part)
            total += part
            lo += size
        results.append(total)
    assert all(np.array_equal(results[0], r) for r in results)
    out = np.empty(7)
    decode(results[0], groups, exponents, out)
    # One exponent per group: each block rounds by at most half a unit of 2^-e, an absolute bound.
    bound = 40 * 0.5 * 2.0 ** -exponents[0]
    assert np.all(np.abs(out[:6] - partials[:, :6].sum(axis=0)) <= bound + 1e-12 * np.abs(out[:6]))
    assert bound < 1e-12 * np.abs(partials[:, :6]).max()  # ~60 bits below the largest entry
    assert np.array_equal(results[0][6], partials[:, 6].sum())  # counts are exact


def _train(n, run_dir, overrides):
    return train_job(n, run_dir, ["comm.deterministic=true", *overrides])[0]


@pytest.mark.parametrize("strategy,ranks", [("allreduce", (1, 2, 3, 4, 8)), ("ring", (2, 3)), ("ps", (3,))])
def test_same_model_bit_for_bit_on_any_rank_count(datasets, tmp_path, strategy, ranks):
    overrides = [f"data.train={datasets['softmax']}", "model.kind=softmax", "optimizer.kind=sgd",
                 "optimizer.lr=0.1", "optimizer.momentum=0.9", "optimizer.epochs=2",
                 "optimizer.batch_size=128", "comm.block_rows=32", "model.l2=1e-3",
                 f"comm.strategy={strategy}", "data.dtype=float32"]
    reference = _train(1, tmp_path / "one", overrides)
    for n in ranks:
        assert np.array_equal(_train(n, tmp_path / f"p{n}", overrides), reference), f"{n} ranks differ"


def test_lbfgs_is_bit_for_bit_too(datasets, tmp_path):
    overrides = [f"data.train={datasets['logistic']}", "model.kind=logistic", "optimizer.kind=lbfgs",
                 "model.l2=1e-3", "optimizer.tol=1e-8"]
    assert np.array_equal(_train(1, tmp_path / "one", overrides), _train(3, tmp_path / "three", overrides))


def test_refused_where_it_cannot_hold():
    with pytest.raises(ConfigError, match="arrival order"):
        load_job(None, ["data.train=x", "comm.deterministic=true", "comm.strategy=ps-async"])
    with pytest.raises(ConfigError, match="comm.deterministic"):
        load_job(None, ["data.train=x", "comm.deterministic=true", "comm.compression=fp16"])
