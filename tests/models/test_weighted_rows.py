"""Packed rows [y, w, offset...] in every model that takes them (linear, logistic, softmax, the
MLP's three outputs): a weight of k is the row k times, an offset moves the output as a shifted
intercept would, the gradient matches finite differences, and the evaluation sums count
weights; bad weights and offsets are named by row."""
import numpy as np
import pytest

from mpireg import metrics
from mpireg.models import make_model
from tests.models.test_gradients import assert_gradient_matches_finite_differences

CASES = [("linear", 0, {}), ("logistic", 2, {}), ("softmax", 3, {}),
         ("mlp", 0, {"hidden": [4], "task": "regression"}), ("mlp", 2, {"hidden": [4], "task": "binary"}),
         ("mlp", 3, {"hidden": [4], "task": "multiclass"})]
IDS = ["linear", "logistic", "softmax", "mlp-regression", "mlp-binary", "mlp-multiclass"]


def _targets(model, rng, n):
    if model.output == "regression":
        return rng.standard_normal(n)
    return rng.integers(0, max(model.n_classes, 2), n).astype(float)


def _packed(y, w, offset):
    return np.column_stack([y, w, offset])


@pytest.mark.parametrize("kind,k,options", CASES, ids=IDS)
def test_a_weight_of_k_is_the_row_k_times(kind, k, options, rng):
    model = make_model(kind, 5, k, l2=0.1, **options)
    X = rng.standard_normal((30, 5))
    y = _targets(model, rng, 30)
    w = rng.integers(0, 4, 30).astype(float)
    params = rng.standard_normal(model.layout.size)
    weighted, repeated = np.empty_like(params), np.empty_like(params)
    loss = model.loss_grad_sum(params, X, model.prepare_targets(_packed(y, w, np.zeros(30))), weighted)
    rows = np.repeat(np.arange(30), w.astype(int))
    expected = model.loss_grad_sum(params, X[rows], model.prepare_targets(y[rows]), repeated)
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(weighted, repeated, rtol=1e-12, atol=1e-12)
    assert model.weight_sum(_packed(y, w, np.zeros(30))) == w.sum()


@pytest.mark.parametrize("kind,k,options", CASES, ids=IDS)
def test_gradient_with_weights_and_offsets_matches_finite_differences(kind, k, options, rng):
    model = make_model(kind, 5, k, l2=0.3, **options)
    X = rng.standard_normal((40, 5))
    targets = _packed(_targets(model, rng, 40), rng.uniform(0, 3, 40), rng.standard_normal(40))
    params = rng.standard_normal(model.layout.size)
    assert_gradient_matches_finite_differences(model, params, X, model.prepare_targets(targets), rtol=1e-6)


ONE_OUTPUT = [i for i, name in enumerate(IDS) if name in ("linear", "logistic", "mlp-regression", "mlp-binary")]


@pytest.mark.parametrize("kind,k,options", [CASES[i] for i in ONE_OUTPUT], ids=[IDS[i] for i in ONE_OUTPUT])
def test_a_constant_offset_is_a_shifted_intercept(kind, k, options, rng):
    """One output: an offset c on every row is the output layer's intercept moved by c."""
    model = make_model(kind, 5, k, **options)
    X = rng.standard_normal((20, 5))
    y = _targets(model, rng, 20)
    params = rng.standard_normal(model.layout.size)
    shifted = params.copy()
    name = "intercept" if kind != "mlp" else f"intercept_{model.n_layers - 1}"
    model.layout.views(shifted)[name][...] += 0.7
    with_offset = model.loss_sum(params, X, model.prepare_targets(_packed(y, np.ones(20), np.full(20, 0.7))))
    assert with_offset == pytest.approx(model.loss_sum(shifted, X, model.prepare_targets(y)), rel=1e-12)
    np.testing.assert_allclose(model.predict(params, X, np.full(20, 0.7)), model.predict(shifted, X))


@pytest.mark.parametrize("kind", ["softmax", "mlp"])
def test_per_class_offsets_move_each_class(kind, rng):
    """A softmax's offsets may give one value per class (glmnet's multinomial offsets): class
    j's offset is class j's intercept moved."""
    model = make_model(kind, 4, 3, hidden=[3], task="multiclass") if kind == "mlp" else make_model(kind, 4, 3)
    X = rng.standard_normal((25, 4))
    y = rng.integers(0, 3, 25).astype(float)
    shift = np.array([0.5, -1.0, 2.0])
    params = rng.standard_normal(model.layout.size)
    shifted = params.copy()
    model.layout.views(shifted)["intercept" if kind == "softmax" else "intercept_1"][...] += shift
    packed = np.column_stack([y, np.ones(25), np.tile(shift, (25, 1))])
    assert model.loss_sum(params, X, model.prepare_targets(packed)) == pytest.approx(
        model.loss_sum(shifted, X, model.prepare_targets(y)), rel=1e-12)
    assert_gradient_matches_finite_differences(model, params, X, model.prepare_targets(packed), rtol=1e-6)


@pytest.mark.parametrize("kind,k,options", CASES, ids=IDS)
def test_evaluation_sums_count_weights(kind, k, options, rng):
    model = make_model(kind, 3, k, **options)
    X = rng.standard_normal((24, 3))
    y = _targets(model, rng, 24)
    w = rng.integers(0, 3, 24).astype(float)
    params = rng.standard_normal(model.layout.size)
    weighted = np.zeros(metrics.sums_length(model))
    metrics.add_sums(model, params, X, model.prepare_targets(_packed(y, w, np.zeros(24))), weighted)
    rows = np.repeat(np.arange(24), w.astype(int))
    repeated = np.zeros_like(weighted)
    metrics.add_sums(model, params, X[rows], model.prepare_targets(y[rows]), repeated)
    np.testing.assert_allclose(weighted, repeated, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("column,value,message", [
    (1, -1.0, "a sample weight (weights must be finite and >= 0): -1.0"),
    (1, np.nan, "a sample weight (weights must be finite and >= 0): nan"),
    (2, np.inf, "an offset (offsets must be finite): inf")])
def test_bad_weights_and_offsets_are_named_by_row(column, value, message):
    model = make_model("softmax", 2, 3)
    packed = np.column_stack([np.zeros(6), np.ones(6), np.zeros(6)])
    packed[4, column] = value
    assert model.invalid_rows(packed) == (4, message)
    assert model.invalid_rows(np.zeros(6)) is None
