"""Strategies behind one job-file switch train the same model (or, asynchronously, converge)."""
import json

import numpy as np
import pytest

from tests.helpers import run_ranks, sgd_job, train_job, write_dataset


@pytest.mark.parametrize("strategy", ["ring", "ps"])
def test_ring_and_ps_train_what_allreduce_trains(datasets, tmp_path, strategy):
    reference, _, _ = train_job(3, tmp_path / "allreduce", sgd_job(datasets, "softmax"))
    params, summary, _ = train_job(3, tmp_path / strategy, sgd_job(datasets, "softmax", f"comm.strategy={strategy}",
                                                             "comm.fusion_bytes=100", "comm.verify_every=5"))
    assert summary["strategy"] == strategy
    np.testing.assert_allclose(params, reference, rtol=1e-9, atol=1e-12)
    # The traffic tells the strategies apart: a parameter-server worker sends its gradient and
    # receives the parameters (two buffers per step); the ring moves one buffer in place.
    steps = [json.loads(line) for line in (tmp_path / strategy / "metrics.jsonl").read_text().splitlines()]
    wire = {r["wire_bytes"] for r in steps if r["type"] == "step"}
    n_bytes = (params.size + 4) * params.itemsize
    assert wire == ({2 * n_bytes} if strategy == "ps" else {n_bytes}), wire


@pytest.mark.parametrize("compression", ["fp16", "bf16"])
@pytest.mark.parametrize("strategy", ["allreduce", "ring", "ps"])
def test_compression_stays_within_tolerance_of_uncompressed(datasets, tmp_path, strategy, compression):
    """fp16 keeps 11 significant bits and bf16 8: the model stays within 1% (loss) and 5%
    (parameters) of the uncompressed one."""
    common = sgd_job(datasets, "logistic", "data.dtype=float32", f"comm.strategy={strategy}")
    plain, plain_summary, _ = train_job(2, tmp_path / "plain", common)
    packed, summary, _ = train_job(2, tmp_path / "packed", common + [f"comm.compression={compression}"])
    assert summary["compression"] == compression
    assert summary["train"]["loss"] == pytest.approx(plain_summary["train"]["loss"], rel=1e-2)
    assert np.linalg.norm(packed - plain) / np.linalg.norm(plain) < 5e-2


@pytest.mark.parametrize("task", ["linear", "logistic", "softmax"])
def test_ps_async_converges_within_its_staleness_bound(datasets, tmp_path, task):
    from tests.inprocess import train

    best, _ = train(tmp_path / "ref", [f"data.train={datasets[task]}", f"model.kind={task}", "model.l2=1e-3",
                                       "optimizer.kind=lbfgs", "optimizer.tol=1e-10"])
    _, summary, result = train_job(3, tmp_path / "async", sgd_job(
        datasets, task, "comm.strategy=ps-async", "comm.max_staleness=2", "optimizer.epochs=10",
        "optimizer.lr=0.05", "optimizer.schedule=cosine"))
    staleness = summary["staleness"]
    assert staleness["updates"] > 0 and staleness["max_clock_gap"] <= 2
    assert summary["train"]["loss"] <= best["train"]["loss"] * 1.02  # within 2% of the optimum
    assert "ps-async:" in result.stdout and "clock gap at most" in result.stdout


def test_ps_async_needs_two_ranks(datasets, tmp_path):
    job = tmp_path / "j.toml"
    job.write_text("")
    result = run_ranks(1, job, "--set", f"data.train={datasets['linear']}", "--set", "comm.strategy=ps-async",
                       "--run-dir", tmp_path / "r")
    assert result.returncode != 0 and "'ps-async' needs at least 2 ranks" in result.stderr


@pytest.mark.parametrize("strategy", ["allreduce", "ring", "ps", "ps-async"])
def test_a_worker_failing_mid_training_ends_the_job(tmp_path, strategy):
    """A NaN in a block that one rank streams in its second epoch: that rank raises in the middle
    of training while the others wait on it; the whole job must end, non-zero, with the message."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((600, 3)), rng.standard_normal(600)
    X[590, 2] = np.nan  # the last rank's rows
    write_dataset(tmp_path / "d", X, y, "regression", shards=3)
    job = tmp_path / "j.toml"
    job.write_text("")
    args = []
    for item in [f"data.train={tmp_path / 'd'}", f"comm.strategy={strategy}", "data.memory_budget_mb=0.002",
                 "optimizer.batch_size=8", "optimizer.epochs=3", "run.progress=false"]:
        args += ["--set", item]
    result = run_ranks(3, job, *args, "--run-dir", tmp_path / "r", timeout=120)
    assert result.returncode != 0
    assert "part-00002.h5: X has a NaN or Inf value at row 190" in result.stderr
