"""snapml: LogisticRegression / LinearRegression, primal solver on 2 threads.

snapml penalises always (regularizer > 0) and, with the primal solver, fitted no intercept
(intercept_ stayed 0, measured), so a column of ones carries it and the penalty is tiny. Its
dual solver (SDCA) ended the process without a result on the unpenalised problem (measured)."""
import numpy as np

from common import arguments, load, save

x_path, y_path, task, out = arguments()
X, y = load(x_path, y_path)
X = np.hstack([X, np.ones((len(X), 1), dtype=X.dtype)])
import snapml  # noqa: E402  (after the data, as every contestant: imports are timed all the same)

Model = snapml.LogisticRegression if task == "logistic" else snapml.LinearRegression
m = Model(dual=False, regularizer=1e-8, tol=1e-9, max_iter=100000, n_jobs=2).fit(X, y)
coef = np.ravel(m.coef_)
save(out, coef[:-1], coef[-1])
