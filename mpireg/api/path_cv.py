"""Estimators that choose their penalty by k-fold cross-validation along a regularisation path
(fit/path.py: every fold and every penalty from the same passes over the rows).

    m = GeneralizedLinearRegressorCV(family="poisson", l1_ratio=[0.5, 1.0], n_alphas=100, cv=5)
    m.fit(X_local, y_local, sample_weight=w, offset=o)     # or shard paths; collective under mpiexec
    m.alpha_, m.l1_ratio_, m.coef_, m.intercept_, m.std_errors_   # the refit at the chosen penalty
    m.alphas_, m.coef_path_, m.deviance_path_, m.cv_deviance_, m.cv_se_

    ElasticNetCV(l1_ratio=0.5, cv=5)          # scikit-learn's names; mse_path_
    LogisticRegressionCV(Cs=10, cv=5)         # scikit-learn's names; a classifier; Cs_, C_
                                              # (more than two classes: one-vs-rest, a C each)

solver: "irls" (Newton steps on every model's information), "lbfgs" (orthant-wise L-BFGS: nothing
d x d, for wide or hashed sparse X), or "auto": "irls" up to FIRST_ORDER_WIDTH features, "lbfgs"
past them. X may be a SciPy CSR matrix.

The penalty is glum's and glmnet's, alpha (l1_ratio |coef|_1 + (1 - l1_ratio)/2 |coef|^2) on the
weighted mean deviance / 2. Folds are a seeded hash of the global row index (`seed`), the same
on any number of ranks. The choice: least mean held-out deviance (select="min"), or the largest
penalty within one standard error of it (select="1se", cv.glmnet's lambda.1se).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import sparse
from sklearn.base import clone

from ..errors import ConfigError
from ..fit.path import coef_path
from ..models import make_model
from .estimator import _is_paths, estimator_init, local_phase
from .glm import GeneralizedLinearRegressor
from .job_keys import set_key
from .linear_models import LinearRegression, LogisticRegression

# past this many features "auto" takes the first-order path: the Newton path's (cv + 1) information
# matrices of 2049^2 are 0.6 GB on a 5-fold path, and their sums cost d^2 a row
FIRST_ORDER_WIDTH = 2048
PATH_PARAMETERS = {"n_alphas": "optimizer.path.n_alphas", "cv": "optimizer.cv", "select": "optimizer.path.select"}


class _PathCV:
    """What the CV estimators share: the path's job keys and its fitted attributes."""

    _accept_sparse = True

    def _path_keys(self) -> dict:
        ratios = np.atleast_1d(np.asarray(self._l1_ratios(), dtype=float)).tolist()
        alphas = [] if self._alpha_grid() is None else sorted(map(float, self._alpha_grid()), reverse=True)
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise ConfigError(f"cv: expected a number of folds, 2 or more (each row's fold is a hash of its "
                              f"index, the same on any number of ranks), got {self.cv!r}")
        keys = {"optimizer.path.l1_ratio": ratios, "optimizer.path.alphas": alphas,
                "optimizer.path.min_ratio": float(self._min_ratio()), "optimizer.kind": self._path_solver(),
                "model.l1": 0.0, "model.l2": 0.0}
        return keys

    def _path_solver(self) -> str:
        if self.solver != "auto":
            return self.solver  # irls, lbfgs; the job's check names any other
        return "lbfgs" if getattr(self, "n_features_in_", 0) > FIRST_ORDER_WIDTH else "irls"

    def _penalty(self) -> dict:
        return {"model.l2": 0.0}

    def _record_path(self, summary: dict) -> None:
        path = summary["path"]
        self.alpha_, self.l1_ratio_ = path["alpha"], path["l1_ratio"]
        self.n_passes_ = path["passes"]
        paths = path["paths"]
        squeeze = (lambda a: a[0]) if len(paths) == 1 else (lambda a: a)
        d = self.n_features_in_
        self.alphas_ = squeeze(np.array([p["alphas"] for p in paths]))
        coefs = [coef_path(p["coef"]) for p in paths]  # (alphas, k) each; CSR where wide
        wide = sparse.issparse(coefs[0])
        self.coef_path_ = (squeeze([c[:, :d] for c in coefs]) if wide else
                           squeeze(np.array([c[:, :d] for c in coefs])))
        self.intercept_path_ = squeeze(np.array([
            (np.asarray(c[:, d].toarray()).ravel() if wide else c[:, d]) if c.shape[1] > d
            else np.zeros(c.shape[0]) for c in coefs]))
        if path["folds"]:
            self.deviance_path_ = squeeze(np.array([p["fold_deviance"] for p in paths]))  # (folds, alphas)
            self.cv_deviance_ = squeeze(np.array([p["cv_deviance"] for p in paths]))
            self.cv_se_ = squeeze(np.array([p["cv_se"] for p in paths]))


