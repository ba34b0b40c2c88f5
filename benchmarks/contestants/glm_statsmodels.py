"""statsmodels' GLM, IRLS (its default), frequency weights and offsets."""
import statsmodels.api as sm
from glm_common import POWER, arguments, load, save

directory, family, out = arguments()
X, y, w, offset = load(directory)
log = sm.families.links.Log()
fam = {"poisson": lambda: sm.families.Poisson(), "gamma": lambda: sm.families.Gamma(log),
       "tweedie": lambda: sm.families.Tweedie(var_power=POWER, link=log)}[family]()
result = sm.GLM(y, sm.add_constant(X.astype("float64")), family=fam, offset=offset, freq_weights=w).fit(tol=1e-8)
save(out, result.params[0], result.params[1:])
