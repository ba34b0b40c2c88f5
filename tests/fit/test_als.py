"""Matrix factorisation end to end from the CLI under mpiexec: ALS gives the same factors on
1, 2 and 4 ranks (allgathered or pulled factor rows) and equals a plain per-row NumPy ALS;
held-out RMSE reaches the noise floor; SGD-MF trains through the parameter servers; a job
resumes where it stopped; jobs/mf_synth.toml runs as a user runs it."""
import json
import sys

import numpy as np
import pytest

from mpireg.data import ShardReader, read_schema, resolve_paths
from mpireg.convert.ratings import synth_ratings
from mpireg.model_io import load_model
from tests.helpers import ROOT, run_command, run_overrides, run_ranks
from tests.helpers import train_job

NOISE = 0.1


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    path = tmp_path_factory.mktemp("ratings") / "r"
    synth_ratings(300, 120, 4, 12000, path, shards=3, test_rows=1500, noise=NOISE, seed=3, dtype="float64")
    return path


def _job(ratings, *extra):
    return [f"data.train={ratings}", f"data.test={ratings}/test", "model.kind=mf", "model.rank=4",
            "model.l2=0.01", "optimizer.kind=als", "optimizer.epochs=8", "optimizer.tol=0", *extra]


def _factors(run_dir):
    model, params, _ = load_model(run_dir / "model.h5")
    return model, params, model.layout.views(params)


def _epochs(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["type"] == "epoch"]


def test_als_gives_the_same_factors_on_1_2_and_4_ranks(ratings, tmp_path):
    reference, _, _ = train_job(1, tmp_path / "one", _job(ratings))
    for n, exchange in ((2, "allgather"), (2, "pull"), (4, "pull"), (4, "allgather")):
        params, summary, _ = train_job(n, tmp_path / f"{n}{exchange}", _job(ratings, f"comm.factor_exchange={exchange}"))
        np.testing.assert_allclose(params, reference, rtol=1e-10, atol=1e-12, err_msg=f"{n} ranks, {exchange}")
        assert summary["ranks"] == n


def test_als_equals_a_plain_numpy_als_and_reaches_the_noise_floor(ratings, tmp_path):
    params, summary, _ = train_job(2, tmp_path / "run", _job(ratings, "comm.factor_exchange=pull"))
    model, _, views = _factors(tmp_path / "run")
    schema = read_schema(resolve_paths([ratings]))
    X, y = ShardReader(schema, 0, 1, 2**30).read(0, schema.n_rows)
    U, V = _numpy_als(X, y, model, epochs=8, l2=0.01)
    np.testing.assert_allclose(views["user_factors"], U, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(views["item_factors"], V, rtol=1e-8, atol=1e-10)
    rmse = [e["eval"]["rmse"] for e in _epochs(tmp_path / "run")]
    assert len(rmse) == 8 and rmse[-1] < rmse[0]
    assert rmse[-1] < 1.15 * NOISE, rmse  # the floor is the noise s.d.
    assert summary["eval"]["rmse"] == pytest.approx(rmse[-1], rel=1e-9)  # per epoch = final evaluation


def _numpy_als(X, y, model, epochs, l2):
    """The textbook loop: every user, then every item, solves its own normal equations."""
    mean = y.mean()
    rng = np.random.default_rng([model.seed, 0x1E75])
    V = rng.standard_normal((model.n_items, model.rank)) / np.sqrt(model.rank)
    V[np.bincount(X[:, 1], minlength=model.n_items) == 0] = 0
    U = np.zeros((model.n_users, model.rank))
    r = y - mean
    for _ in range(epochs):
        for solve, other, key, col in ((U, V, 0, 1), (V, U, 1, 0)):
            for row in range(solve.shape[0]):
                mine = X[:, key] == row
                F = other[X[mine, col]]
                A = F.T @ F + l2 * mine.sum() * np.eye(model.rank)
                solve[row] = np.linalg.solve(A, F.T @ r[mine]) if mine.any() else 0
    return U, V


@pytest.mark.parametrize("strategy,ranks", [("ps", 3), ("ps-async", 3), ("allreduce", 2)])
def test_sgd_mf_trains_through_the_parameter_servers(ratings, tmp_path, strategy, ranks):
    overrides = _job(ratings, "optimizer.kind=adam", "optimizer.lr=0.02", "optimizer.epochs=12",
                     "optimizer.batch_size=128", f"comm.strategy={strategy}")
    _, summary, _ = train_job(ranks, tmp_path / "run", overrides)
    assert summary["strategy"] == strategy and summary["model"] == "mf"
    assert summary["eval"]["rmse"] < 2 * NOISE, summary["eval"]


def test_sgd_mf_on_the_parameter_server_equals_allreduce(ratings, tmp_path):
    overrides = _job(ratings, "optimizer.kind=sgd", "optimizer.lr=0.05", "optimizer.epochs=2",
                     "optimizer.batch_size=64")
    reference, _, _ = train_job(3, tmp_path / "allreduce", overrides)
    params, _, _ = train_job(3, tmp_path / "ps", [*overrides, "comm.strategy=ps"])
    np.testing.assert_allclose(params, reference, rtol=1e-9, atol=1e-12)


def test_als_resumes_where_it_stopped(ratings, tmp_path):
    straight, _, _ = train_job(2, tmp_path / "straight", _job(ratings, "optimizer.epochs=6"))
    train_job(2, tmp_path / "resumed", _job(ratings, "optimizer.epochs=3"))
    _, _, result = train_job(2, tmp_path / "resumed", _job(ratings, "optimizer.epochs=6"), "--resume")
    assert "resumed from" in result.stderr + result.stdout
    resumed = load_model(tmp_path / "resumed" / "model.h5")[1]
    np.testing.assert_allclose(resumed, straight, rtol=1e-12, atol=1e-14)
    assert [e["epoch"] for e in _epochs(tmp_path / "resumed")] == [1, 2, 3, 4, 5, 6]


def test_held_out_users_and_items_without_training_ratings_get_the_mean(tmp_path):
    """A test set whose users and items never rated in training: an answer, not an error."""
    from mpireg.data import write_shard

    rng = np.random.default_rng(0)
    train = np.stack([rng.integers(0, 20, 400), rng.integers(0, 10, 400)], axis=1)
    y = rng.normal(3.0, 1.0, 400)
    attrs = dict(n_users=25, n_items=12)
    write_shard(tmp_path / "r" / "part-00000.h5", train, y, "ratings", attrs=attrs)
    cold = np.array([[21, 0], [3, 11], [24, 10]])
    write_shard(tmp_path / "r" / "test" / "part-00000.h5", cold, np.array([1.0, 2.0, 3.0]), "ratings", attrs=attrs)
    _, summary, _ = train_job(2, tmp_path / "run", _job(tmp_path / "r"))
    model, params, views = _factors(tmp_path / "run")
    np.testing.assert_allclose(model.predict(params, cold), y.mean(), rtol=1e-6)
    assert not views["user_factors"][20:].any() and not views["item_factors"][10:].any()
    assert summary["eval"]["rows"] == 3
    # the CLI's predictions for a ratings shard: the model's, cold pairs at the mean
    result = run_command([sys.executable, "-m", "mpireg.predict", tmp_path / "run" / "model.h5",
                          tmp_path / "r" / "test", "--out", tmp_path / "pred.npy"])
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "pred.npy"), model.predict(params, cold), rtol=1e-12)
    # top-k from the CLI: every user of the training shards, what they rated left out
    result = run_command([sys.executable, "-m", "mpireg.predict", tmp_path / "run" / "model.h5",
                          tmp_path / "r", "--top", "2", "--exclude-seen", "--out", tmp_path / "top.npy"])
    assert result.returncode == 0, result.stderr
    top = np.load(tmp_path / "top.npy")
    users = np.unique(train[:, 0])
    assert top[:, 0].tolist() == users.tolist()
    np.testing.assert_array_equal(top[:, 1:], model.recommend(params, users, 2, exclude=train)[0])


