"""Sparse (CSR) shards: click logs, text, hashed categoricals, where a row has few non-zeros.

A CSR shard holds, instead of X,
    indptr   (rows + 1,)  int64   row r's entries are [indptr[r], indptr[r + 1])
    indices  (nnz,)       int32 or int64 column of each entry, in 0..n_features-1
    data     (nnz,)       float32 or float64 its value
and y and the attributes of a dense shard (format.py), n_features the (hashed) dimension.
A rank reads its rows through indptr: two reads of indptr's ends, then one contiguous slice
of indices and data, so a row range costs its own non-zeros. Rows come back as SciPy CSR
matrices, which every model's arithmetic accepts.
"""
from __future__ import annotations

import h5py
import numpy as np
import scipy.sparse as sp

from ..errors import DataError
from .format import atomic_shard, int_attr


def write_csr_shard(path, X, y, task: str, n_classes: int = 0, synth: dict | None = None) -> None:
    """Write one CSR shard atomically; X is anything scipy.sparse.csr_matrix accepts."""
    X = sp.csr_matrix(X)
    X.sort_indices()
    index_dtype = np.int32 if X.shape[1] < 2**31 else np.int64
    with atomic_shard(path, task, X.shape[1], n_classes, synth) as f:
        f.create_dataset("indptr", data=X.indptr.astype(np.int64))
        f.create_dataset("indices", data=X.indices.astype(index_dtype))
        f.create_dataset("data", data=X.data)
        f.create_dataset("y", data=np.asarray(y))


def csr_shape(f: h5py.File, path, attrs) -> tuple[int, int, np.dtype, int]:
    """(rows, n_features, values' dtype, non-zeros) of an open CSR shard, its arrays checked."""
    for name in ("indptr", "indices", "data"):
        if not isinstance(f.get(name), h5py.Dataset) or f[name].ndim != 1:
            raise DataError(f"{path}: a CSR shard needs a 1-D dataset {name!r}")
    indptr, indices, data = f["indptr"], f["indices"], f["data"]
    if not np.issubdtype(indptr.dtype, np.integer) or not np.issubdtype(indices.dtype, np.integer):
        raise DataError(f"{path}: indptr and indices must hold integers, got {indptr.dtype} and {indices.dtype}")
    if data.dtype not in (np.float32, np.float64):
        raise DataError(f"{path}: data must be float32 or float64, got {data.dtype}")
    if indptr.shape[0] < 1:
        raise DataError(f"{path}: indptr is empty (it holds rows + 1 offsets)")
    first, last = int(indptr[0]), int(indptr[-1])
    if first != 0 or last != indices.shape[0] or last != data.shape[0]:
        raise DataError(f"{path}: indptr must run from 0 to the {data.shape[0]} entries of data "
                        f"(and of indices: {indices.shape[0]}), got {first}..{last}")
    if "n_features" not in attrs:
        raise DataError(f"{path}: missing attribute 'n_features' (a CSR shard's dimension)")
    return indptr.shape[0] - 1, int_attr(path, attrs, "n_features", 1), data.dtype, last


def read_csr(f: h5py.File, path, lo: int, hi: int, n_features: int, dtype) -> sp.csr_matrix:
    """Rows [lo, hi) of an open CSR shard."""
    indptr = f["indptr"][lo:hi + 1].astype(np.int64)
    start, stop = int(indptr[0]), int(indptr[-1])
    if np.any(np.diff(indptr) < 0):
        row = lo + int(np.argmax(np.diff(indptr) < 0))
        raise DataError(f"{path}: indptr decreases at row {row} (a corrupt CSR shard)")
    indices = f["indices"][start:stop]
    data = f["data"][start:stop].astype(dtype, copy=False)
    return sp.csr_matrix((data, indices, indptr - start), shape=(hi - lo, n_features))


def check_csr_rows(path, X: sp.csr_matrix, first_row: int, n_features: int) -> None:
    """Finite values and columns in range; names the file and the row."""
    if X.nnz == 0:
        return
    bad = ~np.isfinite(X.data) if not np.isfinite(X.data.sum()) else None
    if bad is not None and bad.any():
        row = int(np.searchsorted(X.indptr, np.argmax(bad), side="right")) - 1
        raise DataError(f"{path}: X has a NaN or Inf value at row {first_row + row}")
    out = (X.indices < 0) | (X.indices >= n_features)
    if out.any():
        at = int(np.argmax(out))
        row = int(np.searchsorted(X.indptr, at, side="right")) - 1
        raise DataError(f"{path}: X has column {X.indices[at]} at row {first_row + row}, outside "
                        f"0..{n_features - 1} (attribute n_features)")

