"""The first-order path (optimizer.kind = "lbfgs" with a path; fit/path_first_order.py): its
pass over CSR rows (csrc/cpath.c) equals SciPy's products, its path, CV curve and choice equal
the Newton path's, its points equal plain fits, strong rules never keep an active feature out,
it is the same on 1, 2 and 3 ranks, and a 2^16-column hashed path runs without d^2 memory."""
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import mpireg
from mpireg import log
from mpireg.agreement import default_comm
from mpireg.config import config_from_dict
from mpireg.fit import Arrays, Run
from mpireg.fit import path_gradients as gradients
from tests.helpers import ROOT, assert_same_path_on_1_2_and_3_ranks


def _draw(family, n=500, d=40, density=0.2, seed=0):
    """CSR rows with a few informative columns, weights and offsets."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed, data_rvs=rng.standard_normal)
    beta = np.zeros(d)
    beta[:6] = [0.8, -0.6, 0.5, 0.0, -0.4, 0.3]
    eta = 0.2 + X @ beta
    y = {"gaussian": eta + 0.5 * rng.standard_normal(n), "poisson": rng.poisson(np.exp(eta)).astype(float),
         "binomial": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)}[family]
    return X, y, rng.integers(1, 4, n).astype(float), rng.uniform(-0.1, 0.1, n)


def _path(X, y, family, w, offset, kind, **path):
    cv = path.pop("cv", 3)
    table = {"model": {"kind": "glm", "family": family}, "data": {"train": ["<arrays>"]},
             "optimizer": {"kind": kind, "tol": 1e-10, "max_iter": 5000, "cv": cv,
                           "path": {"n_alphas": 10, "min_ratio": 1e-2, **path}},
             "run": {"progress": False}}
    targets = np.column_stack([y, w, offset])
    with log.quiet(True):
        result = Run(config_from_dict(table), default_comm(), None, arrays=Arrays(X, targets, "regression", 0)).run()
    return result.summary["path"], result


# ------------------------------------------------------------------ the pass
class _Parts:
    def __init__(self, X, targets, family, link, fit_intercept):
        from types import SimpleNamespace

        from mpireg.models.glm import GLMModel

        self.model = GLMModel(X.shape[1], family=family, link=link, fit_intercept=fit_intercept)
        self.train = SimpleNamespace(first_row=0, resident=True, blocks=lambda: iter([(X, targets)]))


class _Run:
    def __init__(self):
        from contextlib import nullcontext
        from types import SimpleNamespace

        self.progress = SimpleNamespace(epoch=0)
        self.clock = lambda name: nullcontext()
        self.allreduce = lambda buffer: None


@pytest.mark.parametrize("family,link", [("binomial", "logit"), ("poisson", "log"), ("gaussian", "identity")])
@pytest.mark.parametrize("folds", [0, 5, 9])  # 9: 16 lanes, the kernel twice over the rows
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtypes", [(np.float64, np.int32), (np.float32, np.int64)])
def test_the_c_pass_equals_scipys_products(family, link, folds, fit_intercept, dtypes):
    X, y, w, offset = _draw(family, n=700, d=50, seed=3)
    X = sp.csr_matrix((X.data.astype(dtypes[0]), X.indices.astype(dtypes[1]), X.indptr), shape=X.shape)
    targets = np.column_stack([y, w, offset])
    rng = np.random.default_rng(1)
    k = X.shape[1] + fit_intercept
    betas = {m: 0.3 * rng.standard_normal(k) for m in range(folds + 1)}
    sums = {}
    for native in (True, False):
        evaluator = gradients.GradientEvaluator(_Parts(X, targets, family, link, fit_intercept), _Run(), folds, 7)
        if not native:
            evaluator.family = None
        sums[native] = evaluator.evaluate(betas)
    for m in betas:
        c, ref = sums[True][m], sums[False][m]
        np.testing.assert_allclose([c.loss, c.weight], [ref.loss, ref.weight], rtol=1e-10)
        np.testing.assert_allclose(c.held, ref.held, rtol=1e-10)
        np.testing.assert_allclose(c.gradient, ref.gradient, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(c.curvature, ref.curvature, rtol=1e-9, atol=1e-9)
    assert (sums[True][0].held[1] > 0) == bool(folds)
    for native in (True, False):  # a round of a few models packs them into the first lanes: same sums
        evaluator = gradients.GradientEvaluator(_Parts(X, targets, family, link, fit_intercept), _Run(), folds, 7)
        if not native:
            evaluator.family = None
        few = evaluator.evaluate({m: betas[m] for m in (folds, folds // 2)})
        for m, state in few.items():
            np.testing.assert_allclose([state.loss, *state.held], [sums[native][m].loss, *sums[native][m].held],
                                       rtol=1e-13)
            np.testing.assert_allclose(state.gradient, sums[native][m].gradient, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(state.curvature, sums[native][m].curvature, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtypes", [(np.float64, np.int32), (np.float32, np.int64)])
def test_kept_rows_are_scipys_column_selection(dtypes):
    """csrc/cpath.c's keep_columns: the rows' entries in the working set's columns, renumbered,
    in their order, as SciPy's X[:, columns]."""
    X, *_ = _draw("binomial", n=300, d=60, density=0.3, seed=4)
    X = sp.csr_matrix((X.data.astype(dtypes[0]), X.indices.astype(dtypes[1]), X.indptr), shape=X.shape)
    columns = np.sort(np.random.default_rng(0).choice(60, 17, replace=False))
    position = np.full(60, -1, dtype=np.int32)
    position[columns] = np.arange(17, dtype=np.int32)
    kept = gradients._kept(X, X.indptr.astype(np.int64), position)
    reference = X[:, columns].tocsr()
    reference.sort_indices()
    np.testing.assert_array_equal(kept.indptr, reference.indptr)
    np.testing.assert_array_equal(kept.indices, reference.indices)
    np.testing.assert_array_equal(kept.data, reference.data)
    assert kept.indices.dtype == np.int32 and kept.data.dtype == dtypes[0]


