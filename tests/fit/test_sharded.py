"""The sharded parameter server (comm.strategy = "sharded"): the same model as the dense
allreduce on the same batches, L1 and L2 applied lazily; traffic by column; resume; errors."""
import json

import numpy as np
import pytest

from mpireg.optim import lazy_penalty as keyshards
from mpireg.optim.lazy_penalty import LazyPenalty
from mpireg.data.sparse import write_csr_shard
from tests.test_sparse import TASKS, _rows
from tests.helpers import train_job


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """Each task's rows as CSR shards, 400 columns, about 3 % of them set in a row: a batch
    touches a part of the columns, so most keys miss most steps."""
    root = tmp_path_factory.mktemp("sharded")
    for task, (kind, classes) in TASKS.items():
        X, y = _rows(task, n=900, d=400, seed=3)
        X *= np.random.default_rng(4).random(X.shape) < 0.2
        for i, part in enumerate(np.array_split(np.arange(len(y)), 3)):
            write_csr_shard(root / task / f"part-{i:05d}.h5", X[part], y[part], kind, classes)
    return root


def _job(data, task, *extra):
    return [f"data.train={data / task}", f"model.kind={task}", "optimizer.kind=sgd", "optimizer.lr=0.05",
            "optimizer.epochs=2", "optimizer.batch_size=16", "optimizer.tol=0", "model.l2=1e-2",
            "model.l1=1e-2", "run.log_every=1", *extra]


@pytest.mark.parametrize("task,servers", [("linear", 0), ("logistic", 1), ("logistic", 2), ("softmax", 0)])
def test_the_sharded_server_trains_what_the_dense_allreduce_trains(wide, tmp_path, task, servers):
    reference, _, _ = train_job(3, tmp_path / "allreduce", _job(wide, task))
    params, summary, _ = train_job(3, tmp_path / "sharded",
                                _job(wide, task, "comm.strategy=sharded", f"comm.servers={servers}"))
    assert summary["strategy"] == "sharded"
    np.testing.assert_allclose(params, reference, rtol=1e-9, atol=1e-14)
    assert np.sum(reference == 0) > 0  # the L1 step zeroed some coefficients: the lazy path did too
    np.testing.assert_array_equal(params == 0, reference == 0)


def test_a_step_moves_the_batch_columns_not_the_dimension(wide, tmp_path):
    small = "optimizer.batch_size=4"  # 4 rows x ~12 columns: under 50 of the 401 keys
    train_job(3, tmp_path / "sharded", _job(wide, "logistic", "comm.strategy=sharded", small))
    train_job(3, tmp_path / "allreduce", _job(wide, "logistic", small))

    def wire(run):
        records = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return np.mean([r["wire_bytes"] for r in records if r["type"] == "step"])

    dense = 401 * 8  # the gradient of every coefficient and the intercept
    assert wire("allreduce") >= dense
    # a key out (8 bytes), its value back (8), its gradient sum out (8): 24 bytes a key
    assert 0 < wire("sharded") < 50 * 24 < 0.4 * dense


def test_a_resumed_run_equals_a_straight_run(wide, tmp_path):
    straight, _, _ = train_job(2, tmp_path / "straight", _job(wide, "softmax", "comm.strategy=sharded",
                                                           "optimizer.epochs=3"))
    train_job(2, tmp_path / "resumed", _job(wide, "softmax", "comm.strategy=sharded", "optimizer.epochs=1"))
    resumed, _, _ = train_job(2, tmp_path / "resumed", _job(wide, "softmax", "comm.strategy=sharded",
                                                         "optimizer.epochs=3"), "--resume")
    np.testing.assert_allclose(resumed, straight, rtol=1e-12, atol=1e-15)


def test_auto_takes_the_sparse_exchange_where_it_moves_far_fewer_bytes(wide, tmp_path):
    import scipy.sparse as sp

    rng = np.random.default_rng(7)
    n, d = 300, 20_000  # 10 entries a row over 20,000 columns: a batch of 4 touches ~40 keys
    X = sp.random(n, d, density=10 / d, format="csr", random_state=7)
    y = (X @ rng.normal(size=d) > 0).astype(np.int64)
    for i, part in enumerate(np.array_split(np.arange(n), 2)):
        write_csr_shard(tmp_path / "huge" / f"part-{i:05d}.h5", X[part].toarray(), y[part], "binary", 2)
    job = _job(tmp_path, "huge", "optimizer.batch_size=4", "optimizer.epochs=1")
    job[1] = "model.kind=logistic"
    reference, _, _ = train_job(2, tmp_path / "allreduce", job)
    params, summary, result = train_job(2, tmp_path / "auto", job + ["comm.strategy=auto"])
    assert summary["strategy"] == "sharded" and "comm.strategy = auto: sharded exchange" in result.stdout
    np.testing.assert_allclose(params, reference, rtol=1e-9, atol=1e-14)
    _, summary, result = train_job(2, tmp_path / "auto-wide", _job(wide, "logistic", "comm.strategy=auto"))
    assert summary["strategy"] != "sharded" and "comm.strategy = auto: dense exchange" in result.stdout


