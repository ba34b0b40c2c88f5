"""`mpireg.load`: the estimator a model file holds, whichever door (API or CLI) wrote it."""
from __future__ import annotations

import numpy as np

from ..model_io import load_model
from .linear_models import LinearRegression, LogisticRegression, SoftmaxRegression
from .factorization import MatrixFactorization
from .glm import GammaRegressor, GeneralizedLinearRegressor, PoissonRegressor, TweedieRegressor
from .neural import MLPClassifier, MLPRegressor

ESTIMATORS = {cls.__name__: cls for cls in (LinearRegression, LogisticRegression, SoftmaxRegression,
                                            MLPClassifier, MLPRegressor, MatrixFactorization,
                                            GeneralizedLinearRegressor, PoissonRegressor, GammaRegressor,
                                            TweedieRegressor)}
BY_KIND = {"linear": LinearRegression, "logistic": LogisticRegression, "softmax": SoftmaxRegression,
           "mf": MatrixFactorization, "glm": GeneralizedLinearRegressor}


def load(path):
    """The estimator a model file holds (written by `save` or by the CLI), ready to predict."""
    model, params, meta = load_model(path)
    cls = ESTIMATORS.get(meta["estimator"]) or _class_of(model)
    estimator = cls.from_config(meta["config"])
    classes = meta.get("classes")
    if classes is None and model.output not in ("regression", "glm"):
        classes = np.arange(max(model.n_classes, 2))
    estimator._set_fitted(meta["config"], model, params, meta["schema"], classes)
    estimator.summary_ = meta["metrics"]
    return estimator


def _class_of(model):
    """The estimator for a model file the CLI wrote."""
    if model.kind == "mlp":
        return MLPRegressor if model.output == "regression" else MLPClassifier
    return BY_KIND[model.kind]
