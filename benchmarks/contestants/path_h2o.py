"""H2O's GLM with lambda over the race's grid and its folds (fold_column) (IRLSM, standardize off), on a
local 2-thread cluster this process starts (its JVM start is part of the whole-process time)."""
import numpy as np
from path_common import L1_RATIO, arguments, load, load_folds, save

import h2o
from h2o.estimators import H2OGeneralizedLinearEstimator

directory, family, alphas, folds, out = arguments()
X, y, w, offset = load(directory)
h2o.init(nthreads=2, max_mem_size="6G", verbose=False)
h2o.no_progress()
names = [f"x{j}" for j in range(X.shape[1])]
frame = h2o.H2OFrame(np.column_stack([X.astype(np.float64), y, w, offset, load_folds(directory)]),
                     column_names=names + ["y", "w", "offset", "fold"])
if family == "binomial":
    frame["y"] = frame["y"].asfactor()
model = H2OGeneralizedLinearEstimator(family=family, solver="IRLSM", alpha=L1_RATIO, lambda_=list(alphas),
                                      standardize=False, weights_column="w", offset_column="offset",
                                      fold_column="fold", seed=0)
model.train(x=names, y="y", training_frame=frame)
coef = model.coef()
save(out, model._model_json["output"]["lambda_best"],
     coef["Intercept"], [coef[n] for n in names])
h2o.cluster().shutdown()
