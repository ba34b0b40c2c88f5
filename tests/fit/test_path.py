"""Regularisation paths and k-fold cross-validation (fit/path.py): a point of the path equals a
plain fit at its penalty, the paths equal scikit-learn's enet_path and lasso_path, the CV curve
equals separate fits on the same folds, strong rules never keep an active feature out, the
Gaussian path with its cross-validation costs one pass, and the folds and results are the same
on 1, 2 and 3 ranks."""
import numpy as np
import pytest
from sklearn.linear_model import ElasticNetCV as SkElasticNetCV
from sklearn.linear_model import enet_path

import mpireg
from mpireg import log
from mpireg.agreement import default_comm
from mpireg.config import config_from_dict
from mpireg.errors import ConfigError
from mpireg.fit import Arrays, Run
from mpireg.fit import path as path_module
from mpireg.fit.folds import fold_of
from mpireg.models.families import make_family
from tests.helpers import assert_same_path_on_1_2_and_3_ranks, train_job


def _draw(family, n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    beta = np.r_[0.6, -0.4, 0.0, 0.0, 0.3, 0.0][:d]
    eta = 0.2 + X @ beta * (0.5 if family != "gaussian" else 2.0)
    y = {"gaussian": eta + rng.standard_normal(n), "poisson": rng.poisson(np.exp(eta)).astype(float),
         "binomial": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)}[family]
    return X, y, rng.integers(1, 4, n).astype(float), rng.uniform(-0.1, 0.1, n)


def _path(X, y, family="gaussian", w=None, offset=None, **path):
    """summary['path'] of a path job run on arrays in this process."""
    cv = path.pop("cv", 0)
    table = {"model": {"kind": "glm", "family": family}, "data": {"train": ["<arrays>"]},
             "optimizer": {"kind": "irls", "tol": 1e-12, "cv": cv, "path": {"n_alphas": 12, "min_ratio": 1e-2, **path}},
             "run": {"progress": False}}
    targets = y if w is None and offset is None else np.column_stack(
        [y, np.ones(len(y)) if w is None else w, np.zeros(len(y)) if offset is None else offset])
    with log.quiet(True):
        result = Run(config_from_dict(table), default_comm(), None, arrays=Arrays(X, targets, "regression", 0)).run()
    return result.summary["path"]


@pytest.mark.parametrize("ratio", [1.0, 0.5, 0.0])
def test_the_gaussian_path_equals_scikit_learns_enet_path(ratio):
    X, y, _, _ = _draw("gaussian")
    path = _path(X, y, l1_ratio=[ratio])
    ours = path["paths"][0]
    alphas = np.array(ours["alphas"])
    _, coefs, _ = enet_path(X - X.mean(0), y - y.mean(), l1_ratio=ratio, alphas=alphas, tol=1e-14, max_iter=100000)
    np.testing.assert_allclose(np.array(ours["coef"])[:, :X.shape[1]], coefs.T, atol=1e-6)
    assert path["passes"] == 1  # the whole path from one pass over the rows


@pytest.mark.parametrize("family", ["poisson", "binomial"])
@pytest.mark.parametrize("ratio", [0.5, 0.0])  # elastic net (strong rules, column subsets) and ridge
def test_a_point_of_the_path_equals_a_plain_fit(family, ratio):
    X, y, w, offset = _draw(family)
    path = _path(X, y, family, w, offset, l1_ratio=[ratio], cv=3)["paths"][0]
    for i in (2, 6, 11):
        alpha = path["alphas"][i]
        plain = mpireg.GeneralizedLinearRegressor(family=family, alpha=alpha, l1_ratio=ratio, tol=1e-12)
        plain.fit(X, y, sample_weight=w, offset=offset)
        np.testing.assert_allclose(path["coef"][i], np.r_[plain.coef_, plain.intercept_], atol=1e-6)


