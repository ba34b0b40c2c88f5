"""Hostile inputs, surface by surface: shard files and their attributes, each conversion input
format, model files. Each case is one clear error naming the file (and the row, line, attribute
or dataset), a non-zero exit, no traceback, and nothing half-written left behind.

(Job keys: test_config.py and test_failures.py; checkpoints: test_resume.py and
test_hostile_inputs.py; signals during each procedure: test_signals.py; the API's arguments on
one rank or all: api/test_api_distributed.py and test_hostile_inputs.py.)
"""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from mpireg.convert import tool
from mpireg.data import write_shard
from mpireg.data.sparse import write_csr_shard
from tests.helpers import assert_one_error, run_overrides

RNG = np.random.default_rng(0)


# ============================================================== shard files and attributes
def _dense(d, task="regression"):
    y = RNG.standard_normal(40) if task == "regression" else RNG.integers(0, 2, 40)
    write_shard(d / "part-00000.h5", RNG.standard_normal((40, 3)), y, task, 0 if task == "regression" else 2)
    return d / "part-00000.h5"


def _csr(d):
    write_csr_shard(d / "part-00000.h5", sp.random(40, 50, density=0.1, random_state=0, format="csr"),
                    RNG.integers(0, 2, 40), "binary", 2)
    return d / "part-00000.h5"


def _edit(maker, change):
    def make(d):
        with h5py.File(maker(d), "r+") as f:
            change(f)
    return make


def _replace(name, value):
    def change(f):
        if name in f:
            del f[name]
        f[name] = value
    return change


def _set_entry(name, index, value):
    def change(f):
        a = f[name][...]
        a[index] = value
        del f[name]
        f[name] = a
    return change


