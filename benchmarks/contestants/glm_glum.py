"""glum's GeneralizedLinearRegressor, its default solver (IRLS with coordinate descent), alpha 0."""
import glum
from glm_common import POWER, arguments, load, save

directory, family, out = arguments()
X, y, w, offset = load(directory)
X = X.astype("float64")  # glum wants X, y, weights and offsets in one dtype
dist = glum.TweedieDistribution(POWER) if family == "tweedie" else family
model = glum.GeneralizedLinearRegressor(family=dist, link="log", alpha=0.0, gradient_tol=1e-8)
model.fit(X, y, sample_weight=w, offset=offset if offset.any() else None)
save(out, model.intercept_, model.coef_)
