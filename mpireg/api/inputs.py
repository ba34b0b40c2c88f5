"""What the estimators read besides X: targets (labels encoded across ranks), sample weights and
offsets (packed with the targets), and shard rows."""
from __future__ import annotations

import numpy as np
from sklearn.utils.validation import _check_sample_weight

from ..data import ShardReader, read_schema, resolve_paths
from ..device import is_device_array as on_device
from ..device import namespace_of
from ..device import to_host as host
from ..errors import ConfigError, DataError

SCORE_BUDGET_BYTES = 256 * 2**20


def regression_targets(comm, y):
    return y.astype(np.float64, copy=False) if not on_device(y) else y, "regression", 0, None


def class_codes(comm, y):
    """Labels -> codes 0..K-1 over the union of every rank's labels (sorted, as scikit-learn)."""
    xp = namespace_of(y)
    local = host(xp.unique(y))
    classes = np.unique(np.concatenate([np.asarray(c) for c in comm.allgather(local)]))
    if len(classes) < 2:
        raise ConfigError(f"y: a classifier needs samples of at least 2 classes; got 1 class "
                          f"({classes[0]!r})" if len(classes) else "y: no labels on any rank")
    codes = xp.asarray(np.searchsorted(classes, host(y)).astype(np.int64))
    return codes, "binary" if len(classes) == 2 else "multiclass", len(classes), classes


def pack_rows(X, codes, sample_weight, offset, outputs: int = 1) -> np.ndarray:
    """The targets with their weights and offsets, as packed rows [y, w, offset...] in float64
    (models/model.py): weight 1 and offset 0 where not given; `outputs` offsets per row where
    the model has several outputs (a softmax's classes) and the offset gives one per output."""
    n = X.shape[0]
    w = np.ones(n) if sample_weight is None else sample_weights(sample_weight, X)
    off = offsets(offset, n, outputs)
    packed = np.empty((n, 2 + (off.shape[1] if off.ndim == 2 else 1)))
    packed[:, 0] = host(codes)
    packed[:, 1] = w
    packed[:, 2:] = off[:, None] if off.ndim == 1 else off
    return packed


def sample_weights(sample_weight, X, ensure_non_negative: bool = True) -> np.ndarray:
    """scikit-learn's checks of sample_weight, which refuse no rows; under mpiexec a rank may
    hold none (then an empty array of weights is right)."""
    if X.shape[0] == 0:
        w = np.asarray(host(sample_weight), dtype=np.float64)
        if w.shape != (0,):
            raise DataError(f"sample_weight: expected one weight per row of X (0), got shape {w.shape}")
        return w
    return _check_sample_weight(host(sample_weight), X, dtype=np.float64, ensure_non_negative=ensure_non_negative)


def offsets(offset, n: int, outputs: int = 1) -> np.ndarray:
    """The offsets as float64: one per row, or (a model of several outputs) one per row and
    output; zeros where None. Non-finite values are refused by row."""
    if offset is None:
        return np.zeros(n)
    offset = np.asarray(host(offset), dtype=np.float64)
    shapes = [(n,)] + ([(n, outputs)] if outputs > 1 else [])
    if offset.shape not in shapes:
        raise DataError(f"offset: expected shape {' or '.join(map(str, shapes))} (one value per row of X"
                        f"{', or one per row and class' if outputs > 1 else ''}), got {offset.shape}")
    bad = ~np.isfinite(offset if offset.ndim == 2 else offset[:, None]).all(axis=1)
    if bad.any():
        raise DataError(f"offset: a NaN or Inf at row {int(np.argmax(bad))}")
    return offset


def shard_rows(comm, paths, n_features: int, dtype):
    """This rank's rows of the shards `paths`, in blocks."""
    specs = [paths] if isinstance(paths, str) else list(paths)
    schema = read_schema(resolve_paths(specs, "X"), "X")
    if schema.n_features != n_features:
        raise DataError(f"{schema.files[0]}: {schema.n_features} features, but the model was fitted "
                        f"on {n_features}")
    reader = ShardReader(schema, comm.rank, comm.size, SCORE_BUDGET_BYTES, x_dtype=dtype, allow_empty=True)
    try:
        for index in range(len(reader.block_sizes)):
            yield reader.block(index)
    finally:
        reader.close()
