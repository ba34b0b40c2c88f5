"""scikit-learn's LogisticRegressionCV (saga, elastic net) on the race's grid and folds: C = 1 / (alpha n),
its folds on every core (n_jobs)."""
import os

import numpy as np
from path_common import L1_RATIO, arguments, load, save, splits
from sklearn.linear_model import LogisticRegressionCV

directory, family, alphas, folds, out = arguments()
X, y, w, offset = load(directory)
if family != "binomial" or offset.any():
    raise SystemExit("scikit-learn's CV estimators fit logistic regression and least squares, without offsets")
Cs = 1.0 / (alphas * w.sum())
model = LogisticRegressionCV(Cs=Cs, cv=splits(directory), l1_ratios=[L1_RATIO], solver="saga", scoring="neg_log_loss",
                             tol=1e-4, max_iter=1000, use_legacy_attributes=False,
                             n_jobs=os.cpu_count())
model.fit(X, y, sample_weight=w)
save(out, 1.0 / (float(np.ravel(model.C_)[0]) * w.sum()), np.ravel(model.intercept_)[0], model.coef_)
