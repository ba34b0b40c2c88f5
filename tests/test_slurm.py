"""The batch scripts in slurm/ run to completion on a real one-node Slurm (Debian's packages).

Skipped, with the reason, where Slurm cannot be started (not root, no package access).
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT, write_dataset
from tests.slurm_cluster import OneNodeSlurm, why_not_available

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    cluster = OneNodeSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A submit directory with a small data set and job file; the scripts run from here."""
    work = tmp_path_factory.mktemp("submit")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6000, 5))
    y = (X @ rng.standard_normal(5) > 0).astype(np.int64)
    write_dataset(work / "data", X, y, "binary", 2, shards=2)
    (work / "job.toml").write_text(f'[data]\ntrain = "{work / "data"}"\n[model]\nkind = "logistic"\n'
                                   f'[optimizer]\nkind = "sgd"\nlr = 0.1\nepochs = 2\nbatch_size = 32\n'
                                   f'[run]\nprogress = false\n')
    return work


def _env():
    # the scripts call `python`: make it this interpreter, with this checkout importable
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT)}


def test_train_script_runs_real_ranks(slurm, workdir):
    job = slurm.submit("--ntasks-per-node=2", ROOT / "slurm" / "train.sbatch", "job.toml",
                       cwd=workdir, env=_env())
    fields = slurm.wait(job)
    output = (workdir / f"slurm-{job}.out").read_text()
    assert fields["JobState"] == "COMPLETED", output + slurm.logs()
    summary = json.loads((workdir / "runs" / f"job-{job}" / "summary.json").read_text())
    assert summary["ranks"] == 2  # srun --mpi=pmi2 gave one world of 2, not 2 worlds of 1


def test_sweep_script_runs_every_array_task(slurm, workdir):
    (workdir / "sweep.toml").write_text(f'job = "{workdir / "job.toml"}"\n[grid]\n"optimizer.lr" = [0.01, 0.1, 1.0]\n')
    job = slurm.submit("--array=0-2", "--ntasks-per-node=2", ROOT / "slurm" / "sweep.sbatch", "sweep.toml",
                       cwd=workdir, env=_env())
    for task in range(3):
        fields = slurm.wait(f"{job}_{task}")
        assert fields["JobState"] == "COMPLETED", (workdir / f"slurm-{job}_{task}.out").read_text()
    lrs = sorted(float(line.split("=")[1]) for task in range(3)
                 for line in (workdir / "runs" / f"sweep-{job}_{task}" / "config.toml").read_text().splitlines()
                 if line.startswith("lr ="))
    assert lrs == [0.01, 0.1, 1.0]


def test_signal_before_the_limit_checkpoints_requeues_and_resumes(slurm, workdir):
    job = slurm.submit("--ntasks-per-node=2", ROOT / "slurm" / "train.sbatch", "job.toml",
                       "--set", "optimizer.epochs=400", "--set", "optimizer.batch_size=8",
                       cwd=workdir, env=_env())
    run_dir = workdir / "runs" / f"job-{job}"
    slurm.wait(job, states={"RUNNING"})
    import time

    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints").is_dir() or not any((run_dir / "checkpoints").iterdir()):
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.2)
    # What --signal=USR1@120 does two minutes before the limit: signal every rank.
    result = slurm.run("scancel", "--signal=USR1", str(job), cwd=workdir)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 120
    while "requeueing" not in (workdir / f"slurm-{job}.out").read_text():
        assert time.monotonic() < deadline, (workdir / f"slurm-{job}.out").read_text()
        time.sleep(0.2)
    # Slurm holds a requeued job back (a begin time ~2 minutes ahead); let it start now.
    slurm.wait(job, states={"PENDING", "REQUEUED", "RUNNING"}, timeout=60)
    slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now", cwd=workdir)
    deadline = time.monotonic() + 120
    while "resumed from" not in (workdir / f"slurm-{job}.out").read_text():
        assert time.monotonic() < deadline, (workdir / f"slurm-{job}.out").read_text() + slurm.logs()
        time.sleep(0.2)
    slurm.run("scancel", str(job), cwd=workdir)  # the resumed run would take minutes: enough seen
    output = (workdir / f"slurm-{job}.out").read_text()
    assert "stopped by signal at step" in output and "checkpoint written" in output


def test_srun_without_pmi_is_refused(slurm, workdir):
    job = slurm.submit("--ntasks=2", "--output=nopmi-%j.out", "--wrap",
                       "srun --mpi=none python -m mpireg.train job.toml --run-dir runs/nopmi",
                       cwd=workdir, env=_env())
    fields = slurm.wait(job)
    output = (workdir / f"nopmi-{job}.out").read_text()
    assert fields["JobState"] == "FAILED"
    assert "MPI sees a world of 1 rank" in output and "--mpi=pmi2" in output
