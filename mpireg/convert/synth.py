"""Reproducible synthetic data for each model, with the true parameters stored beside it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..data.format import write_shard

TASK_OF_MODEL = {"linear": "regression", "logistic": "binary", "softmax": "multiclass"}
CHUNK_ROWS = 65536


def make_truth(task: str, features: int, classes: int, seed: int) -> dict:
    """True parameters; classifier weights are scaled so logits have unit-order spread."""
    rng = np.random.default_rng([seed, 0xC0EF])
    width = classes if task == "softmax" else 1
    scale = 1.0 if task == "linear" else 2.0 / np.sqrt(features)
    coef = rng.normal(0.0, scale, size=(features, width))
    intercept = rng.normal(0.0, 0.5, size=width)
    if task != "softmax":
        coef, intercept = coef[:, 0], intercept[0]
    return dict(coef=coef, intercept=np.asarray(intercept))


def generate_rows(task: str, truth: dict, rows: int, rng, noise: float, dtype):
    X = rng.standard_normal((rows, truth["coef"].shape[0])).astype(dtype)
    z = X.astype(np.float64) @ truth["coef"] + truth["intercept"]
    if task == "linear":
        return X, (z + noise * rng.standard_normal(rows)).astype(dtype)
    if task == "logistic":
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid, overflow-free
        return X, (rng.random(rows) < p).astype(np.int64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random((rows, 1))
    labels = (p.cumsum(axis=1) < u).sum(axis=1)
    return X, np.minimum(labels, p.shape[1] - 1).astype(np.int64)


def synthesize(task: str, rows: int, features: int, out, shards: int = 1, classes: int = 3,
               test_rows: int = 0, noise: float = 0.1, seed: int = 0, dtype="float32") -> list[Path]:
    """Write `shards` training shards to OUT/part-NNNNN.h5 and a test split to OUT/test/."""
    if task not in TASK_OF_MODEL:
        raise DataError(f"--task: expected one of {', '.join(TASK_OF_MODEL)}, got {task!r}")
    if rows < shards:
        raise DataError(f"--rows: {rows} rows cannot fill {shards} shards")
    n_classes = {"linear": 0, "logistic": 2, "softmax": classes}[task]
    truth = make_truth(task, features, classes, seed)

    def write(path, parts):
        X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        write_shard(path, X, y, TASK_OF_MODEL[task], n_classes, synth=truth)

    return _write_splits(Path(out), rows, shards, test_rows, seed, write,
                         lambda n, rng: generate_rows(task, truth, n, rng, noise, dtype))


def _write_splits(out: Path, rows: int, shards: int, test_rows: int, seed: int, write, make_rows) -> list[Path]:
    """`shards` training shards and one test shard, each from its own seeded stream, rows made
    CHUNK_ROWS at a time by make_rows(n, rng) and written by write(path, chunks)."""
    written = []
    splits = [(out, rows, shards, 1)] + ([(out / "test", test_rows, 1, 2)] if test_rows else [])
    for directory, n, n_shards, stream in splits:
        for shard in range(n_shards):
            lo, hi = shard * n // n_shards, (shard + 1) * n // n_shards
            rng = np.random.default_rng([seed, stream, shard])
            path = directory / f"part-{shard:05d}.h5"
            write(path, [make_rows(min(CHUNK_ROWS, hi - s), rng) for s in range(lo, hi, CHUNK_ROWS)])
            written.append(path)
    return written


def synthesize_sparse(task: str, rows: int, hash_bits: int, nnz: int, out, shards: int = 1,
                      classes: int = 3, test_rows: int = 0, noise: float = 0.1, seed: int = 0,
                      dtype="float32") -> list[Path]:
    """Criteo-like CSR shards: `2**hash_bits` columns, `nnz` one-valued entries a row drawn with
    power-law column frequencies (a few columns in most rows, most columns rare, as hashed
    categoricals are), targets from a known weight vector stored beside the data."""
    import scipy.sparse as sp

    from ..data.sparse import write_csr_shard

    if task not in TASK_OF_MODEL:
        raise DataError(f"--task: expected one of {', '.join(TASK_OF_MODEL)}, got {task!r}")
    if rows < shards:
        raise DataError(f"--rows: {rows} rows cannot fill {shards} shards")
    d = 2 ** hash_bits
    truth = make_truth(task, d, classes, seed)
    truth["coef"] *= np.sqrt(d / nnz) / (1.0 if task == "linear" else 2.0)  # logits of unit order
    n_classes = {"linear": 0, "logistic": 2, "softmax": classes}[task]
    frequency = np.cumsum(1.0 / np.arange(1, d + 1) ** 1.1)
    frequency /= frequency[-1]
    columns = np.random.default_rng([seed, 0xC01]).permutation(d)  # frequent columns spread out

    def write(path, parts):
        X = sp.vstack([p[0] for p in parts], format="csr")
        y = np.concatenate([p[1] for p in parts])
        write_csr_shard(path, X, y, TASK_OF_MODEL[task], n_classes, synth=truth)

    return _write_splits(Path(out), rows, shards, test_rows, seed, write,
                         lambda n, rng: _sparse_rows(task, truth, n, nnz, frequency, columns, rng, noise, dtype))


def _sparse_rows(task, truth, rows, nnz, frequency, columns, rng, noise, dtype):
    import scipy.sparse as sp

    cols = columns[np.searchsorted(frequency, rng.random(rows * nnz))]
    X = sp.csr_matrix((np.ones(rows * nnz, dtype=dtype), cols, np.arange(0, rows * nnz + 1, nnz)),
                      shape=(rows, len(columns)))
    X.sum_duplicates()  # a column drawn twice in a row counts twice
    z = X @ truth["coef"] + truth["intercept"]
    if task == "linear":
        return X, (z + noise * rng.standard_normal(rows)).astype(dtype)
    if task == "logistic":
        return X, (rng.random(rows) < 0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.int64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) < rng.random((rows, 1))).sum(axis=1)
    return X, np.minimum(labels, p.shape[1] - 1).astype(np.int64)
