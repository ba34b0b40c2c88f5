"""IRLS across ranks: the GLM jobs on shards carrying offsets and weights give the same model,
standard errors included, on 1, 2 and 3 ranks; bad targets in a shard stop every rank with the
file and row."""
import numpy as np
import pytest

from mpireg.convert.claims import synthesize_claims
from mpireg.data import write_shard
from tests.helpers import run_overrides, train_job


@pytest.fixture(scope="module")
def claims(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    synthesize_claims("poisson", 6000, 20, root / "freq", shards=3, exposure=True, seed=1)
    synthesize_claims("gamma", 4000, 20, root / "sev", shards=2, seed=2)
    return root


@pytest.mark.parametrize("task,family", [("freq", "poisson"), ("sev", "gamma")])
def test_a_glm_job_is_the_same_on_any_rank_count(claims, tmp_path, task, family):
    job = [f"data.train={claims / task}", "model.kind=glm", f"model.family={family}", "model.link=log",
           "optimizer.kind=irls", "optimizer.tol=1e-9"]
    results = {n: train_job(n, tmp_path / f"r{n}", job) for n in (1, 2, 3)}
    params, summary, _ = results[1]
    glm = summary["glm"]
    assert glm["converged"] and glm["terms"][0] == "intercept" and len(glm["std_errors"]) == 21
    assert summary["plan"]["procedure"] == "irls"
    for n in (2, 3):
        other_params, other, _ = results[n]
        np.testing.assert_allclose(other_params, params, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(other["glm"]["std_errors"], glm["std_errors"], rtol=1e-9)
        assert other["glm"]["deviance"] == pytest.approx(glm["deviance"], rel=1e-11)
        assert other["glm"]["null_deviance"] == pytest.approx(glm["null_deviance"], rel=1e-11)


def test_shards_offsets_are_the_api_offsets(claims, tmp_path):
    """What the job reads from the shards' datasets is what the API is handed as arrays."""
    import h5py

    import mpireg

    params, summary, _ = train_job(1, tmp_path / "cli", [f"data.train={claims / 'freq'}", "model.kind=glm",
                                                         "model.family=poisson", "optimizer.kind=irls",
                                                         "optimizer.tol=1e-10"])
    parts = [h5py.File(p, "r") for p in sorted((claims / "freq").glob("*.h5"))]
    X = np.concatenate([f["X"][:] for f in parts])
    y = np.concatenate([f["y"][:] for f in parts])
    offset = np.concatenate([f["offset"][:] for f in parts])
    api = mpireg.GeneralizedLinearRegressor(family="poisson", tol=1e-10).fit(X, y, offset=offset)
    np.testing.assert_allclose(np.r_[api.coef_, api.intercept_], params, rtol=1e-9)
    np.testing.assert_allclose(api.std_errors_, summary["glm"]["std_errors"], rtol=1e-9)


def test_a_negative_count_in_a_shard_stops_every_rank_with_file_and_row(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(2):
        y = rng.poisson(1.0, 50).astype(float)
        if k == 1:
            y[17] = -2.0
        write_shard(tmp_path / "bad" / f"part-{k}.h5", rng.standard_normal((50, 3)), y, "regression")
    result = run_overrides(2, tmp_path / "job.toml", [f"data.train={tmp_path / 'bad'}", "model.kind=glm",
                                                       "model.family=poisson", "optimizer.kind=irls",
                                                       "run.progress=false"], "--run-dir", tmp_path / "run")
    assert result.returncode != 0
    assert "part-1.h5: row 17 holds y (the poisson family needs a count >= 0): -2.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_weighted_shards_train_every_linear_model(claims, tmp_path):
    """Shards with weights and offsets train model.kind = "linear" (the weighted normal equations)
    to the GLM's gaussian optimum; the adaptive passes, which read plain targets, refuse them."""
    from tests.inprocess import train

    job = [f"data.train={claims / 'sev'}"]
    _, linear = train(tmp_path / "linear", [*job, "model.kind=linear", "optimizer.kind=normal"])
    _, glm = train(tmp_path / "glm", [*job, "model.kind=glm", "model.family=gaussian", "optimizer.kind=irls",
                                      "optimizer.tol=1e-12"])
    np.testing.assert_allclose(linear, glm, rtol=1e-9)
    result = run_overrides(1, tmp_path / "job.toml", [f"data.train={claims / 'freq'}", "model.kind=linear",
                                                       "optimizer.kind=adagrad"], "--run-dir", tmp_path / "run")
    assert result.returncode != 0 and "carries offset" in result.stderr and "'adagrad'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def test_the_other_solvers_reach_the_irls_optimum(claims, tmp_path):
    """A GLM's [y, w, offset] rows go through L-BFGS's passes and Adam's batches too: L-BFGS to
    the same coefficients, Adam (a constant step, float32) to the same objective within 1e-2."""
    from tests.inprocess import train

    job = [f"data.train={claims / 'freq'}", "model.kind=glm", "model.family=poisson"]
    reference_summary, reference = train(tmp_path / "irls", [*job, "optimizer.kind=irls", "optimizer.tol=1e-10"])
    _, params = train(tmp_path / "lbfgs", [*job, "optimizer.kind=lbfgs", "optimizer.tol=1e-12"])
    np.testing.assert_allclose(params, reference, rtol=1e-4, atol=1e-5)
    summary, _ = train(tmp_path / "adam", [*job, "optimizer.kind=adam", "optimizer.lr=0.003", "optimizer.tol=0",
                                           "optimizer.epochs=30", "optimizer.batch_size=128"])
    assert summary["train"]["loss"] == pytest.approx(reference_summary["train"]["loss"], rel=1e-2)
    assert summary["train"]["weight"] == pytest.approx(6000)


def test_rows_that_weigh_nothing_in_all_stop_every_rank(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(2):
        write_shard(tmp_path / "zero" / f"part-{k}.h5", rng.standard_normal((30, 2)), rng.poisson(1.0, 30).astype(float),
                    "regression", w=np.zeros(30))
    result = run_overrides(2, tmp_path / "job.toml", [f"data.train={tmp_path / 'zero'}", "model.kind=glm",
                                                       "model.family=poisson", "optimizer.kind=irls",
                                                       "run.progress=false"], "--run-dir", tmp_path / "run")
    assert result.returncode != 0 and "the rows of every rank weigh 0 in all" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def weighted_classes(tmp_path_factory):
    """Three classes in shards that carry weights and offsets."""
    root = tmp_path_factory.mktemp("weighted")
    rng = np.random.default_rng(3)
    for k in range(2):
        X = rng.standard_normal((400, 4))
        y = np.argmax(X[:, :3] + rng.gumbel(size=(400, 3)), axis=1)
        write_shard(root / f"part-{k}.h5", X, y, "multiclass", 3, w=rng.integers(1, 4, 400).astype(float),
                    offset=0.1 * rng.standard_normal(400))
    return root


@pytest.mark.parametrize("kind", ["softmax", "mlp"])
def test_weighted_shards_train_softmax_and_mlp_alike_on_any_rank_count(weighted_classes, tmp_path, kind):
    """What a job reads from the datasets w and offset is what the API is handed; 2 ranks equal 1."""
    import h5py

    import mpireg

    job = [f"data.train={weighted_classes}", f"model.kind={kind}", "optimizer.kind=lbfgs", "optimizer.max_iter=30",
           "model.l2=0.01", "optimizer.tol=1e-10", "model.hidden=[4]"]
    one, summary, _ = train_job(1, tmp_path / "r1", job)
    two, _, _ = train_job(2, tmp_path / "r2", job)
    np.testing.assert_allclose(two, one, rtol=1e-6, atol=1e-9)
    parts = [h5py.File(p, "r") for p in sorted(weighted_classes.glob("*.h5"))]
    X, y, w, offset = (np.concatenate([f[name][:] for f in parts]) for name in ("X", "y", "w", "offset"))
    assert summary["train"]["rows"] == int(w.sum())  # the weighted mean's count
    make = (lambda: mpireg.SoftmaxRegression(l2=0.01, tol=1e-10, max_iter=30)) if kind == "softmax" else \
        (lambda: mpireg.MLPClassifier((4,), l2=0.01, solver="lbfgs", tol=1e-10, max_iter=30))
    api = make().fit(X, y, sample_weight=w, offset=offset)
    np.testing.assert_allclose(api._engine_model()[1], one, rtol=1e-6, atol=1e-9)
    assert api.score(str(weighted_classes)) == pytest.approx(api.score(X, y, sample_weight=w, offset=offset))


def test_predictions_of_shards_with_offsets_move_by_them(claims, tmp_path):
    from mpireg.model_io import load_model
    from tests.helpers import run_command

    train_job(1, tmp_path / "run", [f"data.train={claims / 'freq'}", "model.kind=glm", "model.family=poisson",
                                    "optimizer.kind=irls"])
    out = tmp_path / "pred.npy"
    result = run_command(["python", "-m", "mpireg.predict", str(tmp_path / "run" / "model.h5"), str(claims / "freq"),
                          "--out", str(out)])
    assert result.returncode == 0, result.stderr
    import h5py

    parts = [h5py.File(p, "r") for p in sorted((claims / "freq").glob("*.h5"))]
    X, offset = (np.concatenate([f[name][:] for f in parts]) for name in ("X", "offset"))
    model, params, _ = load_model(tmp_path / "run" / "model.h5")
    np.testing.assert_allclose(np.load(out), np.exp(X @ params[:-1] + params[-1] + offset), rtol=1e-6)
