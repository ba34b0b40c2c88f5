"""LinearRegression, LogisticRegression and SoftmaxRegression in scikit-learn's shape.

    m = LogisticRegression(C=10.0)               # or l2=1e-4: mpireg's own scale
    m.fit("data/logistic")                       # shards: each rank reads only its own rows
    m.fit(X_local, y_local)                      # or this rank's own arrays
    m.predict(X), m.predict_proba(X), m.score(X, y), m.coef_, m.intercept_, m.n_iter_
    m.save("model.h5"); mpireg.load("model.h5")

(MLPClassifier and MLPRegressor, on the same base, are in mlp.py; `load` in files.py.)

Penalties: mpireg's objective is mean loss + l2/2 ||coef||^2 + l1 ||coef||_1, so scikit-learn's
Ridge(alpha) is l2 = alpha / n and LogisticRegression(C) is l2 = 1 / (C n), n the rows of all
ranks; `alpha=` and `C=` do that conversion. Unlike scikit-learn, the default is no penalty.
"""
from __future__ import annotations


import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..device import is_device_array as on_device
from ..device import namespace_of
from ..device import to_host as host
from ..errors import ConfigError, DataError
from ..model_io import save_model
from ..models import make_model
from ..models.model import add_offset, unpack
from .estimator import MpiregEstimator, _is_paths, collective, estimator_init, local_phase
from .inputs import class_codes, offsets, regression_targets, sample_weights, shard_rows

