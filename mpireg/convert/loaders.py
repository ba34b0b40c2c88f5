"""Turn .npy/.npz (and, with --dense, libsvm/svmlight text) into shards in memory, optionally
splitting off a test set. CSV, Parquet and libsvm are streamed instead (arrow.py, stream.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..data.format import write_shard

MAX_INFERRED_CLASSES = 50


def load_input(path, label_col=None):
    """(X, y, feature_names) from one input file, by extension."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such input file")
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        return _load_numpy(path, label_col)
    if suffix in (".svm", ".libsvm", ".svmlight"):
        return _load_svmlight(path)
    raise DataError(f"{path}: unknown input format {suffix!r}; expected .npy, .npz, .svm or .libsvm "
                    "(.csv, .tsv and .parquet are streamed: mpireg.convert.arrow)")


def _load_numpy(path: Path, label_col):
    try:
        X, y = _read_numpy(path, label_col)
    except ValueError as exc:  # a pickled object array, or a file that is not NumPy's format
        raise DataError(f"{path}: cannot read as a NumPy array of numbers ({exc}); save plain "
                        f"numeric arrays (np.save / np.savez of X and y)") from None
    for name, array in (("X", X), ("y", y)):
        if array.dtype.kind not in "biuf":
            raise DataError(f"{path}: {name} holds {array.dtype}, not numbers")
    return X, y, None


def _read_numpy(path: Path, label_col):
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            missing = {"X", "y"} - set(z.files)
            if missing:
                raise DataError(f"{path}: missing arrays {sorted(missing)}; a .npz needs X and y "
                                f"(found {z.files})")
            X, y = np.asarray(z["X"]), np.asarray(z["y"])
    else:
        table = np.load(path, allow_pickle=False)
        if table.ndim != 2:
            raise DataError(f"{path}: a .npy input must be a 2-D table with a label column")
        column = _label_index(path, label_col, None, table.shape[1])
        X, y = np.delete(table, column, axis=1), table[:, column]
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise DataError(f"{path}: X must be 2-D and y 1-D with as many rows, got {X.shape} and {y.shape}")
    return X, y


def _load_svmlight(path: Path):
    labels, rows, n_features, zero_based = [], [], 0, False
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            try:
                labels.append(float(parts[0]))
                row = {}
                for item in parts[1:]:
                    if item.startswith("qid:"):
                        continue
                    index, value = item.split(":")
                    row[int(index)] = float(value)
            except ValueError:
                raise DataError(f"{path}: line {line_no}: expected 'label index:value ...'") from None
            if row:
                zero_based |= min(row) == 0
                n_features = max(n_features, max(row))
            rows.append(row)
    offset = 0 if zero_based else 1
    X = np.zeros((len(rows), n_features + 1 - offset))
    for i, row in enumerate(rows):
        for index, value in row.items():
            X[i, index - offset] = value
    return X, np.asarray(labels), None


def _check_finite(path, X, y, dtype) -> None:
    """Every value finite, in the shards' dtype too (1e300 is finite in float64, inf in float32)."""
    with np.errstate(over="ignore", invalid="ignore"):
        for name, values in (("X", np.asarray(X, dtype=dtype)), ("y", np.asarray(y, dtype=np.float64))):
            bad = ~np.isfinite(values)
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                original = np.asarray(X if name == "X" else y)[row]
                overflow = np.all(np.isfinite(np.asarray(original, dtype=np.float64)))
                raise DataError(f"{path}: row {row}: {name} " + (
                    f"has a value beyond the range of {np.dtype(dtype)} (use --dtype float64, or rescale it)"
                    if overflow else "holds NaN or Inf"))


def _label_index(path, label_col, header, n_columns) -> int:
    return n_columns - 1 if label_col is None else column_index(path, label_col, header, n_columns, "--label-col")


def column_index(path, spec, header, n_columns: int, option: str) -> int:
    """A column given by header name or index (negative counts from the end)."""
    if header and spec in header:
        return header.index(spec)
    try:
        index = int(spec)
    except ValueError:
        raise DataError(f"{path}: {option} {spec!r} is not a column name "
                        f"{'(' + ', '.join(header) + ')' if header else '(no header)'} nor an index") from None
    if not -n_columns <= index < n_columns:
        raise DataError(f"{path}: {option} {index} is out of range for {n_columns} columns")
    return index % n_columns


def infer_task(y) -> str:
    values = np.unique(y)
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        return "regression"
    if len(values) == 2:
        return "binary"
    if len(values) <= MAX_INFERRED_CLASSES and values.min() >= 0:
        return "multiclass"
    return "regression"


def encode_labels(y, task: str):
    """Labels for classifiers as 0..K-1 (remembering the original values), floats otherwise."""
    if task == "regression":
        return y.astype(np.float64), 0, None
    values, codes = np.unique(y, return_inverse=True)
    if task == "binary" and len(values) != 2:
        raise DataError(f"y: task 'binary' needs exactly 2 distinct labels, found {len(values)}")
    return codes.astype(np.int64), len(values), values


def convert(inputs, out, shards: int = 1, label_col=None, test_fraction: float = 0.0,
            seed: int = 0, task: str | None = None, dtype: str | None = None) -> dict:
    """Write OUT/part-NNNNN.h5 (and OUT/test/part-NNNNN.h5); return a summary. The shards keep
    the inputs' float dtype (integers and text become float64) unless `dtype` says otherwise."""
    loaded = [load_input(p, label_col) for p in inputs]
    widths = {X.shape[1] for X, _, _ in loaded}
    if len(widths) > 1:
        raise DataError(f"inputs have different feature counts {sorted(widths)}: "
                        + ", ".join(f"{p}: {X.shape[1]}" for p, (X, _, _) in zip(inputs, loaded)))
    dtype = dtype or (loaded[0][0].dtype if loaded[0][0].dtype in (np.float32, np.float64) else np.float64)
    for path, (X, y, _) in zip(inputs, loaded):
        _check_finite(path, X, y, dtype)
    X = np.concatenate([X for X, _, _ in loaded]).astype(dtype, copy=False)
    y = np.concatenate([y for _, y, _ in loaded])
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"--test-fraction: expected 0 <= F < 1, got {test_fraction}")
    task = task or infer_task(y)
    y, n_classes, classes = encode_labels(y, task)
    if task == "regression":
        y = y.astype(dtype)
    order = np.random.default_rng(seed).permutation(len(y)) if test_fraction else np.arange(len(y))
    n_test = int(round(test_fraction * len(y)))
    splits = [(Path(out), order[n_test:], shards)]
    if n_test:
        splits.append((Path(out) / "test", np.sort(order[:n_test]), 1))
    for directory, rows, n_shards in splits:
        if len(rows) < n_shards:
            raise DataError(f"--shards: {len(rows)} rows cannot fill {n_shards} shards")
        rows = np.sort(rows)
        for shard, part in enumerate(np.array_split(rows, n_shards)):
            write_shard(directory / f"part-{shard:05d}.h5", X[part], y[part], task, n_classes)
    return dict(rows=len(y) - n_test, test_rows=n_test, features=X.shape[1], task=task,
                n_classes=n_classes, classes=None if classes is None else classes.tolist())
