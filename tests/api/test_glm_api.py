"""The GLM estimators: every family equal to statsmodels' GLM (parameters, standard errors,
deviances) with weights and offsets, the log-likelihood and AIC R's; Poisson, Gamma and Tweedie regressors equal to
scikit-learn's; a weight of 2 equals the row twice; the L1 optimum; one clear error for bad input."""
import numpy as np
import pytest

import mpireg
from mpireg.errors import MpiregError

sm = pytest.importorskip("statsmodels.api")

N, D = 2000, 4
BETA = np.array([0.2, -0.1, 0.05, 0.3])


def _draw(family, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)) * 0.5
    w = rng.integers(1, 4, N).astype(float)
    offset = rng.uniform(-0.2, 0.2, N)
    eta = 0.5 + X @ BETA + offset
    mu = np.exp(eta)
    y = {"gaussian": eta + rng.standard_normal(N),
         "binomial": (rng.random(N) < 1 / (1 + np.exp(-eta))).astype(float),
         "poisson": rng.poisson(mu).astype(float),
         "gamma": rng.gamma(2.0, mu / 2.0),
         "inverse_gaussian": rng.wald(mu, 2.0),
         "tweedie": rng.poisson(mu) * rng.gamma(2.0, 0.5, N),
         "negative_binomial": rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)}[family]
    return X, y, w, offset


STATSMODELS = {
    "gaussian": ("identity", lambda: sm.families.Gaussian()),
    "binomial": ("logit", lambda: sm.families.Binomial()),
    "poisson": ("log", lambda: sm.families.Poisson()),
    "gamma": ("log", lambda: sm.families.Gamma(sm.families.links.Log())),
    "inverse_gaussian": ("log", lambda: sm.families.InverseGaussian(sm.families.links.Log())),
    "tweedie": ("log", lambda: sm.families.Tweedie(var_power=1.5, link=sm.families.links.Log())),
    "negative_binomial": ("log", lambda: sm.families.NegativeBinomial(alpha=0.5)),
}


FREE_SCALE = ("gaussian", "gamma", "inverse_gaussian")


def r_aic(family, y, mu, w, deviance):
    """R's glm AIC, from its family's aic() (stats/R/family.R, MASS's negative.binomial) written
    with scipy.stats, the weights as frequencies (each row w times): -2 log L + 2 (p + 1 for the
    scale), the scale at deviance / sum w."""
    from scipy import stats

    phi = deviance / w.sum()
    logf = {"gaussian": lambda: stats.norm.logpdf(y, mu, np.sqrt(phi)),
            "binomial": lambda: stats.binom.logpmf(y, 1, mu),
            "poisson": lambda: stats.poisson.logpmf(y, mu),
            "gamma": lambda: stats.gamma.logpdf(y, 1 / phi, scale=mu * phi),
            "inverse_gaussian": lambda: stats.invgauss.logpdf(y, mu * phi, scale=1 / phi),
            "negative_binomial": lambda: stats.nbinom.logpmf(y, 2.0, 2.0 / (2.0 + mu))}[family]()
    return -2 * float(w @ logf) + 2 * (D + 1 + (family in FREE_SCALE))