class _Estimator(MpiregEstimator):
    _kind = ""  # the model kind of the last fit

    __init__ = estimator_init()

    def __sklearn_clone__(self):
        """A clone shares the communicator (a handle, which cannot be deep-copied)."""
        comm, self.comm = self.comm, None
        try:
            clone = super().__sklearn_clone__()
        finally:
            self.comm = comm
        clone.comm = comm
        return clone

    # ------------------------------------------------------------------ input
    _accept_sparse = False  # SciPy CSR X (the GLM and the path estimators): scikit-learn's input tag too

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._accept_sparse
        return tags

    def _validate_fit(self, X, y):
        if on_device(X):
            return X, y
        return validate_data(self, X, y, dtype=[np.float64, np.float32], ensure_min_samples=0,
                             y_numeric=not self._classifier, reset=True,
                             accept_sparse="csr" if self._accept_sparse else False)

    def _validate_predict(self, X, min_rows: int = 1):
        check_is_fitted(self)
        if on_device(X):
            return X
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False, ensure_min_samples=min_rows,
                             accept_sparse="csr" if self._accept_sparse else False)

    # ------------------------------------------------------------------ fitted state
    def _record_fit(self, job: dict, model, schema: dict) -> None:
        """What every fitted estimator keeps: the job it ran, the data's schema, the model's
        kind, options, width and penalties."""
        self._kind, self._fitted_intercept = model.kind, model.fit_intercept
        self._options = model.options()
        self.job_, self.schema_ = job, schema
        self.n_features_in_ = model.n_features
        self.l2_, self.l1_ = model.l2, model.l1

    def _set_fitted(self, job: dict, model, params, schema: dict, classes) -> None:
        """Fitted attributes from the engine's model and flat parameters."""
        self._record_fit(job, model, schema)
        views = model.layout.views(params)
        coef, intercept = views["coef"], views.get("intercept")
        if model.kind == "linear":
            self.coef_, self.intercept_ = coef.copy(), float(intercept) if intercept is not None else 0.0
        elif model.kind == "logistic":
            self.coef_ = coef[None, :].copy()
            self.intercept_ = np.array([float(intercept) if intercept is not None else 0.0])
        else:
            self.coef_ = coef.T.copy()
            self.intercept_ = intercept.copy() if intercept is not None else np.zeros(coef.shape[1])
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def _engine_model(self, xp=np):
        """The engine's model and flat parameters, from coef_ and intercept_."""
        n_classes = len(self.classes_) if self._kind != "linear" else 0
        model = make_model(self._kind, self.n_features_in_, n_classes, self._fitted_intercept,
                           self.l2_, self.l1_, xp=xp)
        params = model.init_params(self.coef_.dtype)
        views = model.layout.views(params)
        coef = {"linear": self.coef_, "logistic": np.ravel(self.coef_), "softmax": self.coef_.T}[self._kind]
        views["coef"][...] = xp.asarray(coef)
        if self._fitted_intercept:
            views["intercept"][...] = xp.asarray(np.reshape(self.intercept_, views["intercept"].shape))
        return model, params

    # ------------------------------------------------------------------ output
    def save(self, path) -> None:
        """Write the model file `mpireg.predict` and `mpireg.load` read (atomically; under
        mpiexec, call it on one rank, or on all: each writes the same whole file)."""
        check_is_fitted(self)
        model, params = self._engine_model()
        save_model(path, model, params, self.job_, self.schema_, self.summary_ or {},
                   classes=getattr(self, "classes_", None), estimator=type(self).__name__)

    def score(self, X, y=None, sample_weight=None, offset=None):
        """R^2 (regression) or accuracy (classification) over every rank's rows, weighted by
        `sample_weight` where given (as scikit-learn's r2_score and accuracy_score), predicted
        with `offset`. Collective. X: this rank's rows (y: their targets), or shard paths (each
        rank reads its own rows, with their own weights and offsets where they carry them)."""
        check_is_fitted(self)
        comm = self._comm()

        def score():
            sums = local_phase(comm, lambda: self._score_sums(X, y, sample_weight, offset))
            if comm.size > 1:
                comm.Allreduce(sums.copy(), sums)
            if not sums[0]:
                raise DataError("score: no rows on any rank")
            return self._score_from(sums)

        return collective(comm, score)

    def _score_sums(self, X, y, sample_weight=None, offset=None) -> np.ndarray:
        """This rank's score sums, [rows (or weights), ...] (see _score_from)."""
        if _is_paths(X):
            if y is not None or sample_weight is not None or offset is not None:
                raise ConfigError("y, sample_weight, offset: shards hold their own; call score(paths)")
            model, params = self._engine_model()
            sums = self._block_sums(np.empty(0), np.empty(0))
            for X_block, targets in shard_rows(self._comm(), X, self.n_features_in_, params.dtype):
                codes, w, off = unpack(targets)  # codes, if labels
                pred = model.predict(params, X_block) if off is None else model.predict(params, X_block, off)
                sums += self._block_sums(host(pred), codes, w)
            return sums
        X = self._validate_predict(X, min_rows=0)  # under mpiexec a rank may hold no rows
        y = host(y) if y is not None else None
        if y is None or np.shape(y) != (X.shape[0],):
            raise DataError(f"y: expected one target per row of X ({X.shape[0]}), got shape {np.shape(y)}")
        w = None if sample_weight is None else sample_weights(sample_weight, X, ensure_non_negative=False)
        return self._block_sums(host(self._predict(X, self._offsets(X, offset))), y, w)

    def _offsets(self, X, offset):
        """Offsets for X's rows in X's namespace (None where not given): one per row, or one per
        row and output where the model has several (a softmax's classes)."""
        if offset is None:
            return None
        return namespace_of(X).asarray(offsets(offset, X.shape[0], self._outputs()))

    def _outputs(self) -> int:
        return len(self.classes_) if self._kind == "softmax" else 1


class LinearRegression(RegressorMixin, _Estimator):
    """Least squares; with `alpha` (Ridge's scale) or `l2` ridge, with `l1` lasso / elastic net.

    solver "auto": the normal equations (exact, one pass); with l1, Adam's proximal steps."""

    _classifier = False
    _penalty_alias = "alpha"
    _exact_solver = "normal"
    score = _Estimator.score  # collective, over every rank's rows (not the mixin's local one)

    __init__ = estimator_init(keywords={"alpha": None})

    @staticmethod
    def _alias_to_l2_sum(alpha: float) -> float:
        """Ridge's alpha is a penalty on the summed squared error (l2 = alpha / n)."""
        return alpha

    def fit(self, X=None, y=None, sample_weight=None, offset=None):
        """X: shard paths (their datasets w and offset, where present, weigh and move the rows),
        or this rank's rows (y: their targets, sample_weight: their weights, offset: what the
        prediction adds per row). Collective."""
        return self._fit(X, y, regression_targets, sample_weight, offset)

    @staticmethod
    def _model_kind(task: str, n_classes: int) -> str:
        return "linear"

    def predict(self, X, offset=None):
        X = self._validate_predict(X)
        return self._predict(X, self._offsets(X, offset))

    def _predict(self, X, offset=None):
        model, params = self._engine_model(namespace_of(X))
        return model.predict(params, X.astype(params.dtype, copy=False), offset)

    @staticmethod
    def _block_sums(pred, y, w=None) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        w = np.ones(y.size) if w is None else w
        r = y - pred
        return np.array([w.sum(), w @ (r * r), w @ y, w @ (y * y)])

    @staticmethod
    def _score_from(sums) -> float:
        """R^2 = 1 - SSE / SST, with scikit-learn's answer for a constant target."""
        n, sse, sum_y, sum_y2 = sums
        sst = sum_y2 - sum_y * sum_y / n
        if sst <= 0:
            return 1.0 if sse == 0 else 0.0
        return float(1.0 - sse / sst)