def _attr(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


SHARDS = {
    # name: (make the shard in d, --set overrides, fragments of the one error line)
    "format version as text": (_edit(_dense, _attr("mpireg_format", "x")), [], ["attribute mpireg_format must be an integer"]),
    "format from the future": (_edit(_dense, _attr("mpireg_format", 2)), [], ["mpireg_format is 2"]),
    "n_features a fraction": (_edit(_dense, _attr("n_features", 3.5)), [], ["attribute n_features must be an integer, got '3.5'"]),
    "n_features not X's": (_edit(_dense, _attr("n_features", 2**40)), [], ["n_features is 1099511627776 but X has 3 columns"]),
    "task unknown": (_edit(_dense, _attr("task", "banana")), [], ["attribute task must be one of"]),
    "n_classes huge": (_edit(lambda d: _dense(d, "binary"), _attr("n_classes", 10**12)), ["model.kind=logistic"],
                       ["n_classes is 1000000000000, invalid for task 'binary'"]),
    "y of the wrong length": (_edit(_dense, _replace("y", np.zeros(39))), [], ["y must be 1-D with one entry per row of X (40)"]),
    "y as text": (_edit(_dense, _replace("y", np.array([b"a"] * 40))), [], ["y must be float"]),
    "y Inf": (_edit(_dense, _set_entry("y", 3, np.inf)), [], ["y has a NaN or Inf value at row 3"]),
    "X float16": (_edit(_dense, _replace("X", np.zeros((40, 3), np.float16))), [], ["X must be float32 or float64, got float16"]),
    "X 3-D": (_edit(_dense, _replace("X", np.zeros((40, 3, 1)))), [], ["X must be 2-D"]),
    "weights NaN": (_edit(_dense, _replace("w", np.full(40, np.nan))), [], ["row 0 holds a sample weight", "nan"]),
    "weights negative": (_edit(_dense, _replace("w", -np.ones(40))), [], ["row 0 holds a sample weight"]),
    "offsets of integers": (_edit(_dense, _replace("offset", np.ones(40, np.int64))), [], ["dataset 'offset' must hold floats"]),
    "CSR column out of range": (_edit(_csr, _set_entry("indices", 0, 10**6)), ["model.kind=logistic"], ["column 1000000 at row 0"]),
    "CSR negative column": (_edit(_csr, _set_entry("indices", 0, -5)), ["model.kind=logistic"], ["column -5 at row 0"]),
    "CSR indptr decreasing": (_edit(_csr, _set_entry("indptr", 5, 0)), ["model.kind=logistic"], ["indptr decreases at row 4"]),
    "CSR indptr past the data": (_edit(_csr, _set_entry("indptr", -1, 10**9)), ["model.kind=logistic"], ["indptr must run from 0"]),
    "CSR value NaN": (_edit(_csr, _set_entry("data", 3, np.nan)), ["model.kind=logistic"], ["NaN or Inf value at row 0"]),
    "CSR n_features 0": (_edit(_csr, _attr("n_features", 0)), ["model.kind=logistic"], ["attribute n_features must be >= 1"]),
    "CSR n_features 2^40": (_edit(_csr, _attr("n_features", 2**40)), ["model.kind=logistic"],
                            ["1,099,511,627,777 parameters", "GiB available", "--hash-bits"]),
    "not HDF5 at all": (lambda d: (d / "part-00000.h5").write_bytes(b""), [], ["cannot open as HDF5"]),
    "CSR 2^20 columns on a k-fold path": (_edit(_csr, _attr("n_features", 2**20)),
                                          ["model.kind=glm", "model.family=binomial", "optimizer.kind=irls",
                                           "optimizer.path={n_alphas = 10}", "optimizer.cv=5"],
                                          ["forms 6 information matrices of 1,048,577 x 1,048,577", "GiB available",
                                           "optimizer.kind = 'lbfgs'"]),
}


@pytest.mark.parametrize("case", list(SHARDS))
def test_a_hostile_shard_is_one_error_naming_it(tmp_path, case):
    make, overrides, fragments = SHARDS[case]
    data = tmp_path / "data"
    data.mkdir()
    make(data)
    result = run_overrides(2, tmp_path / "job.toml", [f"data.train={data}", "run.progress=false", "optimizer.epochs=1",
                                                      *overrides], "--run-dir", tmp_path / "run", timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert_one_error(result.stderr, "part-00000.h5", *fragments)
    assert not (tmp_path / "run" / "model.h5").exists()


# ============================================================== conversion inputs, by format
def _text(name, content):
    return lambda w: ((w / name).write_text(content), [w / name])[1]


def _bytes(name, content):
    return lambda w: ((w / name).write_bytes(content), [w / name])[1]


def _npy(name, array):
    return lambda w: (np.save(w / name, array, allow_pickle=True), [w / name])[1]


def _npz(name, **arrays):
    return lambda w: (np.savez(w / name, **arrays), [w / name])[1]


def _parquet(name, table):
    def make(w):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(table), w / name)
        return [w / name]
    return make


HASHED = ["--sep", "\t", "--label-col", "0", "--numeric", "1", "--categorical", "2", "--hash-bits", "10"]
CONVERSIONS = {
    # name: (write the input into w, extra options, fragments after the input's path)
    "CSV empty": (_text("a.csv", ""), [], ["empty CSV file"]),
    "CSV header only": (_text("a.csv", "x1,x2,y\n"), [], ["no data rows"]),
    "CSV not a number": (_text("a.csv", "x1,x2,y\n1,2,3\n1,abc,3\n"), [], ["line 3", "column 'x2'", "'abc'"]),
    "CSV short row": (_text("a.csv", "x1,x2,y\n1,2,3\n1,3\n"), [], ["line 3", "expected 3 fields"]),
    "CSV Inf": (_text("a.csv", "x1,x2,y\n1,2,3\n1,inf,3\n"), [], ["line 3", "not a finite number"]),
    "CSV beyond float32": (_text("a.csv", "x1,x2,y\n1,2,3\n1,1e300,3\n"), ["--dtype", "float32"], ["data row 2", "float32"]),
    "CSV binary bytes": (_bytes("a.csv", b"\x00\x01\x02\xff" * 100), [], ["not UTF-8 text"]),
    "CSV label column unknown": (_text("a.csv", "x1,x2,y\n1,2,3\n"), ["--label-col", "zz"], ["--label-col 'zz' is not a column"]),
    "CSV label column out of range": (_text("a.csv", "x1,x2,y\n1,2,3\n"), ["--label-col", "9"], ["out of range for 3 columns"]),
    "npy one-dimensional": (_npy("a.npy", np.arange(10.0)), [], ["2-D table"]),
    "npy of objects": (_npy("a.npy", np.array([{"a": 1}, None], dtype=object)), [], ["cannot read as a NumPy array of numbers"]),
    "npy NaN": (_npy("a.npy", np.array([[1.0, 2, 0], [1, np.nan, 1]])), [], ["row 1", "NaN or Inf"]),
    "npy beyond float32": (_npy("a.npy", np.array([[1.0, 2, 0], [1, 1e300, 1]])), ["--dtype", "float32"], ["row 1", "float32"]),
    "npz without y": (_npz("a.npz", X=np.ones((3, 2))), [], ["missing arrays ['y']"]),
    "npz lengths differ": (_npz("a.npz", X=np.ones((3, 2)), y=np.ones(2)), [], ["as many rows"]),
    "npz of text": (_npz("a.npz", X=np.array([["a", "b"]] * 3), y=np.ones(3)), [], ["X holds <U1, not numbers"]),
    "libsvm negative index": (_text("a.svm", "1 -3:1\n0 1:1\n"), [], ["line 1"]),
    "libsvm fractional index": (_text("a.svm", "1 1.5:1\n0 1:1\n"), [], ["line 1"]),
    "libsvm repeated index": (_text("a.svm", "1 2:1 2:3\n0 1:1\n"), [], ["line 1", "each index once"]),
    "libsvm label not a number": (_text("a.svm", "abc 1:1\n0 1:1\n"), [], ["line 1", "'abc' is not a number"]),
    "libsvm NaN value": (_text("a.svm", "1 1:nan\n0 1:1\n"), [], ["line 1"]),
    "libsvm no colon": (_text("a.svm", "1 3\n0 1:1\n"), [], ["line 1"]),
    "libsvm empty": (_text("a.svm", ""), [], ["no data lines"]),
    "libsvm beyond float32": (_text("a.svm", "1 1:1\n0 2:1e300\n"), ["--dtype", "float32"], ["line 2", "float32"]),
    "Parquet text column": (_parquet("a.parquet", {"x": ["a", "b"], "y": [1.0, 2.0]}), ["--label-col", "y"], ["column 'x' is string"]),
    "Parquet null": (_parquet("a.parquet", {"x": [1.0, None], "y": [1.0, 2.0]}), ["--label-col", "y"], ["row 1", "missing, NaN or Inf"]),
    "Parquet no rows": (_parquet("a.parquet", {"x": np.zeros(0), "y": np.zeros(0)}), ["--label-col", "y"], ["no data rows"]),
    "hashed numeric not a number": (_text("a.tsv", "1\t2.5\tcat\n0\tabc\tdog\n"), HASHED, ["line 2", "'abc'"]),
    "hashed column missing": (_text("a.tsv", "1\t2.5\n"), HASHED, ["line 1", "expected at least 3"]),
    "hashed beyond float32": (_text("a.tsv", "1\t2.5\tcat\n0\t1e300\tdog\n"), [*HASHED, "--dtype", "float32"], ["line 2", "float32"]),
}


def _convert(tmp_path, capsys, command, make, extra):
    work = tmp_path / "in"
    work.mkdir()
    inputs = make(work)
    out = tmp_path / "out"
    code = tool.main([command, *map(str, inputs), "--out", str(out), *extra])
    err = capsys.readouterr().err
    return code, err, inputs, out


@pytest.mark.parametrize("case", list(CONVERSIONS))
def test_a_hostile_conversion_input_is_one_error_naming_it(tmp_path, capsys, case):
    make, extra, fragments = CONVERSIONS[case]
    code, err, inputs, out = _convert(tmp_path, capsys, "convert", make, extra)
    assert code == 1, err
    assert_one_error(err, str(inputs[0]), *fragments)
    assert not out.exists() or not any(out.rglob("*.h5")), f"left behind: {list(out.rglob('*'))}"
    assert not out.exists() or not any(p.name.startswith(".") for p in out.rglob("*")), list(out.rglob("*"))


RATINGS = {
    "a missing rating": (_text("r.csv", "u,i,r\n1,2,3\n1,3\n"), ["line 3"]),
    "a NaN rating": (_text("r.csv", "u,i,r\n1,2,3\n1,3,nan\n"), ["line 3", "NaN or Inf"]),
    "a rating in words": (_text("r.csv", "u,i,r\n1,2,3\n1,3,good\n"), ["line 3", "'good' is not a number"]),
    "an empty file": (_text("r.csv", ""), ["empty CSV file"]),
}


@pytest.mark.parametrize("case", list(RATINGS))
def test_a_hostile_ratings_file_is_one_error_naming_it(tmp_path, capsys, case):
    make, fragments = RATINGS[case]
    code, err, inputs, out = _convert(tmp_path, capsys, "ratings", make, [])
    assert code == 1, err
    for fragment in [str(inputs[0]), *fragments]:
        assert fragment in err, err
    assert not out.exists() or not any(out.rglob("*.h5"))


@pytest.mark.parametrize("option,value", [("--shards", "0"), ("--shards", "two"), ("--test-fraction", "2")])
def test_a_bad_conversion_option_is_one_error_naming_it(tmp_path, capsys, option, value):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    with pytest.raises(SystemExit) as stop:
        code = tool.main(["convert", str(tmp_path / "a.csv"), "--out", str(tmp_path / "out"), option, value])
        raise SystemExit(code)
    assert stop.value.code != 0 and option in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ============================================================== model files
@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    import mpireg

    folder = tmp_path_factory.mktemp("model")
    X = RNG.standard_normal((200, 3))
    y = (X[:, 0] > 0).astype(int)
    mpireg.LogisticRegression().fit(X, y).save(folder / "good.h5")
    write_shard(folder / "data.h5", X, y, "binary", 2)
    return folder


def _model_edit(change):
    def make(good, path):
        shutil.copy(good, path)
        with h5py.File(path, "r+") as f:
            change(f)
    return make


def _unsigned(change):
    """An edit that also drops the checksum (an older file, or a careful forger)."""
    return _model_edit(lambda f: (change(f), f.attrs.__delitem__("sha256")))


MODELS = {
    "no parameters": (_model_edit(lambda f: f.__delitem__("params")), ["no group 'params'"]),
    "a parameter missing": (_model_edit(lambda f: f.__delitem__("params/coef")), ["missing parameter params/coef"]),
    "a parameter of the wrong shape": (_unsigned(_replace("params/coef", np.ones((7, 7)))), ["params/coef", "(7, 7)", "(3,)"]),
    "parameters as text": (_unsigned(_replace("params/coef", np.array([b"a"] * 3))), ["params/coef is |S1"]),
    "NaN parameters": (_unsigned(_set_entry("params/coef", 0, np.nan)), ["params/coef holds NaN or Inf"]),
    "altered parameters": (_model_edit(_set_entry("params/coef", 0, 9.0)), ["do not match the checksum"]),
    "an unknown kind": (_model_edit(_attr("kind", "banana")), ["a damaged model file", "'banana'"]),
    "n_features as text": (_model_edit(_attr("n_features", "x")), ["attribute n_features must be an integer"]),
    "n_features 2^40": (_model_edit(_attr("n_features", 2**40)), ["does not fit", "n_features 1099511627776"]),
    "n_features not the data's": (_model_edit(_attr("n_features", 5)), ["needs float of shape (5,)"]),
    "options not JSON": (_model_edit(_attr("options", "{not json")), ["attribute options is not valid JSON"]),
    "config not JSON": (_model_edit(_attr("config", "{not json")), ["attribute config is not valid JSON"]),
    "a format from the future": (_model_edit(_attr("mpireg_model", 99)), ["model format 99"]),
    "not an mpireg model": (_model_edit(lambda f: f.attrs.__delitem__("mpireg_model")), ["not an mpireg model file"]),
    "truncated": (lambda good, path: path.write_bytes(good.read_bytes()[:3000]), ["cannot open model file"]),
    "empty": (lambda good, path: path.write_bytes(b""), ["cannot open model file"]),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_a_hostile_model_file_is_one_error_naming_it_in_predict_and_the_api(good_model, tmp_path, capsys, case):
    from mpireg import load
    from mpireg.errors import DataError
    from mpireg.predict import main

    make, fragments = MODELS[case]
    path = tmp_path / "model.h5"
    make(good_model / "good.h5", path)
    out = tmp_path / "pred.npy"
    assert main([str(path), str(good_model / "data.h5"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert_one_error(err, str(path), *fragments)
    assert not out.exists()
    with pytest.raises(DataError, match="model"):
        load(path)


# ============================================================== the API's arguments (one process;
# one rank differing under mpiexec: api/test_api_distributed.py and test_hostile_inputs.py)
def _api_cases():
    import mpireg

    X = RNG.standard_normal((50, 3))
    y = (X[:, 0] > 0).astype(int)
    yr = X[:, 0].copy()
    nan_at_7 = np.where(np.arange(150).reshape(50, 3) == 7, np.nan, X)
    L, R, G = mpireg.LogisticRegression, mpireg.LinearRegression, mpireg.GeneralizedLinearRegressor
    pairs = np.array([[0, 1], [1, 2]])
    return {
        # name: (the call, the exception's message must hold this)
        "X of text": (lambda: L().fit(np.array([["a"] * 3] * 50), y), "could not convert string to float"),
        "X with NaN": (lambda: L().fit(nan_at_7, y), "Input X contains NaN"),
        "X empty": (lambda: L().fit(np.zeros((0, 3)), np.zeros(0)), "no labels on any rank"),
        "X one-dimensional": (lambda: L().fit(X[:, 0], y), "Expected 2D array"),
        "y shorter than X": (lambda: L().fit(X, y[:-1]), "inconsistent numbers of samples"),
        "y of one class": (lambda: L().fit(X, np.zeros(50)), "at least 2 classes"),
        "weights negative": (lambda: R().fit(X, yr, sample_weight=-np.ones(50)), "Negative values"),
        "weights NaN": (lambda: R().fit(X, yr, sample_weight=np.full(50, np.nan)), "sample_weight contains NaN"),
        "weights too few": (lambda: R().fit(X, yr, sample_weight=np.ones(10)), "expected (50,)"),
        "weights all zero": (lambda: R().fit(X, yr, sample_weight=np.zeros(50)), "at least one non-zero"),
        "offset of the wrong shape": (lambda: G(family="poisson").fit(X, np.abs(yr), offset=np.ones(7)), "offset: expected shape (50,)"),
        "offset NaN": (lambda: G(family="poisson").fit(X, np.abs(yr), offset=np.full(50, np.nan)), "offset: a NaN or Inf at row 0"),
        "Poisson counts negative": (lambda: G(family="poisson").fit(X, yr), "needs a count >= 0"),
        "Gamma targets zero": (lambda: G(family="gamma").fit(X, np.zeros(50)), "needs a value > 0"),
        "C zero": (lambda: L(C=0).fit(X, y), "C: expected a finite value > 0"),
        "C NaN": (lambda: L(C=float("nan")).fit(X, y), "C: expected a finite value > 0"),
        "alpha negative": (lambda: R(alpha=-1).fit(X, yr), "expected a value >= 0"),
        "max_iter negative": (lambda: L(max_iter=-1).fit(X, y), "optimizer.max_iter: expected a value >= 1"),
        "max_iter beyond int64": (lambda: L(max_iter=10**30).fit(X, y), "optimizer.max_iter: expected an integer below 2^63"),
        "family unknown": (lambda: G(family="banana").fit(X, yr), "model.family: expected one of"),
        "predict with fewer columns": (lambda: L().fit(X, y).predict(X[:, :2]), "X has 2 features"),
        "predict before fit": (lambda: L().predict(X), "not fitted yet"),
        "ratings index negative": (lambda: mpireg.MatrixFactorization(rank=2).fit(np.array([[0, 1], [-1, 2]]), np.ones(2)), "negative index at row 1"),
        "ratings index fractional": (lambda: mpireg.MatrixFactorization(rank=2).fit(pairs + 0.5, np.ones(2)), "whole numbers"),
        "MLP width negative": (lambda: mpireg.MLPClassifier((-5,)).fit(X, y), "model.hidden: expected a list of positive integers"),
        "shards that do not exist": (lambda: L().fit("/nonexistent/dir"), "no such file or directory: '/nonexistent/dir'"),
        "one fold": (lambda: mpireg.LogisticRegressionCV(cv=1).fit(X, y), "cv: expected a number of folds, 2 or more"),
        "no Cs": (lambda: mpireg.LogisticRegressionCV(Cs=0).fit(X, y), "Cs: expected a number of values"),
        "Cs negative": (lambda: mpireg.LogisticRegressionCV(Cs=[1.0, -1.0]).fit(X, y), "Cs: expected finite values > 0"),
        "l1_ratio above 1": (lambda: mpireg.ElasticNetCV(l1_ratio=2.0).fit(X, yr), "l1_ratio: expected values in [0, 1]"),
    }


API_CASES = list(_api_cases())


@pytest.mark.parametrize("case", API_CASES)
def test_a_hostile_api_argument_is_one_clear_error(case):
    """scikit-learn's own checks where the API shares them (their messages), mpireg's otherwise;
    never a NumPy traceback from inside the engine, never a silent fit."""
    from mpireg.errors import MpiregError

    call, message = _api_cases()[case]
    with pytest.raises((ValueError, MpiregError, AttributeError)) as info:
        call()
    assert message in str(info.value)
