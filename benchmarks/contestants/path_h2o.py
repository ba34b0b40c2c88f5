"""H2O's GLM with lambda_search over the race's grid and nfolds (IRLSM, standardize off), on a
local 2-thread cluster this process starts (its JVM start is part of the whole-process time)."""
import numpy as np
from path_common import L1_RATIO, arguments, load, save

import h2o
from h2o.estimators import H2OGeneralizedLinearEstimator

directory, family, alphas, folds, out = arguments()
X, y, w, offset = load(directory)
h2o.init(nthreads=2, max_mem_size="6G", verbose=False)
h2o.no_progress()
names = [f"x{j}" for j in range(X.shape[1])]
frame = h2o.H2OFrame(np.column_stack([X.astype(np.float64), y, w, offset]), column_names=names + ["y", "w", "offset"])
if family == "binomial":
    frame["y"] = frame["y"].asfactor()
model = H2OGeneralizedLinearEstimator(family=family, solver="IRLSM", alpha=L1_RATIO, lambda_=list(alphas),
                                      standardize=False, weights_column="w", offset_column="offset",
                                      nfolds=folds, fold_assignment="Random", seed=0)
model.train(x=names, y="y", training_frame=frame)
coef = model.coef()
save(out, model.actual_params["lambda"][0] if False else model._model_json["output"]["lambda_best"],
     coef["Intercept"], [coef[n] for n in names])
h2o.cluster().shutdown()
