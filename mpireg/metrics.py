"""Evaluation metrics computed from global sums: each rank sums over its rows, one allreduce.

Per model, a fixed-length float64 vector of sums:
    regression  [n, loss, sse, sum y, sum y^2]                      -> loss, mse, rmse, r2
    binary      [n, loss, correct, positives per bin, negatives per bin] -> loss, log_loss, accuracy, auc
    multiclass  [n, loss, correct]                                  -> loss, log_loss, accuracy
AUC is exact up to ties within one of AUC_BINS bins of the logit over [-LOGIT_RANGE, LOGIT_RANGE]
(Spark's BinaryClassificationMetrics bins the same way); pairs sharing a bin count one half.
"""
from __future__ import annotations

import numpy as np

from .models.model import add_offset, unpack

AUC_BINS = 1 << 15
LOGIT_RANGE = 20.0


def sums_length(model) -> int:
    return {"regression": 5, "binary": 3 + 2 * AUC_BINS, "multiclass": 3, "glm": 3}[model.output]


def add_sums(model, params, X, y, out: np.ndarray) -> None:
    """Add this block's sums into `out` (host float64). Packed rows [y, w, offset...] count by
    their weights, and their offsets move the model's output."""
    xp = model.xp
    n = X.shape[0]
    if n == 0:
        return
    out[1] += model.loss_sum(params, X, y)
    if model.output == "glm":  # [rows, loss sum (weighted deviance / 2), weight sum]
        out[0] += n
        out[2] += model.weight_sum(y)
        return
    out[0] += model.weight_sum(y)
    y, w, offset = unpack(y)
    total = (lambda a: float(xp.sum(a))) if w is None else (lambda a: float(w @ a))
    z = model.decision(params, X)
    add_offset(z, offset)
    if model.output == "regression":
        r = z - y
        out[2] += total(r * r)
        out[3] += total(y)
        out[4] += total(y * y)
    elif model.output == "binary":
        out[2] += total(((z > 0) == (y > 0.5)).astype(np.float64))
        # a NaN logit (a diverged model) takes the middle bin: its loss reports the divergence
        scaled = (xp.clip(xp.nan_to_num(z), -LOGIT_RANGE, LOGIT_RANGE) + LOGIT_RANGE) * (AUC_BINS / (2 * LOGIT_RANGE))
        bins = xp.minimum(scaled.astype(xp.int64), AUC_BINS - 1)
        positive = y > 0.5
        for lo, chosen in ((3, positive), (3 + AUC_BINS, ~positive)):
            counts = xp.bincount(bins[chosen], weights=None if w is None else w[chosen], minlength=AUC_BINS)
            out[lo:lo + AUC_BINS] += _to_host(counts)
    else:
        out[2] += total((xp.argmax(z, axis=1) == y).astype(np.float64))


def finalize(model, sums: np.ndarray, penalty: float) -> dict:
    n = sums[0]
    if n == 0:
        return {}
    if model.output == "glm":
        weight = sums[2]
        return {"rows": int(n), "loss": float(sums[1] / max(weight, 1e-300) + penalty),
                "deviance": float(2 * sums[1]), "mean_deviance": float(2 * sums[1] / max(weight, 1e-300)),
                "weight": float(weight)}
    data_loss = sums[1] / n
    result = {"rows": int(n), "loss": float(data_loss + penalty)}
    if model.output == "regression":
        mse = sums[2] / n
        variance = sums[4] / n - (sums[3] / n) ** 2
        result.update(mse=float(mse), rmse=float(np.sqrt(mse)), r2=float(1.0 - mse / variance) if variance > 0 else float("nan"))
    else:
        result.update(log_loss=float(data_loss), accuracy=float(sums[2] / n))
        if model.output == "binary":
            result["auc"] = _auc(sums[3:3 + AUC_BINS], sums[3 + AUC_BINS:])
    return result


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (n_pos * n_neg))


def _to_host(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)
