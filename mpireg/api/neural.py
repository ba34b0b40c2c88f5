"""MLPClassifier and MLPRegressor: the engine's MLP (models/mlp.py) in scikit-learn's shape.

    m = MLPClassifier(hidden_layer_sizes=(128,), lr=1e-3, epochs=200).fit(X_local, y_local)
    m.predict(X), m.predict_proba(X), m.score(X, y), m.coefs_, m.intercepts_

Parameters as scikit-learn's MLPs name them where they exist (hidden_layer_sizes, alpha,
batch_size, tol); the rest are the other estimators' (lr is learning_rate_init, epochs is
max_iter's epochs). solver "auto" is Adam, lr 0.001 and batch 200 rows per rank, scikit-learn's
defaults. `alpha` is scikit-learn's full-batch scale (l2 = alpha / n, n the rows of all ranks);
with the mini-batch solvers scikit-learn divides by the batch instead, so its alpha is ours times
n / batch_size. Unlike scikit-learn, the default is no penalty. Early stopping: the training loss
improving by less than `tol` for optimizer.patience epochs (a job key; default 3).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..models import make_model
from .estimator import estimator_init
from .linear_models import LinearRegression, _Classifier, _Estimator
from .inputs import class_codes, regression_targets

ACTIVATIONS = {"regression": "identity", "binary": "logistic", "multiclass": "softmax"}


class _MLP(_Estimator):
    _exact_solver = "adam"
    _own_parameters = {"hidden_layer_sizes": "model.hidden"}
    _penalty_alias = "alpha"
    _tasks = ()

    _job_kind = "mlp"
    # One signature for both MLPs (scikit-learn reads the parameters from it): its defaults.
    __init__ = estimator_init({"hidden_layer_sizes": (128,)}, {"alpha": None},
                              lr=0.001, batch_size=200, epochs=200)

    def _model_kind(self, task: str, n_classes: int) -> str:
        if task not in self._tasks:
            raise ConfigError(f"data: {type(self).__name__} fits {' or '.join(self._tasks)} targets, "
                              f"not task {task!r}")
        return "mlp"

    def _set_fitted(self, job: dict, model, params, schema: dict, classes) -> None:
        self._record_fit(job, model, schema)
        views = model.layout.views(params)
        layers = range(model.n_layers)
        self.coefs_ = [views[f"coef_{i}"].copy() for i in layers]
        self.intercepts_ = [views[f"intercept_{i}"].copy() if model.fit_intercept
                            else np.zeros(model.widths[i + 1], dtype=params.dtype) for i in layers]
        self.n_layers_ = model.n_layers + 1  # scikit-learn counts the input layer
        self.n_outputs_ = model.widths[-1]
        self.out_activation_ = ACTIVATIONS[model.output]
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def _engine_model(self, xp=np):
        n_classes = len(self.classes_) if self._classifier else 0
        model = make_model("mlp", self.n_features_in_, n_classes, self._fitted_intercept, self.l2_,
                           self.l1_, xp=xp, **self._options)
        params = model.init_params(self.coefs_[0].dtype)
        views = model.layout.views(params)
        for i, (coef, intercept) in enumerate(zip(self.coefs_, self.intercepts_)):
            views[f"coef_{i}"][...] = xp.asarray(coef)
            if self._fitted_intercept:
                views[f"intercept_{i}"][...] = xp.asarray(intercept)
        return model, params

    @staticmethod
    def _alias_to_l2_sum(alpha: float) -> float:
        return alpha

    def _outputs(self) -> int:
        return self.n_outputs_

    @property
    def loss_(self) -> float:
        """The final training objective (scikit-learn's loss_)."""
        return float(self.summary_["train"]["loss"])


class MLPClassifier(_MLP, _Classifier):
    """A ReLU network with a softmax output over the classes (logistic for two)."""

    _tasks = ("binary", "multiclass")
    score = _Estimator.score

    def fit(self, X=None, y=None, sample_weight=None, offset=None):
        """X: shard paths, or this rank's rows (y: their labels, any values; sample_weight, offset:
        as LogisticRegression's, the offset moving the output layer's logits). Collective."""
        return self._fit(X, y, class_codes, sample_weight, offset)


class MLPRegressor(_MLP, LinearRegression):
    """A ReLU network with one linear output and the squared loss (prediction and R^2 as
    LinearRegression's)."""

    _tasks = ("regression",)

    def fit(self, X=None, y=None, sample_weight=None, offset=None):
        """X: shard paths, or this rank's rows (y: their targets; sample_weight, offset: as
        LinearRegression's, the offset moving the output). Collective."""
        return self._fit(X, y, regression_targets, sample_weight, offset)
