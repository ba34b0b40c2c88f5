"""CSR shards: the same rows stored dense and sparse train the same model under every
synchronous strategy and L-BFGS; corrupt CSR names the file and row; the tools read them."""
import json
import sys

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from mpireg.data import ShardReader, read_schema, resolve_paths
from mpireg.convert.tool import main as data_main
from mpireg.data.sparse import write_csr_shard
from mpireg.errors import DataError
from mpireg.model_io import load_model
from tests.helpers import run_command, write_dataset
from tests.helpers import train_job


def _rows(task, n=1203, d=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.15)  # 85 % zeros
    z = X @ rng.normal(size=d)
    y = {"linear": z + 0.1 * rng.normal(size=n), "logistic": (z > 0).astype(np.int64),
         "softmax": np.digitize(z, [-1.0, 1.0]).astype(np.int64)}[task]
    return X, y


TASKS = {"linear": ("regression", 0), "logistic": ("binary", 2), "softmax": ("multiclass", 3)}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """Each task's rows as dense shards and as CSR shards (3 of each, float64)."""
    root = tmp_path_factory.mktemp("sparse")
    out = {}
    for task, (kind, classes) in TASKS.items():
        X, y = _rows(task)
        write_dataset(root / f"{task}-dense", X, y, kind, classes, shards=3)
        for i, part in enumerate(np.array_split(np.arange(len(y)), 3)):
            write_csr_shard(root / f"{task}-csr" / f"part-{i:05d}.h5", X[part], y[part], kind, classes)
        out[task] = (root / f"{task}-dense", root / f"{task}-csr")
    return out


def _job(data, task, *extra):
    return [f"data.train={data}", f"model.kind={task}", "optimizer.kind=sgd", "optimizer.lr=0.05",
            "optimizer.epochs=2", "optimizer.batch_size=32", "optimizer.tol=0", "model.l2=1e-3", *extra]


SETTINGS = [(task, setting) for task in TASKS
            for setting in ("comm.strategy=allreduce", "comm.strategy=ps", "optimizer.kind=lbfgs")]
SETTINGS += [("logistic", "comm.strategy=ring"), ("logistic", "comm.strategy=hierarchical")]


@pytest.mark.parametrize("task,setting", SETTINGS)
def test_dense_and_sparse_shards_train_the_same_model(both, tmp_path, task, setting):
    dense, csr = both[task]
    reference, _, _ = train_job(3, tmp_path / "dense", _job(dense, task, setting))
    params, summary, _ = train_job(3, tmp_path / "csr", _job(csr, task, setting))
    np.testing.assert_allclose(params, reference, rtol=1e-9, atol=1e-12)


def test_deterministic_mode_on_csr_shards_gives_the_same_bits_on_1_and_3_ranks(both, tmp_path):
    _, csr = both["logistic"]
    overrides = _job(csr, "logistic", "comm.deterministic=true", "comm.block_rows=32")
    one, _, _ = train_job(1, tmp_path / "one", overrides)
    three, _, _ = train_job(3, tmp_path / "three", overrides)
    assert np.array_equal(one, three)


def test_a_rank_reads_only_its_rows_through_indptr(both):
    dense, csr = both["softmax"]
    d_schema, s_schema = read_schema(resolve_paths([dense])), read_schema(resolve_paths([csr]))
    assert s_schema.sparse and s_schema.n_rows == d_schema.n_rows and sum(s_schema.nnz) > 0
    for rank in range(3):
        Xd, yd = ShardReader(d_schema, rank, 3, 2**30).read(0, ShardReader(d_schema, rank, 3, 2**30).n_rows)
        reader = ShardReader(s_schema, rank, 3, 2**30)
        Xs, ys = reader.read(0, reader.n_rows)
        assert sp.issparse(Xs) and np.array_equal(Xs.toarray(), Xd) and np.array_equal(ys, yd)
    streamed = ShardReader(s_schema, 0, 1, 2000)  # a budget of a few rows: blocks
    assert not streamed.resident and len(streamed.block_sizes) > 3
    X = sp.vstack([streamed.block(i)[0] for i in range(len(streamed.block_sizes))])
    assert np.array_equal(X.toarray(), ShardReader(d_schema, 0, 1, 2**30).read(0, d_schema.n_rows)[0])


def test_predict_and_inspect_read_csr_shards(both, tmp_path, capsys):
    dense, csr = both["logistic"]
    train_job(2, tmp_path / "run", _job(csr, "logistic"))
    model, params, _ = load_model(tmp_path / "run" / "model.h5")
    result = run_command([sys.executable, "-m", "mpireg.predict", tmp_path / "run" / "model.h5", csr,
                          "--proba", "--out", tmp_path / "p.npy"])
    assert result.returncode == 0, result.stderr
    X, _ = ShardReader(read_schema(resolve_paths([dense])), 0, 1, 2**30).read(0, 1203)
    p = model.predict_proba(params, X)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), np.column_stack([1 - p, p]), rtol=1e-12)  # both columns
    assert data_main(["inspect", str(csr)]) == 0
    assert "CSR float64" in capsys.readouterr().out


