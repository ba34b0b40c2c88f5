"""Sample weights and offsets on every estimator: a weight of 2 is the row twice, the weighted
multinomial fit equals scikit-learn's, offsets equal the fit they stand for, and predict and
score take them."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogistic
from sklearn.metrics import r2_score

import mpireg
from mpireg.errors import ConfigError

ESTIMATORS = {
    "linear": lambda: mpireg.LinearRegression(alpha=0.3),
    "logistic": lambda: mpireg.LogisticRegression(C=2.0, tol=1e-10),
    "multinomial": lambda: mpireg.LogisticRegression(C=2.0, tol=1e-10),
    "softmax": lambda: mpireg.SoftmaxRegression(l2=0.01, tol=1e-10),
    "mlp_classifier": lambda: mpireg.MLPClassifier((5,), solver="lbfgs", max_iter=40, alpha=0.1),
    "mlp_regressor": lambda: mpireg.MLPRegressor((5,), solver="lbfgs", max_iter=40, alpha=0.1),
}


def _data(name, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    if name in ("linear", "mlp_regressor"):
        y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.standard_normal(n)
    else:
        y = rng.integers(0, 2 if name == "logistic" else 3, n)
    return X, y, rng.integers(0, 4, n).astype(float)


def _weights(estimator):
    if hasattr(estimator, "coefs_"):
        return np.concatenate([c.ravel() for c in estimator.coefs_ + estimator.intercepts_])
    return np.r_[np.ravel(estimator.coef_), np.ravel(estimator.intercept_)]


@pytest.mark.parametrize("name", ESTIMATORS)
def test_a_weight_of_two_is_the_row_twice(name):
    """Integer weights against the rows repeated, penalty alias included (alpha and C weigh the
    weighted sum as scikit-learn's do)."""
    X, y, w = _data(name)
    rows = np.repeat(np.arange(len(y)), w.astype(int))
    repeated = ESTIMATORS[name]().fit(X[rows], y[rows])
    weighted = ESTIMATORS[name]().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(_weights(weighted), _weights(repeated), rtol=1e-6, atol=1e-8)
    assert weighted.score(X, y, sample_weight=w) == pytest.approx(repeated.score(X[rows], y[rows]), rel=1e-9)


def test_weighted_multinomial_equals_scikit_learns():
    X, y, w = _data("multinomial", n=300)
    ours = mpireg.LogisticRegression(C=0.5, tol=1e-12, max_iter=2000).fit(X, y, sample_weight=w)
    theirs = SkLogistic(C=0.5, tol=1e-12, max_iter=10000).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)


def test_an_offset_is_the_fit_it_stands_for():
    """Least squares with an offset is least squares on y - offset; a logistic offset is the
    binomial GLM's offset (statsmodels' to 1e-6 in test_glm_api.py)."""
    X, y, w = _data("linear")
    offset = np.linspace(-1, 1, len(y))
    moved = mpireg.LinearRegression().fit(X, y, offset=offset)
    plain = mpireg.LinearRegression().fit(X, y - offset)
    np.testing.assert_allclose(_weights(moved), _weights(plain), rtol=1e-10)
    np.testing.assert_allclose(moved.predict(X, offset=offset), plain.predict(X) + offset, rtol=1e-10)
    assert moved.score(X, y, offset=offset) == pytest.approx(r2_score(y, plain.predict(X) + offset), rel=1e-12)

    X, y, w = _data("logistic")
    logistic = mpireg.LogisticRegression(tol=1e-12, max_iter=1000).fit(X, y, sample_weight=w, offset=offset)
    glm = mpireg.GeneralizedLinearRegressor(family="binomial", tol=1e-12).fit(X, y, sample_weight=w, offset=offset)
    np.testing.assert_allclose(_weights(logistic), np.r_[glm.coef_, glm.intercept_], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(logistic.predict_proba(X, offset=offset)[:, 1], glm.predict(X, offset=offset),
                               rtol=1e-6)


def test_per_class_offsets_are_the_classes_intercepts_moved():
    """Softmax offsets, one per row and class (glmnet's multinomial offsets): a constant one per
    class is that class's intercept moved, so the fitted intercepts move back by it."""
    X, y, _ = _data("softmax")
    shift = np.array([1.0, -0.5, 0.25])
    plain = mpireg.SoftmaxRegression(l2=0.01, tol=1e-12).fit(X, y)
    moved = mpireg.SoftmaxRegression(l2=0.01, tol=1e-12).fit(X, y, offset=np.tile(shift, (len(y), 1)))
    np.testing.assert_allclose(moved.coef_, plain.coef_, atol=1e-6)
    np.testing.assert_allclose(moved.intercept_ + shift - (moved.intercept_ + shift).mean(),
                               plain.intercept_ - plain.intercept_.mean(), atol=1e-6)
    np.testing.assert_allclose(moved.predict_proba(X, offset=np.tile(shift, (len(y), 1))),
                               plain.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    ({"sample_weight": -np.ones(120)}, "Negative values in data passed to `sample_weight`"),
    ({"offset": np.full(120, np.nan)}, "offset: a NaN or Inf at row 0"),
    ({"offset": np.zeros((120, 2))}, "offset: expected shape (120,) or (120, 3)"),
])
def test_bad_weights_and_offsets_are_one_clear_error(kwargs, message):
    X, y, _ = _data("softmax")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mpireg.SoftmaxRegression().fit(X, y, **kwargs)


def test_shards_carry_their_own_weights():
    with pytest.raises(ConfigError, match="shards carry their own"):
        mpireg.MLPRegressor().fit("data/none", sample_weight=np.ones(3))
