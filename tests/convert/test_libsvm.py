"""Streamed libsvm conversion to CSR shards: the same rows as the whole-file (dense) reader,
bounded memory on a file many times the chunk, malformed lines named or skipped."""
import tracemalloc

import numpy as np
import pytest

from mpireg.data import ShardReader, read_schema, resolve_paths
from mpireg.convert import libsvm as stream
from mpireg.convert.tool import main as data_main
from mpireg.convert.libsvm import convert_svmlight
from mpireg.errors import DataError


def _svm(path, rows=500, d=30, seed=0, one_based=True, labels=(-1, 1)):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, d)) * (rng.random((rows, d)) < 0.2)
    y = rng.choice(labels, rows)
    offset = 1 if one_based else 0
    with open(path, "w") as f:
        for label, row in zip(y, X):
            f.write(f"{label} " + " ".join(f"{j + offset}:{row[j]:.17g}" for j in np.flatnonzero(row)) + "\n")
    return X, y


def _read(directory):
    schema = read_schema(resolve_paths([directory]))
    X, y = ShardReader(schema, 0, 1, 2**30, x_dtype=np.float64).read(0, schema.n_rows)
    return schema, X, y


@pytest.mark.parametrize("parser", ["c", "numpy"])
@pytest.mark.parametrize("one_based", [True, False])
def test_streamed_csr_holds_the_rows_the_dense_reader_finds(tmp_path, monkeypatch, one_based, parser):
    monkeypatch.setattr(stream, "CHUNK_LINES", 64)  # many chunks and shard boundaries inside them
    if parser == "numpy":
        monkeypatch.setattr(stream, "_cparse", None)
    elif stream._cparse is None:
        pytest.skip("the C extension is not built")
    X, y = _svm(tmp_path / "in.svm", one_based=one_based)
    assert data_main(["convert", str(tmp_path / "in.svm"), "--out", str(tmp_path / "csr"), "--shards", "3",
                      "--dtype", "float64"]) == 0
    assert data_main(["convert", str(tmp_path / "in.svm"), "--out", str(tmp_path / "dense"), "--dense",
                      "--dtype", "float64"]) == 0
    schema, Xs, ys = _read(tmp_path / "csr")
    _, Xd, yd = _read(tmp_path / "dense")
    assert schema.sparse and len(schema.files) == 3 and schema.task == "binary"
    width = Xd.shape[1]
    assert schema.n_features == (width if one_based else X.shape[1])
    np.testing.assert_array_equal(Xs.toarray()[:, :width], Xd)
    np.testing.assert_array_equal(ys, yd)
    np.testing.assert_array_equal(ys, (y > 0).astype(int))


def test_a_test_split_is_seeded_and_disjoint(tmp_path):
    _svm(tmp_path / "in.svm", rows=2000, labels=(0, 1, 2))
    summaries = [convert_svmlight([tmp_path / "in.svm"], tmp_path / name, shards=2, test_fraction=0.25, seed=3)
                 for name in ("a", "b")]
    assert summaries[0] == summaries[1] and summaries[0]["task"] == "multiclass"
    assert summaries[0]["rows"] + summaries[0]["test_rows"] == 2000
    assert 400 < summaries[0]["test_rows"] < 600
    _, Xa, _ = _read(tmp_path / "a" / "test")
    _, Xb, _ = _read(tmp_path / "b" / "test")
    assert (Xa != Xb).nnz == 0


def test_memory_stays_bounded_by_the_chunk_not_the_file(tmp_path, monkeypatch):
    """Chunks of 2,000 lines: a file four times longer converts in the same peak memory (Python
    and NumPy allocations, which tracemalloc sees), a small part of the file's size."""
    monkeypatch.setattr(stream, "CHUNK_LINES", 2000)
    peaks = {}
    for rows in (10000, 40000):
        path = tmp_path / f"{rows}.svm"
        _svm(path, rows=rows, d=200, labels=(0, 1))
        tracemalloc.start()
        summary = convert_svmlight([path], tmp_path / f"out{rows}", shards=4)
        peaks[rows] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert summary["rows"] == rows
    size = (tmp_path / "40000.svm").stat().st_size
    assert size > 30 * 2**20
    assert peaks[40000] < 1.3 * peaks[10000], peaks
    assert peaks[40000] < size / 4, f"peak {peaks[40000] / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"


def test_a_malformed_line_is_named_or_skipped_and_counted(tmp_path):
    path = tmp_path / "bad.svm"
    path.write_text("1 1:1 2:2\n0 3:x\n1 2:2\n0 1:1:1\n1 4:1\n")
    with pytest.raises(DataError, match=r"bad.svm: line 2: expected 'label index:value \.\.\.'"):
        convert_svmlight([path], tmp_path / "o")
    summary = convert_svmlight([path], tmp_path / "o", skip_bad_lines=True)
    assert summary["bad_lines"] == 2 and summary["rows"] == 3


def test_regression_labels_stay_values(tmp_path):
    path = tmp_path / "r.svm"
    rng = np.random.default_rng(0)
    path.write_text("".join(f"{v:.6f} 1:{i} 2:1\n" for i, v in enumerate(rng.normal(size=200))))
    summary = convert_svmlight([path], tmp_path / "o", dtype="float64")
    schema, _, y = _read(tmp_path / "o")
    assert summary["task"] == schema.task == "regression"
    np.testing.assert_allclose(y, [float(line.split()[0]) for line in path.read_text().splitlines()])


@pytest.mark.parametrize("parser", ["c", "numpy"])
def test_qid_exponents_and_signs_parse_alike(tmp_path, monkeypatch, parser):
    if parser == "numpy":
        monkeypatch.setattr(stream, "_cparse", None)
    path = tmp_path / "q.svm"
    path.write_text("+1 qid:3 1:-2.5e-3 4:1E2\n-1 qid:3 2:.5\n+1 3:-0 5:7  # note\n")
    convert_svmlight([path], tmp_path / "o", dtype="float64")
    _, X, y = _read(tmp_path / "o")
    np.testing.assert_array_equal(X.toarray(), [[-2.5e-3, 0, 0, 100, 0], [0, 0.5, 0, 0, 0], [0, 0, 0, 0, 7]])
    assert y.tolist() == [1, 0, 1]