class GeneralizedLinearRegressorCV(_PathCV, GeneralizedLinearRegressor):
    """glum's GeneralizedLinearRegressorCV: the GLM of `family` and `link` at the penalty k-fold
    cross-validation chooses along a path of `n_alphas` (or the given `alphas`)."""

    _own_parameters = {**GeneralizedLinearRegressor._own_parameters, **PATH_PARAMETERS}

    __init__ = estimator_init(keywords={"family": "gaussian", "link": "auto", "l1_ratio": 1.0, "n_alphas": 100,
                                        "min_alpha_ratio": 1e-3, "alphas": None, "cv": 5, "select": "min",
                                        "power": 1.5, "theta": 1.0, "cov_type": "nonrobust"},
                              max_iter=100, tol=1e-6)

    def _l1_ratios(self):
        return self.l1_ratio

    def _alpha_grid(self):
        return self.alphas

    def _min_ratio(self):
        return self.min_alpha_ratio

    def _job(self, kind, train, extra=None, penalty=None):
        return super()._job(kind, train, {**(extra or {}), **self._path_keys()}, penalty)

    def _fitted(self, result, classes) -> None:
        super()._fitted(result, classes)
        self._record_path(result.summary)


class ElasticNetCV(_PathCV, LinearRegression):
    """scikit-learn's ElasticNetCV: least squares with the elastic net at the penalty k-fold
    cross-validation chooses (`eps` = alpha_min / alpha_max). mse_path_: (folds, alphas) per
    l1_ratio, each fold's held-out mean squared error. Without weights, one pass over the rows
    serves the whole path and its cross-validation. Predictions and R^2 are LinearRegression's."""

    _own_parameters = PATH_PARAMETERS
    _job_kind = "glm"
    _penalty_alias = ""

    __init__ = estimator_init(keywords={"l1_ratio": 0.5, "eps": 1e-3, "n_alphas": 100, "alphas": None, "cv": 5,
                                        "select": "min"}, max_iter=100, tol=1e-10)

    def _l1_ratios(self):
        return self.l1_ratio

    def _alpha_grid(self):
        return self.alphas

    def _min_ratio(self):
        return self.eps

    @staticmethod
    def _model_kind(task: str, n_classes: int) -> str:
        if task != "regression":
            raise ConfigError(f"data: ElasticNetCV fits a numeric target, not task {task!r}")
        return "glm"

    def _job(self, kind, train, extra=None, penalty=None):
        keys = {**(extra or {}), **self._path_keys(), "model.family": "gaussian", "model.link": "identity"}
        return super()._job(kind, train, keys, penalty)

    def _fitted(self, result, classes) -> None:
        model = make_model("linear", result.model.n_features, 0, result.model.fit_intercept,
                           result.model.l2, result.model.l1)  # the same [coef, intercept] layout
        super()._fitted(replace(result, model=model), classes)
        self._record_path(result.summary)
        if hasattr(self, "deviance_path_"):
            self.mse_path_ = self.deviance_path_