def test_synthetic_sparse_data_is_reproducible_and_power_law(tmp_path):
    for name in ("a", "b"):
        assert data_main(["synth", "--task", "logistic", "--sparse", "--rows", "3000", "--hash-bits", "12",
                          "--nnz", "10", "--shards", "2", "--out", str(tmp_path / name)]) == 0
    a, b = (ShardReader(read_schema(resolve_paths([tmp_path / n])), 0, 1, 2**30) for n in "ab")
    (Xa, ya), (Xb, yb) = a.read(0, 3000), b.read(0, 3000)
    assert (Xa != Xb).nnz == 0 and np.array_equal(ya, yb) and Xa.shape == (3000, 4096)
    counts = np.sort(np.asarray((Xa > 0).sum(axis=0)).ravel())[::-1]
    assert counts[0] > 20 * max(np.median(counts), 1)  # a few columns in many rows, most rare
    with h5py.File(a.schema.files[0]) as f:
        assert f["synth/coef"].shape == (4096,)


def _csr_file(path, **replace):
    X = sp.csr_matrix(np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 3.0]]))
    write_csr_shard(path, X, np.array([0.5, 1.5]), "regression")
    with h5py.File(path, "a") as f:
        for name, value in replace.items():
            del f[name]
            f.create_dataset(name, data=value)


@pytest.mark.parametrize("replace,message", [
    (dict(indptr=np.array([0, 4, 3])), r"indptr decreases at row 1"),
    (dict(indices=np.array([1, 0, 7])), r"column 7 at row 1, outside 0..2"),
    (dict(data=np.array([1.0, np.nan, 3.0])), r"NaN or Inf value at row 1"),
    (dict(indptr=np.array([0, 1, 2])), r"indptr must run from 0 to the 3 entries"),
])
def test_corrupt_csr_names_the_file_and_row(tmp_path, replace, message):
    path = tmp_path / "part-00000.h5"
    _csr_file(path, **replace)
    with pytest.raises(DataError) as info:
        schema = read_schema([str(path)])
        ShardReader(schema, 0, 1, 2**30).read(0, schema.n_rows)
    assert str(path) in str(info.value)
    assert info.match(message)


def test_dense_and_csr_shards_do_not_mix(tmp_path):
    _csr_file(tmp_path / "part-00000.h5")
    write_dataset(tmp_path / "dense", np.ones((2, 3)), np.ones(2), "regression")
    (tmp_path / "dense" / "part-00000.h5").rename(tmp_path / "part-00001.h5")
    with pytest.raises(DataError, match="sparse \\(CSR\\) layout is False, but .* has True"):
        read_schema(resolve_paths([tmp_path]))


def test_summary_names_the_layout(both, tmp_path):
    _, csr = both["linear"]
    train_job(1, tmp_path / "run", _job(csr, "linear"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train"]["rows"] == 1203
    _, _, meta = load_model(tmp_path / "run" / "model.h5")
    assert meta["schema"]["sparse"] is True and meta["schema"]["nnz"] > 0


def test_the_sparse_job_runs_as_a_user_runs_it(tmp_path):
    from tests.helpers import ROOT, run_ranks

    result = run_ranks(2, ROOT / "jobs" / "sparse_logistic.toml", "--set", "run.progress=false",
                       "--set", "data.synth.rows=20000", "--set", "data.synth.test_rows=4000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "sparse_logistic" / "summary.json").read_text())
    # 20,000 rows for 2^18 columns: little to learn from, but better than chance
    assert summary["eval"]["rows"] == 4000 and summary["eval"]["auc"] > 0.55, summary["eval"]


@pytest.mark.parametrize("kind,task", [("linear", "regression"), ("logistic", "binary"), ("softmax", "multiclass")])
@pytest.mark.parametrize("data_dtype,index_dtype,param_dtype", [
    (np.float32, np.int32, np.float32), (np.float32, np.int64, np.float64), (np.float64, np.int32, np.float64)])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_csr_loop_equals_scipys_products(kind, task, data_dtype, index_dtype, param_dtype, fit_intercept):
    from mpireg.models import make_model
    from mpireg.models import model as base

    if base._csparse is None:
        pytest.skip("the C extension is not built")
    rng = np.random.default_rng(3)
    X = sp.random(500, 70, density=0.08, format="lil", random_state=rng, dtype=data_dtype)
    X[7] = 0  # an empty row
    X = X.tocsr()
    X.indices = X.indices.astype(index_dtype)
    y = {"logistic": (rng.random(500) < 0.4).astype(float), "linear": rng.normal(size=500),
         "softmax": rng.integers(0, 4, 500)}[kind]
    model = make_model(kind, 70, {"binary": 2, "multiclass": 4}.get(task, 0), fit_intercept, task=task)
    w = (rng.normal(size=model.layout.size) * 0.2).astype(param_dtype)
    grad, reference = np.empty_like(w), np.empty(model.layout.size)
    loss = model.loss_grad_sum(w, X, y, grad)
    expected = model.loss_grad_xp(w.astype(np.float64), X.astype(np.float64), y, reference)
    assert loss == pytest.approx(expected, rel=1e-12)
    tol = 1e-6 if param_dtype == np.float32 else 1e-12  # float32 grad: written in float32
    np.testing.assert_allclose(grad, reference, rtol=tol, atol=tol * np.abs(reference).max())


def test_the_softmax_csr_loop_checks_its_labels():
    from mpireg.models import model as base

    if base._csparse is None:
        pytest.skip("the C extension is not built")
    X = sp.random(20, 6, density=0.3, format="csr", random_state=1)
    params, grad = np.zeros(7 * 3), np.zeros(7 * 3)
    with pytest.raises(IndexError, match=r"y\[4\] = 3 is not a class of 3"):
        base._csparse.softmax_loss_grad(X.indptr.astype(np.int64), X.indices, X.data,
                                        np.array([0, 1, 2, 0, 3] + [0] * 15), params, grad, 3, True)
