"""Online adaptive passes (optimizer.kind = "adagrad"): the C pass equals its reference, the
ranks' passes and their g2-weighted average equal the same arithmetic done by hand, the L-BFGS
polish reaches the optimum, dense shards train as CSR, and a resumed job keeps its
accumulators."""
import numpy as np
import pytest
import scipy.sparse as sp

from mpireg.data import ShardReader, read_schema, resolve_paths
from mpireg.data.assign import rank_range
from mpireg.data.sparse import write_csr_shard
from mpireg.optim import adagrad as adagrad_module
from mpireg.optim.adagrad import _pass_python, adagrad_pass
from tests.helpers import run_overrides, write_dataset
from tests.helpers import train_job


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    """Sparse logistic rows as CSR shards (and the same rows dense), float64."""
    root = tmp_path_factory.mktemp("online")
    rng = np.random.default_rng(0)
    X = sp.random(3000, 200, density=0.05, format="csr", random_state=rng, dtype=np.float64)
    X.data[:] = 1.0
    w = rng.normal(size=200) * 2
    y = (rng.random(3000) < 1 / (1 + np.exp(-(X @ w - 0.5)))).astype(np.int64)
    for i, part in enumerate(np.array_split(np.arange(3000), 2)):
        write_csr_shard(root / "csr" / f"part-{i:05d}.h5", X[part], y[part], "binary", 2)
    write_dataset(root / "dense", X.toarray(), y, "binary", 2, shards=2)
    return root


def _job(data, *extra):
    return [f"data.train={data}", "model.kind=logistic", "optimizer.kind=adagrad", "optimizer.lr=0.2",
            "optimizer.epochs=2", "optimizer.tol=0", "model.l2=1e-4", *extra]


@pytest.mark.parametrize("data_dtype,index_dtype", [(np.float32, np.int32), (np.float64, np.int64)])
@pytest.mark.parametrize("logistic,fit", [(True, True), (False, False)])
def test_the_c_pass_equals_its_reference(data_dtype, index_dtype, logistic, fit):
    if adagrad_module._csparse is None:
        pytest.skip("the C extension is not built")
    rng = np.random.default_rng(1)
    X = sp.random(400, 60, density=0.1, format="csr", random_state=rng, dtype=data_dtype)
    X.indices = X.indices.astype(index_dtype)
    y = rng.random(400) < 0.4 if logistic else rng.normal(size=400)
    order = rng.permutation(400)
    w1, g1, w2, g2 = np.zeros(61), np.zeros(61), np.zeros(61), np.zeros(61)
    loss = adagrad_pass(X, y, order, w1, g1, 0.1, 0.01, logistic, fit)
    expected = _pass_python(X.indptr.astype(np.int64), X.indices, X.data, y.astype(float), order, w2, g2,
                            0.1, 0.01, logistic, fit)
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(w1, w2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)


def _by_hand(clicks, ranks: int, passes: int, lr=0.2, l2=1e-4, seed=0):
    """Each rank's shuffled pass over its rows, then the g2-weighted average, in one process."""
    schema = read_schema(resolve_paths([clicks / "csr"]))
    X, y = ShardReader(schema, 0, 1, 2**30).read(0, schema.n_rows)
    w, g2 = np.zeros(201), np.zeros(201)
    for epoch in range(passes):
        models = []
        for rank in range(ranks):
            lo, hi = rank_range(schema.n_rows, rank, ranks)
            mine_w, mine_g2 = w.copy(), g2.copy()
            order = np.random.default_rng([seed, epoch, rank, 0]).permutation(hi - lo)
            adagrad_pass(X[lo:hi], y[lo:hi], order, mine_w, mine_g2, lr, l2, True, True)
            models.append((mine_w, mine_g2))
        total = sum(m[1] for m in models)
        weighted = sum(m[0] * m[1] for m in models)
        plain = sum(m[0] for m in models) / ranks
        w = np.where(total > 0, weighted / np.where(total > 0, total, 1), plain)
        g2 = total / ranks
    return w


@pytest.mark.parametrize("ranks", [1, 3])
def test_the_ranks_passes_and_average_are_the_arithmetic_by_hand(clicks, tmp_path, ranks):
    params, summary, _ = train_job(ranks, tmp_path / "run", _job(clicks / "csr"))
    np.testing.assert_allclose(params, _by_hand(clicks, ranks, 2), rtol=1e-12, atol=1e-14)
    assert summary["optimizer"] == "adagrad" and summary["epochs"] == 2


def test_dense_shards_train_as_their_csr_rows(clicks, tmp_path):
    csr, _, _ = train_job(2, tmp_path / "csr", _job(clicks / "csr"))
    dense, _, _ = train_job(2, tmp_path / "dense", _job(clicks / "dense"))
    np.testing.assert_allclose(dense, csr, rtol=1e-12, atol=1e-14)


def test_the_polish_reaches_the_lbfgs_optimum(clicks, tmp_path):
    _, reference, _ = train_job(2, tmp_path / "lbfgs", [f"data.train={clicks / 'csr'}", "model.kind=logistic",
                                                      "optimizer.kind=lbfgs", "optimizer.tol=1e-8",
                                                      "model.l2=1e-4"])
    _, polished, _ = train_job(2, tmp_path / "polish", _job(clicks / "csr", "optimizer.polish=100",
                                                           "optimizer.epochs=1"))
    assert polished["train"]["loss"] == pytest.approx(reference["train"]["loss"], rel=1e-6)
    assert polished["epochs"] > 1  # the pass, then L-BFGS's passes


def test_a_resumed_job_keeps_its_accumulators(clicks, tmp_path):
    straight, _, _ = train_job(2, tmp_path / "straight", _job(clicks / "csr", "optimizer.epochs=3"))
    train_job(2, tmp_path / "resumed", _job(clicks / "csr", "optimizer.epochs=1"))
    resumed, _, _ = train_job(2, tmp_path / "resumed", _job(clicks / "csr", "optimizer.epochs=3"), "--resume")
    np.testing.assert_allclose(resumed, straight, rtol=1e-12)


@pytest.mark.parametrize("overrides,message", [
    (["model.kind=softmax"], "'adagrad' (online adaptive passes) trains linear and logistic models"),
    (["comm.strategy=ps"], "'adagrad' passes run on every rank and average once a pass"),
    (["model.l1=0.1"], "'adagrad' takes an L2 penalty only"),
])
def test_what_adagrad_cannot_do_is_one_clear_error(clicks, tmp_path, overrides, message):
    result = run_overrides(2, tmp_path / "job.toml", [*_job(clicks / "csr"), *overrides])
    assert result.returncode != 0 and message in result.stderr