@pytest.mark.parametrize("family,link", [("binomial", "logit"), ("poisson", "log")])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_a_working_set_pass_is_the_full_pass_on_its_coefficients(family, link, fit_intercept):
    """Bit for bit: a coefficient outside the set is 0 in every model, so dropping its entries
    changes no sum, and the kept ones are added in the same order."""
    X, y, w, offset = _draw(family, n=700, d=50, seed=5)
    targets = np.column_stack([y, w, offset])
    evaluator = gradients.GradientEvaluator(_Parts(X, targets, family, link, fit_intercept), _Run(), 5, 7)
    at = np.sort(np.random.default_rng(1).choice(50, 12, replace=False))
    if fit_intercept:
        at = np.append(at, 50)
    rng = np.random.default_rng(2)
    betas = {}
    for m in range(6):
        betas[m] = np.zeros(50 + fit_intercept)
        betas[m][at] = 0.3 * rng.standard_normal(len(at))
    ahead = np.setdiff1d(np.arange(0, 50, 3), at)  # kept too (likely to join), coefficients 0
    evaluator.narrow(at, ahead)
    assert evaluator.working.blocks is not None  # the kept rows, not a full pass in disguise
    assert len(evaluator.working.columns) == len(np.union1d(at[at < 50], ahead))
    working = evaluator.evaluate_working({m: beta[at] for m, beta in betas.items()})
    full = evaluator.evaluate(betas)
    assert evaluator.passes == {"full": 1, "working": 1}
    for m in betas:
        assert (working[m].loss, working[m].weight) == (full[m].loss, full[m].weight)
        np.testing.assert_array_equal(working[m].held, full[m].held)
        np.testing.assert_array_equal(working[m].gradient, full[m].gradient[at])
        np.testing.assert_array_equal(working[m].curvature, full[m].curvature[at])
    kept = evaluator.working
    grown = np.union1d(at, ahead[:3])  # within the kept columns: the same rows, no keep again
    evaluator.narrow(grown)
    assert evaluator.working is kept
    for m in betas:
        betas[m][ahead[:3]] = 0.1 * (m + 1)
    working = evaluator.evaluate_working({m: beta[grown] for m, beta in betas.items()}, informed=False)
    full = evaluator.evaluate(betas, informed=False)
    for m in betas:
        assert working[m].loss == full[m].loss and working[m].curvature is None
        np.testing.assert_array_equal(working[m].gradient, full[m].gradient[grown])


