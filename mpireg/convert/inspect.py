"""`python -m mpireg.data inspect`: the schema, rows per shard, and a full content check."""
from __future__ import annotations

import h5py
import numpy as np

from ..data.format import check_rows, read_schema, resolve_paths
from ..data.sparse import read_csr

SCAN_ROWS = 1 << 16


def inspect(specs, scan: bool = True) -> list[str]:
    """Lines describing the data set; raises DataError on the first problem found."""
    paths = resolve_paths(specs, key="inspect")
    schema = read_schema(paths, key="inspect")
    if schema.n_users:
        shape = f"{schema.n_users} users, {schema.n_items} items, ratings {schema.dtype}"
    else:
        shape = (f"{schema.n_features} features, " + (f"{schema.n_classes} classes, " if schema.n_classes else "")
                 + (f"CSR {schema.dtype}, {sum(schema.nnz)} non-zeros" if schema.sparse else f"X {schema.dtype}"))
    lines = [f"task {schema.task}, {shape}, {schema.n_rows} rows in {len(paths)} shard(s)"]
    for path, rows in zip(schema.files, schema.rows):
        counts = _scan(path, rows, schema) if scan else None
        extra = f"  labels {counts}" if counts is not None else ""
        lines.append(f"  {path}: {rows} rows{extra}")
    if scan:
        lines.append("ok: every row is finite" + (" and every label in range" if schema.n_classes else
                                                  " and every index in range" if schema.n_users else ""))
    return lines


def _scan(path, rows, schema):
    """Read a shard in chunks, validating every row; return label counts for classifiers."""
    counts = np.zeros(schema.n_classes, dtype=np.int64) if schema.n_classes else None
    with h5py.File(path, "r") as f:
        for lo in range(0, rows, SCAN_ROWS):
            hi = min(lo + SCAN_ROWS, rows)
            X = read_csr(f, path, lo, hi, schema.n_features, f["data"].dtype) if schema.sparse else f["X"][lo:hi]
            y = f["y"][lo:hi]
            check_rows(path, X, y, schema, first_row=lo)
            if counts is not None:
                counts += np.bincount(y, minlength=schema.n_classes)
    return None if counts is None else counts.tolist()