class LogisticRegressionCV(_PathCV, LogisticRegression):
    """scikit-learn's LogisticRegressionCV for two classes: the penalty 1 / (C sum w) chosen by
    k-fold cross-validation over `Cs` (a count: np.logspace(-4, 4, Cs), as scikit-learn; or the
    values). Unlike scikit-learn, the folds' models share the whole data's alpha = 1 / (C sum w),
    and the choice is by held-out log-loss (its scoring="neg_log_loss"), not accuracy.
    `l1_ratios` (with penalty="elasticnet"): the L1 shares to try; "l2" is ridge, "l1" lasso."""

    _own_parameters = {"cv": "optimizer.cv"}

    __init__ = estimator_init(keywords={"Cs": 10, "cv": 5, "penalty": "l2", "l1_ratios": None, "select": "min"},
                              max_iter=100, tol=1e-8)

    def _l1_ratios(self):
        if self.penalty == "l2":
            return [0.0]
        if self.penalty == "l1":
            return [1.0]
        if self.penalty == "elasticnet" and self.l1_ratios is not None:
            return list(self.l1_ratios)
        raise ConfigError(f"penalty: expected 'l2', 'l1' or 'elasticnet' (with l1_ratios), got {self.penalty!r}")

    def _Cs(self) -> np.ndarray:
        if np.isscalar(self.Cs):
            if isinstance(self.Cs, bool) or not isinstance(self.Cs, (int, np.integer)) or self.Cs < 1:
                raise ConfigError(f"Cs: expected a number of values (1 or more) or a list of values, got {self.Cs!r}")
            return np.logspace(-4, 4, self.Cs)
        Cs = np.asarray(self.Cs, dtype=float)
        if Cs.ndim != 1 or not len(Cs) or not np.all((Cs > 0) & np.isfinite(Cs)):
            raise ConfigError(f"Cs: expected finite values > 0, got {self.Cs!r}")
        return Cs

    def _alpha_grid(self):
        return None  # set from the weight sum in _job (alpha = 1 / (C sum w))

    def _min_ratio(self):
        return 1e-3

    def fit(self, X=None, y=None, sample_weight=None, offset=None):
        """Two classes: the binary path. More: one binary path per class against the rest, each
        choosing its own C (scikit-learn's multi_class="ovr"; `estimators_`). Collective."""
        self._weight_sum, self.estimators_ = None, None
        if X is not None and not _is_paths(X) and y is not None:
            comm = self._comm()
            local = local_phase(comm, lambda: np.unique(np.asarray(y)))
            classes = np.unique(np.concatenate(comm.allgather(local)))
            if len(classes) > 2:
                return self._fit_one_vs_rest(X, np.asarray(y), classes, sample_weight, offset)
        return super().fit(X, y, sample_weight, offset)

    def _fit_one_vs_rest(self, X, y, classes, sample_weight, offset):
        self.estimators_ = [clone(self).fit(X, (y == label).astype(np.int64), sample_weight,
                                            self._class_offsets(offset, k)) for k, label in enumerate(classes)]
        first = self.estimators_[0]
        self.classes_ = classes
        self.n_features_in_ = first.n_features_in_
        self.coef_ = np.vstack([m.coef_ for m in self.estimators_])
        self.intercept_ = np.concatenate([np.ravel(m.intercept_) for m in self.estimators_])
        self.C_ = np.concatenate([m.C_ for m in self.estimators_])
        self.Cs_ = first.Cs_
        self.alpha_ = np.array([m.alpha_ for m in self.estimators_])
        self.l1_ratio_ = np.array([m.l1_ratio_ for m in self.estimators_])
        return self

    @staticmethod
    def _class_offsets(offset, k):
        """Class k's offsets: a column of per-class offsets, or the rows' one offset."""
        offsets = None if offset is None else np.asarray(offset)
        return None if offsets is None else offsets[:, k] if offsets.ndim == 2 else offsets

    def decision_function(self, X, offset=None):
        if not getattr(self, "estimators_", None):
            return super().decision_function(X, offset)
        return np.column_stack([m.decision_function(X, self._class_offsets(offset, k))
                                for k, m in enumerate(self.estimators_)])

    def predict_proba(self, X, offset=None):
        """One-vs-rest: each class's probability against the rest, normalised over the classes
        (scikit-learn's one-vs-rest LogisticRegression)."""
        if not getattr(self, "estimators_", None):
            return super().predict_proba(X, offset)
        p = np.column_stack([m.predict_proba(X, self._class_offsets(offset, k))[:, 1]
                             for k, m in enumerate(self.estimators_)])
        return p / p.sum(axis=1, keepdims=True)

    def _predict(self, X, offset=None):
        if not getattr(self, "estimators_", None):
            return super()._predict(X, offset)
        if not X.shape[0]:  # (score under mpiexec: a rank may hold no rows)
            return self.classes_[:0]
        return self.classes_[np.argmax(self.decision_function(X, offset), axis=1)]

    def predict(self, X, offset=None):
        if not getattr(self, "estimators_", None):
            return super().predict(X, offset)
        return self._predict(X, offset)

    def save(self, path) -> None:
        if getattr(self, "estimators_", None):
            raise ConfigError("save: a one-vs-rest LogisticRegressionCV is one model per class; save each of "
                              "its estimators_")
        super().save(path)

    @staticmethod
    def _model_kind(task: str, n_classes: int) -> str:
        if task != "binary":
            raise ConfigError(f"data: LogisticRegressionCV on shards fits two classes (task {task!r}); for "
                              f"more, pass arrays (one path per class against the rest)")
        return "glm"

    def _job(self, kind, train, extra=None, penalty=None):
        table = super()._job(kind, train, {**(extra or {}), **self._path_keys(), "model.family": "binomial",
                                           "model.link": "logit", "optimizer.path.select": self.select}, penalty)
        if self._weight_sum is None:
            raise ConfigError("LogisticRegressionCV: fit arrays (its Cs need the rows' weight sum)")
        set_key(table, "optimizer.path.alphas", sorted((1.0 / (self._Cs() * self._weight_sum)).tolist(), reverse=True))
        return table

    def _fit_arrays(self, comm, X, y, encode, sample_weight=None, offset=None):
        # agreed like the other input checks: a rank's unreadable weights fail every rank by name
        local = local_phase(comm, lambda: float(np.sum(sample_weight)) if sample_weight is not None
                            else float(np.shape(X)[0]))
        self._weight_sum = comm.allreduce(local)
        return super()._fit_arrays(comm, X, y, encode, sample_weight, offset)

    def _fitted(self, result, classes) -> None:
        model = make_model("logistic", result.model.n_features, 2, result.model.fit_intercept,
                           result.model.l2, result.model.l1)  # the same [coef, intercept] layout
        super()._fitted(replace(result, model=model), classes)
        self._record_path(result.summary)
        self.Cs_ = self._Cs()
        chosen = 1.0 / (self.alpha_ * self._weight_sum)  # the grid's own value, not its round trip
        self.C_ = np.array([self.Cs_[np.argmin(np.abs(np.log(self.Cs_) - np.log(chosen)))]])


__all__ = ["ElasticNetCV", "GeneralizedLinearRegressorCV", "LogisticRegressionCV"]
