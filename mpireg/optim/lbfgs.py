"""Full-batch L-BFGS, as the terascale linear learners train (Vowpal Wabbit, Spark MLlib).

Every evaluation of the objective is a pass over every rank's rows and one allreduce, so each
rank sees the same loss and gradient, bit for bit, and the deterministic L-BFGS-B iteration of
SciPy takes the same path on every rank: no rank-0 broadcast of decisions is needed.
"""
from __future__ import annotations

import numpy as np


EPS = np.finfo(float).eps
# A relative loss change below this is double rounding, not progress: without a floor a tight
# tol has the line search hunt through rounding noise (16 evaluations for nothing, measured);
# 64 eps is scikit-learn's choice for its lbfgs solver.
FTOL_FLOOR = 64 * EPS


def import_in_background() -> None:
    """Start importing SciPy's optimizers on a thread, so that the import (0.7 s) overlaps
    MPI's start and the first read of the shards instead of following them. Importing the
    module again later waits for this import to finish (Python's per-module import lock)."""
    import importlib
    import threading

    threading.Thread(target=importlib.import_module, args=("scipy.optimize",), daemon=True,
                     name="mpireg-import").start()


def minimize_lbfgs(objective, x0: np.ndarray, max_iter: int, tol: float, history: int,
                   callback=None):
    """objective(x) -> (value, gradient) in float64; returns (x, info dict)."""
    from scipy.optimize import minimize  # here: importing SciPy's optimizers costs 0.7 s of
    # every job's start-up, measured, and only L-BFGS jobs use them
    result = minimize(objective, np.asarray(x0, dtype=np.float64), jac=True, method="L-BFGS-B",
                      callback=callback,
                      options=dict(maxiter=max_iter, maxcor=history, gtol=tol, maxls=50,
                                   ftol=max(tol * EPS ** 0.5, FTOL_FLOOR)))
    info = dict(iterations=int(result.nit), evaluations=int(result.nfev),
                converged=bool(result.success), message=str(result.message))
    return result.x, info
