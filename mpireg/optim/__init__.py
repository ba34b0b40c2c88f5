"""Optimizers: mini-batch SGD and Adam, full-batch L-BFGS, and the exact normal-equation solver
(ALS, full-batch too, lives with its model: models/mf.py, fit/als.py)."""
from .adagrad import AdaGrad, adagrad_pass
from .lbfgs import minimize_lbfgs
from .gram import gram_sums, solve_normal
from .schedules import learning_rate
from .sgd import SGD, Adam, Optimizer

MINIBATCH = {"sgd": SGD, "adam": Adam}
FULL_BATCH = ("lbfgs", "normal", "als", "irls")  # no mini-batch optimizer state


def make_optimizer(cfg, model, dtype):
    """A mini-batch optimizer for `cfg.kind` (the L1 step uses the model's penalty mask), or the
    state of the online passes."""
    if cfg.kind == "adagrad":
        return AdaGrad(cfg, model.n_features)
    cls = MINIBATCH[cfg.kind]
    return cls(cfg, l1=model.l1, l1_mask=model.mask(dtype) if model.l1 else None, xp=model.xp)


__all__ = ["SGD", "Adam", "AdaGrad", "Optimizer", "adagrad_pass", "MINIBATCH", "FULL_BATCH", "make_optimizer",
           "minimize_lbfgs", "gram_sums", "solve_normal", "learning_rate"]
