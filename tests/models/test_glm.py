"""The GLM's families and links: gradients against finite differences, the observed information
against the gradient's finite differences (equal to the expected one for canonical links), and
targets, weights and offsets outside what a family takes named by row."""
import numpy as np
import pytest

from mpireg.models import make_model
from mpireg.models import glm
from mpireg.models.glm import NewtonSums

CASES = [("gaussian", "identity"), ("gaussian", "log"), ("binomial", "logit"), ("binomial", "identity"),
         ("poisson", "log"), ("poisson", "identity"), ("gamma", "log"), ("gamma", "inverse"),
         ("inverse_gaussian", "log"), ("tweedie", "log"), ("negative_binomial", "log")]


def _data(family, rng, n=60, d=3):
    X = rng.standard_normal((n, d)) * 0.3
    mu = np.exp(0.2 + X @ np.array([0.3, -0.2, 0.1]))
    y = {"gaussian": mu + 0.1 * rng.standard_normal(n), "binomial": (rng.random(n) < 0.4).astype(float),
         "poisson": rng.poisson(mu).astype(float), "gamma": rng.gamma(2.0, mu / 2),
         "inverse_gaussian": rng.wald(mu, 50.0), "tweedie": rng.poisson(mu) * rng.gamma(2.0, 0.5, n),
         "negative_binomial": rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)}[family]
    targets = np.column_stack([y, rng.uniform(0.5, 2.0, n), rng.uniform(-0.1, 0.1, n)])
    return X, targets


def _model(family, link, d=3):
    return make_model("glm", d, family=family, link=link, power=1.5, theta=2.0)


def _start(model, family):
    params = np.zeros(model.layout.size)
    params[:3] = [0.1, -0.05, 0.02]
    params[-1] = 0.4 if family == "binomial" else 0.3
    return params


@pytest.mark.parametrize("family,link", CASES)
def test_the_gradient_is_the_losss_derivative(family, link):
    rng = np.random.default_rng(0)
    X, targets = _data(family, rng)
    model = _model(family, link)
    params, grad = _start(model, family), np.empty(model.layout.size)
    model.loss_grad_sum(params, X, targets, grad)
    h = 1e-6
    numeric = [(model.loss_sum(params + h * e, X, targets) - model.loss_sum(params - h * e, X, targets)) / (2 * h)
               for e in np.eye(len(params))]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("family,link", CASES)
def test_the_observed_information_is_the_gradients_derivative(family, link):
    rng = np.random.default_rng(1)
    X, targets = _data(family, rng)
    model = _model(family, link)
    params = _start(model, family)
    sums, expected = NewtonSums(model.layout.size), NewtonSums(model.layout.size)
    model.newton_sums(params, X, targets, sums)
    model.newton_sums(params, X, targets, expected, expected=True)
    h = 1e-6

    def gradient(p):
        out = NewtonSums(model.layout.size)
        model.newton_sums(p, X, targets, out)
        return out.gradient.copy()

    numeric = np.array([(gradient(params + h * e) - gradient(params - h * e)) / (2 * h) for e in np.eye(len(params))])
    observed = sums.information()
    if model.canonical:
        np.testing.assert_allclose(expected.information(), observed, rtol=1e-12)
    # the clipping at 0 only acts on rows far from the mean; these draws keep every row inside
    np.testing.assert_allclose(observed, numeric, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sums.gradient, gradient(params), rtol=1e-12)


@pytest.mark.parametrize("family,targets,message", [
    ("poisson", [1.0, -1.0], "row 1 of this rank's arrays holds y (the poisson family needs a count >= 0): -1.0"),
    ("gamma", [1.0, 0.0], "row 1 of this rank's arrays holds y (the gamma family needs a value > 0): 0.0"),
    ("binomial", [1.5, 0.0], "row 0 of this rank's arrays holds y (the binomial family needs a value in [0, 1]): 1.5"),
    ("gaussian", [np.nan, 0.0], "row 0 of this rank's arrays holds y"),
])
def test_targets_outside_the_family_are_named_by_row(family, targets, message):
    from mpireg.data.arrays import LocalArrays
    from mpireg.errors import DataError
    from mpireg.fit.build import check_targets

    model = _model(family, "auto")
    data = LocalArrays(np.zeros((2, 3)), model.prepare_targets(np.array(targets)), 0)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        check_targets(model, data)


