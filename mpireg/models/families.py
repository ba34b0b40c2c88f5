"""Exponential-dispersion families and link functions of the generalized linear model (glm.py).

A family gives the variance function V(mu), the unit deviance d(y, mu) and the log-likelihood
for the AIC; a link g gives eta = g(mu), its inverse and dmu/deta. The fit minimises

    sum_i w_i d(y_i, mu_i) / (2 sum_i w_i)  +  penalty,      mu_i = g^-1(x_i coef + b + offset_i)

(scikit-learn's and glum's objective). For every family d'(mu) = -2 (y - mu) / V(mu), so the
gradient in eta is w (mu - y) mu' / V and the expected information (Fisher scoring, IRLS) is
w mu'^2 / V, whatever the link.

    family            V(mu)            y          canonical link   dispersion
    gaussian          1                any        identity         estimated
    binomial          mu (1 - mu)      [0, 1]     logit            1
    poisson           mu               >= 0       log              1
    gamma             mu^2             > 0        inverse          estimated
    inverse_gaussian  mu^3             > 0        1/mu^2 (we: log) estimated
    tweedie(p)        mu^p             p in (1,2): >= 0; p >= 2: > 0; p = 0: any      log   estimated
    negative_binomial mu + mu^2/theta  >= 0       log              1

Formulas are the textbook ones (McCullagh & Nelder; scikit-learn's _loss/glm_distribution), in
float64. Functions take NumPy arrays (the GLM passes work on host float64 chunks).
"""
from __future__ import annotations

import numpy as np
from scipy import special

# ------------------------------------------------------------------------------------- links
EPS = 1e-300


class Link:
    name = ""

    def link(self, mu):
        raise NotImplementedError

    def inverse(self, eta):
        raise NotImplementedError

    def derivative(self, eta, mu):
        """dmu/deta at eta (mu = inverse(eta), given to save a transcendental)."""
        raise NotImplementedError

    def second_derivative(self, eta, mu):
        """d2mu/deta2 (the observed information of a non-canonical link needs it)."""
        raise NotImplementedError


class IdentityLink(Link):
    name = "identity"

    def link(self, mu):
        return np.asarray(mu, dtype=np.float64)

    def inverse(self, eta):
        return eta

    def derivative(self, eta, mu):
        return np.ones_like(eta)

    def second_derivative(self, eta, mu):
        return np.zeros_like(eta)


class LogLink(Link):
    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        # exp overflows past 709: the loss is then inf and the line search steps back
        with np.errstate(over="ignore"):
            return np.exp(eta)

    def derivative(self, eta, mu):
        return mu

    def second_derivative(self, eta, mu):
        return mu


class LogitLink(Link):
    name = "logit"

    def link(self, mu):
        return special.logit(mu)

    def inverse(self, eta):
        return special.expit(eta)

    def derivative(self, eta, mu):
        return mu * (1.0 - mu)

    def second_derivative(self, eta, mu):
        return mu * (1.0 - mu) * (1.0 - 2.0 * mu)


class InverseLink(Link):
    name = "inverse"

    def link(self, mu):
        return 1.0 / mu

    def inverse(self, eta):
        with np.errstate(divide="ignore"):
            return 1.0 / eta

    def derivative(self, eta, mu):
        return -(mu * mu)

    def second_derivative(self, eta, mu):
        return 2.0 * mu ** 3


LINKS = {cls.name: cls for cls in (IdentityLink, LogLink, LogitLink, InverseLink)}


# ------------------------------------------------------------------------------------- families
def _xlogy_ratio(y, mu):
    """y log(y / mu), 0 where y = 0."""
    return special.xlogy(y, y) - special.xlogy(y, mu)


class Family:
    name = ""
    canonical = "identity"
    fixed_dispersion = False   # Poisson, binomial, negative binomial: the scale is 1
    y_rule = "any finite value"

    def variance(self, mu):
        raise NotImplementedError

    def variance_derivative(self, mu):
        raise NotImplementedError

    def unit_deviance(self, y, mu):
        raise NotImplementedError

    def invalid_y(self, y):
        """A mask of targets outside the family's support (non-finite ones included)."""
        return ~np.isfinite(y)

    def valid_mu(self, mu):
        """Where mu is inside the family's range (a line search rejects a step that leaves it)."""
        return np.isfinite(mu)

    def loglike(self, y, mu, w, scale: float) -> float:
        """Sum of w_i log f(y_i; mu_i, scale), as statsmodels' GLM (frequency weights)."""
        return float("nan")

    def describe(self) -> str:
        return self.name