@pytest.mark.parametrize("servers", [1, 2])
def test_the_asynchronous_server_reaches_the_optimum_within_its_staleness(wide, tmp_path, servers):
    from tests.inprocess import train

    best, _ = train(tmp_path / "ref", [f"data.train={wide / 'logistic'}", "model.kind=logistic", "model.l2=1e-2",
                                       "optimizer.kind=lbfgs", "optimizer.tol=1e-10"])
    _, summary, result = train_job(4, tmp_path / "async", [
        *_job(wide, "logistic", "comm.strategy=sharded-async", f"comm.servers={servers}", "comm.max_staleness=2",
              "optimizer.epochs=15", "optimizer.lr=0.2", "optimizer.schedule=cosine"), "model.l1=0"])
    staleness = summary["staleness"]
    assert staleness["updates"] > 0 and staleness["max_clock_gap"] <= 2
    assert summary["train"]["loss"] <= best["train"]["loss"] * 1.02  # within 2 % of the optimum
    assert "sharded-async:" in result.stdout and "clock gap at most" in result.stdout


def test_the_asynchronous_server_needs_a_worker(wide, tmp_path):
    from tests.helpers import run_overrides

    result = run_overrides(2, tmp_path / "job.toml", [*_job(wide, "logistic", "comm.strategy=sharded-async",
                                                            "comm.servers=2")], cwd=tmp_path)
    assert result.returncode != 0 and "'sharded-async' needs a worker rank" in result.stderr
    assert result.stderr.count("error:") == 1, result.stderr  # one message, not one per rank
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("steps", [40])
def test_lazy_penalties_equal_the_dense_step_every_step(monkeypatch, steps):
    """Random touched keys, a decaying learning rate, L1 and L2, and the running products
    restarted often (a tiny FLUSH_BELOW would do it after years of steps)."""
    monkeypatch.setattr(keyshards, "FLUSH_BELOW", 0.9)
    rng = np.random.default_rng(0)
    n, width, l2, l1 = 50, 2, 0.05, 0.05
    penalized = np.arange(n) < n - 1
    dense = rng.normal(size=(n, width)) * 0.1
    lazy = dense.copy()
    penalty = LazyPenalty(n, l2, l1, penalized)
    for t in range(steps):
        lr = 0.5 / (1 + t)
        keys = np.unique(rng.integers(0, n, 6))
        grad = np.zeros((n, width))
        grad[keys] = rng.normal(size=(len(keys), width))
        pen = penalized[:, None]
        dense = np.where(pen, (1 - lr * l2) * dense, dense) - lr * grad
        dense = np.where(pen, np.sign(dense) * np.maximum(np.abs(dense) - lr * l1, 0), dense)
        penalty.step(lazy, keys, grad[keys], lr)
    penalty.catch_up(lazy, np.arange(n))
    np.testing.assert_allclose(lazy, dense, rtol=1e-12, atol=1e-15)
    assert np.sum(dense == 0) > 5 and np.array_equal(lazy == 0, dense == 0)


@pytest.mark.parametrize("overrides,message", [
    (["optimizer.kind=adam"], "the sharded server steps only the keys a batch touches"),
    (["optimizer.momentum=0.9"], "not 'sgd' with momentum"),
    (["model.kind=mlp"], "linear, logistic and softmax models"),
])
def test_what_the_sharded_server_cannot_train_is_one_clear_error(wide, tmp_path, overrides, message):
    from tests.helpers import run_overrides

    result = run_overrides(2, tmp_path / "job.toml", [*_job(wide, "logistic", "comm.strategy=sharded"),
                                                      *overrides], cwd=tmp_path)
    assert result.returncode != 0 and message in result.stderr


def test_dense_data_is_one_clear_error_on_every_rank(tmp_path):
    from tests.helpers import run_overrides, write_dataset

    X, y = _rows("logistic", n=60, d=5)
    write_dataset(tmp_path / "dense", X, y, "binary", 2, shards=2)
    result = run_overrides(2, tmp_path / "job.toml", [f"data.train={tmp_path / 'dense'}", "model.kind=logistic",
                                                      "optimizer.kind=sgd", "comm.strategy=sharded"], cwd=tmp_path)
    assert result.returncode != 0 and "is dense (use 'allreduce', or CSR shards)" in result.stderr
    assert result.stderr.count("error:") == 1, result.stderr
    assert not (tmp_path / "runs").exists(), "a job that failed before training left its run directory"


def test_the_hashed_linear_job_runs_as_a_user_runs_it(tmp_path):
    from tests.helpers import ROOT, run_ranks

    result = run_ranks(2, ROOT / "jobs" / "hashed_linear.toml", "--set", "run.progress=false",
                       "--set", "data.synth.rows=20000", "--set", "data.synth.test_rows=2000",
                       "--set", "data.synth.hash_bits=18", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "hashed_linear" / "summary.json").read_text())
    assert summary["strategy"] == "sharded" and summary["eval"]["rows"] == 2000
    assert summary["train"]["r2"] > 0.3, summary["train"]  # 20,000 rows of 2^18 columns: some signal
