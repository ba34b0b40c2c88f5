import h5py
import numpy as np
import pytest

from mpireg.data import read_schema, resolve_paths, write_shard
from mpireg.errors import DataError


def _shard(path, rows=5, features=3, task="regression", n_classes=0, dtype=np.float64, y=None):
    X = np.arange(rows * features, dtype=dtype).reshape(rows, features)
    if y is None:
        y = np.zeros(rows) if task == "regression" else np.arange(rows) % max(n_classes, 2)
    write_shard(path, X, y, task, n_classes)
    return path


def test_schema_from_headers(tmp_path):
    _shard(tmp_path / "a.h5", rows=5)
    _shard(tmp_path / "b.h5", rows=7)
    schema = read_schema(resolve_paths([tmp_path]))
    assert (schema.task, schema.n_features, schema.dtype) == ("regression", 3, "float64")
    assert schema.rows == [5, 7] and schema.n_rows == 12


def test_resolve_directory_file_glob_and_list(tmp_path):
    for name in ("a.h5", "b.h5"):
        _shard(tmp_path / name)
    (tmp_path / "sub").mkdir()
    _shard(tmp_path / "sub" / "c.h5")
    assert [p.split("/")[-1] for p in resolve_paths([tmp_path])] == ["a.h5", "b.h5"]  # not subdirs
    assert len(resolve_paths([str(tmp_path / "*.h5"), str(tmp_path / "sub" / "c.h5")])) == 3
    with pytest.raises(DataError, match="no such file"):
        resolve_paths([tmp_path / "missing.h5"])
    with pytest.raises(DataError, match="matches no file"):
        resolve_paths([str(tmp_path / "*.nope")])


@pytest.mark.parametrize("breaker,message", [
    (lambda f: f.__delitem__("y"), "missing dataset 'y'"),
    (lambda f: (f.__delitem__("X"), f.create_dataset("X", data=np.zeros((5, 3), np.int32))),
     "X must be float32 or float64, got int32"),
    (lambda f: (f.__delitem__("y"), f.create_dataset("y", data=np.zeros(4))), "one entry per row"),
    (lambda f: f.attrs.__delitem__("task"), "missing attribute 'task'"),
    (lambda f: f.attrs.__setitem__("n_features", 9), "n_features is 9 but X has 3"),
    (lambda f: f.attrs.__setitem__("mpireg_format", 99), "reads up to 1"),
])
def test_bad_header_names_file_and_field(tmp_path, breaker, message):
    path = _shard(tmp_path / "bad.h5")
    with h5py.File(path, "r+") as f:
        breaker(f)
    with pytest.raises(DataError, match=message) as info:
        read_schema([str(path)])
    assert "bad.h5" in str(info.value)


def test_corrupt_and_empty_and_mismatched(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(DataError, match="junk.h5: cannot open as HDF5"):
        read_schema([str(tmp_path / "junk.h5")])
    write_shard(tmp_path / "empty.h5", np.zeros((0, 3)), np.zeros(0), "regression")
    with pytest.raises(DataError, match="empty.h5: empty shard"):
        read_schema([str(tmp_path / "empty.h5")])
    a = _shard(tmp_path / "a.h5", features=3)
    b = _shard(tmp_path / "b.h5", features=4)
    with pytest.raises(DataError, match="b.h5: feature count is 4, but .*a.h5 has 3"):
        read_schema([str(a), str(b)])


def test_classifier_labels_must_be_integers(tmp_path):
    path = tmp_path / "c.h5"
    write_shard(path, np.zeros((4, 2)), np.array([0.0, 1.0, 0.0, 1.0]), "binary", 2)
    with pytest.raises(DataError, match="integer labels"):
        read_schema([str(path)])
