"""The Python API in one process: scikit-learn's estimators, contracts and tools; the CLI's engine,
errors and model files."""
import inspect

import numpy as np
import pytest
from sklearn import linear_model as sk
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import mpireg
from mpireg.api.estimator import PARAMETER_KEYS
from mpireg.config import JobConfig, load_job
from mpireg.errors import ConfigError
from mpireg.predict import predict_file
from tests import inprocess
from tests.api.api_worker import all_rows

from tests.helpers import ROOT


def _relative(a, b):
    return np.abs(np.asarray(a) - b).max() / np.abs(b).max()


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_linear_and_ridge_equal_scikit_learn():
    X, y = load_diabetes(return_X_y=True)
    for ours, theirs in ((mpireg.LinearRegression(), sk.LinearRegression()),
                         (mpireg.LinearRegression(alpha=3.0), sk.Ridge(alpha=3.0)),
                         (mpireg.LinearRegression(alpha=3.0, solver="lbfgs", tol=1e-12), sk.Ridge(alpha=3.0))):
        ours.fit(X, y), theirs.fit(X, y)
        assert _relative(ours.coef_, theirs.coef_) < 1e-4
        assert ours.intercept_ == pytest.approx(theirs.intercept_, rel=1e-4)
        assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-6)
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-4)


def test_logistic_equals_scikit_learn_binary_and_multinomial(cancer):
    digits_X, digits_y = load_digits(return_X_y=True)
    for X, y in (cancer, (digits_X / 16, digits_y)):
        ours = mpireg.LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
        theirs = sk.LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(X, y)
        assert ours.coef_.shape == theirs.coef_.shape and ours.intercept_.shape == theirs.intercept_.shape
        assert _relative(ours.coef_, theirs.coef_) < 1e-4
        assert _relative(ours.intercept_, theirs.intercept_) < 1e-4
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5)
        assert (ours.predict(X) == theirs.predict(X)).mean() > 0.999
        assert ours.n_iter_ >= 1


def test_softmax_on_two_classes_matches_the_logistic_decision(cancer):
    X, y = cancer
    # At the optimum the two class vectors are w/2 and -w/2, so softmax's penalty on both is half
    # the logistic one on w: SoftmaxRegression(C / 2) is LogisticRegression(C).
    logistic = mpireg.LogisticRegression(C=1.0, tol=1e-10).fit(X, y)
    softmax = mpireg.SoftmaxRegression(C=0.5, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(softmax.predict_proba(X), logistic.predict_proba(X), atol=1e-5)
    np.testing.assert_allclose(softmax.decision_function(X), logistic.decision_function(X), atol=1e-3)


# Every check of scikit-learn's suite runs, its sample_weight checks included (every estimator's
# fit takes sample_weight). Not run, by design: the array-API check (CuPy arrays are the GPU
# door) and, without pandas installed, the DataFrame check.
@pytest.mark.parametrize("estimator", [mpireg.LinearRegression(), mpireg.LogisticRegression(),
                                       mpireg.SoftmaxRegression(), mpireg.MLPClassifier(),
                                       mpireg.MLPRegressor()], ids=lambda e: type(e).__name__)
def test_scikit_learn_check_estimator(estimator):
    check_estimator(estimator)


# The CV estimators' folds are a hash of the global row (the same on any number of ranks), so a
# row repeated k times is not a row of weight k in the same fold: scikit-learn's weight
# equivalence check hands them fold splits (cv=list) the hash cannot take.
HASHED_FOLDS = {"check_sample_weight_equivalence_on_dense_data": "folds are a hash of the row index",
                "check_sample_weight_equivalence_on_sparse_data": "folds are a hash of the row index"}


@pytest.mark.parametrize("estimator", [mpireg.ElasticNetCV(n_alphas=10), mpireg.GeneralizedLinearRegressorCV(n_alphas=10)],
                         ids=lambda e: type(e).__name__)
def test_the_cv_estimators_pass_scikit_learns_checks(estimator):
    check_estimator(estimator, expected_failed_checks=HASHED_FOLDS)


def test_pipeline_and_grid_search(cancer):
    X, y = load_breast_cancer(return_X_y=True)
    grid = {"logisticregression__C": [0.01, 0.1, 1.0]}
    ours = GridSearchCV(make_pipeline(StandardScaler(), mpireg.LogisticRegression(tol=1e-8)), grid, cv=3).fit(X, y)
    theirs = GridSearchCV(make_pipeline(StandardScaler(), sk.LogisticRegression(tol=1e-8)), grid, cv=3).fit(X, y)
    assert ours.best_params_ == theirs.best_params_
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"],
                               atol=0.01)


def test_api_and_cli_give_the_same_model(datasets, tmp_path):
    job = ["optimizer.kind=lbfgs", "model.l2=1e-3", "optimizer.tol=1e-9"]
    summary, cli_params = inprocess.train(tmp_path / "cli", [f"data.train={datasets['logistic']}",
                                                             "model.kind=logistic", *job])
    api = mpireg.LogisticRegression(l2=1e-3, solver="lbfgs", tol=1e-9).fit(str(datasets["logistic"]))
    np.testing.assert_array_equal(api.coef_.ravel(), cli_params[:-1])
    assert api.intercept_[0] == cli_params[-1]
    assert api.summary_["train"] == summary["train"]
    # the CLI's model file loads as the estimator; the API's file serves mpireg.predict
    X, _ = all_rows(datasets["logistic"] / "test")
    loaded = mpireg.load(tmp_path / "cli" / "model.h5")
    assert type(loaded) is mpireg.LogisticRegression
    np.testing.assert_array_equal(loaded.predict_proba(X), api.predict_proba(X))
    api.save(tmp_path / "api.h5")
    predict_file(tmp_path / "api.h5", [str(datasets["logistic"] / "test")], tmp_path / "p.npy", proba=True)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), api.predict_proba(X), rtol=1e-12)  # both columns, as the API


