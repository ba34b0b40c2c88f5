"""IRLS across ranks: the GLM jobs on shards carrying offsets and weights give the same model,
standard errors included, on 1, 2 and 3 ranks; bad targets in a shard stop every rank with the
file and row."""
import json

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


def test_weights_and_offsets_need_a_glm(claims, tmp_path):
    result = run_overrides(1, tmp_path / "job.toml", [f"data.train={claims / 'freq'}", "model.kind=linear",
                                                       "optimizer.kind=normal"], "--run-dir", tmp_path / "run")
    assert result.returncode != 0 and "carries offset" in result.stderr and "model.kind = 'glm'" in result.stderr
    assert json.dumps  # (the summary is never written)
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
