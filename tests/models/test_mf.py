"""Matrix factorisation's arithmetic: the gradient, the ALS solve, cold rows, top-k."""
import numpy as np
import pytest

from mpireg.models import make_model
from mpireg.models import mf as mf_module
from mpireg.models.mf import solve_factors


def _model(n_users=7, n_items=5, rank=3, l2=0.1, fit_intercept=True, seed=0):
    return make_model("mf", 2, 0, fit_intercept, l2, 0.0, task="ratings",
                      n_users=n_users, n_items=n_items, rank=rank, seed=seed)


def _ratings(n_users=7, n_items=5, n=30, seed=1):
    rng = np.random.default_rng(seed)
    pairs = np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)], axis=1)
    return pairs, rng.normal(3.0, 1.0, n)


def _random_params(model, seed=2):
    return np.random.default_rng(seed).normal(size=model.layout.size)


@pytest.mark.parametrize("l2,fit_intercept", [(0.0, True), (0.3, True), (0.1, False)])
def test_gradient_matches_finite_differences(l2, fit_intercept):
    model = _model(l2=l2, fit_intercept=fit_intercept)
    X, y = _ratings()
    params = _random_params(model)
    if not fit_intercept:
        model.layout.views(params)["intercept"][...] = 0.0
    grad = np.empty_like(params)
    loss = model.loss_grad_sum(params, X, y, grad)
    assert loss == pytest.approx(model.loss_sum(params, X, y), rel=1e-12)
    eps = 1e-6
    numeric = np.empty_like(params)
    for j in range(params.size):
        step = np.zeros_like(params)
        step[j] = eps
        numeric[j] = (model.loss_sum(params + step, X, y) - model.loss_sum(params - step, X, y)) / (2 * eps)
    if not fit_intercept:
        numeric[-1] = 0.0  # no intercept is learned
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


def test_the_loss_is_the_weighted_lambda_objective():
    """sum of squared errors / 2 + l2/2 (sum_u n_u |x_u|^2 + sum_i n_i |v_i|^2)."""
    model = _model(l2=0.2)
    X, y = _ratings()
    params = _random_params(model)
    v = model.layout.views(params)
    err = v["intercept"] + np.einsum("ij,ij->i", v["user_factors"][X[:, 0]], v["item_factors"][X[:, 1]]) - y
    n_u = np.bincount(X[:, 0], minlength=7)
    n_i = np.bincount(X[:, 1], minlength=5)
    expected = 0.5 * err @ err + 0.1 * (n_u @ (v["user_factors"] ** 2).sum(1) + n_i @ (v["item_factors"] ** 2).sum(1))
    assert model.loss_sum(params, X, y) == pytest.approx(expected, rel=1e-12)


PATHS = ["c", "numpy", "numpy-chunked"]


def _use(monkeypatch, path):
    """The C loop, NumPy's batched solve, or NumPy with chunks so small that heavy rows go alone
    (the BLAS path)."""
    if path != "c":
        monkeypatch.setattr(mf_module, "_cals", None)
    elif mf_module._cals is None:
        pytest.skip("the C extension is not built")
    if path == "numpy-chunked":
        monkeypatch.setattr(mf_module, "GRAM_BYTES", 8 * 3 * 3 * 4)


def _system(seed=0):
    rng = np.random.default_rng(seed)
    counts = np.array([3, 0, 9, 1, 4, 0, 12])
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    factors = rng.normal(size=(8, 3))
    index = rng.integers(0, 8, starts[-1]).astype(np.int64)
    return counts, starts, factors, index, rng.normal(size=starts[-1])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("l2", [0.5, 0.0])
def test_als_solve_is_each_rows_regularised_least_squares(monkeypatch, path, l2):
    """Against a per-row solve; a row with no rating gets zeros."""
    _use(monkeypatch, path)
    counts, starts, factors, index, r = _system()
    out = np.full((len(counts), 3), np.nan)
    solve_factors(factors, index, r, starts, l2, out)
    for j, n in enumerate(counts):
        F, t = factors[index[starts[j]:starts[j + 1]]], r[starts[j]:starts[j + 1]]
        ridge = l2 * n if l2 else 1e-10
        expected = np.linalg.solve(F.T @ F + ridge * np.eye(3), F.T @ t) if n else np.zeros(3)
        # no penalty: nearly singular rows, where Cholesky and LU part in the last digits
        np.testing.assert_allclose(out[j], expected, rtol=1e-10 if l2 else 1e-5, atol=1e-10)


