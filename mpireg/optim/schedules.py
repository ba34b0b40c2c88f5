"""Learning-rate schedules: a pure function of (step, epoch), the same on every rank."""
import math


def learning_rate(cfg, step: int, epoch: int, total_steps: int) -> float:
    """cfg is an OptimizerConfig; `step` counts from 0 over the whole run."""
    if cfg.schedule == "constant":
        lr = cfg.lr
    elif cfg.schedule == "step":
        lr = cfg.lr * cfg.decay_rate ** (epoch // cfg.decay_epochs)
    elif cfg.schedule == "cosine":
        lr = 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    elif cfg.schedule == "invscaling":  # sklearn's SGD: eta0 / t^power_t
        lr = cfg.lr / (1.0 + step) ** cfg.power_t
    else:  # validated by the config; a new name must be added here
        raise ValueError(f"unknown schedule {cfg.schedule!r}")
    if cfg.warmup_steps and step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    return lr