@pytest.mark.parametrize("family", list(STATSMODELS))
def test_every_family_equals_statsmodels(family):
    X, y, w, offset = _draw(family)
    link, sm_family = STATSMODELS[family]
    ours = mpireg.GeneralizedLinearRegressor(family=family, link=link, power=1.5, theta=2.0, tol=1e-11)
    ours.fit(X, y, sample_weight=w, offset=offset)
    scale = None if family in ("binomial", "poisson", "negative_binomial") else "X2"
    theirs = sm.GLM(y, sm.add_constant(X), family=sm_family(), offset=offset, freq_weights=w).fit(
        tol=1e-13, scale=scale)
    np.testing.assert_allclose(np.r_[ours.intercept_, ours.coef_], theirs.params, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.std_errors_, theirs.bse, rtol=1e-5)
    assert ours.deviance_ == pytest.approx(theirs.deviance, rel=1e-9)
    assert ours.null_deviance_ == pytest.approx(theirs.null_deviance, rel=1e-9)
    assert ours.dispersion_ == pytest.approx(theirs.scale, rel=1e-6)
    if family in ("binomial", "poisson", "negative_binomial"):  # no scale: R's AIC is statsmodels'
        assert ours.aic_ == pytest.approx(theirs.aic, rel=1e-8)
    elif family == "gaussian":  # the same likelihood; R counts the scale as a parameter
        assert ours.aic_ == pytest.approx(theirs.aic + 2, rel=1e-8)
    if family != "tweedie":  # (R has no Tweedie likelihood)
        assert ours.aic_ == pytest.approx(r_aic(family, y, ours.predict(X, offset=offset), w, ours.deviance_),
                                          rel=1e-8)
        assert ours.log_likelihood_ == pytest.approx((2 * (D + 1 + (family in FREE_SCALE)) - ours.aic_) / 2)
    else:
        assert np.isnan(ours.aic_)
    table = ours.coef_table()
    assert list(table.index) == ["intercept", "x0", "x1", "x2", "x3"]
    np.testing.assert_allclose(table["p_value"], theirs.pvalues, rtol=1e-4, atol=1e-12) if scale is None else None


def test_the_sandwich_equals_statsmodels_hc0():
    X, y, w, offset = _draw("poisson")
    ours = mpireg.GeneralizedLinearRegressor(family="poisson", cov_type="HC0", tol=1e-11).fit(X, y, offset=offset)
    theirs = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson(), offset=offset).fit(tol=1e-13, cov_type="HC0")
    np.testing.assert_allclose(ours.std_errors_, theirs.bse, rtol=1e-5)


@pytest.mark.parametrize("name,power", [("PoissonRegressor", None), ("GammaRegressor", None), ("TweedieRegressor", 1.5)])
def test_the_regressors_equal_scikit_learns(name, power):
    import sklearn.linear_model as lm

    family = {"PoissonRegressor": "poisson", "GammaRegressor": "gamma", "TweedieRegressor": "tweedie"}[name]
    X, y, w, _ = _draw(family, seed=3)
    extra = {"power": power} if power is not None else {}
    ours = getattr(mpireg, name)(alpha=0.1, tol=1e-10, **extra).fit(X, y, sample_weight=w)
    theirs = getattr(lm, name)(alpha=0.1, tol=1e-12, max_iter=1000, solver="newton-cholesky", **extra).fit(
        X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-6, atol=1e-9)
    assert ours.intercept_ == pytest.approx(theirs.intercept_, rel=1e-6)
    assert ours.score(X, y, sample_weight=w) == pytest.approx(theirs.score(X, y, sample_weight=w), rel=1e-6)
    np.testing.assert_allclose(ours.predict(X[:5]), theirs.predict(X[:5]), rtol=1e-6)


def test_a_weight_of_two_is_the_row_twice():
    X, y, _, offset = _draw("poisson", seed=4)
    w = np.ones(N)
    w[:300] = 2
    weighted = mpireg.PoissonRegressor(alpha=0.01, tol=1e-11).fit(X, y, sample_weight=w, offset=offset)
    rows = np.r_[np.arange(N), np.arange(300)]
    twice = mpireg.PoissonRegressor(alpha=0.01, tol=1e-11).fit(X[rows], y[rows], offset=offset[rows])
    np.testing.assert_allclose(weighted.coef_, twice.coef_, rtol=1e-7)  # both to tol 1e-11
    np.testing.assert_allclose(weighted.std_errors_, twice.std_errors_, rtol=1e-7)


