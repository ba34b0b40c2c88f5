"""What the path race's contestants share: `python path_<name>.py DIR FAMILY ALPHAS.npy FOLDS OUT.json`,
DIR holding X.npy (or X.npz, CSR), y.npy, w.npy, offset.npy and folds.npy (each row's fold, mpireg's, so every
contestant holds out the same rows); ALPHAS the penalty grid (largest first, glum's scale:
alpha (l1_ratio |coef|_1 + (1 - l1_ratio)/2 |coef|^2) on the weighted mean deviance / 2); OUT gets
the chosen alpha and the refit's [intercept, coef...]."""
import json
import sys

import numpy as np

L1_RATIO = 0.5


def arguments():
    directory, family, alphas, folds, out = sys.argv[1:6]
    return directory, family, np.load(alphas), int(folds), out


def load(directory):
    """X (an ndarray, or a SciPy CSR matrix where the race is sparse: X.npz), y, w, offset."""
    import os

    if os.path.exists(f"{directory}/X.npz"):
        from scipy import sparse

        X = sparse.load_npz(f"{directory}/X.npz").tocsr()
    else:
        X = np.load(f"{directory}/X.npy")
    return (X, *(np.load(f"{directory}/{name}.npy") for name in ("y", "w", "offset")))


def load_folds(directory):
    """Each row's fold, mpireg's (a hash of the row index): every contestant holds out the same rows."""
    return np.load(f"{directory}/folds.npy")


def splits(directory):
    """The folds as scikit-learn's (train, test) index pairs, fold 0 first."""
    folds = load_folds(directory)
    return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(folds.max() + 1)]


def save(out, alpha, intercept, coef) -> None:
    with open(out, "w") as f:
        json.dump({"alpha": float(alpha), "params": [float(intercept), *map(float, np.ravel(coef))]}, f)