@pytest.mark.parametrize("overrides,message", [
    (["model.kind=linear", "optimizer.kind=als"], "'als' (alternating least squares) trains model.kind = 'mf'"),
    (["optimizer.kind=lbfgs"], "model.kind = 'mf' trains with 'als', 'sgd' or 'adam'"),
    (["comm.strategy=ps"], "ALS moves factor rows between the ranks that own them"),
    (["model.l1=0.1"], "matrix factorisation takes an L2 penalty only"),
])
def test_impossible_combinations_are_one_clear_error(ratings, tmp_path, overrides, message):
    result = run_overrides(2, tmp_path / "job.toml", [*_job(ratings), *overrides])
    assert result.returncode != 0
    assert message in result.stderr


def test_ratings_data_for_a_linear_model_names_the_model_to_use(ratings, tmp_path):
    result = run_overrides(2, tmp_path / "job.toml", [f"data.train={ratings}", "model.kind=linear"])
    assert result.returncode != 0
    assert "use model.kind = 'mf'" in result.stderr


def test_the_mf_job_runs_as_a_user_runs_it(tmp_path):
    result = run_ranks(2, ROOT / "jobs" / "mf_synth.toml", "--set", "run.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "mf_synth" / "summary.json").read_text())
    noise = 0.1  # the job's data.synth.noise
    assert summary["eval"]["rmse"] < 1.2 * noise, summary["eval"]


def test_held_out_ratings_of_another_catalogue_are_one_clear_error(tmp_path):
    from mpireg.data import write_shard

    pairs, ratings = np.array([[0, 0], [1, 1]]), np.array([1.0, 2.0])
    write_shard(tmp_path / "r" / "part-00000.h5", pairs, ratings, "ratings", attrs=dict(n_users=2, n_items=2))
    write_shard(tmp_path / "r" / "test" / "part-00000.h5", pairs, ratings, "ratings",
                attrs=dict(n_users=2, n_items=5))
    result = run_overrides(2, tmp_path / "job.toml", _job(tmp_path / "r"))
    assert result.returncode != 0
    assert "has n_items = 5, but the training data" in result.stderr


def test_a_bad_rating_one_rank_streams_ends_every_rank_with_its_row(tmp_path):
    """Streamed ratings (a budget of a few rows): the bad index is met while one rank sums its
    statistics; every rank stops with the file and row, none waits."""
    from mpireg.data import write_shard

    rng = np.random.default_rng(0)
    pairs = np.stack([rng.integers(0, 10, 400), rng.integers(0, 5, 400)], axis=1)
    pairs[390] = [10, 0]  # the last rank's rows; users run 0..9
    write_shard(tmp_path / "r" / "part-00000.h5", pairs, rng.normal(size=400), "ratings",
                attrs=dict(n_users=10, n_items=5))
    result = run_overrides(2, tmp_path / "job.toml", [*_job(tmp_path / "r"), "data.memory_budget_mb=0.0005",
                                                      "data.test=[]"], timeout=120)
    assert result.returncode != 0
    assert "part-00000.h5: X has user index 10 at row 390" in result.stderr
