"""Synthetic insurance-like data for generalized linear models (`synth --task poisson|gamma|tweedie`).

Rows look like glum's benchmark problems: a few standard-normal numeric columns and one-hot
categorical columns (groups of CATEGORY_LEVELS levels, the first level the reference with no
column, so that the design keeps full rank beside the intercept), a true coefficient per column:

    poisson   claim counts, exposure in (0.1, 1] years: the offset log(exposure)   (frequency)
    gamma     claim sizes, shape 2, weighted by the claims behind each (1-3)       (severity)
    tweedie   pure premium with power 1.5 (a Poisson count of gamma claims over the exposure),
              weighted by the exposure                                              (burning cost)

with the log link. Without --exposure every row has exposure 1 (no offset, weight 1). The true
coefficients are kept in the shards' synth group.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.format import write_shard
from ..errors import DataError
from .synth import _write_splits

GLM_TASKS = ("poisson", "gamma", "tweedie")
CATEGORY_LEVELS = 10
TWEEDIE_POWER = 1.5


def claims_truth(features: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, 0x61A])
    numeric = max(1, min(features, features // 6 or 1))
    coef = np.concatenate([rng.normal(0.0, 0.15, numeric), rng.normal(0.0, 0.3, features - numeric)])
    return dict(coef=coef, intercept=np.asarray(-1.0), numeric=np.asarray(numeric))


def claims_rows(task: str, truth: dict, n: int, rng, exposure: bool, dtype):
    """(X, y, w, offset) of n rows."""
    d, numeric = len(truth["coef"]), int(truth["numeric"])
    X = np.zeros((n, d), dtype=dtype)
    X[:, :numeric] = rng.standard_normal((n, numeric))
    for lo in range(numeric, d, CATEGORY_LEVELS - 1):  # one-hot groups, level 0 the reference
        width = min(CATEGORY_LEVELS - 1, d - lo)
        level = rng.integers(0, width + 1, n)
        hit = level > 0
        X[np.flatnonzero(hit), lo + level[hit] - 1] = 1.0
    years = rng.uniform(0.1, 1.0, n) if exposure else np.ones(n)
    mu = np.exp(truth["intercept"] + X.astype(np.float64) @ truth["coef"])  # per year of exposure
    if task == "poisson":
        return X, rng.poisson(mu * years).astype(np.float64), None, np.log(years) if exposure else None
    if task == "gamma":
        claims = rng.integers(1, 4, n).astype(np.float64)
        size = 1000.0 * mu / np.exp(truth["intercept"])  # claim sizes around 1000
        return X, rng.gamma(2.0 * claims, size / (2.0 * claims)), claims, None
    counts = rng.poisson(mu * years)  # tweedie: the year's claims, each gamma with mean 1 and shape 2
    cost = np.where(counts > 0, rng.gamma(2.0 * np.maximum(counts, 1), 0.5), 0.0) / years
    return X, cost, years if exposure else None, None


def synthesize_claims(task: str, rows: int, features: int, out, shards: int = 1, test_rows: int = 0,
                      exposure: bool = False, seed: int = 0, dtype="float32") -> list[Path]:
    if task not in GLM_TASKS:
        raise DataError(f"--task: expected one of {', '.join(GLM_TASKS)}, got {task!r}")
    if rows < shards:
        raise DataError(f"--rows: {rows} rows cannot fill {shards} shards")
    truth = claims_truth(features, seed)

    def write(path, parts):
        X, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        w = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        offset = None if parts[0][3] is None else np.concatenate([p[3] for p in parts])
        write_shard(path, X, y, "regression", 0, synth=truth, w=w, offset=offset)

    return _write_splits(Path(out), rows, shards, test_rows, seed, write,
                         lambda n, rng: claims_rows(task, truth, n, rng, exposure, dtype))
