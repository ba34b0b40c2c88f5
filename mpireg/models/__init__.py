"""Models: loss, gradient and prediction, one file each; `make_model` picks one by name."""
from ..errors import ConfigError
from .base import Model, ParamLayout, ParamSpec
from .linear import LinearModel
from .logistic import LogisticModel
from .softmax import SoftmaxModel

MODELS = {m.kind: m for m in (LinearModel, LogisticModel, SoftmaxModel)}


def make_model(kind: str, n_features: int, n_classes: int = 0, fit_intercept: bool = True,
               l2: float = 0.0, l1: float = 0.0, xp=None, task: str | None = None) -> Model:
    import numpy as np

    if kind not in MODELS:
        raise ConfigError(f"model.kind: expected one of {', '.join(MODELS)}, got {kind!r}")
    cls = MODELS[kind]
    if task is not None and task not in cls.task:
        hint = {"regression": "linear", "binary": "logistic", "multiclass": "softmax"}[task]
        raise ConfigError(f"model.kind: {kind!r} cannot train on data of task {task!r}; "
                          f"use model.kind = {hint!r}")
    return cls(n_features, n_classes, fit_intercept, l2, l1, xp or np)


__all__ = ["MODELS", "Model", "ParamLayout", "ParamSpec", "make_model"]
