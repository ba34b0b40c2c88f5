"""scikit-learn's Poisson/Gamma/TweedieRegressor, newton-cholesky, alpha 0. It takes no offset:
a Poisson rate with exposure e is fitted as y / e with weight w e (the same likelihood)."""
import numpy as np
from glm_common import POWER, arguments, load, save
from sklearn.linear_model import GammaRegressor, PoissonRegressor, TweedieRegressor

directory, family, out = arguments()
X, y, w, offset = load(directory)
if offset.any():  # log-link offsets are exposures
    exposure = np.exp(offset)
    y, w = y / exposure, w * exposure
model = {"poisson": lambda: PoissonRegressor(alpha=0.0, solver="newton-cholesky", tol=1e-8, max_iter=200),
         "gamma": lambda: GammaRegressor(alpha=0.0, solver="newton-cholesky", tol=1e-8, max_iter=200),
         "tweedie": lambda: TweedieRegressor(power=POWER, link="log", alpha=0.0, solver="newton-cholesky",
                                             tol=1e-8, max_iter=200)}[family]()
model.fit(X, y, sample_weight=w)
save(out, model.intercept_, model.coef_)
