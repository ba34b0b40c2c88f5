"""Small real data sets bundled with scikit-learn, written as shards (no download).

    python -m mpireg.data example digits --out data/digits

Each is split once, by `seed`, into training shards under OUT and a test shard under OUT/test.
digits: 8 x 8 images of handwritten digits (1,797 rows, 64 pixels scaled from 0..16 to [0, 1],
10 classes), the MNIST of small machines; breast_cancer (binary), iris and wine (multiclass),
diabetes (regression), features as scikit-learn gives them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..data.format import write_shard

EXAMPLES = {"digits": "multiclass", "breast_cancer": "binary", "iris": "multiclass",
            "wine": "multiclass", "diabetes": "regression"}


def load_example(name: str):
    """(X float64, y, task) of a bundled data set."""
    if name not in EXAMPLES:
        raise DataError(f"example: expected one of {', '.join(EXAMPLES)}, got {name!r}")
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if name == "digits":
        X = X / 16.0
    return np.asarray(X, dtype=np.float64), y, EXAMPLES[name]


def write_example(name: str, out, shards: int = 1, test_fraction: float = 0.2, seed: int = 0,
                  dtype: str = "float32") -> dict:
    """Shards of a bundled data set under OUT (train) and OUT/test; what was written."""
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"--test-fraction: expected a value in [0, 1), got {test_fraction}")
    X, y, task = load_example(name)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    if len(train) < shards:
        raise DataError(f"--shards: {len(train)} training rows cannot fill {shards} shards")
    n_classes = 0 if task == "regression" else int(y.max()) + 1
    y = y.astype(np.float32 if task == "regression" else np.int64)
    out = Path(out)
    for shard, rows in enumerate(np.array_split(train, shards)):
        write_shard(out / f"part-{shard:05d}.h5", X[rows].astype(dtype), y[rows], task, n_classes)
    if n_test:
        write_shard(out / "test" / "part-00000.h5", X[test].astype(dtype), y[test], task, n_classes)
    return {"rows": len(train), "test_rows": n_test, "features": X.shape[1], "task": task,
            "classes": n_classes}
