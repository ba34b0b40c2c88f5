"""H2O's GLM (IRLSM, lambda 0, standardize off), a local one-node cluster of 2 threads started
by this process (its JVM start is part of the whole-process time, as a user's script pays it)."""
import numpy as np
from glm_common import POWER, arguments, load, save

import h2o
from h2o.estimators import H2OGeneralizedLinearEstimator

directory, family, out = arguments()
X, y, w, offset = load(directory)
h2o.init(nthreads=2, max_mem_size="6G", verbose=False)
h2o.no_progress()
names = [f"x{j}" for j in range(X.shape[1])]
frame = h2o.H2OFrame(np.column_stack([X.astype(np.float64), y, w, offset]),
                     column_names=names + ["y", "w", "offset"])
extra = {"tweedie_variance_power": POWER, "tweedie_link_power": 0} if family == "tweedie" else {"link": "log"}
model = H2OGeneralizedLinearEstimator(family=family, solver="IRLSM", lambda_=0.0, standardize=False,
                                      weights_column="w", offset_column="offset", beta_epsilon=1e-8,
                                      objective_epsilon=1e-10, gradient_epsilon=1e-8, max_iterations=100,
                                      **extra)
model.train(x=names, y="y", training_frame=frame)
coef = model.coef()
save(out, coef["Intercept"], [coef[n] for n in names])
h2o.cluster().shutdown()
