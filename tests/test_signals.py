"""A signal during each procedure: every rank ends within seconds with exit 0 and a checkpoint,
and the resume finishes the fit.

What Slurm's --signal and a preemption do: SIGTERM (or SIGUSR1) to every rank of the job. The
signal may land at any moment of a fit (before its first step, inside a full-batch iteration, on
an asynchronous server); each case below is one procedure, one strategy or one kind of data, and
asserts the same outcome. Whether the fit was still running when the signal came depends on
timing; the outcome must not.
"""
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, finish_command, mpiexec_path, start_command
from tests.test_resilience import _rank_pids

DENSE = "data.synth={task = 'linear', rows = 40000, features = 20, test_rows = 0, shards = 3}"
LOGISTIC = "data.synth={task = 'logistic', rows = 40000, features = 20, test_rows = 0, shards = 3}"
SPARSE = ("data.synth={task = 'logistic', rows = 8000, sparse = true, hash_bits = 12, nnz = 10, "
          "test_rows = 0, shards = 3}")
POISSON = "data.synth={task = 'poisson', rows = 60000, features = 30, test_rows = 0, shards = 3}"
RATINGS = ("data.synth={task = 'ratings', users = 400, items = 300, rank = 4, rows = 40000, "
           "test_rows = 0, shards = 3}")
SGD = ["optimizer.kind=sgd", "optimizer.lr=0.01", "optimizer.batch_size=8", "optimizer.epochs=6",
       "optimizer.tol=0", "optimizer.momentum=0"]

# case -> (ranks, overrides)
CASES = {
    "minibatch allreduce": (3, [DENSE, *SGD]),
    "minibatch ring": (3, [DENSE, *SGD, "comm.strategy=ring"]),
    "minibatch hierarchical": (3, [DENSE, *SGD, "comm.strategy=hierarchical"]),
    "minibatch ps": (3, [DENSE, *SGD, "comm.strategy=ps"]),
    "minibatch ps-async": (3, [DENSE, *SGD, "comm.strategy=ps-async"]),
    "deterministic": (3, [DENSE, *SGD, "comm.deterministic=true"]),
    "mlp": (2, [LOGISTIC, *SGD, "model.kind=mlp", "model.hidden=[32]"]),
    "sparse allreduce": (3, ["model.kind=logistic", SPARSE, *SGD]),
    "sharded": (3, ["model.kind=logistic", SPARSE, *SGD, "comm.strategy=sharded"]),
    "sharded-async": (3, ["model.kind=logistic", SPARSE, *SGD, "comm.strategy=sharded-async"]),
    "adagrad": (2, ["model.kind=logistic", SPARSE, "optimizer.kind=adagrad", "optimizer.epochs=40",
                    "optimizer.tol=0"]),
    "lbfgs": (2, ["model.kind=logistic", LOGISTIC, "optimizer.kind=lbfgs", "optimizer.max_iter=400",
                  "optimizer.tol=0", "model.l2=1e-6"]),
    "normal equations": (2, [DENSE, "optimizer.kind=normal", "model.l2=1e-3"]),
    "irls": (2, ["model.kind=glm", "model.family=poisson", POISSON, "optimizer.kind=irls"]),
    "irls path": (2, ["model.kind=glm", "model.family=poisson", POISSON, "optimizer.kind=irls",
                      "optimizer.path={n_alphas = 30}"]),
    "als": (2, ["model.kind=mf", "model.rank=4", RATINGS, "optimizer.kind=als", "optimizer.epochs=40",
                "optimizer.tol=0", "model.l2=0.01"]),
}


def _handler_installed(pid: int) -> bool:
    """Whether the process catches SIGTERM yet (before that, the signal would kill it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _command(n, run_dir, data_dir, overrides, resume=False):
    sets = []
    for item in [f"data.train={data_dir}", "run.progress=false", *overrides]:
        sets += ["--set", item]
    return [mpiexec_path(), "-n", n, sys.executable, "-m", "mpireg.train", str(ROOT / "tests" / "empty_job.toml"),
            "--run-dir", run_dir, *sets] + (["--resume"] if resume else [])


@pytest.mark.parametrize("case", CASES)
def test_a_signal_to_every_rank_stops_each_procedure_cleanly_and_the_resume_finishes(case, tmp_path):
    n, overrides = CASES[case]
    run, data = tmp_path / "run", tmp_path / "data"
    proc = start_command(_command(n, run, data, overrides))
    deadline = time.monotonic() + 120
    while True:
        pids = _rank_pids(run)
        if len(pids) == n and all(_handler_installed(p) for p in pids.values()):
            break
        assert proc.poll() is None, f"the job ended before it could be signalled:\n{proc.communicate()}"
        assert time.monotonic() < deadline, "timed out waiting for every rank to catch SIGTERM"
        time.sleep(0.02)
    time.sleep(1.0)  # into the fit (or still reading: either way the outcome is the same)
    signalled = time.monotonic()
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:  # (that rank had finished)
            pass
    stopped = finish_command(proc, timeout=60)
    took = time.monotonic() - signalled
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr, stopped.stderr
    assert took < 30, f"{took:.0f} s from the signal to the job's end"
    assert "stopped by signal at step" in stopped.stdout or "done:" in stopped.stdout, stopped.stdout
    if "stopped by signal" in stopped.stdout:
        assert (run / "checkpoints").is_dir() and not (run / "summary.json").exists()
    resumed = finish_command(start_command(_command(n, run, data, overrides, resume=True)))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["segments"][-1]["resumed"] or "nothing left to train" in resumed.stdout