class Gaussian(Family):
    name = "gaussian"

    def variance(self, mu):
        return np.ones_like(mu)

    def variance_derivative(self, mu):
        return np.zeros_like(mu)

    def unit_deviance(self, y, mu):
        return (y - mu) ** 2

    def loglike(self, y, mu, w, scale):
        return float(np.sum(w * (-((y - mu) ** 2) / (2 * scale) - 0.5 * np.log(2 * np.pi * scale))))


class Binomial(Family):
    name = "binomial"
    canonical = "logit"
    fixed_dispersion = True
    y_rule = "a value in [0, 1]"

    def variance(self, mu):
        return mu * (1.0 - mu)

    def variance_derivative(self, mu):
        return 1.0 - 2.0 * mu

    def unit_deviance(self, y, mu):
        return 2.0 * (_xlogy_ratio(y, mu) + _xlogy_ratio(1.0 - y, 1.0 - mu))

    def invalid_y(self, y):
        return ~np.isfinite(y) | (y < 0) | (y > 1)

    def valid_mu(self, mu):
        return (mu > 0) & (mu < 1)

    def loglike(self, y, mu, w, scale):
        mu = np.clip(mu, EPS, 1 - 1e-16)
        terms = (special.xlogy(y, mu) + special.xlogy(1 - y, 1 - mu)
                 - special.gammaln(y + 1) - special.gammaln(2 - y))
        return float(np.sum(w * terms))


class Poisson(Family):
    name = "poisson"
    canonical = "log"
    fixed_dispersion = True
    y_rule = "a count >= 0"

    def variance(self, mu):
        return mu

    def variance_derivative(self, mu):
        return np.ones_like(mu)

    def unit_deviance(self, y, mu):
        return 2.0 * (_xlogy_ratio(y, mu) - y + mu)

    def invalid_y(self, y):
        return ~np.isfinite(y) | (y < 0)

    def valid_mu(self, mu):
        return np.isfinite(mu) & (mu > 0)

    def loglike(self, y, mu, w, scale):
        return float(np.sum(w * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))))


class Gamma(Family):
    name = "gamma"
    canonical = "inverse"
    y_rule = "a value > 0"

    def variance(self, mu):
        return mu * mu

    def variance_derivative(self, mu):
        return 2.0 * mu

    def unit_deviance(self, y, mu):
        return 2.0 * (np.log(mu / y) + y / mu - 1.0)

    def invalid_y(self, y):
        return ~np.isfinite(y) | (y <= 0)

    def valid_mu(self, mu):
        return np.isfinite(mu) & (mu > 0)

    def loglike(self, y, mu, w, scale):
        shape = 1.0 / scale
        ratio = y / mu
        return float(np.sum(w * (shape * np.log(shape * ratio) - shape * ratio - special.gammaln(shape) - np.log(y))))


class InverseGaussian(Family):
    name = "inverse_gaussian"
    canonical = "log"  # the canonical 1/mu^2 is not offered; log, as scikit-learn's default
    y_rule = "a value > 0"

    def variance(self, mu):
        return mu ** 3

    def variance_derivative(self, mu):
        return 3.0 * mu * mu

    def unit_deviance(self, y, mu):
        return (y - mu) ** 2 / (y * mu * mu)

    def invalid_y(self, y):
        return ~np.isfinite(y) | (y <= 0)

    def valid_mu(self, mu):
        return np.isfinite(mu) & (mu > 0)

    def loglike(self, y, mu, w, scale):
        terms = -((y - mu) ** 2) / (2 * scale * y * mu * mu) - 0.5 * np.log(2 * np.pi * scale * y ** 3)
        return float(np.sum(w * terms))