@pytest.mark.parametrize("family", ["gaussian", "poisson"])
def test_the_cv_curve_equals_separate_fits_on_the_same_folds(family):
    X, y, w, offset = _draw(family, n=300)
    path = _path(X, y, family, w, offset, l1_ratio=[1.0], n_alphas=6, cv=3)
    folds = fold_of(np.arange(len(y)), 3, 0)
    fam = make_family(family)
    for i, alpha in enumerate(path["paths"][0]["alphas"]):
        for f in range(3):
            train, held = folds != f, folds == f
            m = mpireg.GeneralizedLinearRegressor(family=family, alpha=alpha, l1_ratio=1.0, tol=1e-12)
            m.fit(X[train], y[train], sample_weight=w[train], offset=offset[train])
            mu = m.predict(X[held], offset=offset[held])
            expected = w[held] @ fam.unit_deviance(y[held], mu) / w[held].sum()
            assert path["paths"][0]["fold_deviance"][f][i] == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_elastic_net_cv_equals_scikit_learns_on_the_same_folds():
    X, y, _, _ = _draw("gaussian", n=500)
    folds = fold_of(np.arange(len(y)), 5, 0)
    splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(5)]
    ours = mpireg.ElasticNetCV(l1_ratio=[0.5, 1.0], cv=5).fit(X, y)
    theirs = SkElasticNetCV(l1_ratio=[0.5, 1.0], cv=splits, tol=1e-12, max_iter=100000).fit(X, y)
    np.testing.assert_allclose(ours.alphas_, theirs.alphas_, rtol=1e-9)
    np.testing.assert_allclose(np.transpose(ours.mse_path_, (0, 2, 1)), theirs.mse_path_, rtol=1e-6)
    assert ours.n_passes_ == 1
    # The choice: scikit-learn averages the folds' errors; glmnet (and mpireg) weigh each fold by
    # its rows. Each, from the same per-fold errors, picks its own.
    simple = ours.mse_path_.mean(axis=1)
    i, a = np.unravel_index(np.argmin(simple), simple.shape)
    assert (ours.alphas_[i][a], [0.5, 1.0][i]) == pytest.approx((theirs.alpha_, theirs.l1_ratio_), rel=1e-9)
    sizes = np.bincount(folds, minlength=5)
    pooled = (ours.mse_path_ * sizes[:, None]).sum(axis=1) / sizes.sum()
    i, a = np.unravel_index(np.argmin(pooled), pooled.shape)
    assert (ours.alphas_[i][a], [0.5, 1.0][i]) == pytest.approx((ours.alpha_, ours.l1_ratio_), rel=1e-9)
    refit = SkElasticNetCV(l1_ratio=ours.l1_ratio_, alphas=[ours.alpha_], cv=splits, tol=1e-12).fit(X, y)
    np.testing.assert_allclose(ours.coef_, refit.coef_, atol=1e-6)


def test_strong_rules_never_keep_an_active_feature_out():
    """Strongly correlated columns, where the strong rule's guesses go wrong: with or without the
    rule the path is the same, and every point meets the KKT conditions on every feature."""
    rng = np.random.default_rng(4)
    n, d = 300, 30
    base = rng.standard_normal((n, 1))
    X = 0.95 * base + 0.3 * rng.standard_normal((n, d))
    X[:, 1::2] *= -1
    y = X @ (rng.standard_normal(d) * (rng.random(d) < 0.3)) + 0.5 * rng.standard_normal(n)
    ruled = _path(X, y, "gaussian", l1_ratio=[1.0], n_alphas=40, min_ratio=1e-3)
    plain = _path(X, y, "gaussian", l1_ratio=[1.0], n_alphas=40, min_ratio=1e-3, strong_rules=False)
    np.testing.assert_allclose(ruled["paths"][0]["coef"], plain["paths"][0]["coef"], atol=1e-8)
    Xc, yc = X - X.mean(0), y - y.mean()
    for alpha, coef in zip(ruled["paths"][0]["alphas"], ruled["paths"][0]["coef"]):
        gradient = -Xc.T @ (yc - Xc @ np.array(coef[:d])) / n
        zero = np.array(coef[:d]) == 0
        assert np.all(np.abs(gradient[zero]) <= alpha * (1 + 1e-6))


class _Quadratic:
    """An evaluator of least squares on (X, y) without a pass (the GramEvaluator's sums)."""

    def __init__(self, X, y):
        Xt = np.column_stack([X, np.ones(len(y))])
        self.A, self.b, self.rr, self.w = Xt.T @ Xt, Xt.T @ y, float(y @ y), float(len(y))

    def evaluate(self, betas, covered=None, informed=None):
        return {m: path_module.State(beta, 0.5 * (beta @ self.A @ beta - 2 * self.b @ beta + self.rr), self.w,
                                     self.A @ beta - self.b, self.A, np.zeros(2)) for m, beta in betas.items()}


