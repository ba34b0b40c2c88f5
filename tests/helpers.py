"""Shared test helpers: launching ranks under mpiexec with a timeout, and writing small shards."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mpireg.data import write_shard
from mpireg.model_io import load_model

ROOT = Path(__file__).resolve().parents[1]
MPI_TIMEOUT = 180  # seconds; a hang fails the test instead of the CI run


def mpiexec_path() -> str:
    """The launcher of the MPI that mpi4py uses: beside the interpreter (pip's mpich), else PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if not found:
        raise RuntimeError("mpiexec not found; install the MPI runtime: pip install -e '.[mpi,test]'")
    return found


def run_ranks(n: int, *args, timeout: float = MPI_TIMEOUT, cwd=None, module: str = "mpireg.train"):
    """Run `python -m module args...` on n ranks; kill the whole process group on timeout."""
    cmd = [mpiexec_path(), "-n", str(n), sys.executable, "-m", module, *map(str, args)]
    return run_command(cmd, timeout=timeout, cwd=cwd)


def run_overrides(n: int, job, overrides, *args, **kw):
    """`mpireg.train` on n ranks from an empty job file `job` (written here) and `--set`
    overrides, then `args` (--run-dir, --resume, ...)."""
    job = Path(job)
    job.write_text("")
    sets = [arg for item in overrides for arg in ("--set", item)]
    return run_ranks(n, job, *sets, *args, **kw)


def assert_one_error(stderr: str, *fragments) -> str:
    """The single `error:` line of a failed command (printed once, not once per rank), holding
    every fragment; returned for further checks."""
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], stderr
    return errors[0]


def run_command(cmd, timeout: float = MPI_TIMEOUT, cwd=None):
    return finish_command(start_command(cmd, cwd), timeout)


def start_command(cmd, cwd=None) -> subprocess.Popen:
    """Start `cmd` in its own process group, with this checkout importable, in `cwd` or a fresh
    scratch directory (never the checkout: a job without --run-dir writes runs/ where it runs)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    scratch = None if cwd else tempfile.mkdtemp(prefix="mpireg-test-")
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd or scratch, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    proc.scratch = scratch  # removed by finish_command (a CI run had left 3,500 of them in /tmp)
    return proc


def load_per_core() -> float:
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # (no load average on this platform)
        return 1.0


def finish_command(proc: subprocess.Popen, timeout: float = MPI_TIMEOUT):
    """Wait for `proc`; the limit stretches with the machine's load (oversubscribed ranks run
    slower: under a loaded CI host one multi-rank test needed 10x its time alone). On expiry kill
    its whole group and fail, saying what it waited for and how loaded the host was."""
    load = load_per_core()
    limit = timeout * max(1.0, load)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        _remove_scratch(proc)
        raise AssertionError(f"timed out after {limit:.0f} s ({timeout} s scaled by a load of {load:.1f} per core "
                             f"at the start) waiting for this command to exit: a hang, or a host far busier "
                             f"than that: {' '.join(proc.args)}\n{out}\n{err}")
    _remove_scratch(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _remove_scratch(proc) -> None:
    if getattr(proc, "scratch", None):
        shutil.rmtree(proc.scratch, ignore_errors=True)


def write_dataset(directory, X, y, task, n_classes=0, shards=1) -> Path:
    """Split rows into `shards` files, in order."""
    directory = Path(directory)
    for i, part in enumerate(np.array_split(np.arange(len(y)), shards)):
        write_shard(directory / f"part-{i:05d}.h5", X[part], y[part], task, n_classes)
    return directory


def write_job(path, text: str) -> Path:
    path = Path(path)
    path.write_text(text)
    return path


def train_job(n, run_dir, overrides, *args):
    """(flat parameters, summary, the finished process) of `mpireg.train` on n ranks into
    run_dir, from --set overrides; fails the test on a non-zero exit."""
    result = run_overrides(n, run_dir.parent / f"{run_dir.name}.toml", ["run.progress=false", *overrides],
                           "--run-dir", run_dir, *args)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    return load_model(run_dir / "model.h5")[1], summary, result


def assert_same_path_on_1_2_and_3_ranks(job, tmp_path, n_alphas: int, fold_rtol: float, **param_tol):
    """A path job (fit/path.py) on 1, 2 and 3 ranks: the same choice, fold deviances and parameters."""
    import pytest

    results = {n: train_job(n, tmp_path / f"r{n}", job) for n in (1, 2, 3)}
    params, summary, _ = results[1]
    path = summary["path"]
    assert path["folds"] == 3 and len(path["paths"][0]["cv_deviance"]) == n_alphas
    for n in (2, 3):
        other_params, other, _ = results[n]
        assert other["path"]["alpha"] == pytest.approx(path["alpha"], rel=1e-12)
        np.testing.assert_allclose(other["path"]["paths"][0]["fold_deviance"], path["paths"][0]["fold_deviance"],
                                   rtol=fold_rtol)
        np.testing.assert_allclose(other_params, params, **param_tol)


def sgd_job(datasets, task, *extra):
    """The overrides of a short SGD fit of `task` on the conftest data set."""
    return [f"data.train={datasets[task]}", f"model.kind={task}", "optimizer.kind=sgd", "optimizer.lr=0.1",
            "optimizer.momentum=0.9", "optimizer.epochs=3", "optimizer.batch_size=16", "optimizer.tol=0",
            "model.l2=1e-3", *extra]
