"""Run under mpiexec by test_api_distributed.py: the Python API as a user's script would call it.

    python -m tests.api.api_worker arrays|shards DATA_ROOT OUT.npz
    python -m tests.api.api_worker mismatch DATA_ROOT -

Each estimator is fitted collectively, on this rank's slice of the arrays (uneven, some ranks
given none) or on the shard paths (each rank reads its own rows); rank 0 writes the fitted
coefficients and the collective scores. `mismatch`: rank 1 passes one feature fewer.
"""
import sys

import numpy as np
from mpi4py import MPI

import mpireg
from mpireg.data import ShardReader, read_schema, resolve_paths

# (name, estimator, data set); deterministic SGD gives the same bits on any rank count
ESTIMATORS = [
    ("linear", lambda: mpireg.LinearRegression(alpha=0.5), "linear"),
    ("logistic", lambda: mpireg.LogisticRegression(C=10.0, tol=1e-10), "logistic"),
    ("softmax", lambda: mpireg.SoftmaxRegression(l2=1e-3, tol=1e-10), "softmax"),
    ("sgd_exact", lambda: mpireg.LinearRegression(solver="sgd", lr=0.05, epochs=3, batch_size=128,
                                                  deterministic=True), "linear"),
    ("mlp_exact", lambda: mpireg.MLPClassifier((6,), lr=0.01, epochs=3, batch_size=128,
                                               deterministic=True), "softmax"),
    ("mf_als", lambda: mpireg.MatrixFactorization(3, l2=0.05, epochs=4), "ratings"),
    ("glm_gaussian", lambda: mpireg.GeneralizedLinearRegressor(alpha=0.01, tol=1e-10), "linear"),
]
# Fitted on arrays with sample weights and offsets (row_weights, row_offsets of the global row)
WEIGHTED = [
    ("linear_w", lambda: mpireg.LinearRegression(alpha=0.5), "linear"),
    ("logistic_w", lambda: mpireg.LogisticRegression(C=10.0, tol=1e-10), "logistic"),
    ("softmax_w", lambda: mpireg.SoftmaxRegression(l2=1e-3, tol=1e-10), "softmax"),
    ("mlp_w", lambda: mpireg.MLPRegressor((4,), solver="lbfgs", max_iter=20, alpha=0.1), "linear"),
    ("glm_w", lambda: mpireg.GeneralizedLinearRegressor(alpha=0.01, tol=1e-10), "linear"),
    ("cv_ovr_w", lambda: mpireg.LogisticRegressionCV(Cs=4, cv=3, tol=1e-10), "softmax"),  # 4 classes: a path each
]
LABELS = np.array(["ant", "bee", "cat", "dog"])  # the softmax data's labels 0..3, as text


def all_rows(path):
    schema = read_schema(resolve_paths([path]))
    return ShardReader(schema, 0, 1, 2**30).read(0, schema.n_rows)


def weights(estimator) -> tuple:
    """(coefficients, intercepts) as flat arrays; an MLP's layers one after another, a
    factorisation's user factors then item factors."""
    if hasattr(estimator, "user_factors_"):
        return (np.concatenate([estimator.user_factors_.ravel(), estimator.item_factors_.ravel()]),
                np.atleast_1d(estimator.intercept_))
    if hasattr(estimator, "coefs_"):
        return (np.concatenate([c.ravel() for c in estimator.coefs_]),
                np.concatenate([b.ravel() for b in estimator.intercepts_]))
    return estimator.coef_, np.atleast_1d(estimator.intercept_)


def row_weights(n: int) -> np.ndarray:
    return 0.5 + np.arange(n) % 4


def row_offsets(n: int) -> np.ndarray:
    return 0.2 * np.sin(np.arange(n))


def my_slice(n_rows: int, rank: int, size: int) -> slice:
    """Uneven cuts at multiples of 64 (what deterministic mode asks of arrays); with 3 ranks,
    rank 1 gets no rows at all."""
    cuts = [0, 64 * (n_rows // 128), 64 * (n_rows // 128), n_rows] if size == 3 else \
        [min(n_rows, 64 * round(i * n_rows / size / 64)) for i in range(size)] + [n_rows]
    return slice(cuts[rank], cuts[rank + 1])


def main(mode: str, root: str, out: str) -> None:
    comm = MPI.COMM_WORLD
    results = {}
    for name, make, data in ESTIMATORS:
        path = f"{root}/{data}"
        X, y = all_rows(path)
        if data == "softmax" and mode == "arrays":
            y = LABELS[y]
        if mode == "mismatch":
            X = X[:, :-1] if comm.rank == 1 else X
        estimator = make()
        if mode == "shards":
            estimator.fit(path)
            score = estimator.score(f"{path}/test")
        else:
            mine = my_slice(len(y), comm.rank, comm.size)
            estimator.fit(X[mine], y[mine])
            score = estimator.score(X[mine], y[mine])
        results[f"{name}.coef"], results[f"{name}.intercept"] = weights(estimator)
        results[f"{name}.score"] = np.array(score)
        if hasattr(estimator, "classes_"):
            results[f"{name}.classes"] = estimator.classes_.astype(str)
    if mode == "arrays":
        for name, make, data in WEIGHTED:
            X, y = all_rows(f"{root}/{data}")
            mine = my_slice(len(y), comm.rank, comm.size)
            w, offset = row_weights(len(y))[mine], row_offsets(len(y))[mine]
            estimator = make().fit(X[mine], y[mine], sample_weight=w, offset=offset)
            results[f"{name}.coef"], results[f"{name}.intercept"] = weights(estimator)
            results[f"{name}.score"] = np.array(estimator.score(X[mine], y[mine], sample_weight=w, offset=offset))
    if comm.rank == 0:
        np.savez(out, **results)


if __name__ == "__main__":
    main(*sys.argv[1:4])
