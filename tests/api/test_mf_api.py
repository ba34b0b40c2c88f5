"""MatrixFactorization in one process: arrays and shards fit the same model, predictions and
top-k, cold users and items, model files both ways, and the errors bad input gets."""
import numpy as np
import pytest
from sklearn.base import clone

import mpireg
from mpireg.data import write_shard
from mpireg.errors import MpiregError
from tests.api.api_worker import all_rows


@pytest.fixture(scope="module")
def fitted(datasets):
    return mpireg.MatrixFactorization(3, l2=0.05, epochs=6).fit(datasets["ratings"])


def test_arrays_and_shards_fit_the_same_factors(datasets, fitted):
    X, y = all_rows(datasets["ratings"])
    from_arrays = mpireg.MatrixFactorization(3, l2=0.05, epochs=6).fit(X, y)
    np.testing.assert_allclose(from_arrays.user_factors_, fitted.user_factors_, rtol=1e-12)
    np.testing.assert_allclose(from_arrays.item_factors_, fitted.item_factors_, rtol=1e-12)
    assert from_arrays.intercept_ == pytest.approx(y.mean())
    assert (fitted.n_users_, fitted.n_items_, fitted.n_iter_) == (60, 30, 6)
    assert fitted.user_factors_.shape == (60, 3) and fitted.item_factors_.shape == (30, 3)


def test_predict_score_and_held_out_error(datasets, fitted):
    X, y = all_rows(f"{datasets['ratings']}/test")
    pred = fitted.predict(X)
    expected = fitted.intercept_ + np.einsum("ij,ij->i", fitted.user_factors_[X[:, 0]], fitted.item_factors_[X[:, 1]])
    np.testing.assert_allclose(pred, expected, rtol=1e-12)
    assert fitted.score(X, y) == pytest.approx(fitted.score(f"{datasets['ratings']}/test"), rel=1e-12)
    assert fitted.score(X, y) > 0.5


def test_cold_and_unknown_users_and_items_get_the_mean(fitted):
    pred = fitted.predict(np.array([[60, 0], [0, 30], [10**6, 10**6], [-1, 3]]))
    np.testing.assert_allclose(pred, fitted.intercept_)
    items, scores = fitted.recommend([10**6], k=3)
    assert items.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(scores, fitted.intercept_)


def test_recommend_excludes_what_a_user_rated(datasets, fitted):
    X, _ = all_rows(datasets["ratings"])
    seen = {tuple(p) for p in X.tolist()}
    items, scores = fitted.recommend([0, 1, 2], k=5, exclude=X)
    for row, user in enumerate([0, 1, 2]):
        assert not {(user, i) for i in items[row]} & seen
        assert np.all(np.diff(scores[row]) <= 0)  # best first


def test_model_files_round_trip_and_the_cli_model_loads_as_the_estimator(tmp_path, datasets, fitted):
    fitted.save(tmp_path / "m.h5")
    again = mpireg.load(tmp_path / "m.h5")
    assert type(again) is mpireg.MatrixFactorization
    X, _ = all_rows(datasets["ratings"])
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))
    assert again.get_params()["rank"] == 3 and clone(fitted).get_params() == fitted.get_params()


@pytest.mark.parametrize("X,message", [
    (np.array([[0.5, 1.0]]), "whole numbers"),
    (np.array([[0, 1, 2]]), r"shape \(n, 2\)"),
    (np.array([[-1, 1]]), "negative index at row 0"),
])
def test_bad_pairs_are_one_clear_error(X, message):
    with pytest.raises(MpiregError, match=message):
        mpireg.MatrixFactorization(2).fit(X, np.ones(len(X)))


def test_solvers_and_data_it_cannot_fit(datasets):
    with pytest.raises(MpiregError, match="solver: expected one of 'auto', 'als', 'sgd', 'adam'"):
        mpireg.MatrixFactorization(2, solver="lbfgs").fit(np.array([[0, 0]]), np.ones(1))
    with pytest.raises(MpiregError, match="MatrixFactorization fits ratings, not task 'regression'"):
        mpireg.MatrixFactorization(2).fit(datasets["linear"])


def test_sgd_mf_from_the_api(tmp_path):
    rng = np.random.default_rng(1)
    X = np.stack([rng.integers(0, 30, 2000), rng.integers(0, 20, 2000)], axis=1)
    truth = rng.normal(size=(30, 2))[X[:, 0]] * rng.normal(size=(20, 2))[X[:, 1]]
    y = 3.0 + truth.sum(axis=1)
    write_shard(tmp_path / "r" / "part-00000.h5", X, y, "ratings", attrs=dict(n_users=30, n_items=20))
    model = mpireg.MatrixFactorization(2, l2=0.001, solver="adam", lr=0.05, epochs=30, batch_size=64).fit(tmp_path / "r")
    assert model.score(X, y) > 0.9
