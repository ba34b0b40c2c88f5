"""Models: loss, gradient and prediction, one file each; `make_model` picks one by name."""
from ..errors import ConfigError
from .model import Model, ParamLayout, ParamSpec
from .glm import GLMModel
from .linear import LinearModel
from .mf import MFModel
from .logistic import LogisticModel
from .mlp import MLPModel
from .softmax import SoftmaxModel

MODELS = {m.kind: m for m in (LinearModel, LogisticModel, SoftmaxModel, MLPModel, MFModel, GLMModel)}
HINTS = {"regression": "linear", "binary": "logistic", "multiclass": "softmax", "ratings": "mf"}


def make_model(kind: str, n_features: int, n_classes: int = 0, fit_intercept: bool = True,
               l2: float = 0.0, l1: float = 0.0, xp=None, task: str | None = None, **options) -> Model:
    """`options`: a model's own arguments (the MLP's hidden, seed and output, output defaulting
    to the data's task; matrix factorisation's n_users, n_items, rank and seed)."""
    import numpy as np

    if kind not in MODELS:
        raise ConfigError(f"model.kind: expected one of {', '.join(MODELS)}, got {kind!r}")
    cls = MODELS[kind]
    if task is not None and task not in cls.task:
        raise ConfigError(f"model.kind: {kind!r} cannot train on data of task {task!r}; "
                          f"use model.kind = {HINTS[task]!r}" + (" (or 'mlp')" if task in MLPModel.task else ""))
    if cls is MLPModel and task is not None:
        options.setdefault("output", task)
    return cls(n_features, n_classes, fit_intercept, l2, l1, xp or np, **options)


def model_options(model_cfg, seed: int) -> dict:
    """The options a job's model section gives make_model."""
    if model_cfg.kind == "mlp":
        return {"hidden": list(model_cfg.hidden), "seed": seed}
    if model_cfg.kind == "mf":
        return {"rank": model_cfg.rank, "seed": seed}
    if model_cfg.kind == "glm":
        return {"family": model_cfg.family, "link": model_cfg.link, "power": model_cfg.power,
                "theta": model_cfg.theta}
    return {}


__all__ = ["MODELS", "GLMModel", "MFModel", "MLPModel", "Model", "ParamLayout", "ParamSpec", "make_model", "model_options"]
