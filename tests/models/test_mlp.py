"""The MLP: gradients against finite differences, the linear models as its zero-hidden-layer
case, the layer-by-layer readiness that overlap relies on, blocks, initialisation, penalties."""
import warnings

import numpy as np
import pytest

from mpireg.models import make_model
from tests.models.test_gradients import assert_gradient_matches_finite_differences

OUTPUTS = [("regression", 0), ("binary", 2), ("multiclass", 4)]
LINEAR_TWIN = {"regression": "linear", "binary": "logistic", "multiclass": "softmax"}


def _data(task, k, rng, n=40, d=5):
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n) if task == "regression" else rng.integers(0, k, n)
    return X, y


def _mlp(task, k, d=5, **kw):
    kw.setdefault("hidden", [6, 4])
    return make_model("mlp", d, k, task=task, **kw)


@pytest.mark.parametrize("task,k", OUTPUTS)
@pytest.mark.parametrize("hidden", [[6], [6, 4]])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gradient_matches_finite_differences(task, k, hidden, fit_intercept, rng):
    model = _mlp(task, k, hidden=hidden, fit_intercept=fit_intercept, l2=0.2, seed=3)
    X, y = _data(task, k, rng)
    y = model.prepare_targets(y)
    w = model.init_params(np.float64) + 0.1 * rng.standard_normal(model.layout.size)
    assert_gradient_matches_finite_differences(model, w, X, y, rtol=1e-5)


@pytest.mark.parametrize("task,k", OUTPUTS)
def test_no_hidden_layer_is_the_linear_model(task, k, rng):
    mlp = _mlp(task, k, hidden=[])
    twin = make_model(LINEAR_TWIN[task], 5, k)
    X, y = _data(task, k, rng)
    w = rng.standard_normal(twin.layout.size)
    # the same numbers in each layout: coef then intercept (the MLP's one layer is its output layer)
    g_mlp, g_twin = np.empty_like(w), np.empty_like(w)
    loss_mlp = mlp.loss_grad_sum(w, X, mlp.prepare_targets(y), g_mlp)
    loss_twin = twin.loss_grad_xp(w, X, twin.prepare_targets(y), g_twin)
    assert loss_mlp == pytest.approx(loss_twin, rel=1e-12)
    np.testing.assert_allclose(g_mlp, g_twin, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(mlp.predict(w, X), twin.predict(w, X))


@pytest.mark.parametrize("task,k", OUTPUTS)
def test_gradient_is_ready_layer_by_layer_from_the_output(task, k, rng):
    model = _mlp(task, k, hidden=[6, 4])
    X, y = _data(task, k, rng)
    y = model.prepare_targets(y)
    w = model.init_params(np.float64)
    whole = np.empty_like(w)
    model.loss_grad_sum(w, X, y, whole)
    grad = np.full_like(w, np.nan)
    seen = []

    def on_ready(hi):  # what is reported final must already hold its final values
        np.testing.assert_allclose(grad[:hi], whole[:hi], rtol=1e-12, atol=1e-12)
        seen.append(hi)

    model.loss_grad_sum(w, X, y, grad, on_ready)
    width = k if task == "multiclass" else 1
    sizes = [4 * width + width, 6 * 4 + 4, 5 * 6 + 6]  # output layer, hidden 2, hidden 1
    layer_ends = list(np.cumsum(sizes))
    assert set(layer_ends) <= set(seen) and seen == sorted(seen) and seen[-1] == model.layout.size
    assert seen.index(layer_ends[1]) >= 1 + 3  # the 6 x 4 weights reported in slabs of rows
    np.testing.assert_allclose(grad, whole, rtol=1e-12, atol=1e-12)  # slabs: other rounding


def test_full_batch_blocks_add_up_to_the_whole(rng):
    model = _mlp("multiclass", 3, d=4, hidden=[8])
    X = rng.standard_normal((3000, 4))
    y = model.prepare_targets(rng.integers(0, 3, 3000))
    w = model.init_params(np.float64)
    model._block_rows = lambda X: 512  # several blocks, the last one short
    blocked = np.empty_like(w)
    loss = model.loss_grad_sum(w, X, y, blocked)
    whole = np.empty_like(w)
    assert loss == pytest.approx(model._loss_grad_whole(w, X, y, whole), rel=1e-12)
    assert model.loss_sum(w, X, y) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(blocked, whole, rtol=1e-10, atol=1e-10)


def test_he_initialisation_from_the_seed():
    model = make_model("mlp", 400, 10, task="multiclass", hidden=[300], seed=7)
    w = model.init_params(np.float32)
    v = model.layout.views(w)
    assert w.dtype == np.float32
    assert np.std(v["coef_0"]) == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert np.std(v["coef_1"]) == pytest.approx(np.sqrt(2 / 300), rel=0.05)
    assert not v["intercept_0"].any() and not v["intercept_1"].any()
    np.testing.assert_array_equal(w, make_model("mlp", 400, 10, task="multiclass", hidden=[300],
                                                seed=7).init_params(np.float32))
    other = make_model("mlp", 400, 10, task="multiclass", hidden=[300], seed=8).init_params(np.float32)
    assert not np.array_equal(w, other)


def test_penalties_apply_to_weights_only():
    model = make_model("mlp", 3, 2, task="binary", hidden=[4], l1=0.5, l2=2.0)
    w = np.ones(model.layout.size)
    n_weights = 3 * 4 + 4 * 1
    assert model.penalty(w) == pytest.approx(0.5 * n_weights + 0.5 * 2.0 * n_weights)


@pytest.mark.parametrize("task,k", [("binary", 2), ("multiclass", 3)])
def test_huge_activations_stay_finite_without_warnings(task, k, rng):
    model = _mlp(task, k, d=4, hidden=[5])
    X = rng.standard_normal((30, 4)) * 1e3
    y = model.prepare_targets(rng.integers(0, k, 30))
    w = rng.standard_normal(model.layout.size) * 1e3
    grad = np.empty_like(w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = model.loss_grad_sum(w, X, y, grad)
    assert np.isfinite(loss) and np.isfinite(grad).all()


@pytest.mark.parametrize("task,k", OUTPUTS)
def test_predictions_have_the_linear_models_shapes(task, k, rng):
    model = _mlp(task, k)
    X, _ = _data(task, k, rng)
    w = model.init_params(np.float64)
    pred = model.predict(w, X)
    assert pred.shape == (40,)
    if task == "regression":
        with pytest.raises(ValueError, match="values, not probabilities"):
            model.predict_proba(w, X)
    else:
        proba = model.predict_proba(w, X)
        assert proba.shape == ((40,) if task == "binary" else (40, k))
        assert pred.dtype.kind == "i"
