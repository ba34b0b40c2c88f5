"""MatrixFactorization: the engine's explicit-ratings model (models/mf.py) as an estimator.

    m = MatrixFactorization(rank=10, l2=0.1).fit(pairs, ratings)   # pairs: (n, 2) user, item
    m.fit("data/ratings")                                           # or ratings shards
    m.predict(pairs), m.recommend(users, k=10), m.score(pairs, ratings)
    m.user_factors_, m.item_factors_, m.intercept_ (the global mean rating)

Users and items are indices 0..n-1 (`python -m mpireg.data ratings` maps a CSV's ids to them).
Under mpiexec each rank passes its own ratings; ALS then moves each rating to the ranks that
own its user and its item (fit/als.py). solver "auto" is ALS; "sgd" and "adam" are SGD-MF
(with any strategy, the parameter servers included). `l2` is the per-rating penalty of
ALS-WR (Spark MLlib's regParam); the default 0.1 is Spark's. A user or item the fit never saw,
or an index past the fitted ones, is predicted the global mean.
"""
from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import ConfigError, DataError
from ..models import make_model
from .estimator import estimator_init
from .linear_models import LinearRegression

SOLVERS = ("auto", "als", "sgd", "adam")


def ratings_targets(comm, y):
    return y.astype(np.float64, copy=False), "ratings", 0, None


class MatrixFactorization(LinearRegression):
    _own_parameters = {"rank": "model.rank", "factor_exchange": "comm.factor_exchange"}
    _penalty_alias = ""
    score = LinearRegression.score  # R^2 over every rank's ratings; collective

    _job_kind = "mf"
    __init__ = estimator_init({"rank": 10}, {"factor_exchange": "auto"}, l2=0.1, lr=0.01)

    def fit(self, X=None, y=None):
        """X: ratings shards, or this rank's (user, item) pairs (y: their ratings). Collective."""
        return self._fit(X, y, ratings_targets)

    def _solver(self) -> str:
        if self.solver not in SOLVERS:
            raise ConfigError(f"solver: expected one of {', '.join(map(repr, SOLVERS))}, got {self.solver!r}")
        return "als" if self.solver == "auto" else self.solver

    @staticmethod
    def _model_kind(task: str, n_classes: int) -> str:
        if task != "ratings":
            raise ConfigError(f"data: MatrixFactorization fits ratings, not task {task!r} "
                              f"(write ratings shards with `python -m mpireg.data ratings`)")
        return "mf"

    # ------------------------------------------------------------------ input
    def _validate_fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=None, y_numeric=True, ensure_min_samples=0, reset=True)
        return _pairs(X), np.asarray(y, dtype=np.float64)

    def _validate_predict(self, X, min_rows: int = 1):
        check_is_fitted(self)
        return _pairs(validate_data(self, X, dtype=None, reset=False, ensure_min_samples=min_rows))

    # ------------------------------------------------------------------ fitted state
    def _set_fitted(self, job: dict, model, params, schema: dict, classes) -> None:
        self._kind, self._fitted_intercept, self._options = model.kind, model.fit_intercept, model.options()
        self.job_, self.schema_ = job, schema
        self.n_features_in_ = 2
        self.l2_, self.l1_ = model.l2, 0.0
        views = model.layout.views(params)
        self.user_factors_ = views["user_factors"].copy()
        self.item_factors_ = views["item_factors"].copy()
        self.intercept_ = float(views["intercept"])
        self.n_users_, self.n_items_ = model.n_users, model.n_items

    def _engine_model(self, xp=np):
        model = make_model("mf", 2, 0, self._fitted_intercept, self.l2_, 0.0, xp=xp, **self._options)
        params = model.init_params(self.user_factors_.dtype)
        views = model.layout.views(params)
        views["user_factors"][...] = xp.asarray(self.user_factors_)
        views["item_factors"][...] = xp.asarray(self.item_factors_)
        views["intercept"][...] = self.intercept_
        return model, params

    # ------------------------------------------------------------------ output
    def predict(self, X):
        return self._predict(self._validate_predict(X))

    def _predict(self, X, offset=None):
        if offset is not None:
            raise ConfigError("offset: matrix factorisation predicts ratings without offsets")
        model, params = self._engine_model()
        return model.predict(params, X)

    def recommend(self, users, k: int = 10, exclude=None):
        """(items, scores), each (len(users), k): every user's k best items by predicted rating,
        best first. `exclude`: (user, item) pairs not to recommend (e.g. the training pairs)."""
        check_is_fitted(self)
        model, params = self._engine_model()
        users = np.atleast_1d(np.asarray(users))
        if not np.issubdtype(users.dtype, np.integer):
            raise DataError(f"users: expected integer user indices, got {users.dtype}")
        return model.recommend(params, users, k, None if exclude is None else _pairs(np.asarray(exclude)))


def _pairs(X) -> np.ndarray:
    """(user, item) pairs as int64; floats are accepted when they hold whole numbers."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise DataError(f"X: expected (user, item) pairs, shape (n, 2), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.integer):
        if not np.issubdtype(X.dtype, np.floating) or not np.all(X == np.round(X)):
            raise DataError(f"X: user and item indices must be whole numbers, got {X.dtype} values")
    return X.astype(np.int64, copy=False)
