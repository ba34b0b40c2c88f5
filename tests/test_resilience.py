"""Failures end cleanly and resume without lost work: signals, killed ranks, stalls.

Each test starts a real multi-rank job under mpiexec, acts on one of its processes the way a
cluster would (SIGUSR1 before a time limit, SIGKILL of a dead node, SIGSTOP of a hung one), and
checks how the whole job ends and what a resumed run reaches.
"""
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mpireg.checkpoint import list_checkpoints
from mpireg.model_io import load_model
from tests.helpers import ROOT, finish_command, mpiexec_path, run_ranks, start_command, write_dataset

# Long enough (seconds, thousands of steps) that a signal or a kill always lands mid-run.
LONG = ["optimizer.kind=sgd", "optimizer.lr=0.02", "optimizer.momentum=0.9", "optimizer.batch_size=4",
        "optimizer.epochs=12", "optimizer.tol=0", "model.l2=1e-3", "run.progress=false"]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Enough rows that a run lasts a few seconds (thousands of small steps)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12000, 8))
    y = X @ rng.standard_normal(8) + 0.1 * rng.standard_normal(12000)
    return write_dataset(tmp_path_factory.mktemp("big") / "d", X, y, "regression", shards=3)


def _args(data, run_dir, overrides):
    args = [str(ROOT / "tests" / "empty_job.toml"), "--run-dir", str(run_dir)]
    for item in [f"data.train={data}", *LONG, *overrides]:
        args += ["--set", item]
    return args


def _start(n, data, run_dir, overrides, resume=False):
    return start_command([mpiexec_path(), "-n", n, sys.executable, "-m", "mpireg.train",
                          *_args(data, run_dir, overrides)] + (["--resume"] if resume else []))


def _finish(proc, timeout=120):
    result = finish_command(proc, timeout)
    return result.returncode, result.stdout, result.stderr


def _rank_pids(run_dir) -> dict:
    """PIDs of the ranks of the job writing to run_dir, by rank (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run_dir).encode() in cmdline and b"mpireg.train" in cmdline and b"-n" not in cmdline:
            for var in environ:
                if var.startswith(b"PMI_RANK="):
                    found[int(var[9:])] = int(entry.name)
    return found


def _wait_for(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _train(n, data, run_dir, overrides, resume=False):
    result = run_ranks(n, *_args(data, run_dir, overrides), *(["--resume"] if resume else []))
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_makes_every_rank_checkpoint_and_exit_0_then_resume_is_exact(big, tmp_path, signum):
    _train(3, big, tmp_path / "straight", [])
    straight = load_model(tmp_path / "straight" / "model.h5")[1]
    run = tmp_path / "stopped"
    proc = _start(3, big, run, ["run.checkpoint_every_steps=300"])
    _wait_for(lambda: list_checkpoints(run / "checkpoints"), what="a first checkpoint")
    pids = _rank_pids(run)
    assert len(pids) == 3, "the job ended before it could be signalled"
    for pid in pids.values():  # what Slurm's --signal does: every rank
        os.kill(pid, signum)
    code, out, err = _finish(proc)
    assert code == 0, err
    assert "stopped by signal at step" in out and not (run / "summary.json").exists()
    _train(3, big, run, [], resume=True)
    assert np.array_equal(load_model(run / "model.h5")[1], straight)  # no work lost, none repeated
    stopped, resumed = json.loads((run / "summary.json").read_text())["segments"]  # both runs, recorded
    assert not stopped["resumed"] and resumed["resumed"] and resumed["from_step"] == stopped["steps"] > 0
    total = json.loads((tmp_path / "straight" / "summary.json").read_text())["steps"]
    assert stopped["steps"] + resumed["steps"] == total


@pytest.fixture(scope="module")
def big_csr(tmp_path_factory):
    """`big`'s rows with half their entries zeroed, as CSR shards (for the sharded servers)."""
    from mpireg.data.sparse import write_csr_shard

    rng = np.random.default_rng(3)
    X = rng.standard_normal((12000, 8)) * (rng.random((12000, 8)) < 0.5)
    y = X @ rng.standard_normal(8) + 0.1 * rng.standard_normal(12000)
    root = tmp_path_factory.mktemp("big_csr")
    for i, part in enumerate(np.array_split(np.arange(len(y)), 3)):
        write_csr_shard(root / f"part-{i:05d}.h5", X[part], y[part], "regression", 0)
    return root