@pytest.mark.parametrize("path", ["c", "numpy"])
def test_squared_error_sums_each_ratings_residual(monkeypatch, path):
    _use(monkeypatch, path)
    counts, starts, factors, index, r = _system(1)
    own = np.random.default_rng(2).normal(size=(len(counts), 3))
    rows = np.repeat(np.arange(len(counts)), counts)
    err = np.einsum("ij,ij->i", factors[index], own[rows]) - r
    assert mf_module.squared_error(factors, index, own, starts, r) == pytest.approx(err @ err, rel=1e-12)


def test_the_c_loop_checks_what_it_is_given():
    if mf_module._cals is None:
        pytest.skip("the C extension is not built")
    counts, starts, factors, index, r = _system()
    out = np.zeros((len(counts), 3))
    bad = index.copy()
    bad[4] = 8
    with pytest.raises(IndexError, match=r"index\[4\] = 8 is outside the 8 factor rows"):
        mf_module._cals.solve(factors, bad, r, starts, 0.1, out)
    with pytest.raises(TypeError, match="index must hold int64"):
        mf_module._cals.solve(factors, index.astype(np.int32), r, starts, 0.1, out)
    with pytest.raises(ValueError, match="starts must run from 0"):
        mf_module._cals.solve(factors, index, r, starts[:-1], 0.1, out[:-1])


def test_init_from_data_zeroes_unrated_rows_and_starts_at_the_mean():
    model = _model()
    X = np.array([[0, 1], [2, 1], [2, 3]])
    y = np.array([1.0, 2.0, 6.0])
    stats = model.data_statistics(X, y)
    params = model.init_params(np.float64)
    model.init_from_data(params, stats)
    v = model.layout.views(params)
    assert v["intercept"] == pytest.approx(3.0)
    assert not v["user_factors"].any()
    rated = np.array([False, True, False, True, False])
    assert np.all(v["item_factors"][~rated] == 0) and np.all(v["item_factors"][rated] != 0)
    again = model.init_params(np.float64)
    model.init_from_data(again, stats)
    assert np.array_equal(params, again)  # the seed alone decides


def test_cold_users_and_items_get_the_global_mean_never_an_index_error():
    model = _model()
    params = _random_params(model)
    v = model.layout.views(params)
    v["user_factors"][3] = 0.0  # a user with no training rating keeps zero factors
    X = np.array([[0, 0], [7, 0], [0, 5], [-1, 2], [100, 100], [3, 1]])
    pred = model.predict(params, X)
    mean = float(v["intercept"])
    assert pred[0] == pytest.approx(mean + v["user_factors"][0] @ v["item_factors"][0])
    np.testing.assert_allclose(pred[1:], mean)


def test_recommend_gives_the_top_k_best_first_and_skips_what_was_rated():
    model = _model(n_items=6)
    params = _random_params(model)
    v = model.layout.views(params)
    scores = v["user_factors"] @ v["item_factors"].T + v["intercept"]
    items, top = model.recommend(params, [0, 4], k=3)
    for row, user in enumerate([0, 4]):
        assert list(items[row]) == list(np.argsort(-scores[user])[:3])
        np.testing.assert_allclose(top[row], np.sort(scores[user])[::-1][:3])
    best = int(np.argmax(scores[0]))
    items, _ = model.recommend(params, [0], k=2, exclude=[[0, best]])
    assert best not in items[0]


def test_a_cold_user_is_recommended_items_at_the_mean():
    model = _model()
    params = _random_params(model)
    items, scores = model.recommend(params, [99], k=2)
    assert list(items[0]) == [0, 1]
    np.testing.assert_allclose(scores[0], float(model.layout.views(params)["intercept"]))
