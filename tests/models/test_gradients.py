"""Every model's loss and gradient against central finite differences, and numeric stability."""
import warnings

import numpy as np
import pytest

from mpireg.models import make_model

CASES = [("linear", 0), ("logistic", 2), ("softmax", 4)]


def _data(kind, k, rng, n=40, d=5):
    X = rng.standard_normal((n, d))
    y = {"linear": rng.standard_normal(n), "logistic": rng.integers(0, 2, n),
         "softmax": rng.integers(0, max(k, 2), n)}[kind]
    return X, y


def _objective(model, w, X, y):
    return model.loss_sum(w, X, y) / len(X) + model.penalty(w)


def assert_gradient_matches_finite_differences(model, w, X, y, rtol: float) -> None:
    """The model's mean gradient (plus the L2 part) against central differences of the
    objective; its loss sum against loss_sum."""
    grad = np.empty_like(w)
    loss = model.loss_grad_sum(w, X, y, grad)
    assert loss == pytest.approx(model.loss_sum(w, X, y), rel=1e-12)
    grad = grad / len(X)
    model.add_l2_grad(w, grad)
    h = 1e-6
    numeric = np.array([(_objective(model, w + h * e, X, y) - _objective(model, w - h * e, X, y)) / (2 * h)
                        for e in np.eye(len(w))])
    np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("kind,k", CASES)
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gradient_matches_finite_differences(kind, k, l2, fit_intercept, rng):
    model = make_model(kind, 5, k, fit_intercept=fit_intercept, l2=l2)
    X, y = _data(kind, k, rng)
    y = model.prepare_targets(y)
    w = rng.standard_normal(model.layout.size)
    assert_gradient_matches_finite_differences(model, w, X, y, rtol=1e-6)


@pytest.mark.parametrize("kind,k", CASES)
def test_l1_penalty_value_skips_intercept(kind, k):
    model = make_model(kind, 3, k, l1=0.5)
    w = np.ones(model.layout.size)
    n_coef = 3 * (k if kind == "softmax" else 1)
    assert model.penalty(w) == pytest.approx(0.5 * n_coef)


@pytest.mark.parametrize("kind,k", [("logistic", 2), ("softmax", 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_stay_finite_without_warnings(kind, k, dtype, rng):
    model = make_model(kind, 4, k)
    X = (rng.standard_normal((30, 4)) * 1e3).astype(dtype)
    y = model.prepare_targets(rng.integers(0, k, 30))
    w = (rng.standard_normal(model.layout.size) * 1e3).astype(dtype)
    grad = np.empty_like(w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow/invalid warning fails the test
        loss = model.loss_grad_sum(w, X, y, grad)
        proba = model.predict_proba(w, X)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)) and np.all(np.isfinite(proba))
    assert loss > 1e3  # wrong confident predictions cost their logit, not inf


@pytest.mark.parametrize("kind,k", CASES)
def test_float32_gradient_close_to_float64(kind, k, rng):
    model = make_model(kind, 5, k, l2=0.1)
    X, y = _data(kind, k, rng)
    w = rng.standard_normal(model.layout.size)
    g64, g32 = np.empty(len(w)), np.empty(len(w), np.float32)
    model.loss_grad_sum(w, X, model.prepare_targets(y), g64)
    model.loss_grad_sum(w.astype(np.float32), X.astype(np.float32), model.prepare_targets(y), g32)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


def test_predictions():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    lin = make_model("linear", 2)
    assert np.allclose(lin.predict(np.array([2.0, 3.0, 1.0]), X), [3.0, 4.0])
    log = make_model("logistic", 2)
    assert np.array_equal(log.predict(np.array([5.0, -5.0, 0.0]), X), [1, 0])
    soft = make_model("softmax", 2, 3)
    w = np.zeros(soft.layout.size)
    soft.layout.views(w)["coef"][:] = [[0, 9, 0], [0, 0, 9]]
    assert np.array_equal(soft.predict(w, X), [1, 2])
    assert np.allclose(soft.predict_proba(w, X).sum(axis=1), 1.0)


def test_model_refuses_data_of_another_task():
    from mpireg.errors import ConfigError

    with pytest.raises(ConfigError, match="use model.kind = 'softmax'"):
        make_model("logistic", 3, 5, task="multiclass")
