"""What the estimators read besides X: targets (labels encoded across ranks) and shard rows."""
from __future__ import annotations

import numpy as np

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