def test_a_job_file_is_the_estimators_parameters(tmp_path):
    estimator = mpireg.LogisticRegression.from_job(f"{ROOT}/jobs/logistic_lbfgs.toml")
    cfg = load_job(f"{ROOT}/jobs/logistic_lbfgs.toml")
    assert estimator.solver == cfg.optimizer.kind and estimator.l2 == cfg.model.l2
    assert estimator.get_params()["tol"] == cfg.optimizer.tol
    with pytest.raises(ConfigError, match=r"job: optimizer.lr is the parameter lr= of LinearRegression"):
        mpireg.LinearRegression(job={"optimizer": {"lr": 0.5}}).fit(np.ones((4, 1)), np.arange(4.0))
    with pytest.raises(ConfigError, match=r"comm.fusion_byte: unknown key; did you mean comm.fusion_bytes"):
        mpireg.LinearRegression(job={"comm": {"fusion_byte": 8}}).fit(np.ones((4, 1)), np.arange(4.0))
    # every parameter default is the job file's default
    defaults = JobConfig().to_dict()
    params = inspect.signature(mpireg.LogisticRegression).parameters
    for name, key in PARAMETER_KEYS.items():
        value = defaults
        for part in key.split("."):
            value = value[part]
        assert params[name].default == (value if name != "solver" else "auto"), name


def test_saved_models_keep_labels_and_the_estimator(tmp_path):
    X, y = load_digits(return_X_y=True)
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    fitted = mpireg.SoftmaxRegression(solver="adam", lr=0.01, epochs=2, dtype="float32").fit(X / 16, labels)
    fitted.save(tmp_path / "m.h5")
    loaded = mpireg.load(tmp_path / "m.h5")
    assert type(loaded) is mpireg.SoftmaxRegression and loaded.solver == "adam" and loaded.dtype == "float32"
    assert list(loaded.classes_) == sorted(set(labels))
    np.testing.assert_array_equal(loaded.predict(X / 16), fitted.predict(X / 16))
    assert loaded.score(X / 16, labels) == fitted.score(X / 16, labels) > 0.8


def test_errors_are_value_errors_that_name_the_field(tmp_path, monkeypatch):
    X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20.0)
    with pytest.raises(ValueError, match="NaN"):
        mpireg.LinearRegression().fit(np.where(X > 1.5, np.nan, X), y)
    with pytest.raises(ConfigError, match="give either alpha= .* or l2="):
        mpireg.LinearRegression(alpha=1.0, l2=0.1).fit(X, y)
    with pytest.raises(ConfigError, match="comm.strategy: expected one of"):
        mpireg.LinearRegression(strategy="rign").fit(X, y)
    with pytest.raises(ValueError, match="no such file or directory: 'missing'"):
        mpireg.LinearRegression().fit("missing")
    with pytest.raises(ValueError, match="X has 2 features, but LinearRegression is expecting 3"):
        mpireg.LinearRegression().fit(X, y).predict(X[:, :2])


def test_no_run_directory_means_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = np.random.default_rng(0).standard_normal((50, 3)), np.arange(50.0)
    mpireg.LinearRegression(solver="sgd", epochs=2).fit(X, y)
    assert list(tmp_path.iterdir()) == []
    mpireg.LinearRegression(solver="sgd", epochs=2, run_dir="run").fit(X, y)
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"model.h5", "summary.json", "metrics.jsonl",
                                                               "config.toml", "checkpoints"}


def test_from_job_fits_the_jobs_own_data_as_the_cli_does(tmp_path, monkeypatch):
    from mpi4py import MPI

    from mpireg.fit import train as engine
    from mpireg.model_io import load_model

    monkeypatch.chdir(tmp_path)
    job, overrides = ROOT / "jobs" / "quickstart.toml", ["data.synth.rows=3000", "optimizer.epochs=2"]
    api = mpireg.LogisticRegression.from_job(job, overrides).fit()  # makes data/quickstart first
    engine(load_job(job, overrides + ["run.progress=false"]), MPI.COMM_SELF, tmp_path / "cli")
    _, cli_params, _ = load_model(tmp_path / "cli" / "model.h5")
    np.testing.assert_array_equal(api.coef_.ravel(), cli_params[:-1])
    assert api.score("data/quickstart/test") == api.summary_["eval"]["accuracy"]


def test_arrays_must_live_where_the_device_says():
    with pytest.raises(ConfigError, match="device: 'gpu', but X is a numpy array"):
        mpireg.LinearRegression(device="gpu").fit(np.ones((4, 2)), np.arange(4.0))


@pytest.mark.skipif(not __import__("importlib").util.find_spec("cupy"), reason="needs CuPy and a GPU")
def test_cupy_arrays_fit_on_the_gpu_as_numpy_arrays_on_the_cpu():
    import cupy

    X, y = load_diabetes(return_X_y=True)
    cpu = mpireg.LinearRegression(alpha=1.0).fit(X, y)
    gpu = mpireg.LinearRegression(alpha=1.0, device="gpu").fit(cupy.asarray(X), cupy.asarray(y))
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-8)
    np.testing.assert_allclose(cupy.asnumpy(gpu.predict(cupy.asarray(X))), cpu.predict(X), rtol=1e-8)