def test_the_elastic_net_optimum_meets_its_optimality_conditions():
    X, y, w, _ = _draw("poisson", seed=5)
    alpha, l1_ratio = 0.05, 0.7
    m = mpireg.GeneralizedLinearRegressor(family="poisson", alpha=alpha, l1_ratio=l1_ratio, tol=1e-11)
    m.fit(X, y, sample_weight=w)
    mu = np.exp(m.intercept_ + X @ m.coef_)
    grad = X.T @ (w * (mu - y)) / w.sum() + alpha * (1 - l1_ratio) * m.coef_  # the smooth part
    l1 = alpha * l1_ratio
    zero = m.coef_ == 0
    assert zero.any() and not zero.all()  # this alpha zeroes some coefficients, not all
    np.testing.assert_allclose(grad[~zero], -l1 * np.sign(m.coef_[~zero]), atol=1e-9)
    assert np.all(np.abs(grad[zero]) <= l1 + 1e-9)
    assert abs(np.sum(w * (mu - y))) / w.sum() < 1e-9  # the intercept's condition


@pytest.mark.parametrize("kwargs,message", [
    (dict(y=-1.0), "poisson family needs a count >= 0"),
    (dict(w=-1.0), "sample_weight|Negative values"),
    (dict(offset=np.nan), "offset: a NaN or Inf at row 7"),
])
def test_bad_targets_weights_and_offsets_are_one_clear_error(kwargs, message):
    X, y, w, offset = _draw("poisson", seed=6)
    if "y" in kwargs:
        y[7] = kwargs["y"]
    if "w" in kwargs:
        w[7] = kwargs["w"]
    if "offset" in kwargs:
        offset[7] = kwargs["offset"]
    with pytest.raises((MpiregError, ValueError), match=message):
        mpireg.PoissonRegressor().fit(X, y, sample_weight=w, offset=offset)


def test_weighted_linear_and_logistic_regression_equal_scikit_learns():
    import sklearn.linear_model as lm

    rng = np.random.default_rng(7)
    X = rng.standard_normal((1500, 4))
    w = rng.uniform(0.2, 3.0, 1500)
    y = X @ [1.0, 2.0, 0.0, -1.0] + 0.5 + rng.standard_normal(1500)
    for ours, theirs in ((mpireg.LinearRegression(), lm.LinearRegression()),
                         (mpireg.LinearRegression(alpha=5.0), lm.Ridge(alpha=5.0))):
        ours.fit(X, y, sample_weight=w)
        theirs.fit(X, y, sample_weight=w)
        np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-10)
        assert ours.intercept_ == pytest.approx(theirs.intercept_, rel=1e-10)
        assert ours.score(X, y, sample_weight=w) == pytest.approx(theirs.score(X, y, sample_weight=w), rel=1e-12)
    labels = np.where(rng.random(1500) < 1 / (1 + np.exp(-(X @ [1.0, -1.0, 0.5, 0.0]))), "yes", "no")
    ours = mpireg.LogisticRegression(C=0.5, tol=1e-11).fit(X, labels, sample_weight=w)
    theirs = lm.LogisticRegression(C=0.5, tol=1e-12, max_iter=10000).fit(X, labels, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X[:20]), theirs.predict_proba(X[:20]), rtol=1e-6)
    assert ours.score(X, labels, sample_weight=w) == pytest.approx(theirs.score(X, labels, sample_weight=w))
    assert list(ours.classes_) == ["no", "yes"]


def test_a_weight_of_two_is_the_row_twice_for_least_squares():
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((400, 3)), rng.standard_normal(400)
    w = np.ones(400)
    w[:50] = 2
    rows = np.r_[np.arange(400), np.arange(50)]
    weighted = mpireg.LinearRegression(alpha=1.0).fit(X, y, sample_weight=w)
    twice = mpireg.LinearRegression(alpha=1.0).fit(X[rows], y[rows])
    np.testing.assert_allclose(weighted.coef_, twice.coef_, rtol=1e-10)
