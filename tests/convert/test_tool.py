"""The data tool: synth, convert, inspect, through their command lines."""
import h5py
import numpy as np
import pytest

from mpireg.convert.tool import main as data_main
from mpireg.data import read_schema, resolve_paths


def _load(directory):
    schema = read_schema(resolve_paths([directory]))
    X = np.concatenate([h5py.File(p)["X"][()] for p in schema.files])
    y = np.concatenate([h5py.File(p)["y"][()] for p in schema.files])
    return schema, X, y


@pytest.mark.parametrize("task", ["linear", "logistic", "softmax"])
def test_synth_is_reproducible_and_stores_truth(tmp_path, task):
    for name in ("a", "b"):
        assert data_main(["synth", "--task", task, "--rows", "500", "--features", "4",
                          "--shards", "3", "--seed", "5", "--out", str(tmp_path / name)]) == 0
    (sa, Xa, ya), (_, Xb, yb) = _load(tmp_path / "a"), _load(tmp_path / "b")
    assert np.array_equal(Xa, Xb) and np.array_equal(ya, yb)
    assert sa.n_rows == 500 and len(sa.files) == 3
    assert read_schema(resolve_paths([tmp_path / "a" / "test"])).n_rows == 50
    with h5py.File(sa.files[0]) as f:
        assert f["synth/coef"].shape[0] == 4
    if task == "linear":  # the stored truth explains the data
        with h5py.File(sa.files[0]) as f:
            pred = Xa @ f["synth/coef"][()] + f["synth/intercept"][()]
        assert np.std(ya - pred) < 0.2


def test_convert_csv_with_header_label_column_and_test_split(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3))
    y = (X[:, 0] > 0).astype(int)
    table = np.column_stack([X[:, :1], y, X[:, 1:]])
    path = tmp_path / "in.csv"
    np.savetxt(path, table, delimiter=",", header="a,label,b,c", comments="")
    out = tmp_path / "out"
    assert data_main(["convert", str(path), "--out", str(out), "--shards", "2",
                      "--label-col", "label", "--test-fraction", "0.2"]) == 0
    schema, Xc, yc = _load(out)
    test_schema, Xt, yt = _load(out / "test")
    assert schema.task == "binary" and schema.n_features == 3 and len(schema.files) == 2
    assert schema.n_rows == 80 and test_schema.n_rows == 20
    assert schema.dtype == "float64"  # the input's numbers, not silently float32
    # every input row lands in exactly one split, features and label kept together
    together = np.vstack([np.column_stack([Xc, yc]), np.column_stack([Xt, yt])])
    expected = np.column_stack([X, y])
    assert np.array_equal(np.unique(together, axis=0), np.unique(expected, axis=0))


def test_convert_npz_npy_and_svmlight(tmp_path):
    X = np.arange(12, dtype=float).reshape(4, 3)
    y = np.array([1.5, 2.5, 3.5, 4.25])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    np.save(tmp_path / "d.npy", np.column_stack([X, y]))
    (tmp_path / "d.svm").write_text("".join(
        f"{lab} " + " ".join(f"{j + 1}:{v}" for j, v in enumerate(row) if v) + "\n"
        for lab, row in zip([1, -1, 1, -1], X)))
    for name, task in (("d.npz", "regression"), ("d.npy", "regression"), ("d.svm", "binary")):
        out = tmp_path / name.replace(".", "_")
        dense = ["--dense"] if name.endswith(".svm") else []  # (libsvm's default: CSR, below)
        assert data_main(["convert", str(tmp_path / name), "--out", str(out), *dense]) == 0
        schema, Xc, yc = _load(out)
        assert schema.task == task
        assert np.array_equal(Xc, X) and schema.dtype == "float64"
        expected = y if task == "regression" else np.array([1, 0, 1, 0])
        assert np.allclose(yc, expected)


def test_convert_rejects_mismatched_inputs(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", X=np.zeros((3, 2)), y=np.zeros(3))
    np.savez(tmp_path / "b.npz", X=np.zeros((3, 5)), y=np.zeros(3))
    assert data_main(["convert", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                      "--out", str(tmp_path / "o")]) == 1
    assert "different feature counts" in capsys.readouterr().err


def test_inspect_reports_and_validates(tmp_path, capsys):
    data_main(["synth", "--task", "softmax", "--rows", "300", "--features", "3",
               "--shards", "2", "--out", str(tmp_path / "s")])
    capsys.readouterr()
    assert data_main(["inspect", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "3 features, 3 classes" in out and "300 rows in 2 shard(s)" in out and "ok:" in out
    with h5py.File(tmp_path / "s" / "part-00001.h5", "r+") as f:
        f["y"][3] = 9
    assert data_main(["inspect", str(tmp_path / "s")]) == 1
    assert "part-00001.h5: y has label 9 at row 3" in capsys.readouterr().err


def test_example_writes_scikit_learns_bundled_data_as_shards(tmp_path, capsys):
    out = tmp_path / "digits"
    assert data_main(["example", "digits", "--out", str(out), "--shards", "2"]) == 0
    train, test = read_schema(resolve_paths([str(out)])), read_schema(resolve_paths([str(out / "test")]))
    assert (train.task, train.n_features, train.n_classes, train.dtype) == ("multiclass", 64, 10, "float32")
    assert (train.n_rows, test.n_rows) == (1438, 359)
    with h5py.File(train.files[0]) as f:
        assert 0.0 <= f["X"][()].min() and f["X"][()].max() <= 1.0  # pixels scaled to [0, 1]
    assert data_main(["example", "iris", "--out", str(tmp_path / "x"), "--test-fraction", "1.5"]) != 0
    assert "--test-fraction: expected a value in [0, 1)" in capsys.readouterr().err


def test_sparse_synth_says_how_many_entries_a_row_it_stored(tmp_path, capsys):
    """--nnz counts columns drawn; a column drawn twice is one stored entry of value 2. The
    tool prints what it stored (the issue's user read "39 entries a row" of rows holding 31.8)."""
    import h5py

    from mpireg.convert.tool import main

    assert main(["synth", "--task", "logistic", "--sparse", "--rows", "3000", "--hash-bits", "12",
                 "--nnz", "20", "--out", str(tmp_path / "s")]) == 0
    said = capsys.readouterr().out
    with h5py.File(tmp_path / "s" / "part-00000.h5") as f:
        stored = f["indptr"][-1] / (f["indptr"].shape[0] - 1)
        assert f["data"][()].sum() == 20 * 3000  # every draw is in the values
    assert stored < 20 and f"{stored:.1f} distinct columns a row" in said, said
