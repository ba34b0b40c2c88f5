"""Generalized linear models in scikit-learn's and glum's shape (the engine's models/glm.py).

    m = GeneralizedLinearRegressor(family="poisson", alpha=0.0).fit(X, y, sample_weight=w,
                                                                    offset=np.log(exposure))
    m.coef_, m.intercept_, m.std_errors_, m.covariance_, m.deviance_, m.aic_, m.n_iter_
    m.coef_table()                      # coef, std error, z (or t), p-value; intercept first
    m.predict(X, offset=...)            # the mean response
    PoissonRegressor(alpha=1.0), GammaRegressor(), TweedieRegressor(power=1.5, link="log")

The objective is scikit-learn's: sum_i w_i d(y_i, mu_i) / (2 sum_i w_i) + alpha (l1_ratio
||coef||_1 + (1 - l1_ratio) / 2 ||coef||^2), so alpha maps to the job's model.l2 =
alpha (1 - l1_ratio) and model.l1 = alpha l1_ratio, with no division by the rows. Sample weights
are frequency weights (a weight of 2 is the row twice), also in the standard errors. solver
"auto" is IRLS (Newton), which handles L1 by coordinate descent; "lbfgs" (no L1), "sgd" and
"adam" are there for very wide or sparse problems. Under mpiexec `fit` and `score` are
collective: each rank passes its own rows, weights and offsets.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..device import to_host as host
from ..errors import ConfigError
from ..models import make_model
from .estimator import _is_paths, collective, estimator_init
from .inputs import offsets, regression_targets, sample_weights, shard_rows
from .linear_models import _Estimator

GLM_PARAMETERS = {"family": "model.family", "link": "model.link", "power": "model.power",
                  "theta": "model.theta", "cov_type": "model.cov_type"}


class GeneralizedLinearRegressor(RegressorMixin, _Estimator):
    _classifier = False
    _own_parameters = GLM_PARAMETERS
    _exact_solver = "irls"
    _accept_sparse = True
    _job_kind = "glm"
    _family = None  # the subclasses that fix it (PoissonRegressor, ...)

    __init__ = estimator_init(keywords={"family": "gaussian", "link": "auto", "alpha": 0.0, "l1_ratio": 0.0,
                                        "power": 1.5, "theta": 1.0, "cov_type": "nonrobust"},
                              max_iter=100)

    # ------------------------------------------------------------------ the job
    def _penalty(self) -> dict:
        if (self.l2 or self.l1) and self.alpha:
            raise ConfigError("alpha: give either alpha= and l1_ratio= (scikit-learn's) or l2=/l1= "
                              "(mpireg's), not both")
        if not 0 <= self.l1_ratio <= 1:
            raise ConfigError(f"l1_ratio: expected a value in [0, 1], got {self.l1_ratio!r}")
        if self.alpha < 0:
            raise ConfigError(f"alpha: expected a value >= 0, got {self.alpha!r}")
        if self.l2 or self.l1:
            return {"model.l2": float(self.l2), "model.l1": float(self.l1)}
        return {"model.l2": float(self.alpha) * (1.0 - self.l1_ratio), "model.l1": float(self.alpha) * self.l1_ratio}

    def _solver(self) -> str:
        return self._exact_solver if self.solver == "auto" else super()._solver()

    @staticmethod
    def _model_kind(task: str, n_classes: int) -> str:
        if task not in ("regression", "binary"):
            raise ConfigError(f"data: a generalized linear model fits one numeric target, not task {task!r}")
        return "glm"

    # ------------------------------------------------------------------ fit
    def fit(self, X=None, y=None, sample_weight=None, offset=None):
        """X: shard paths (their datasets w and offset, where present, are the weights and
        offsets), or this rank's rows with their targets, weights and offsets. Collective."""
        return self._fit(X, y, regression_targets, sample_weight, offset)

    def _set_fitted(self, job: dict, model, params, schema: dict, classes) -> None:
        self._record_fit(job, model, schema)
        views = model.layout.views(params)
        self.coef_ = np.array(views["coef"], dtype=np.float64)
        self.intercept_ = float(views["intercept"]) if model.fit_intercept else 0.0

    def _fitted(self, result, classes) -> None:
        super()._fitted(result, classes)
        inference = result.inference
        self.inference_ = inference
        if inference is None:  # not the IRLS solver: no inference at the optimum
            return
        self.covariance_ = np.array(inference["covariance"])
        self.std_errors_ = np.array(inference["std_errors"])
        self.p_values_ = np.array(inference["p_values"])
        self.deviance_, self.null_deviance_ = inference["deviance"], inference["null_deviance"]
        self.dispersion_, self.log_likelihood_ = inference["dispersion"], inference["log_likelihood"]
        self.aic_ = inference["aic"]

    def coef_table(self):
        """coef, std error, z (or t) and p-value per term, intercept first (glum's and
        statsmodels' order); a pandas DataFrame."""
        check_is_fitted(self, "inference_")
        if self.inference_ is None:
            raise ConfigError("coef_table: standard errors come with solver 'irls' (or 'auto')")
        import pandas as pd

        i = self.inference_
        return pd.DataFrame({"coef": i["coef"], "std_error": i["std_errors"], i["statistic"]: i["statistics"],
                             "p_value": i["p_values"]}, index=i["terms"])

    # ------------------------------------------------------------------ predictions
    def _engine_model(self, xp=np):
        model = make_model("glm", self.n_features_in_, 0, self._fitted_intercept, self.l2_, self.l1_,
                           **self._options)
        params = model.init_params(np.float64)
        views = model.layout.views(params)
        views["coef"][...] = self.coef_
        if self._fitted_intercept:
            views["intercept"][...] = self.intercept_
        return model, params

    def predict(self, X, offset=None):
        """The mean response mu = g^-1(X coef + intercept + offset)."""
        X = self._validate_predict(X)
        model, params = self._engine_model()
        X = X.astype(np.float64) if hasattr(X, "tocsr") else np.asarray(X, dtype=np.float64)
        return model.predict(params, X, offsets(offset, X.shape[0]))

    def score(self, X, y=None, sample_weight=None, offset=None):
        """D^2, the fraction of deviance explained (scikit-learn's score of its GLMs), over every
        rank's rows: arrays, or shard paths (with their own weights and offsets). Collective."""
        comm = self._comm()

        def body():
            model, params = self._engine_model()
            if _is_paths(X):
                if y is not None or sample_weight is not None or offset is not None:
                    raise ConfigError("y, sample_weight, offset: shards hold their own; call score(paths)")
                blocks = [(Xb, model.prepare_targets(t)) for Xb, t in
                          shard_rows(comm, X, self.n_features_in_, np.float64)]
                Xv = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros((0, self.n_features_in_))
                packed = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros((0, 3))
                yv, w, off = packed[:, 0], packed[:, 1], packed[:, 2]
            else:
                Xv = self._validate_predict(X, min_rows=0)
                yv = np.asarray(host(y), dtype=np.float64)
                w = np.ones(len(yv)) if sample_weight is None else sample_weights(sample_weight, Xv, False)
                off = offsets(offset, Xv.shape[0])
            mu = model.predict(params, np.asarray(Xv, dtype=np.float64), off)
            totals = np.array([w.sum(), w @ yv])
            totals = np.array(comm.allreduce(totals))
            mean = totals[1] / totals[0]
            sums = np.array([w @ model.family.unit_deviance(yv, mu),
                             w @ model.family.unit_deviance(yv, np.full_like(yv, mean))])
            sums = np.array(comm.allreduce(sums))
            return float(1.0 - sums[0] / sums[1])

        return collective(comm, body)