def test_the_kkt_check_brings_back_what_a_wrong_strong_set_left_out():
    """A strong rule told a misleading previous penalty sets aside features that belong in the
    model; the KKT check on every feature brings them back, and the optimum is the unrestricted one."""
    from types import SimpleNamespace

    X, y, _, _ = _draw("gaussian", n=200)
    evaluator = _Quadratic(X, y)
    penalized = np.r_[np.ones(X.shape[1]), 0.0]
    start = np.zeros(X.shape[1] + 1)
    start[-1] = y.mean()
    first = evaluator.evaluate({0: start})
    opt = SimpleNamespace(tol=1e-12, max_iter=100)
    alpha = 0.05
    ruled, readmitted = path_module._solve_all(evaluator, first, alpha, 1.0, -20 * alpha, penalized, opt, True)
    plain, none = path_module._solve_all(evaluator, first, alpha, 1.0, alpha, penalized, opt, False)
    assert readmitted > 0 and none == 0
    np.testing.assert_allclose(ruled[0].beta, plain[0].beta, atol=1e-10)


def test_the_poisson_k_fold_path_costs_about_the_single_paths_passes():
    X, y, w, offset = _draw("poisson", n=600)
    single = _path(X, y, "poisson", w, offset, l1_ratio=[1.0], n_alphas=20)
    k_fold = _path(X, y, "poisson", w, offset, l1_ratio=[1.0], n_alphas=20, cv=5)
    assert k_fold["passes"] <= 1.5 * single["passes"]  # not 6 times them


def test_one_standard_error_chooses_a_larger_penalty_within_one_se():
    X, y, _, _ = _draw("gaussian", n=500)
    least = mpireg.ElasticNetCV(l1_ratio=1.0, cv=5, n_alphas=30).fit(X, y)
    simplest = mpireg.ElasticNetCV(l1_ratio=1.0, cv=5, n_alphas=30, select="1se").fit(X, y)
    a = list(least.alphas_).index(least.alpha_)
    b = list(simplest.alphas_).index(simplest.alpha_)
    assert simplest.alpha_ >= least.alpha_
    assert least.cv_deviance_[b] <= least.cv_deviance_[a] + least.cv_se_[a]


def test_logistic_regression_cv_chooses_among_cs():
    X, y, _, _ = _draw("binomial", n=400)
    m = mpireg.LogisticRegressionCV(Cs=8, cv=4).fit(X, np.where(y > 0, "yes", "no"))
    assert m.C_[0] in m.Cs_ and list(m.classes_) == ["no", "yes"]
    assert m.predict_proba(X).shape == (400, 2) and 0.5 < m.score(X, np.where(y > 0, "yes", "no")) <= 1


def test_folds_are_a_hash_of_the_global_row():
    folds = fold_of(np.arange(100_000), 5, 0)
    assert np.all(np.abs(np.bincount(folds, minlength=5) - 20_000) < 600)
    np.testing.assert_array_equal(fold_of(np.arange(50_000, 100_000), 5, 0), folds[50_000:])
    assert not np.array_equal(fold_of(np.arange(1000), 5, 1), folds[:1000])


