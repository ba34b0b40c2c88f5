"""Matrix factorisation for explicit ratings: rating(u, i) ~ mean + x_u . v_i.

The loss of one rating is
    (mean + x_u . v_i - r)^2 / 2  +  l2/2 * (|x_u|^2 + |v_i|^2)
so a user's factors are penalised once per rating they gave (the weighted-lambda
regularisation of ALS-WR, Spark MLlib's ALS), and the same objective is what SGD-MF
(mini-batches, any strategy) and ALS (fit/als.py) both minimise. `mean` is the intercept: ALS
keeps it at the global mean of the training ratings, SGD starts it there and learns it.

Rows ("X") are (user, item) index pairs. A user or item with no training rating keeps zero
factors, so it is predicted the global mean; so is an index beyond the model's ranges (a user
who came after training): never an index error.
"""
from __future__ import annotations

import numpy as np

from .model import Model, ParamSpec

try:  # the ALS row loops (csrc/cals.c); the NumPy code below stays the reference
    from .. import _cals
except ImportError:
    _cals = None

GRAM_BYTES = 64 * 2**20  # the outer products of one chunk of ratings, at most


class MFModel(Model):
    kind = "mf"
    task = ("ratings",)
    output = "regression"
    needs_data_statistics = True

    def __init__(self, n_features: int = 2, n_classes: int = 0, fit_intercept: bool = True,
                 l2: float = 0.0, l1: float = 0.0, xp=np, n_users: int = 1, n_items: int = 1,
                 rank: int = 10, seed: int = 0):
        self.n_users, self.n_items, self.rank, self.seed = int(n_users), int(n_items), int(rank), int(seed)
        super().__init__(2, 0, fit_intercept, l2, l1, xp)

    def _param_specs(self):
        # penalized=False: the L2 term is per rating, inside the loss (see the module docstring)
        return [ParamSpec("user_factors", (self.n_users, self.rank), False),
                ParamSpec("item_factors", (self.n_items, self.rank), False),
                ParamSpec("intercept", (), False)]

    def options(self) -> dict:
        return dict(n_users=self.n_users, n_items=self.n_items, rank=self.rank, seed=self.seed)

    # ----------------------------------------------------------------- initialisation
    def data_statistics(self, X, y) -> np.ndarray:
        """[ratings, their sum, ratings per user..., ratings per item...] of these rows."""
        xp = self.xp
        return xp.concatenate([xp.asarray([X.shape[0], float(y.sum())], dtype=np.float64),
                               xp.bincount(X[:, 0], minlength=self.n_users).astype(np.float64),
                               xp.bincount(X[:, 1], minlength=self.n_items).astype(np.float64)])

    def init_from_data(self, params, stats) -> None:
        """Given the global statistics: the intercept at the mean rating, rated items' factors
        drawn from the seed (unit expected norm), everything else zero. The draw depends on the
        seed alone, not on the number of ranks."""
        views = self.layout.views(params)
        count = stats[0]
        views["intercept"][...] = stats[1] / count if self.fit_intercept and count else 0.0
        rng = np.random.default_rng([self.seed, 0x1E75])
        items = rng.standard_normal((self.n_items, self.rank)) / np.sqrt(self.rank)
        items[stats[2 + self.n_users:] == 0] = 0.0
        views["item_factors"][...] = self.xp.asarray(items)
        views["user_factors"][...] = 0.0

    # ----------------------------------------------------------------- loss and gradient
    def loss_grad_sum(self, params, X, y, grad, on_ready=None) -> float:
        xp, l2 = self.xp, self.l2
        v, g = self.layout.views(params), self.layout.views(grad)
        users, items = X[:, 0], X[:, 1]
        U, V = v["user_factors"][users], v["item_factors"][items]
        err = self._predict_rows(v, U, V) - y
        grad[...] = 0
        gU = err[:, None] * V
        gV = err[:, None] * U
        if l2:
            gU += l2 * U
            gV += l2 * V
        _scatter_add(xp, g["user_factors"], users, gU)
        _scatter_add(xp, g["item_factors"], items, gV)
        if self.fit_intercept:
            g["intercept"][...] = err.sum()
        return self._loss(err, U, V)

    def loss_sum(self, params, X, y) -> float:
        v = self.layout.views(params)
        U, V, _ = self._rows(v, X)
        return self._loss(self._predict_rows(v, U, V) - y, U, V)

    def _loss(self, err, U, V) -> float:
        loss = 0.5 * float(err @ err)
        if self.l2:
            loss += 0.5 * self.l2 * (float(self.xp.sum(U * U)) + float(self.xp.sum(V * V)))
        return loss

    @staticmethod
    def _predict_rows(v, U, V):
        return (U * V).sum(axis=1) + v["intercept"]

    # ----------------------------------------------------------------- prediction
    def predict(self, params, X):
        """Ratings of (user, item) pairs; unknown users or items get the global mean."""
        v = self.layout.views(params)
        U, V, _ = self._rows(v, X)
        return self._predict_rows(v, U, V)

    def decision(self, params, X):
        return self.predict(params, X)

    def recommend(self, params, users, k: int, exclude=None):
        """(items, scores): each user's k highest predicted items, best first, ties by item
        index. A cold user scores every item at the global mean, so gets items 0..k-1.
        `exclude`: (user, item) pairs not to recommend (what each user already rated)."""
        xp = self.xp
        v = self.layout.views(params)
        users = xp.asarray(users, dtype=np.int64)
        known = (users >= 0) & (users < self.n_users)
        U = v["user_factors"][xp.where(known, users, 0)] * known[:, None]
        scores = U @ v["item_factors"].T + v["intercept"]
        if exclude is not None:
            row_of = {int(u): r for r, u in enumerate(users.tolist())}
            for u, i in np.asarray(exclude).tolist():
                if u in row_of and 0 <= i < self.n_items:
                    scores[row_of[u], i] = -np.inf
        k = min(int(k), self.n_items)
        # stable sort on -score: equal scores keep item order
        order = xp.argsort(-scores, axis=1, kind="stable")[:, :k]
        return order, xp.take_along_axis(scores, order, axis=1)

    def _rows(self, v, X):
        """Factor rows of each pair, zero where the index is outside the model."""
        xp = self.xp
        users, items = X[:, 0], X[:, 1]
        known_u = (users >= 0) & (users < self.n_users)
        known_i = (items >= 0) & (items < self.n_items)
        U = v["user_factors"][xp.where(known_u, users, 0)] * known_u[:, None]
        V = v["item_factors"][xp.where(known_i, items, 0)] * known_i[:, None]
        return U, V, known_u & known_i

    def prepare_targets(self, y):
        return y