class _Classifier(ClassifierMixin, _Estimator):
    _classifier = True
    _penalty_alias = "C"
    score = _Estimator.score  # collective, over every rank's rows (not the mixin's local one)

    __init__ = estimator_init(keywords={"C": None})

    @staticmethod
    def _alias_to_l2_sum(C: float) -> float:
        """C is the inverse of a penalty on the summed log-loss (l2 = 1 / (C n))."""
        if not 0 < C < float("inf"):  # (nan fails this too)
            raise ConfigError(f"C: expected a finite value > 0, got {C!r}")
        return 1.0 / C

    def fit(self, X=None, y=None, sample_weight=None, offset=None):
        """X: shard paths (their datasets w and offset, where present, weigh and move the rows),
        or this rank's rows (y: their labels, any values; sample_weight: their weights; offset:
        what each row's logit adds, or with several classes each class's logit). Collective."""
        return self._fit(X, y, class_codes, sample_weight, offset)

    def _validate_fit(self, X, y):
        X, y = super()._validate_fit(X, y)
        if not on_device(y):
            check_classification_targets(y)
        return X, y

    def decision_function(self, X, offset=None):
        X = self._validate_predict(X)
        model, params = self._engine_model(namespace_of(X))
        z = model.decision(params, X.astype(params.dtype, copy=False))
        add_offset(z, self._offsets(X, offset))
        if z.ndim == 2 and z.shape[1] == 2:  # binary: one score, for classes_[1], as scikit-learn
            return z[:, 1] - z[:, 0]
        return z

    def predict(self, X, offset=None):
        X = self._validate_predict(X)
        return self._predict(X, self._offsets(X, offset))

    def _predict(self, X, offset=None):
        model, params = self._engine_model(namespace_of(X))
        return self.classes_[host(model.predict(params, X.astype(params.dtype, copy=False), offset))]

    def predict_proba(self, X, offset=None):
        X = self._validate_predict(X)
        model, params = self._engine_model(namespace_of(X))
        proba = model.predict_proba(params, X.astype(params.dtype, copy=False), self._offsets(X, offset))
        if model.output == "binary":  # P(class 1) only: scikit-learn's two columns
            xp = namespace_of(proba)
            proba = xp.stack([1 - proba, proba], axis=1)
        return proba

    def predict_log_proba(self, X, offset=None):
        return namespace_of(X).log(self.predict_proba(X, offset))

    def _block_sums(self, pred, y, w=None) -> np.ndarray:
        w = np.ones(len(y)) if w is None else w
        return np.array([w.sum(), w @ (pred == np.asarray(y))], dtype=np.float64)

    @staticmethod
    def _score_from(sums) -> float:
        return float(sums[1] / sums[0])


class LogisticRegression(_Classifier):
    """Logistic regression: binary for two classes, multinomial (softmax) for more, as
    scikit-learn's LogisticRegression. solver "auto": full-batch L-BFGS (with l1: Adam)."""

    _job_kind = "logistic"
    _job_keys = {"model.multiclass": "softmax"}  # shards of more than two classes: softmax

    @staticmethod
    def _model_kind(task: str, n_classes: int) -> str:
        return "logistic" if n_classes == 2 else "softmax"


class SoftmaxRegression(_Classifier):
    """Multinomial (softmax) regression over the classes, two included."""

    _job_kind = "softmax"

    @staticmethod
    def _model_kind(task: str, n_classes: int) -> str:
        return "softmax"