@pytest.mark.parametrize("strategy", ["ps-async", "sharded-async"])
def test_a_signal_stops_an_asynchronous_job_and_its_resume_does_each_update_once(big, big_csr, tmp_path, strategy):
    data = big if strategy == "ps-async" else big_csr
    async_job = [f"comm.strategy={strategy}", "optimizer.momentum=0", "comm.servers=1", "run.log_every=50"]
    run = tmp_path / "stopped"
    proc = _start(3, data, run, async_job)
    _wait_for(lambda: (run / "metrics.jsonl").exists() and '"update"' in (run / "metrics.jsonl").read_text(),
              what="the server's first updates")
    pids = _rank_pids(run)
    assert len(pids) == 3, "the job ended before it could be signalled"
    signalled = time.monotonic()
    for pid in pids.values():
        os.kill(pid, signal.SIGTERM)
    code, out, err = _finish(proc, timeout=60)
    assert code == 0, err
    assert time.monotonic() - signalled < 15, "the job took too long to stop"
    assert "stopped by signal at step" in out and list_checkpoints(run / "checkpoints")
    _train(3, data, run, async_job, resume=True)
    summary = json.loads((run / "summary.json").read_text())
    stopped, resumed = summary["segments"]
    updates_per_epoch = 2 * 6000 // 4  # two workers, 6000 rows each, batches of 4
    assert 0 < stopped["steps"] < summary["steps"] == 12 * updates_per_epoch  # every update once
    assert resumed["from_step"] == stopped["steps"] and stopped["steps"] + resumed["steps"] == summary["steps"]
    assert stopped["samples"] + resumed["samples"] == 12 * 12000  # every row of every epoch once
    again = _train(3, data, run, async_job, resume=True)  # a finished run: nothing to do, no hang
    assert "nothing left to train" in again.stdout


def test_a_killed_rank_ends_the_job_and_a_resume_on_fewer_ranks_is_exact(big, tmp_path):
    exact = ["comm.deterministic=true", "optimizer.batch_size=64", "comm.block_rows=16",
             "run.checkpoint_every_steps=40", "optimizer.epochs=10"]
    _train(2, big, tmp_path / "straight", exact)
    straight = load_model(tmp_path / "straight" / "model.h5")[1]
    run = tmp_path / "killed"
    proc = _start(4, big, run, exact)
    _wait_for(lambda: len(list_checkpoints(run / "checkpoints")) >= 2, what="two checkpoints")
    started = time.monotonic()
    os.kill(_rank_pids(run)[2], signal.SIGKILL)  # a node dies without warning
    code, _, _ = _finish(proc, timeout=60)
    assert code != 0 and time.monotonic() - started < 30
    time.sleep(0.5)
    assert _rank_pids(run) == {}, "orphaned ranks"
    result = _train(2, big, run, exact, resume=True)  # 4 ranks -> 2: rows reassigned
    assert "written by 4 ranks, resumed on 2" in result.stdout
    assert np.array_equal(load_model(run / "model.h5")[1], straight)


def test_time_based_checkpoints_happen_mid_epoch(big, tmp_path):
    run = tmp_path / "timed"
    _train(2, big, run, ["run.checkpoint_every_seconds=0.03", "run.checkpoint_keep=500"])
    steps_per_epoch = 12000 // 2 // 4
    mid_epoch = [p for p in list_checkpoints(run / "checkpoints")
                 if int(p.stem.split("-")[1]) % steps_per_epoch]
    assert mid_epoch, "no checkpoint between epoch ends"


def test_watchdog_names_the_rank_that_stalled(big, tmp_path):
    run = tmp_path / "stall"
    proc = _start(3, big, run, ["run.watchdog_seconds=2", "optimizer.epochs=50"])
    _wait_for(lambda: (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").stat().st_size > 0,
              what="training to start")
    pids = _rank_pids(run)
    os.kill(pids[1], signal.SIGSTOP)  # a hung process: alive, silent
    try:
        code, _, err = _finish(proc, timeout=60)
    finally:
        try:
            os.kill(pids[1], signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert code != 0
    assert "watchdog: no progress for" in err and "(strategy allreduce)" in err
    assert "rank(s) [1] did not arrive" in err


def test_report_and_timeline(big, tmp_path):
    pytest.importorskip("matplotlib")

    runs = []
    for strategy in ("allreduce", "ring"):
        run = tmp_path / strategy
        _train(3, big, run, [f"comm.strategy={strategy}", "optimizer.epochs=1", "optimizer.batch_size=64",
                             "run.log_every=10", "run.profile=true"])
        runs.append(run)
        trace = json.loads((run / "trace.json").read_text())
        ranks = {e["tid"] for e in trace["traceEvents"] if e.get("ph") == "X"}
        assert ranks == {0, 1, 2}
        assert {"compute", "step", "evaluate"} <= {e["name"] for e in trace["traceEvents"]}
        step = next(json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"step"' in l)
        assert {"read_ms", "compute_ms", "pack_ms", "comm_ms", "update_ms", "wait_ms"} <= set(step)
    out = tmp_path / "report"
    result = run_ranks(1, *map(str, runs), "--out", str(out), module="mpireg.report")
    assert result.returncode == 0, result.stderr
    for name in ("loss", "eval", "time_breakdown"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "| allreduce |" in (out / "summary.md").read_text()
