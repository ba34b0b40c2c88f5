"""python-glmnet's LogitNet (glmnet's Fortran) on the race's grid and the race's folds (GroupKFold
over the fold of each row, so each fold is held out once), choosing by held-out log-loss at its
minimum (cut_point 0). Its lambda is the race's alpha: glmnet penalises -loglik / n, the mean
deviance / 2. It needs Fortran to build: `apt-get install gfortran`, then in a venv with
numpy<1.27 and scikit-learn<1.6, `pip install --no-build-isolation glmnet==2.2.1`; the race runs
it with $GLMNET_PYTHON. Binomial only: python-glmnet has no Poisson family."""
import numpy as np
from path_common import L1_RATIO, arguments, load, load_folds, save

from glmnet import LogitNet

directory, family, alphas, folds, out = arguments()
X, y, w, offset = load(directory)
if family != "binomial" or offset.any():
    raise SystemExit("python-glmnet fits logistic regression (LogitNet) without offsets here")
model = LogitNet(alpha=L1_RATIO, lambda_path=alphas, standardize=False, n_splits=folds, scoring="log_loss",
                 cut_point=0.0, tol=1e-7, n_jobs=2)
model.fit(X.astype(np.float64), y.astype(np.int64), sample_weight=w, groups=load_folds(directory))
save(out, float(np.ravel(model.lambda_max_)[0]), model.intercept_, model.coef_)