@pytest.mark.parametrize("keys,message", [
    ({"optimizer": {"kind": "irls", "cv": 5}}, "optimizer.cv: cross-validation chooses a penalty from a path"),
    ({"optimizer": {"kind": "sgd", "path": {}}}, "optimizer.path: paths are fitted by 'irls'"),
    ({"optimizer": {"kind": "irls", "path": {}, "cv": 1}}, "optimizer.cv: 1 fold leaves nothing to hold out"),
    ({"optimizer": {"kind": "irls", "path": {"l1_ratio": [1.5]}}}, "optimizer.path.l1_ratio: expected values in [0, 1]"),
])
def test_bad_path_keys_are_one_clear_error(keys, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        config_from_dict({"model": {"kind": "glm"}, "data": {"train": ["x"]}, **keys})


@pytest.fixture(scope="module")
def claims(tmp_path_factory):
    from mpireg.convert.claims import synthesize_claims

    root = tmp_path_factory.mktemp("path_claims")
    synthesize_claims("poisson", 3000, 8, root / "freq", shards=3, exposure=True, seed=5)
    return root / "freq"


def test_the_same_folds_and_path_on_1_2_and_3_ranks(claims, tmp_path):
    job = [f"data.train={claims}", "model.kind=glm", "model.family=poisson", "optimizer.kind=irls",
           "optimizer.tol=1e-10", "optimizer.path={n_alphas = 8, l1_ratio = [0.5]}", "optimizer.cv=3"]
    assert_same_path_on_1_2_and_3_ranks(job, tmp_path, 8, 1e-8, rtol=1e-7, atol=1e-10)


def test_the_report_draws_the_cv_curve(claims, tmp_path):
    from mpireg.report import make_report

    train_job(1, tmp_path / "run", [f"data.train={claims}", "model.kind=glm", "model.family=poisson",
                                    "optimizer.kind=irls", "optimizer.path={n_alphas = 6}", "optimizer.cv=3"])
    made = make_report([tmp_path / "run"], tmp_path / "report")
    assert tmp_path / "report" / "path.png" in made
    text = (tmp_path / "report" / "summary.md").read_text()
    assert "## Path: run" in text and "3 folds" in text and "chosen alpha" in text


def test_streamed_rows_give_the_resident_path(claims, tmp_path):
    """Rows that stream in blocks (a small memory budget) are gathered by fold as they come;
    resident ones are grouped once: the same path either way."""
    job = [f"data.train={claims}", "model.kind=glm", "model.family=poisson", "optimizer.kind=irls",
           "optimizer.tol=1e-10", "optimizer.path={n_alphas = 5}", "optimizer.cv=3"]
    resident, summary, _ = train_job(1, tmp_path / "resident", job)
    streamed, other, result = train_job(1, tmp_path / "streamed", [*job, "data.memory_budget_mb=0.05"])
    assert "streamed on each rank" in result.stderr + result.stdout
    np.testing.assert_allclose(other["path"]["paths"][0]["fold_deviance"], summary["path"]["paths"][0]["fold_deviance"],
                               rtol=1e-10)
    np.testing.assert_allclose(streamed, resident, rtol=1e-9, atol=1e-12)


def test_steps_on_earlier_information_reach_the_same_path_with_fewer_information_sums(monkeypatch):
    """Most passes of a k-fold path sum no information (a step takes the model's last one): the
    path, its CV curve and its choice are those of a path that sums it at every pass."""
    X, y, w, offset = _draw("binomial", n=800)
    keys = dict(l1_ratio=[0.5], n_alphas=15, cv=4)
    lazy = _path(X, y, "binomial", w, offset, **keys)
    always = path_module.DataEvaluator.evaluate
    monkeypatch.setattr(path_module.DataEvaluator, "evaluate",
                        lambda self, betas, covered=None, informed=None: always(self, betas, covered, None))
    eager = _path(X, y, "binomial", w, offset, **keys)
    assert lazy["model_sums"]["gradient_only"] > 0.3 * sum(lazy["model_sums"].values())
    assert eager["model_sums"]["gradient_only"] == 0
    assert lazy["alpha"] == eager["alpha"]
    np.testing.assert_allclose(lazy["paths"][0]["coef"], eager["paths"][0]["coef"], atol=1e-6)
    np.testing.assert_allclose(lazy["paths"][0]["cv_deviance"], eager["paths"][0]["cv_deviance"], rtol=1e-8)


def test_logistic_regression_cv_of_three_classes_is_one_path_per_class_against_the_rest():
    """More than two classes: one binary path per class (scikit-learn's one-vs-rest), each
    choosing its own C; each class's model is scikit-learn's LogisticRegression at that C on
    the class against the rest, and the probabilities are theirs normalised over the classes."""
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    rng = np.random.default_rng(3)
    X = rng.standard_normal((600, 4))
    y = np.array(["a", "b", "c"])[np.argmax(X[:, :3] * [1.5, 1.0, 0.5] + rng.gumbel(size=(600, 3)), axis=1)]
    m = mpireg.LogisticRegressionCV(Cs=6, cv=3).fit(X, y)
    assert list(m.classes_) == ["a", "b", "c"] and m.coef_.shape == (3, 4) and m.C_.shape == (3,)
    for k, label in enumerate(m.classes_):
        assert m.C_[k] in m.Cs_
        theirs = SkLogisticRegression(C=m.C_[k], tol=1e-12, max_iter=10000).fit(X, y == label)
        np.testing.assert_allclose(m.coef_[k], theirs.coef_[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(m.intercept_[k], theirs.intercept_[0], rtol=1e-4, atol=1e-5)
    z = X @ m.coef_.T + m.intercept_
    np.testing.assert_allclose(m.decision_function(X), z, rtol=1e-6, atol=1e-6)
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(m.predict_proba(X), p / p.sum(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(m.predict(X), m.classes_[np.argmax(z, axis=1)])
    assert m.score(X, y) > 0.55
    with pytest.raises(ConfigError, match="one model per class"):
        m.save("unused.h5")
