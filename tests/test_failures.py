"""Every bad input: one clear message naming the file and field, non-zero exit, no hang.

Each case runs the real CLI under mpiexec (with a timeout, so a hang fails the test).
"""
import h5py
import numpy as np
import pytest

from mpireg.data import write_shard
from tests.helpers import assert_one_error, run_ranks, write_dataset


def _good(directory, rows=40, features=3, task="regression", shards=2):
    rng = np.random.default_rng(0)
    y = rng.standard_normal(rows) if task == "regression" else rng.integers(0, 2, rows)
    return write_dataset(directory, rng.standard_normal((rows, features)), y, task,
                         0 if task == "regression" else 2, shards)


def _run(tmp_path, n, overrides, job_text=""):
    job = tmp_path / "job.toml"
    job.write_text(job_text)
    args = ["--run-dir", tmp_path / "run"]
    for item in ["run.progress=false", "optimizer.epochs=2", *overrides]:
        args += ["--set", item]
    return run_ranks(n, job, *args, timeout=120)


def _assert_fails_once(result, *fragments):
    assert result.returncode != 0
    assert_one_error(result.stderr, *fragments)  # printed once, not once per rank


def _nan_shard(d):
    _good(d)
    with h5py.File(d / "part-00001.h5", "r+") as f:
        f["X"][5, 1] = np.inf


def _bad_label(d):
    _good(d, task="binary")
    with h5py.File(d / "part-00000.h5", "r+") as f:
        f["y"][3] = 2


def _int_x(d):
    write_shard(d / "part-00000.h5", np.ones((10, 3), dtype=np.int32), np.zeros(10), "regression")


def _mismatch(d):
    _good(d, features=3, shards=1)
    write_shard(d / "part-00001.h5", np.ones((10, 4)), np.zeros(10), "regression")


CASES = {
    "missing shard": (_good, ["data.train=/nonexistent/part-00000.h5"],
                      ["data.train", "no such file or directory", "/nonexistent/part-00000.h5"]),
    "directory without shards": (lambda d: None, [], ["data.train", "holds no .h5 shards"]),
    "corrupt shard": (lambda d: (_good(d), (d / "part-00001.h5").write_bytes(b"\x89HDF garbage" * 50)),
                      [], ["part-00001.h5", "cannot open as HDF5"]),
    "mismatched features": (_mismatch, [], ["part-00001.h5", "feature count is 4", "has 3"]),
    "nan in X": (_nan_shard, [], ["part-00001.h5", "X has a NaN or Inf value at row 5"]),
    "label out of range": (_bad_label, ["model.kind=logistic"], ["part-00000.h5", "label 2 at row 3"]),
    "empty shard": (lambda d: (_good(d), write_shard(d / "part-00002.h5", np.zeros((0, 3)), np.zeros(0),
                                                       "regression")), [], ["part-00002.h5", "empty shard"]),
    "wrong dtype": (_int_x, [], ["part-00000.h5", "X must be float32 or float64, got int32"]),
    "more ranks than rows": (lambda d: _good(d, rows=3, shards=1), [], ["3 rows for 4 ranks"]),
    "wrong task for model": (lambda d: _good(d), ["model.kind=softmax"],
                             ["model.kind", "use model.kind = 'linear'"]),
    "unknown config key": (lambda d: _good(d), ["optimizer.learning_rate=0.1"],
                           ["optimizer.learning_rate: unknown key"]),
    "wrong config type": (lambda d: _good(d), ["optimizer.batch_size=big"],
                          ["optimizer.batch_size: expected an integer"]),
    "out of range config": (lambda d: _good(d), ["optimizer.lr=0"], ["optimizer.lr: expected a value > 0"]),
    "diverging step size": (lambda d: _good(d), ["optimizer.lr=1e200", "optimizer.batch_size=4"], ["training diverged", "optimizer.lr"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_cleanly_on_every_rank(tmp_path, case):
    make, overrides, fragments = CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    make(data)
    result = _run(tmp_path, 4, [f"data.train={data}", *overrides])
    _assert_fails_once(result, *fragments)


def test_held_out_set_must_match_training_features(tmp_path):
    _good(tmp_path / "train")
    _good(tmp_path / "test", features=5, shards=1)
    result = _run(tmp_path, 2, [f"data.train={tmp_path / 'train'}", f"data.test={tmp_path / 'test'}"])
    _assert_fails_once(result, "data.test", "n_features = 5", "has 3")


def test_bad_rows_found_while_streaming_abort_the_job(tmp_path):
    """Streamed data is validated as it is read, inside the hot loop: the rank that finds the bad
    row reports it and aborts every rank (MPI_Abort), so nobody waits in a collective."""
    d = tmp_path / "data"
    _good(d, rows=400, shards=2)
    with h5py.File(d / "part-00001.h5", "r+") as f:
        f["X"][150, 0] = np.nan
    result = _run(tmp_path, 2, [f"data.train={d}", "data.memory_budget_mb=0.001"])
    assert result.returncode != 0
    assert "part-00001.h5: X has a NaN or Inf value at row 150" in result.stderr


def test_missing_job_file(tmp_path):
    result = run_ranks(2, tmp_path / "nope.toml", timeout=60)
    _assert_fails_once(result, "nope.toml: job file not found")
