"""The MLP end to end from the CLI under mpiexec: every strategy and compression trains it,
deterministic mode gives the same bits on any rank count, and the digits job reaches
scikit-learn's MLPClassifier accuracy on the same split."""
import json

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier

from mpireg.data import ShardReader, read_schema, resolve_paths
from mpireg.convert.examples import write_example
from tests.helpers import ROOT, run_ranks
from tests.helpers import train_job


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "digits"
    write_example("digits", path, shards=3, seed=0)
    return path


def _rows(path):
    schema = read_schema(resolve_paths([path]))
    return ShardReader(schema, 0, 1, 2**30).read(0, schema.n_rows)


def _job(digits):
    return [f"data.train={digits}", f"data.test={digits}/test", "model.kind=mlp", "model.hidden=[32]",
            "optimizer.kind=adam", "optimizer.lr=0.01", "optimizer.epochs=4", "optimizer.batch_size=64"]


@pytest.mark.parametrize("setting", ["comm.strategy=allreduce", "comm.strategy=ring",
                                     "comm.strategy=hierarchical", "comm.strategy=ps",
                                     "comm.strategy=ps-async", "comm.compression=fp16",
                                     "comm.compression=bf16", "optimizer.kind=lbfgs"])
def test_every_strategy_and_compression_trains_it(digits, tmp_path, setting):
    _, summary, _ = train_job(3, tmp_path / "run", [*_job(digits), setting])
    assert summary["model"] == "mlp"
    assert summary["eval"]["accuracy"] > 0.85, summary["eval"]
    assert summary["train"]["loss"] < 0.6


@pytest.mark.parametrize("strategy,ranks", [("allreduce", (2, 4)), ("ring", (3,))])
def test_deterministic_mode_gives_the_same_bits_on_any_rank_count(digits, tmp_path, strategy, ranks):
    overrides = [*_job(digits), "comm.deterministic=true", "comm.block_rows=32", f"comm.strategy={strategy}"]
    reference, _, _ = train_job(1, tmp_path / "one", overrides)
    for n in ranks:
        params, _, _ = train_job(n, tmp_path / f"p{n}", overrides)
        assert np.array_equal(params, reference), f"{n} ranks differ"


def test_the_digits_job_is_within_a_point_of_scikit_learn(tmp_path):
    """jobs/mlp_digits.toml as a user runs it (its data written on first use), against
    scikit-learn's MLPClassifier with the same layer, optimizer, rate and global batch."""
    job = ROOT / "jobs" / "mlp_digits.toml"
    result = run_ranks(2, job, "--set", "run.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "mlp_digits" / "summary.json").read_text())
    X, y = _rows(tmp_path / "data" / "digits")
    X_test, y_test = _rows(tmp_path / "data" / "digits" / "test")
    theirs = MLPClassifier((128,), learning_rate_init=1e-3, batch_size=200, max_iter=summary["epochs"],
                           random_state=0).fit(X, y).score(X_test, y_test)
    assert summary["eval"]["accuracy"] >= theirs - 0.01, (summary["eval"]["accuracy"], theirs)


def test_ranks_on_one_node_share_its_cores_unless_the_user_says(digits, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    _, _, result = train_job(2, tmp_path / "shared", [*_job(digits), "optimizer.epochs=1"])
    assert "ranks share this node's" in result.stdout + result.stderr
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _, _, result = train_job(2, tmp_path / "user", [*_job(digits), "optimizer.epochs=1"])
    assert "ranks share this node's" not in result.stdout + result.stderr
