"""The HDF5 shard format (version 1), its writer and its validator.

A shard is one `.h5` file holding
    X   (rows, features)  float32 or float64
    y   (rows,)           float targets (task "regression") or integer labels 0..K-1
    w, offset (rows,)     optional float sample weights and offsets (generalized linear models);
                          a data set has them in every shard or in none
and attributes
    mpireg_format = 1, task in {"regression", "binary", "multiclass"}, n_features, n_classes
    (0 for regression). A synthetic shard also has a group `synth` with the true `coef` and
    `intercept`. A data set is any number of shards with the same task, features and dtype.
A ratings shard (task "ratings", for matrix factorisation) holds
    X   (rows, 2)         int64 (user index, item index)
    y   (rows,)           float ratings
and the attributes n_users and n_items (indices run 0..n-1), n_features = 2, n_classes = 0.
See docs/data-format.md.
"""
from __future__ import annotations

import glob
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_file
from ..errors import DataError

FORMAT_VERSION = 1
TASKS = ("regression", "binary", "multiclass")
RATINGS = "ratings"  # (user, item) -> rating
# The data task each model trains on.
MODEL_TASKS = {"linear": ("regression",), "logistic": ("binary",), "softmax": ("multiclass", "binary"),
               "mlp": TASKS, "mf": (RATINGS,), "glm": ("regression", "binary")}


@dataclass
class Schema:
    """What every rank relies on about a data set; built by rank 0 from file headers."""

    task: str
    n_features: int
    n_classes: int
    dtype: str
    files: list = field(default_factory=list)  # [path, ...]
    rows: list = field(default_factory=list)   # rows per file, same order
    n_users: int = 0  # ratings only
    n_items: int = 0
    sparse: bool = False  # CSR shards (data/sparse.py)
    nnz: list = field(default_factory=list)  # sparse: non-zeros per file, same order
    extras: tuple = ()  # the optional datasets every shard holds: "w" (weights), "offset"

    @property
    def packed(self) -> bool:
        """True: rows' targets are read as [y, w, offset] (float64), weights and offsets beside y."""
        return bool(self.extras)

    @property
    def n_rows(self) -> int:
        return int(sum(self.rows))

    @property
    def x_dtype(self) -> str:
        """What X holds on disk: the values' dtype, or int64 (user, item) pairs of ratings."""
        return "int64" if self.task == RATINGS else self.dtype

    def describe(self) -> dict:
        out = dict(task=self.task, n_features=self.n_features, n_classes=self.n_classes,
                   dtype=self.dtype, n_rows=self.n_rows, n_files=len(self.files))
        if self.task == RATINGS:
            out.update(n_users=self.n_users, n_items=self.n_items)
        if self.sparse:
            out.update(sparse=True, nnz=int(sum(self.nnz)))
        if self.extras:
            out.update(extras=list(self.extras))
        return out


EXTRAS = ("w", "offset")  # optional per-row datasets, in the packed targets' order after y


def write_shard(path, X, y, task: str, n_classes: int = 0, synth: dict | None = None,
                attrs: dict | None = None, w=None, offset=None) -> None:
    """Write one shard atomically: a reader never sees a half-written file. `attrs`: more
    attributes (a ratings shard's n_users and n_items); `w`, `offset`: per-row sample weights
    and offsets."""
    X = np.asarray(X)
    y = np.asarray(y)
    if task not in TASKS + (RATINGS,):
        raise DataError(f"{path}: task must be one of {TASKS + (RATINGS,)}, got {task!r}")
    with atomic_shard(path, task, X.shape[1], n_classes, synth, attrs) as f:
        f.create_dataset("X", data=X)
        f.create_dataset("y", data=y)
        for name, values in (("w", w), ("offset", offset)):
            if values is not None:
                f.create_dataset(name, data=np.asarray(values, dtype=np.float64))


