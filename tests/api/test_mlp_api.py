"""MLPClassifier and MLPRegressor: scikit-learn's MLP on the same data, model files, errors."""
import inspect

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

import mpireg
from mpireg.errors import ConfigError
from mpireg.predict import predict_file
from tests import inprocess
from tests.helpers import ROOT, write_dataset


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.2, random_state=0)


def test_digits_accuracy_within_one_point_of_scikit_learn(digits):
    """The same network (64-128-10, ReLU, softmax), optimizer (Adam, lr 1e-3, 200 rows a step)
    and 200 epochs as scikit-learn's MLPClassifier defaults."""
    X_train, X_test, y_train, y_test = digits
    ours = mpireg.MLPClassifier((128,), alpha=1e-4, epochs=200, seed=0).fit(X_train, y_train)
    theirs = SkMLPClassifier((128,), alpha=1e-4, max_iter=200, random_state=0).fit(X_train, y_train)
    ours_acc, theirs_acc = ours.score(X_test, y_test), theirs.score(X_test, y_test)
    assert ours_acc >= theirs_acc - 0.01, (ours_acc, theirs_acc)
    assert ours_acc > 0.96
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    assert (ours.n_layers_, ours.n_outputs_, ours.out_activation_) == (3, 10, "softmax")
    proba = ours.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (ours.classes_[proba.argmax(axis=1)] == ours.predict(X_test)).all()
    assert ours.loss_ < 0.1


def test_binary_labels_and_two_probability_columns(digits):
    X_train, _, y_train, _ = digits
    labels = np.where(y_train % 2 == 0, "even", "odd")
    model = mpireg.MLPClassifier((16,), epochs=30, lr=0.01).fit(X_train, labels)
    assert list(model.classes_) == ["even", "odd"] and model.out_activation_ == "logistic"
    assert model.coefs_[-1].shape == (16, 1)
    proba = model.predict_proba(X_train)
    assert proba.shape == (len(labels), 2)
    assert (model.classes_[proba.argmax(axis=1)] == model.predict(X_train)).all()
    assert model.score(X_train, labels) > 0.95


def test_regressor_fits_a_nonlinear_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (2000, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    model = mpireg.MLPRegressor((32, 32), lr=0.01, epochs=100, batch_size=64).fit(X, y)
    linear = mpireg.LinearRegression().fit(X, y)
    assert model.score(X, y) > 0.95 > linear.score(X, y) + 0.5
    assert model.predict(X).shape == (2000,) and model.out_activation_ == "identity"


def test_lbfgs_solver_and_deterministic_mode(digits):
    X_train, X_test, y_train, y_test = digits
    lbfgs = mpireg.MLPClassifier((32,), solver="lbfgs", max_iter=200, alpha=1.0).fit(X_train, y_train)
    assert lbfgs.score(X_test, y_test) > 0.95
    a = mpireg.MLPClassifier((16,), deterministic=True, epochs=3, lr=0.01).fit(X_train[:1280], y_train[:1280])
    b = mpireg.MLPClassifier((16,), deterministic=True, epochs=3, lr=0.01).fit(X_train[:1280], y_train[:1280])
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(ca, cb)


def test_saved_model_loads_and_serves_the_cli(digits, tmp_path):
    X_train, X_test, y_train, _ = digits
    model = mpireg.MLPClassifier((20, 10), epochs=5, lr=0.01).fit(X_train, y_train)
    model.save(tmp_path / "m.h5")
    loaded = mpireg.load(tmp_path / "m.h5")
    assert type(loaded) is mpireg.MLPClassifier and loaded.hidden_layer_sizes == [20, 10]
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))
    write_dataset(tmp_path / "test", X_test.astype(np.float32), np.zeros(len(X_test), np.int64),
                  "multiclass", 10)
    predict_file(tmp_path / "m.h5", [tmp_path / "test"], tmp_path / "pred.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), model.predict(X_test.astype(np.float32)))


def test_cli_model_files_load_as_mlp_estimators(datasets, tmp_path):
    for task, cls in (("softmax", mpireg.MLPClassifier), ("linear", mpireg.MLPRegressor)):
        run = tmp_path / task
        inprocess.train(run, [f"data.train={datasets[task]}", "model.kind=mlp", "model.hidden=[4]",
                              "optimizer.epochs=1"])
        loaded = mpireg.load(run / "model.h5")
        assert type(loaded) is cls and loaded.hidden_layer_sizes == [4]


def test_wrong_targets_and_parameters_name_the_field(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="Unknown label type"):
        mpireg.MLPClassifier(epochs=1).fit(X_train, X_train[:, 0] + 0.5)
    with pytest.raises(ConfigError, match=r"model.hidden: expected a list of positive integers"):
        mpireg.MLPClassifier((128, 0), epochs=1).fit(X_train, y_train)
    with pytest.raises(ConfigError, match=r"alpha: give either alpha= .* or l2="):
        mpireg.MLPClassifier(alpha=1.0, l2=1.0, epochs=1).fit(X_train, y_train)
    with pytest.raises(ConfigError, match=r"optimizer.kind: 'normal' solves linear"):
        mpireg.MLPRegressor(solver="normal").fit(X_train, y_train.astype(float))


def test_from_job_reads_the_mlp_job():
    model = mpireg.MLPClassifier.from_job(f"{ROOT}/jobs/mlp_digits.toml")
    assert list(model.hidden_layer_sizes) == [128] and model.solver == "adam" and model.lr == 0.001
    defaults = inspect.signature(mpireg.MLPClassifier).parameters
    assert defaults["lr"].default == 0.001 and defaults["batch_size"].default == 200