class Tweedie(Family):
    """Power variance mu^p: p = 0 is gaussian, 1 poisson, 2 gamma, 3 inverse gaussian; p in
    (0, 1) has no distribution (scikit-learn refuses it too)."""

    name = "tweedie"
    canonical = "log"

    def __init__(self, power: float = 1.5):
        if 0 < power < 1 or not np.isfinite(power):
            raise ValueError(f"model.power: a Tweedie power must be 0, or 1 and above, got {power!r}")
        self.power = float(power)
        self.y_rule = ("any finite value" if self.power == 0 else
                       "a value >= 0" if self.power < 2 else "a value > 0")

    def variance(self, mu):
        return np.power(mu, self.power)

    def variance_derivative(self, mu):
        return self.power * np.power(mu, self.power - 1) if self.power else np.zeros_like(mu)

    def unit_deviance(self, y, mu):
        p = self.power
        if p == 0:
            return (y - mu) ** 2
        if p == 1:
            return 2.0 * (_xlogy_ratio(y, mu) - y + mu)
        if p == 2:
            return 2.0 * (np.log(mu / y) + y / mu - 1.0)
        first = np.power(np.maximum(y, 0.0), 2 - p) / ((1 - p) * (2 - p))
        return 2.0 * (first - y * np.power(mu, 1 - p) / (1 - p) + np.power(mu, 2 - p) / (2 - p))

    def invalid_y(self, y):
        bad = ~np.isfinite(y)
        if self.power == 0:
            return bad
        return bad | ((y < 0) if self.power < 2 else (y <= 0))

    def valid_mu(self, mu):
        return np.isfinite(mu) & ((mu > 0) if self.power > 0 else True)

    def describe(self) -> str:
        return f"tweedie(power={self.power:g})"


class NegativeBinomial(Family):
    """Fixed theta (NB2: V = mu + mu^2 / theta), as R's negative.binomial(theta)."""

    name = "negative_binomial"
    canonical = "log"
    fixed_dispersion = True
    y_rule = "a count >= 0"

    def __init__(self, theta: float = 1.0):
        if not theta > 0:
            raise ValueError(f"model.theta: the negative binomial's theta must be > 0, got {theta!r}")
        self.theta = float(theta)

    def variance(self, mu):
        return mu + mu * mu / self.theta

    def variance_derivative(self, mu):
        return 1.0 + 2.0 * mu / self.theta

    def unit_deviance(self, y, mu):
        t = self.theta
        return 2.0 * (_xlogy_ratio(y, mu) - (y + t) * np.log((y + t) / (mu + t)))

    def invalid_y(self, y):
        return ~np.isfinite(y) | (y < 0)

    def valid_mu(self, mu):
        return np.isfinite(mu) & (mu > 0)

    def loglike(self, y, mu, w, scale):
        a = 1.0 / self.theta
        terms = (special.xlogy(y, a * mu / (1 + a * mu)) - np.log1p(a * mu) / a
                 + special.gammaln(y + 1 / a) - special.gammaln(y + 1) - special.gammaln(1 / a))
        return float(np.sum(w * terms))

    def describe(self) -> str:
        return f"negative_binomial(theta={self.theta:g})"


FAMILIES = {cls.name: cls for cls in (Gaussian, Binomial, Poisson, Gamma, InverseGaussian, Tweedie,
                                      NegativeBinomial)}


def make_family(name: str, power: float = 1.5, theta: float = 1.0) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"model.family: expected one of {', '.join(map(repr, FAMILIES))}, got {name!r}")
    if name == "tweedie":
        return Tweedie(power)
    if name == "negative_binomial":
        return NegativeBinomial(theta)
    return FAMILIES[name]()


def make_link(name: str, family: Family) -> Link:
    """`name`, or the family's default ("auto")."""
    chosen = family.canonical if name == "auto" else name
    if chosen not in LINKS:
        raise ValueError(f"model.link: expected one of 'auto', {', '.join(map(repr, LINKS))}, got {name!r}")
    return LINKS[chosen]()


def is_canonical(family: Family, link: Link) -> bool:
    """Where the observed and the expected information agree (Newton is Fisher scoring)."""
    power = getattr(family, "power", None)
    if power is not None:  # Tweedie: canonical eta = mu^(1-p) / (1-p), offered for p = 0 and 1
        return (power == 0 and link.name == "identity") or (power == 1 and link.name == "log")
    return link.name == {"gaussian": "identity", "binomial": "logit", "poisson": "log",
                         "gamma": "inverse"}.get(family.name)