@contextmanager
def atomic_shard(path, task: str, n_features: int, n_classes: int = 0, synth: dict | None = None,
                 attrs: dict | None = None):
    """An open HDF5 file with the format's attributes (and a synth group) for the caller's
    datasets, renamed into `path` only once whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(mpireg_format=FORMAT_VERSION, task=task, n_features=int(n_features),
                       n_classes=int(n_classes), **(attrs or {}))
        if synth:
            group = f.create_group("synth")
            for key, value in synth.items():
                group.create_dataset(key, data=value)
        yield f


def resolve_paths(specs, key: str = "data.train") -> list[str]:
    """Directories (their .h5 files, not subdirectories), files and globs, in a stable order."""
    paths: list[str] = []
    for spec in specs:
        spec = str(spec)
        if any(ch in spec for ch in "*?["):
            matches = sorted(glob.glob(spec))
            if not matches:
                raise DataError(f"{key}: the pattern {spec!r} matches no file")
            paths += matches
        elif os.path.isdir(spec):
            found = sorted(str(p) for p in Path(spec).glob("*.h5") if p.is_file())
            if not found:
                raise DataError(f"{key}: directory {spec!r} holds no .h5 shards")
            paths += found
        elif os.path.exists(spec):
            paths.append(spec)
        else:
            raise DataError(f"{key}: no such file or directory: {spec!r}")
    if not paths:
        raise DataError(f"{key}: no shards given")
    return paths


def read_schema(paths, key: str = "data.train") -> Schema:
    """Validate every shard's header and their agreement; read no data rows."""
    schema = None
    for path in paths:
        header = _read_header(path)
        if schema is None:
            schema = Schema(task=header["task"], n_features=header["n_features"],
                            n_classes=header["n_classes"], dtype=header["dtype"],
                            n_users=header.get("n_users", 0), n_items=header.get("n_items", 0),
                            sparse=header["sparse"], extras=header["extras"])
        else:
            _check_same(schema, header, path, first=schema.files[0])
        schema.files.append(str(path))
        schema.rows.append(header["rows"])
        schema.nnz.append(header["nnz"])
    assert schema is not None
    return schema


def _read_header(path) -> dict:
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot open as HDF5 ({_short(exc)})") from None
    with f:
        attrs = dict(f.attrs)
        sparse = "indptr" in f
        if sparse:
            from .sparse import csr_shape  # a CSR shard (data/sparse.py)

            rows, width, x_dtype, nnz = csr_shape(f, path, attrs)
        else:
            rows, width, x_dtype = _dense_shape(f, path, attrs)
            nnz = 0
        y = f["y"] if isinstance(f.get("y"), h5py.Dataset) else None
        if y is None:
            raise DataError(f"{path}: missing dataset 'y' (a shard holds X and y)")
        if y.ndim != 1 or y.shape[0] != rows:
            raise DataError(f"{path}: y must be 1-D with one entry per row of X ({rows}), got shape {y.shape}")
        if rows == 0:
            raise DataError(f"{path}: empty shard (0 rows); remove it or regenerate it")
        task, n_classes = _task_attrs(path, attrs, width, y)
        ratings = task == RATINGS
        header = dict(task=task, n_features=width, n_classes=n_classes,
                      dtype=str(y.dtype if ratings else x_dtype), rows=rows, sparse=sparse, nnz=nnz,
                      extras=_extras(f, path, rows))
        if ratings:
            for name in ("n_users", "n_items"):
                if name not in attrs:
                    raise DataError(f"{path}: a ratings shard needs a positive attribute {name!r}")
                header[name] = int_attr(path, attrs, name, 1)
        return header


def _extras(f, path, rows: int) -> tuple:
    """The optional per-row datasets this shard holds, each checked: float, one value a row."""
    found = []
    for name in EXTRAS:
        if name not in f:
            continue
        data = f[name]
        if not isinstance(data, h5py.Dataset) or data.ndim != 1 or data.shape[0] != rows:
            raise DataError(f"{path}: dataset {name!r} must be 1-D with one value per row ({rows}), "
                            f"got {getattr(data, 'shape', type(data).__name__)}")
        if data.dtype.kind != "f":
            raise DataError(f"{path}: dataset {name!r} must hold floats, got {data.dtype}")
        found.append(name)
    return tuple(found)


def _dense_shape(f, path, attrs) -> tuple:
    if not isinstance(f.get("X"), h5py.Dataset):
        raise DataError(f"{path}: missing dataset 'X' (a shard holds X and y, or CSR indptr, "
                        f"indices, data and y)")
    X = f["X"]
    if X.ndim != 2:
        raise DataError(f"{path}: X must be 2-D (rows, features), got shape {X.shape}")
    ratings = _text(attrs.get("task", "")) == RATINGS
    if ratings and (X.shape[1] != 2 or not np.issubdtype(X.dtype, np.integer)):
        raise DataError(f"{path}: a ratings shard's X holds (user, item) integer pairs, "
                        f"got shape {X.shape} of {X.dtype}")
    if not ratings and X.dtype not in (np.float32, np.float64):
        raise DataError(f"{path}: X must be float32 or float64, got {X.dtype}")
    return int(X.shape[0]), int(X.shape[1]), X.dtype