class PoissonRegressor(GeneralizedLinearRegressor):
    """scikit-learn's PoissonRegressor: the Poisson family, log link, alpha = 1.0 by default."""

    __init__ = estimator_init(keywords={"alpha": 1.0, "cov_type": "nonrobust"}, max_iter=100)
    family, link, l1_ratio, power, theta = "poisson", "log", 0.0, 1.5, 1.0
    _own_parameters = {"cov_type": "model.cov_type"}

    def _job(self, kind, train, extra=None, penalty=None):
        return super()._job(kind, train, {**(extra or {}), "model.family": self.family, "model.link": self.link},
                            penalty)


class GammaRegressor(PoissonRegressor):
    """scikit-learn's GammaRegressor: the Gamma family, log link, alpha = 1.0 by default."""

    family = "gamma"


class TweedieRegressor(GeneralizedLinearRegressor):
    """scikit-learn's TweedieRegressor: power 0 (normal), 1 (Poisson), (1, 2) (compound
    Poisson-gamma), 2 (gamma), 3 (inverse Gaussian); link "auto" is log (identity for power 0,
    as scikit-learn's)."""

    __init__ = estimator_init(keywords={"power": 0.0, "link": "auto", "alpha": 1.0, "cov_type": "nonrobust"},
                              max_iter=100)
    family, l1_ratio, theta = "tweedie", 0.0, 1.0
    _own_parameters = {"power": "model.power", "link": "model.link", "cov_type": "model.cov_type"}

    def _job(self, kind, train, extra=None, penalty=None):
        link = "identity" if self.link == "auto" and self.power == 0 else self.link
        return super()._job(kind, train, {**(extra or {}), "model.family": "tweedie", "model.link": link}, penalty)
