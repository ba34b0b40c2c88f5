"""What every race contestant shares: its arguments and how it hands back its model.

    python race_<name>.py X.npy y.npy TASK OUT.npy

TASK is logistic, linear or softmax; OUT gets the parameters laid out as mpireg lays them out:
coef (d values, or d x k row-major for softmax), then the intercept(s). Under mpiexec, each
rank reads only its own rows (memory-mapped), as it would from its own shard.
"""
import sys

import numpy as np


def arguments():
    x_path, y_path, task, out = sys.argv[1:5]
    return x_path, y_path, task, out


def load(x_path, y_path, rank: int = 0, size: int = 1):
    X = np.load(x_path, mmap_mode="r")
    y = np.load(y_path, mmap_mode="r")
    lo, hi = len(X) * rank // size, len(X) * (rank + 1) // size
    return np.ascontiguousarray(X[lo:hi]), np.asarray(y[lo:hi], dtype=np.float64)


def save(out, coef, intercept) -> None:
    """coef: (d,) or (k, d) as scikit-learn has it; intercept: scalar or (k,)."""
    coef = np.asarray(coef, dtype=np.float64)
    coef = coef.T.ravel() if coef.ndim == 2 and coef.shape[0] > 1 else coef.ravel()
    np.save(out, np.concatenate([coef, np.ravel(intercept).astype(np.float64)]))