def int_attr(path, attrs, name: str, minimum: int) -> int:
    """An integer attribute, named in the error when it is not one (a float, text) or too small."""
    value = attrs[name]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or not float(value).is_integer():
        raise DataError(f"{path}: attribute {name} must be an integer, got {_text(value)!r}")
    if int(value) < minimum:
        raise DataError(f"{path}: attribute {name} must be >= {minimum}, got {int(value)}")
    return int(value)


def _task_attrs(path, attrs, width: int, y) -> tuple[str, int]:
    for name in ("mpireg_format", "task", "n_features", "n_classes"):
        if name not in attrs:
            raise DataError(f"{path}: missing attribute {name!r}; write shards with "
                            f"`python -m mpireg.data convert`")
    version = int_attr(path, attrs, "mpireg_format", 1)
    if version > FORMAT_VERSION:
        raise DataError(f"{path}: attribute mpireg_format is {version}, this mpireg reads up to {FORMAT_VERSION}")
    task = _text(attrs["task"])
    if task not in TASKS + (RATINGS,):
        raise DataError(f"{path}: attribute task must be one of {TASKS + (RATINGS,)}, got {task!r}")
    n_features = int_attr(path, attrs, "n_features", 1)
    if n_features != width:
        raise DataError(f"{path}: attribute n_features is {n_features} but X has {width} columns")
    n_classes = int_attr(path, attrs, "n_classes", 0)
    if task not in ("regression", RATINGS):
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: y must hold integer labels for task {task!r}, got {y.dtype}")
        if n_classes < 2 or (task == "binary" and n_classes != 2):
            raise DataError(f"{path}: attribute n_classes is {n_classes}, invalid for task {task!r}")
    elif y.dtype.kind != "f":
        raise DataError(f"{path}: y must be float for task {task!r}, got {y.dtype}")
    return task, n_classes


def _check_same(schema: Schema, header: dict, path, first) -> None:
    for name in ("n_features", "task", "n_classes", "dtype", "n_users", "n_items", "sparse", "extras"):
        mine, theirs = header.get(name, 0), getattr(schema, name)
        if mine != theirs:
            field_name = {"n_features": "feature count", "dtype": "X dtype",
                          "sparse": "sparse (CSR) layout",
                          "extras": "the optional datasets (w, offset)"}.get(name, name)
            raise DataError(f"{path}: {field_name} is {mine}, but {first} has {theirs}; "
                            f"all shards of a data set must agree")


def check_rows(path, X, y, schema: Schema, first_row: int) -> None:
    """Content checks on rows as they are read; names the file and the row. (Packed targets
    [y, w, offset]: their y here; weights and offsets by the model that takes them.)"""
    if y.ndim == 2:
        y = y[:, 0]
    if schema.task == RATINGS:
        _check_ratings(path, X, y, schema, first_row)
        return
    if schema.sparse:
        from .sparse import check_csr_rows

        check_csr_rows(path, X, first_row, schema.n_features)
        X = None  # its values are checked; the targets below are checked as a dense shard's
    # A NaN or Inf anywhere makes the sum non-finite; the sum is one streaming pass, where
    # isfinite() writes and re-reads a mask as large as X. Only a non-finite sum (which
    # overflow can also cause) pays for the exact search.
    if X is not None and X.size and not np.isfinite(X.sum(dtype=X.dtype)):
        bad = ~np.isfinite(X)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(f"{path}: X has a NaN or Inf value at row {first_row + row}")
    if schema.task == "regression":
        bad_y = ~np.isfinite(y)
        if bad_y.any():
            raise DataError(f"{path}: y has a NaN or Inf value at row {first_row + int(np.argmax(bad_y))}")
    else:
        out = (y < 0) | (y >= schema.n_classes)
        if out.any():
            row = int(np.argmax(out))
            raise DataError(f"{path}: y has label {y[row]} at row {first_row + row}, "
                            f"outside 0..{schema.n_classes - 1} for task {schema.task!r}")


def _check_ratings(path, X, y, schema: Schema, first_row: int) -> None:
    for column, name, count in ((0, "user", schema.n_users), (1, "item", schema.n_items)):
        ids = X[:, column]
        out = (ids < 0) | (ids >= count)
        if out.any():
            row = int(np.argmax(out))
            raise DataError(f"{path}: X has {name} index {ids[row]} at row {first_row + row}, "
                            f"outside 0..{count - 1} (attribute n_{name}s)")
    bad = ~np.isfinite(y)
    if bad.any():
        raise DataError(f"{path}: y has a NaN or Inf rating at row {first_row + int(np.argmax(bad))}")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _short(exc: Exception) -> str:
    return str(exc).split("\n")[0][:200]