def test_the_low_rank_descent_equals_its_reference_and_the_formed_matrix():
    """csrc/ccd.c's coordinate descent on diag(D) - W P^T equals its NumPy loop, and both the
    minimiser of the model with the matrix formed (KKT of the lasso subproblem)."""
    from mpireg.optim import proximal_lbfgs as plb

    rng = np.random.default_rng(2)
    k = 40
    memory = plb.LimitedMemory(5)
    memory.widen(np.arange(k))
    A = rng.standard_normal((k, k))
    H = A @ A.T / k + np.diag(rng.uniform(0.5, 3.0, k))
    for _ in range(5):
        s = rng.standard_normal(k)
        memory.remember(s, H @ s)
    D, W, P = memory.model(np.zeros(k), np.diag(H).copy())
    c, l1 = rng.standard_normal(k), np.full(k, 0.3)
    ours, reference = np.zeros(k), np.zeros(k)
    plb._ccd.lowrank_coordinate_descent(c, D, W, P, ours, l1, 1e-14, 100000)
    saved, plb.SWEEPS = plb.SWEEPS, 100000
    try:
        plb._lowrank_descent(c, D, W, P, reference, l1)
    finally:
        plb.SWEEPS = saved
    np.testing.assert_allclose(ours, reference, atol=1e-9)
    model = np.diag(D) - W @ P.T
    r = c + model @ ours  # the subgradient conditions of c.z + z.M.z/2 + l1 |z|
    assert np.all(np.abs(r[ours == 0]) <= l1[ours == 0] + 1e-8)
    np.testing.assert_allclose(r[ours != 0], -l1[ours != 0] * np.sign(ours[ours != 0]), atol=1e-8)


def test_a_mean_outside_the_familys_range_is_an_infinite_loss():
    X, y, w, offset = _draw("poisson", n=50, d=8)
    targets = np.column_stack([y, w, offset])
    evaluator = gradients.GradientEvaluator(_Parts(X.tocsr() * 1e3, targets, "poisson", "log", True), _Run(), 0, 0)
    assert evaluator.evaluate({0: np.full(9, 10.0)})[0].loss == np.inf


# ------------------------------------------------------------------ the path
@pytest.mark.parametrize("family", ["binomial", "poisson", "gaussian"])
@pytest.mark.parametrize("ratio", [1.0, 0.5, 0.0])
def test_the_first_order_path_equals_the_newton_path(family, ratio):
    X, y, w, offset = _draw(family)
    newton, _ = _path(X, y, family, w, offset, "irls", l1_ratio=[ratio])
    ours, _ = _path(X, y, family, w, offset, "lbfgs", l1_ratio=[ratio])
    assert ours["alpha"] == pytest.approx(newton["alpha"], rel=1e-12)
    a, b = ours["paths"][0], newton["paths"][0]
    np.testing.assert_allclose(a["alphas"], b["alphas"], rtol=1e-12)
    np.testing.assert_allclose(a["coef"], b["coef"], atol=1e-6)
    np.testing.assert_allclose(a["cv_deviance"], b["cv_deviance"], rtol=1e-6)
    np.testing.assert_allclose(a["fold_deviance"], b["fold_deviance"], rtol=1e-6)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_a_point_of_the_first_order_path_equals_a_plain_fit(family):
    X, y, w, offset = _draw(family)
    path, result = _path(X, y, family, w, offset, "lbfgs", l1_ratio=[0.5])
    for i in (1, 5, 9):
        alpha = path["paths"][0]["alphas"][i]
        plain = mpireg.GeneralizedLinearRegressor(family=family, alpha=alpha, l1_ratio=0.5, tol=1e-12)
        plain.fit(X.toarray(), y, sample_weight=w, offset=offset)
        np.testing.assert_allclose(path["paths"][0]["coef"][i], np.r_[plain.coef_, plain.intercept_], atol=1e-6)
    assert result.inference is not None  # 41 parameters: the answer's standard errors too