# --------------------------------------------------------------------------- ALS arithmetic

def solve_factors(factors, index, ratings, starts, l2: float, out) -> None:
    """One ALS half-step for a block of rows: row j of `out` minimises
        sum over its ratings of (f_p . x - r_p)^2 / 2  +  l2/2 * n_j * |x|^2
    i.e. (F^T F + l2 n_j I) x = F^T r, where rating p was given with the other side's row
    f_p = factors[index[p]] and r are the ratings less the intercept. Ratings are grouped by
    row: row j owns [starts[j], starts[j+1]); a row with no rating gets zeros. Sums run in
    rating order, so a row's factors do not depend on how rows are split between ranks.
    float64 throughout; the C loop (csrc/cals.c) where built, NumPy's batched solve otherwise."""
    if _cals is not None:
        failed = _cals.solve(factors, index, ratings, starts, float(l2), out)
        if not failed:
            return
    _solve_numpy(factors, index, ratings, starts, l2, out)


def squared_error(factors, index, own, starts, ratings) -> float:
    """Sum over the ratings of (factors[index[p]] . own[row of p] - r_p)^2."""
    if _cals is not None:
        return _cals.squared_error(factors, index, own, starts, ratings)
    rows = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    err = np.einsum("ij,ij->i", factors[index], own[rows]) - ratings
    return float(err @ err)


def _solve_numpy(factors, index, ratings, starts, l2: float, out) -> None:
    rank = factors.shape[1]
    counts = np.diff(starts)
    out[...] = 0
    chunk = max(1, GRAM_BYTES // (8 * rank * rank))
    eye = np.eye(rank)
    for first, last in _row_chunks(starts, chunk):
        lo, hi = starts[first], starts[last]
        rows = np.flatnonzero(counts[first:last]) + first
        if hi == lo:
            continue
        F = factors[index[lo:hi]]
        r = ratings[lo:hi]
        offsets = starts[rows] - lo
        if counts[first] >= chunk:  # a heavy row, alone: BLAS, no outer products (decided by
            # its own count, so a row takes the same path however rows are split between ranks)
            A = (F.T @ F)[None]
            b = (F.T @ r)[None]
        else:
            A = np.add.reduceat(F[:, :, None] * F[:, None, :], offsets, axis=0)
            b = np.add.reduceat(F * r[:, None], offsets, axis=0)
        # a row whose ratings do not span every direction is singular without a penalty
        A += (l2 * counts[rows] if l2 > 0 else np.full(len(rows), 1e-10))[:, None, None] * eye
        out[rows] = np.linalg.solve(A, b[:, :, None])[:, :, 0]


def _row_chunks(starts, max_ratings: int):
    """Consecutive row ranges whose ratings fit `max_ratings`; a row with as many or more is
    alone."""
    n = len(starts) - 1
    first = 0
    while first < n:
        last = int(np.searchsorted(starts, starts[first] + max_ratings, side="right")) - 1
        last = min(max(last, first + 1), n)
        heavy = np.flatnonzero(np.diff(starts[first:last + 1]) >= max_ratings)
        if len(heavy):  # stop before a heavy row, or take it alone
            last = first + (int(heavy[0]) if heavy[0] > 0 else 1)
        yield first, last
        first = last


def _scatter_add(xp, target, index, values) -> None:
    if xp is np:
        np.add.at(target, index, values)
    else:  # CuPy
        import cupyx

        cupyx.scatter_add(target, index, values)