@pytest.mark.parametrize("column,value,message", [(1, -2.0, "a sample weight"), (1, np.inf, "a sample weight"),
                                                  (2, np.nan, "an offset")])
def test_bad_weights_and_offsets_are_named_by_row(column, value, message):
    from mpireg.data.arrays import LocalArrays
    from mpireg.errors import DataError
    from mpireg.fit.build import check_targets

    model = _model("poisson", "log")
    targets = model.prepare_targets(np.ones(3))
    targets[2, column] = value
    with pytest.raises(DataError, match=f"row 2 of this rank's arrays holds {message}"):
        check_targets(model, LocalArrays(np.zeros((3, 3)), targets, 0))


NATIVE_CASES = CASES + [("tweedie", "identity", 0.0), ("tweedie", "log", 1.0), ("tweedie", "log", 2.0),
                        ("tweedie", "log", 3.0)]


@pytest.mark.skipif(glm._cglm is None, reason="the C extension was not built")
@pytest.mark.parametrize("case", NATIVE_CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("expected", [False, True])
def test_the_c_pass_equals_numpys(case, dtype, fit_intercept, expected, monkeypatch):
    """csrc/cglm.c's pass against the NumPy reference: every family and link (observed and
    expected information, the log-likelihood), float32 and float64 rows, more rows than one chunk."""
    family, link, power = (*case, 1.5) if len(case) == 2 else case
    rng = np.random.default_rng(2)
    draw = {0.0: "gaussian", 2.0: "gamma", 3.0: "inverse_gaussian"}.get(power, family) if family == "tweedie" \
        else family
    X, targets = _data(draw, rng, n=700)
    X = X.astype(dtype)
    if not fit_intercept:  # the intercept's 0.3-0.4 as an offset: mu inside every link's range
        targets[:, 2] += 0.4
    model = make_model("glm", 3, fit_intercept=fit_intercept, family=family, link=link, power=power, theta=2.0)
    params = _start(model, family) if fit_intercept else np.array([0.1, -0.05, 0.02])
    monkeypatch.setattr(glm, "CHUNK_ROWS", 256)
    native, reference = NewtonSums(model.layout.size), NewtonSums(model.layout.size)
    assert model._native_pass(X, targets)
    scale = 0.7 if expected else None  # the inference pass: the log-likelihood too
    model.newton_sums(params, X, targets, native, expected=expected, loglike_scale=scale)
    monkeypatch.setattr(glm, "_cglm", None)
    model.newton_sums(params, X, targets, reference, expected=expected, loglike_scale=scale)
    assert np.isfinite(reference.values[reference.LOSS])
    np.testing.assert_allclose(native.values, reference.values, rtol=1e-11)
    np.testing.assert_allclose(native.gradient, reference.gradient, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(native.information(), reference.information(), rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(glm._cglm is None, reason="the C extension was not built")
@pytest.mark.parametrize("family,link", [("binomial", "logit"), ("poisson", "log"), ("gaussian", "identity")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("columns", [None, [1, 4, 5], []], ids=["whole", "subset", "gradient-only"])
def test_the_four_row_kernel_equals_numpys(family, link, dtype, columns, monkeypatch):
    """csrc/glm_newton4.h (the canonical families four rows at a time, SIMD exp and log): rows
    not a multiple of four, binomial proportions, weights and offsets, a column subset and the
    gradient-only pass, and wide logits, against the NumPy reference."""
    rng = np.random.default_rng(7)
    n, d = 1003, 7
    X = (rng.standard_normal((n, d)) * 0.8).astype(dtype)
    X[::97] *= 20  # logits out to +-40: expit's tails, e^eta in the thousands
    y = {"binomial": np.where(rng.random(n) < 0.2, rng.random(n), rng.random(n) < 0.4),
         "poisson": rng.poisson(2.0, n), "gaussian": rng.standard_normal(n)}[family].astype(float)
    targets = np.column_stack([y, rng.uniform(0.5, 2.0, n), rng.uniform(-0.3, 0.3, n)])
    model = make_model("glm", d, family=family, link=link)
    params = np.r_[rng.uniform(-0.3, 0.3, d), 0.2]
    columns = None if columns is None else np.array(columns, dtype=np.int64)
    monkeypatch.setattr(glm, "CHUNK_ROWS", 250)
    native, reference = NewtonSums(d + 1), NewtonSums(d + 1)
    model.newton_sums(params, X, targets, native, columns=columns)
    monkeypatch.setattr(glm, "_cglm", None)
    model.newton_sums(params, X, targets, reference)
    np.testing.assert_allclose(native.values[:3], reference.values[:3], rtol=1e-11)
    np.testing.assert_allclose(native.gradient, reference.gradient, rtol=1e-10, atol=1e-10)
    keep = np.r_[np.arange(d) if columns is None else columns, d].astype(int)
    information = native.information()
    np.testing.assert_allclose(information[np.ix_(keep, keep)], reference.information()[np.ix_(keep, keep)],
                               rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(glm._cglm is None, reason="the C extension was not built")
@pytest.mark.parametrize("family,link,row", [("poisson", "log", 800.0), ("binomial", "logit", 60.0)])
def test_the_four_row_kernel_marks_a_mean_outside_the_range(family, link, row):
    """One row among four whose mu leaves the range (e^800 overflows; expit(60) rounds to 1):
    the loss is infinite, as in the row-at-a-time pass, wherever the row sits."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((11, 2)) * 0.1
    targets = np.column_stack([rng.poisson(1.0, 11).astype(float) % 2, np.ones(11), np.zeros(11)])
    model = make_model("glm", 2, family=family, link=link)
    for where in (0, 5, 10):  # a four-row group's first, a middle one, the tail
        shifted = targets.copy()
        shifted[where, 2] = row
        sums = NewtonSums(3)
        model.newton_sums(np.array([0.1, 0.2, 0.0]), X, shifted, sums)
        assert sums.values[sums.LOSS] == np.inf


@pytest.mark.skipif(glm._cglm is None, reason="the C extension was not built")
def test_the_c_pass_marks_a_mean_outside_the_range():
    """Binomial with the identity link: a step that puts mu outside (0, 1) has an infinite loss."""
    rng = np.random.default_rng(3)
    X, targets = _data("binomial", rng)
    model = _model("binomial", "identity")
    params = np.array([5.0, 0.0, 0.0, 0.5])
    sums = NewtonSums(model.layout.size)
    model.newton_sums(params, X, targets, sums)
    assert sums.values[sums.LOSS] == np.inf


@pytest.mark.skipif(glm._cglm is None, reason="the C extension was not built")
def test_the_information_of_a_column_subset_is_that_block_of_the_whole(monkeypatch):
    """A path's strong set: newton_sums(columns=S) sums the information's S x S block (and the
    intercept's row) only, the gradient whole; the block equals the whole information's."""
    rng = np.random.default_rng(5)
    X, targets = _data("poisson", rng, n=900, d=3)
    X = np.column_stack([X, X[:, :2] * 0.5 + 0.1])
    model = make_model("glm", 5, family="poisson")
    params = np.array([0.1, -0.05, 0.02, 0.0, 0.03, 0.3])
    monkeypatch.setattr(glm, "CHUNK_ROWS", 256)
    whole, part = NewtonSums(6), NewtonSums(6)
    model.newton_sums(params, X, targets, whole)
    columns = np.array([0, 2, 4])
    model.newton_sums(params, X, targets, part, columns=columns)
    keep = np.r_[columns, 5]
    np.testing.assert_allclose(part.information()[np.ix_(keep, keep)], whole.information()[np.ix_(keep, keep)],
                               rtol=1e-12)
    np.testing.assert_allclose(part.gradient, whole.gradient, rtol=1e-12)
    assert not part.information()[1, 1] and not part.information()[1, 3]


@pytest.mark.parametrize("native", [True, False])
def test_deviance_sums_are_the_weighted_deviance(native, monkeypatch):
    rng = np.random.default_rng(6)
    X, targets = _data("gamma", rng, n=500)
    model = _model("gamma", "log")
    params = _start(model, "gamma")
    if not native:
        monkeypatch.setattr(glm, "_cglm", None)
    mu = model.predict(params, X, targets[:, 2])
    expected = [targets[:, 1] @ model.family.unit_deviance(targets[:, 0], mu), targets[:, 1].sum()]
    np.testing.assert_allclose(model.deviance_sums(params, X, targets), expected, rtol=1e-12)
