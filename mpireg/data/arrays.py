"""Rows handed over as arrays (the Python API), in the interface the fitting procedures read.

Under `mpiexec` each rank passes its own rows; together they are the training set, in rank
order (rank 0's rows first), exactly as a rank's rows of a set of shards are its slice of the
files concatenated. The ranks agree on the shape first, so that a mismatch is one error naming
both ranks rather than a hang in the first reduction (STYLE.md, habit 4).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from ..device import to_host
from ..errors import CollectiveError, DataError
from ..agreement import agree
from .format import EXTRAS, RATINGS, Schema, check_rows

SOURCE = "<arrays>"  # what messages name where a shard's path would stand


class LocalArrays:
    """This rank's rows as one resident block (the interface of `LocalData`)."""

    resident = True

    def __init__(self, X, y, first_row: int):
        self.X, self.y, self.first_row = X, y, first_row

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def block_sizes(self) -> list[int]:
        return [self.n_rows] if self.n_rows else []

    def block(self, index: int, then: int | None = None):
        return self.X, self.y

    def blocks(self):
        if self.n_rows:
            yield self.X, self.y

    def rows(self, lo: int, hi: int):
        return self.X[lo:hi], self.y[lo:hi]

    def close(self) -> None:
        pass


def arrays_schema(comm, X, y, task: str, n_classes: int) -> tuple[Schema, int]:
    """(schema of the union of every rank's rows, this rank's first global row). Collective.

    X must be 2-D float32/float64 and y 1-D with one entry per row (targets already encoded:
    floats for regression, labels 0..K-1 otherwise); values are checked as shards' rows are,
    rows numbered within the rank's own arrays."""
    if task == RATINGS:
        return _ratings_schema(comm, X, y)
    agree(comm, lambda: _check_local(X, y, task, n_classes))
    everyone = comm.allgather((int(X.shape[1]), str(X.dtype), int(X.shape[0]), sparse.issparse(X)))
    features, dtype, _, csr = everyone[0]
    for rank, (theirs, their_dtype, _, their_csr) in enumerate(everyone):  # the same verdict on every rank
        if their_csr != csr:
            raise CollectiveError(f"X: rank {rank} holds a {'sparse' if their_csr else 'dense'} matrix, rank 0 a "
                                  f"{'sparse' if csr else 'dense'} one; pass the same kind on every rank", None, 1)
        if theirs != features:
            raise CollectiveError(f"X: rank {rank} has {theirs} features, rank 0 has {features}", None, 1)
        if their_dtype != dtype:
            raise CollectiveError(f"X: rank {rank} holds {their_dtype}, rank 0 holds {dtype}", None, 1)
    rows = [count for _, _, count, _ in everyone]
    if sum(rows) == 0:
        raise CollectiveError("X: no rows on any rank", None, comm.size)
    schema = Schema(task=task, n_features=features, n_classes=n_classes, dtype=dtype,
                    files=[SOURCE], rows=[sum(rows)], extras=EXTRAS if _packed(y) else (), sparse=csr)
    return schema, sum(rows[:comm.rank])


def _check_local(X, y, task: str, n_classes: int) -> None:
    if getattr(X, "ndim", None) != 2:
        raise DataError(f"X: expected a 2-D array (rows, features), got "
                        f"{'shape ' + str(X.shape) if hasattr(X, 'shape') else type(X).__name__}")
    if X.dtype not in (np.float32, np.float64):
        raise DataError(f"X: expected float32 or float64 values, got {X.dtype}")
    if sparse.issparse(X) and X.format != "csr":
        raise DataError(f"X: a sparse matrix is taken in CSR form (rows), got {X.format.upper()}; pass X.tocsr()")
    packed = _packed(y)
    if not (getattr(y, "ndim", None) == 1 or packed) or y.shape[0] != X.shape[0]:
        raise DataError(f"y: expected a 1-D array with one entry per row of X ({X.shape[0]}), "
                        f"got shape {getattr(y, 'shape', None)}")
    schema = Schema(task=task, n_features=X.shape[1], n_classes=n_classes, dtype=str(X.dtype),
                    sparse=sparse.issparse(X))
    check_rows(SOURCE, X if sparse.issparse(X) else to_host(X), to_host(y[:, 0] if packed else y), schema,
               first_row=0)


def _packed(y) -> bool:
    """Packed rows [y, w, offset...] (models/model.py): a weight and one offset or more per row."""
    return getattr(y, "ndim", None) == 2 and y.shape[1] >= 3


def _ratings_schema(comm, X, y) -> tuple[Schema, int]:
    """(user, item) pairs and ratings: the users and items are as many as the largest index
    on any rank says."""
    sizes = agree(comm, lambda: _check_ratings(X, y))
    everyone = comm.allgather((*sizes, str(y.dtype), int(X.shape[0])))
    dtypes = {d for _, _, d, _ in everyone}
    if len(dtypes) > 1:
        raise CollectiveError(f"y: the ranks hold ratings of different dtypes {sorted(dtypes)}", None, 1)
    rows = [count for *_, count in everyone]
    if sum(rows) == 0:
        raise CollectiveError("X: no ratings on any rank", None, comm.size)
    schema = Schema(task=RATINGS, n_features=2, n_classes=0, dtype=everyone[0][2], files=[SOURCE],
                    rows=[sum(rows)], n_users=max(u for u, *_ in everyone),
                    n_items=max(i for _, i, *_ in everyone))
    return schema, sum(rows[:comm.rank])


def _check_ratings(X, y) -> tuple[int, int]:
    if getattr(X, "ndim", None) != 2 or X.shape[1] != 2 or not np.issubdtype(X.dtype, np.integer):
        raise DataError(f"X: expected (user, item) integer pairs, shape (n, 2), got "
                        f"{'shape ' + str(X.shape) + ' of ' + str(X.dtype) if hasattr(X, 'shape') else type(X).__name__}")
    if getattr(y, "ndim", None) != 1 or y.shape[0] != X.shape[0] or y.dtype.kind != "f":
        raise DataError(f"y: expected one float rating per pair of X ({X.shape[0]}), got "
                        f"shape {getattr(y, 'shape', None)}")
    if X.size and int(X.min()) < 0:
        row = int(np.argmax((to_host(X) < 0).any(axis=1)))
        raise DataError(f"X: negative index at row {row}; users and items are indices 0..n-1")
    bad = ~np.isfinite(to_host(y))
    if bad.any():
        raise DataError(f"y: NaN or Inf rating at row {int(np.argmax(bad))}")
    return (int(X[:, 0].max()) + 1, int(X[:, 1].max()) + 1) if X.size else (0, 0)