def test_strong_rules_never_keep_an_active_feature_out_of_the_first_order_path():
    """Correlated columns of alternating sign, where the strong rule guesses wrong: the same path
    with and without it, and every zero coefficient meets the KKT condition."""
    rng = np.random.default_rng(4)
    n, d = 300, 30
    X = 0.95 * rng.standard_normal((n, 1)) + 0.3 * rng.standard_normal((n, d))
    X[:, 1::2] *= -1
    eta = X @ (rng.standard_normal(d) * (rng.random(d) < 0.3)) * 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    ones, zeros = np.ones(n), np.zeros(n)
    keys = dict(l1_ratio=[1.0], n_alphas=30, min_ratio=1e-3, cv=0)
    ruled, _ = _path(sp.csr_matrix(X), y, "binomial", ones, zeros, "lbfgs", **keys)
    plain, _ = _path(sp.csr_matrix(X), y, "binomial", ones, zeros, "lbfgs", strong_rules=False, **keys)
    np.testing.assert_allclose(ruled["paths"][0]["coef"], plain["paths"][0]["coef"], atol=1e-7)
    for alpha, coef in zip(ruled["paths"][0]["alphas"], ruled["paths"][0]["coef"]):
        coef = np.array(coef)
        mu = 1 / (1 + np.exp(-(X @ coef[:d] + coef[d])))
        gradient = X.T @ (mu - y) / n
        zero = coef[:d] == 0
        assert np.all(np.abs(gradient[zero]) <= alpha + 1e-7)  # the solver's gap here: 4e-8


def test_the_api_fits_a_sparse_path_with_either_solver():
    X, y, w, offset = _draw("binomial", n=400)
    keys = dict(family="binomial", l1_ratio=0.5, n_alphas=8, cv=3, tol=1e-10)
    newton = mpireg.GeneralizedLinearRegressorCV(solver="irls", **keys).fit(X, y, sample_weight=w, offset=offset)
    ours = mpireg.GeneralizedLinearRegressorCV(solver="lbfgs", **keys).fit(X, y, sample_weight=w, offset=offset)
    assert ours.alpha_ == pytest.approx(newton.alpha_, rel=1e-12)
    np.testing.assert_allclose(ours.coef_, newton.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.coef_path_, newton.coef_path_, atol=1e-6)
    np.testing.assert_allclose(ours.predict(X, offset=offset), newton.predict(X, offset=offset), rtol=1e-5)


def test_a_wide_hashed_path_keeps_its_coefficients_sparse():
    """2^16 hashed columns: nothing d x d is formed (the Newton path would need 6 matrices of
    65,537^2), the path's coefficients are kept as CSR, and the estimator's coef_path_ too."""
    rng = np.random.default_rng(0)
    n, d, per_row = 3000, 2 ** 16, 10
    seen = rng.choice(d, 400, replace=False)  # 400 features hashed into 2^16 columns
    cols = np.sort(seen[rng.integers(0, 400, size=(n, per_row))], axis=1)
    X = sp.csr_matrix((np.ones(n * per_row), cols.ravel(), np.arange(0, n * per_row + 1, per_row)), shape=(n, d))
    X.sum_duplicates()
    hot = seen[:20]
    y = (rng.random(n) < 1 / (1 + np.exp(-(X[:, hot] @ rng.standard_normal(20))))).astype(float)
    m = mpireg.GeneralizedLinearRegressorCV(family="binomial", l1_ratio=1.0, n_alphas=6, min_alpha_ratio=0.1, cv=3,
                                            solver="lbfgs").fit(X, y)
    assert sp.issparse(m.coef_path_) and m.coef_path_.shape == (6, d)
    assert 0 < m.coef_path_[-1].nnz < d and m.alpha_ in m.alphas_
    assert not hasattr(m, "std_errors_") or m.std_errors_ is None


# ------------------------------------------------------------------ ranks
@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    root = tmp_path_factory.mktemp("first_order_clicks")
    subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", "logistic", "--sparse", "--rows", "4000",
                    "--hash-bits", "9", "--nnz", "12", "--shards", "3", "--out", str(root / "clicks")],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return root / "clicks"


def test_the_same_first_order_path_on_1_2_and_3_ranks(clicks, tmp_path):
    job = [f"data.train={clicks}", "model.kind=glm", "model.family=binomial", "optimizer.kind=lbfgs",
           "optimizer.tol=1e-9", "optimizer.path={n_alphas = 8, min_ratio = 0.02, l1_ratio = [0.5]}",
           "optimizer.cv=3"]
    assert_same_path_on_1_2_and_3_ranks(job, tmp_path, 8, 1e-7, atol=2e-6)  # float32 parameters (the rows' dtype)
