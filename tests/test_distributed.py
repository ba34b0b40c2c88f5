"""Distributed equals single-process, under real mpiexec on 1, 2, 4 and 8 ranks.

- Full-batch solvers (normal, L-BFGS) give the same parameters on any number of ranks.
- Mini-batch SGD on p ranks gives the parameters of one process stepping through the same global
  batches: the union of the ranks' local batches, step by step (replayed here from the same pure
  row-assignment and batch-plan functions), including ranks with unequal row counts and streamed
  blocks.
"""
import json

import numpy as np
import pytest

from mpireg.config import load_job
from mpireg.data import ShardReader, epoch_plan, rank_range, read_schema, resolve_paths
from mpireg.model_io import load_model
from mpireg.models import make_model, model_options
from mpireg.optim import learning_rate, make_optimizer
from tests.helpers import run_ranks


def _train(n, run_dir, overrides):
    args = ["--run-dir", run_dir]
    for item in ["run.progress=false", "comm.verify_every=7", *overrides]:
        args += ["--set", item]
    job = run_dir.parent / "job.toml"
    job.write_text("# every key comes from --set\n")
    result = run_ranks(n, job, *args)
    assert result.returncode == 0, result.stderr
    return load_model(run_dir / "model.h5")[1]


# The normal solver does one reduction: only summation order differs (1e-10). L-BFGS iterates,
# so rounding-level differences in the reduced gradient move its path; the end points agree to
# the convergence tolerance (gtol 1e-10 leaves ~1e-7 in the coefficients).
@pytest.mark.parametrize("task,solver,ranks,rtol", [
    ("linear", "normal", (1, 2, 4), 1e-10),
    ("softmax", "lbfgs", (1, 2, 4, 8), 1e-6),
    ("logistic", "lbfgs", (1, 3), 1e-6),
])
def test_full_batch_solvers_are_rank_count_independent(datasets, tmp_path, task, solver, ranks, rtol):
    overrides = [f"data.train={datasets[task]}", f"model.kind={task}", f"optimizer.kind={solver}",
                 "model.l2=1e-3", "optimizer.tol=1e-10"]
    results = {n: _train(n, tmp_path / f"p{n}", overrides) for n in ranks}
    for n in ranks[1:]:
        np.testing.assert_allclose(results[n], results[ranks[0]], rtol=rtol, atol=rtol * 1e-2)


def _replay(overrides, size):
    """One process stepping through the union of every rank's local batches."""
    cfg = load_job(None, overrides)
    schema = read_schema(resolve_paths(cfg.data.train))
    readers = [ShardReader(schema, r, size, cfg.data.memory_budget_mb * 2**20) for r in range(size)]
    X, y = ShardReader(schema, 0, 1, 1e12).block(0)
    model = make_model(cfg.model.kind, schema.n_features, schema.n_classes, l2=cfg.model.l2,
                       task=schema.task, **model_options(cfg.model, cfg.seed))
    y = model.prepare_targets(y)
    params = model.init_params(np.float64)
    opt = make_optimizer(cfg.optimizer, model, np.float64)
    local_steps = [sum(-(-s // cfg.optimizer.batch_size) for s in r.block_sizes) for r in readers]
    steps, step = max(local_steps), 0
    for epoch in range(cfg.optimizer.epochs):
        plans = [epoch_plan(r.block_sizes, cfg.optimizer.batch_size, cfg.seed, epoch, rank)
                 for rank, r in enumerate(readers)]
        for i in range(steps):
            rows = np.concatenate([rank_range(schema.n_rows, rank, size)[0]
                                   + plans[rank][i][0] * readers[rank].block_rows + plans[rank][i][1]
                                   for rank in range(size) if i < len(plans[rank])])
            grad = np.empty_like(params)
            model.loss_grad_sum(params, X[rows], y[rows], grad)
            grad /= len(rows)
            model.add_l2_grad(params, grad)
            opt.step(params, grad, learning_rate(cfg.optimizer, step, epoch, steps * cfg.optimizer.epochs))
            step += 1
    return params, local_steps


@pytest.mark.parametrize("task,size,batch,budget_mb,optimizer", [
    ("logistic", 2, 16, 1024, "sgd"),
    ("linear", 4, 16, 1024, "adam"),
    ("softmax", 8, 50, 1024, "sgd"),    # 151 vs 150 rows: some ranks sit out the last step
    ("logistic", 3, 10, 0.002, "sgd"),   # streamed in blocks of ~26 rows
    ("mlp:softmax", 3, 16, 1024, "adam"),
    ("mlp:linear", 2, 16, 0.002, "sgd"),
])
def test_minibatch_equals_single_process_on_the_same_global_batches(
        datasets, tmp_path, task, size, batch, budget_mb, optimizer):
    kind, _, task = task.rpartition(":")  # mlp:softmax = an MLP on the softmax data
    overrides = [f"data.train={datasets[task]}", f"model.kind={kind or task}", "model.hidden=[5, 3]",
                 f"optimizer.kind={optimizer}",
                 "optimizer.lr=0.05", "optimizer.momentum=0.9", "optimizer.schedule=cosine",
                 "optimizer.epochs=3", f"optimizer.batch_size={batch}", "optimizer.tol=0",
                 "model.l2=1e-3", f"data.memory_budget_mb={budget_mb}", "seed=11"]
    distributed = _train(size, tmp_path / "run", overrides)
    single, local_steps = _replay(overrides, size)
    if (task, size) == ("softmax", 8):
        assert len(set(local_steps)) == 2  # the uneven case really is uneven
    np.testing.assert_allclose(distributed, single, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("size,kind", [(3, "softmax"), (8, "softmax"), (3, "mlp")])
def test_overlapped_bucket_reductions_equal_the_single_process(datasets, tmp_path, size, kind):
    """Softmax reports gradient slabs ready while it computes, the MLP each layer as back-
    propagation finishes it; with buckets of 96 bytes each starts its own Iallreduce. At 8 ranks
    some ranks sit out the last step (zeros) and must still start the same reductions in the
    same order."""
    overrides = [f"data.train={datasets['softmax']}", f"model.kind={kind}", "model.hidden=[7, 4]",
                 "optimizer.kind=sgd",
                 "optimizer.lr=0.05", "optimizer.epochs=2", "optimizer.batch_size=50", "optimizer.tol=0",
                 "model.l2=1e-3", "comm.fusion_bytes=96", "run.log_every=3", "seed=5"]
    distributed = _train(size, tmp_path / "run", overrides)
    single, _ = _replay(overrides, size)
    np.testing.assert_allclose(distributed, single, rtol=1e-9, atol=1e-12)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "step"]
    assert steps and all(0 <= r["exposed_comm_ms"] <= r["comm_ms"] + 1e-9 for r in steps)
    assert all(r["compute_ms"] > 0 for r in steps)  # every record, not just the first, has timings
