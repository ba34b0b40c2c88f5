"""Across nodes: every strategy on emulated nodes (network namespaces joined by a capped link,
tests/emulated_cluster.py) trains the model it trains on one node with the same ranks, on
2 nodes x 2 ranks and 3 nodes x 1 rank; deterministic mode bit for bit, the synchronous
strategies to rounding, the asynchronous ones to the same loss. Each run's bytes must cross the
link (the netmod forced onto TCP), or it did not run across nodes at all.

Skipped, with the reason, where the machine cannot create network namespaces (not root, no
iproute2).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mpireg.convert.ratings import synth_ratings
from mpireg.convert.synth import synthesize, synthesize_sparse
from mpireg.model_io import load_model
from tests.emulated_cluster import EmulatedCluster, why_not_available
from tests.helpers import ROOT, run_ranks

pytestmark = pytest.mark.skipif(why_not_available() is not None, reason=str(why_not_available()))

SGD = ["optimizer.kind=sgd", "optimizer.lr=0.02", "optimizer.batch_size=16", "optimizer.epochs=2",
       "optimizer.tol=0", "run.eval_every=100"]
# case -> (data set, overrides, how the two models must agree: "bits", "rounding" or "loss")
CASES = {
    "allreduce": ("dense", [*SGD], "rounding"),
    "ring": ("dense", [*SGD, "comm.strategy=ring"], "rounding"),
    "hierarchical": ("dense", [*SGD, "comm.strategy=hierarchical"], "rounding"),
    "ps": ("dense", [*SGD, "comm.strategy=ps"], "rounding"),
    "ps-async": ("dense", [*SGD, "comm.strategy=ps-async"], "loss"),
    "sharded": ("sparse", ["model.kind=logistic", *SGD, "comm.strategy=sharded"], "rounding"),
    "sharded-async": ("sparse", ["model.kind=logistic", *SGD, "comm.strategy=sharded-async"], "loss"),
    "deterministic": ("dense", [*SGD, "comm.deterministic=true", "optimizer.batch_size=64"], "bits"),
    "deterministic ring": ("dense", [*SGD, "comm.deterministic=true", "optimizer.batch_size=64",
                                     "comm.strategy=ring"], "bits"),
    "mlp, overlapped buckets": ("logistic", [*SGD, "model.kind=mlp", "model.hidden=[64]",
                                             "comm.fusion_bytes=4096"], "rounding"),
    "als, rows pulled": ("ratings", ["model.kind=mf", "model.rank=4", "optimizer.kind=als",
                                     "optimizer.epochs=5", "optimizer.tol=0", "model.l2=0.05",
                                     "comm.factor_exchange=pull"], "rounding"),
}
LAYOUTS = {"2 nodes x 2 ranks": (4, 2), "3 nodes x 1 rank": (3, 1)}


@pytest.fixture(scope="module")
def cluster():
    with EmulatedCluster(nodes=3, rate="4gbit") as c:
        yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("multinode-data")
    synthesize("linear", rows=3001, features=12, out=root / "dense", shards=3, classes=0, test_rows=0,
               noise=0.3, seed=3, dtype="float64")
    synthesize("logistic", rows=3001, features=12, out=root / "logistic", shards=3, classes=2,
               test_rows=0, noise=0.3, seed=3, dtype="float64")
    synthesize_sparse("logistic", 3001, 10, 8, root / "sparse", 3, 2, 0, 0.1, 3, "float64")
    synth_ratings(120, 80, 4, 6000, root / "ratings", shards=3, test_rows=0, noise=0.1, seed=3,
                  dtype="float64")
    return root


def _train_locally(n, job, run_dir, overrides):
    result = run_ranks(n, job, "--run-dir", run_dir, *_sets(overrides), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def _sets(overrides):
    return [arg for item in ["run.progress=false", *overrides] for arg in ("--set", item)]


def _params(run_dir):
    return load_model(run_dir / "model.h5")[1]


def _loss(run_dir):
    return json.loads((run_dir / "summary.json").read_text())["train"]["loss"]


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("case", list(CASES))
def test_a_strategy_across_nodes_trains_what_it_trains_on_one(cluster, data, tmp_path, case, layout):
    kind, overrides, agreement = CASES[case]
    n, per_node = LAYOUTS[layout]
    job = tmp_path / "job.toml"
    job.write_text("")
    overrides = [f"data.train={data / kind}", *overrides]
    here = _train_locally(n, job, tmp_path / "one-node", overrides)

    before = cluster.link_bytes()
    result = cluster.run(n, [sys.executable, "-m", "mpireg.train", job, "--run-dir", tmp_path / "nodes",
                             *_sets(overrides)], ranks_per_node=per_node, cwd=ROOT, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    crossed = cluster.link_bytes() - before
    assert crossed > 10_000, f"only {crossed} bytes crossed the link: the ranks did not talk across nodes"

    there = tmp_path / "nodes"
    if agreement == "bits":
        assert np.array_equal(_params(here), _params(there))
    elif agreement == "rounding":
        np.testing.assert_allclose(_params(there), _params(here), rtol=1e-6, atol=1e-9)
    else:  # asynchronous: the order of updates is the network's; the optimum reached is not
        assert _loss(there) == pytest.approx(_loss(here), rel=0.05)


def test_the_nodes_are_nodes_to_mpi(cluster, tmp_path):
    """hydra's node map: ranks of one namespace share a node communicator, the link carries the
    bytes between the nodes (not a same-host shortcut)."""
    script = tmp_path / "nodes.py"
    script.write_text(
        "from mpi4py import MPI\nimport numpy as np\n"
        "c = MPI.COMM_WORLD\nnode = c.Split_type(MPI.COMM_TYPE_SHARED)\n"
        "a = np.ones(2**20)\nc.Allreduce(MPI.IN_PLACE, a)\n"
        "lines = c.gather(f'rank {c.rank} node-size {node.size} sum {a[0]}')\n"  # one writer: no interleaving
        "print('\\n'.join(lines) if c.rank == 0 else '', end='', flush=True)\n")
    before = cluster.link_bytes()
    result = cluster.run(4, [sys.executable, script], ranks_per_node=2, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("node-size 2 sum 4.0") == 4, result.stdout
    assert cluster.link_bytes() - before > 8 * 2**20, "an 8 MiB allreduce between two nodes must cross the link"


# ------------------------------------------------------------------ Slurm across two nodes
@pytest.fixture(scope="module")
def slurm2(cluster, tmp_path_factory):
    from tests.slurm_cluster import MultiNodeSlurm
    from tests.slurm_cluster import why_not_available as why_no_slurm

    reason = why_no_slurm()
    if reason:
        pytest.skip(reason)
    slurm = MultiNodeSlurm(tmp_path_factory.mktemp("slurm2"), cluster)
    try:
        slurm.start()
        yield slurm
    finally:
        slurm.stop()


def _submit_env():
    import os

    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def submit_dir(data, tmp_path_factory):
    work = tmp_path_factory.mktemp("submit2")
    (work / "job.toml").write_text(f'[data]\ntrain = "{data / "dense"}"\n[optimizer]\nkind = "sgd"\nlr = 0.02\n'
                                   f'epochs = 2\nbatch_size = 16\ntol = 0\n[run]\nprogress = false\n')
    return work


def test_the_train_script_runs_across_two_nodes(slurm2, submit_dir, cluster):
    before = cluster.link_bytes()
    job = slurm2.submit("-N", "2", "--ntasks-per-node=2", ROOT / "slurm" / "train.sbatch", "job.toml",
                        cwd=submit_dir, env=_submit_env())
    fields = slurm2.wait(job)
    output = (submit_dir / f"slurm-{job}.out").read_text()
    assert fields["JobState"] == "COMPLETED", output + slurm2.logs()
    assert fields["NodeList"] == "n[1-2]", fields
    summary = json.loads((submit_dir / "runs" / f"job-{job}" / "summary.json").read_text())
    assert summary["ranks"] == 4
    assert cluster.link_bytes() - before > 10_000, "the job's ranks did not talk across the link"


def test_the_sweep_script_runs_across_two_nodes(slurm2, submit_dir):
    (submit_dir / "sweep.toml").write_text(f'job = "{submit_dir / "job.toml"}"\n[grid]\n"optimizer.lr" = [0.01, 0.05]\n')
    job = slurm2.submit("--array=0-1", "-N", "2", "--ntasks-per-node=1", ROOT / "slurm" / "sweep.sbatch",
                        "sweep.toml", cwd=submit_dir, env=_submit_env())
    for task in range(2):
        fields = slurm2.wait(f"{job}_{task}")
        assert fields["JobState"] == "COMPLETED", (submit_dir / f"slurm-{job}_{task}.out").read_text() + slurm2.logs()
        summary = json.loads((submit_dir / "runs" / f"sweep-{job}_{task}" / "summary.json").read_text())
        assert summary["ranks"] == 2


# ------------------------------------------------------------------ plans that know the links
def test_the_plan_measures_the_links_and_auto_skips_a_hierarchy_that_is_not_there(cluster, data, tmp_path):
    """One rank a node: nothing for the node-aware reduction to gather, so "auto" does not probe
    it; the links measured at start-up (the inter-node one near the 4 Gbit/s cap, well below
    shared memory) are in summary.json's plan, with the reasons."""
    job = tmp_path / "job.toml"
    job.write_text("")
    result = cluster.run(2, [sys.executable, "-m", "mpireg.train", job, "--run-dir", tmp_path / "run",
                             *_sets([f"data.train={data / 'dense'}", *SGD, "comm.strategy=auto"])],
                         ranks_per_node=1, cwd=ROOT, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads((tmp_path / "run" / "summary.json").read_text())["plan"]
    links = plan["links"]
    assert links["nodes"] == 2 and links["ranks_per_node"] == 1 and links["intra"] is None
    assert 0.1e9 / 8 < links["inter"]["bandwidth"] < 8e9 / 8, links  # between 0.1 and 8 Gbit/s
    assert plan["strategy"] in ("allreduce", "ring")
    assert any("hierarchical not probed: one rank a node" in line for line in plan["why"]), plan["why"]
    assert any(line.startswith("links: 2 node(s)") for line in plan["why"]), plan["why"]


# ------------------------------------------------------------------ faults across nodes
def _start_long_fit(c, data, tmp_path, n, per_node, *extra):
    job = tmp_path / "job.toml"
    job.write_text("")
    overrides = [f"data.train={data / 'dense'}", *SGD, "optimizer.epochs=60", "optimizer.lr=0.001", *extra]
    command = [sys.executable, "-m", "mpireg.train", job, "--run-dir", tmp_path / "run", *_sets(overrides)]
    proc = c.start_ranks(n, command, ranks_per_node=per_node, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not any((tmp_path / "run" / "checkpoints").glob("ckpt-*.h5")):  # an epoch has ended
        assert proc.poll() is None and time.monotonic() < deadline, "the fit ended or stalled before its first checkpoint"
        time.sleep(0.05)
    return job, overrides, proc


def _ends_within(c, proc, start, limit):
    """mpiexec returns, and no process is left in any node, within `limit` s of `start`."""
    try:
        out, err = proc.communicate(timeout=max(1.0, start + limit - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"mpiexec still running {limit} s after the fault; left: {c.processes()}")
    while c.processes() and time.monotonic() < start + limit:
        time.sleep(0.2)
    assert not c.processes(), f"orphans {limit} s after the fault: {c.processes()}"
    assert proc.returncode != 0
    return err


def test_a_cut_link_ends_every_rank_on_both_sides_and_the_rest_resumes(data, tmp_path):
    with EmulatedCluster(nodes=2, rate="1gbit") as c:
        job, overrides, proc = _start_long_fit(c, data, tmp_path, 2, 1, "run.watchdog_seconds=10")
        cut = time.monotonic()
        c.cut(1)
        err = _ends_within(c, proc, cut, 40)
        assert "watchdog: no progress" in err and "rank(s) [1] did not arrive" in err, err
        again = c.run(1, [sys.executable, "-m", "mpireg.train", job, "--run-dir", tmp_path / "run", "--resume",
                          *_sets(overrides)], cwd=ROOT, timeout=180)
    assert again.returncode == 0 and "resumed from" in again.stdout + again.stderr, again.stderr[-2000:]
    assert (tmp_path / "run" / "summary.json").exists()


def test_a_lost_node_ends_the_job_and_the_other_node_resumes(data, tmp_path):
    """Every rank of one node killed: hydra ends the others at once (its own lines say a process
    terminated badly; the survivors are killed before they could speak)."""
    with EmulatedCluster(nodes=2, rate="1gbit") as c:
        job, overrides, proc = _start_long_fit(c, data, tmp_path, 4, 2)
        lost = time.monotonic()
        for pid in c.processes(node=1, matching="mpireg.train"):
            os.kill(pid, signal.SIGKILL)
        err = _ends_within(c, proc, lost, 30)
        assert "[mpiexec@" in err or "[proxy:" in err, err  # hydra's lines (their wording varies)
        again = c.run(2, [sys.executable, "-m", "mpireg.train", job, "--run-dir", tmp_path / "run", "--resume",
                          *_sets(overrides)], ranks_per_node=2, cwd=ROOT, timeout=180)
    assert again.returncode == 0 and "resumed from" in again.stdout + again.stderr, again.stderr[-2000:]


def test_auto_compression_takes_bf16_across_a_slow_link_and_none_on_one_node(cluster, data, tmp_path):
    """comm.compression = "auto": 16-bit words where the measured link between nodes is slow
    against a step's bytes (here ~1-4 Gbit/s, a 115 KB step), none on one node; the compressed
    model's loss within 1 % of the uncompressed one (as the fixed bf16 setting is tested)."""
    job = tmp_path / "job.toml"
    job.write_text("")
    overrides = [f"data.train={data / 'logistic'}", *SGD, "model.kind=mlp", "model.hidden=[2048]",
                 "data.dtype=float32", "comm.compression=auto"]
    here = _train_locally(2, job, tmp_path / "one-node", overrides)
    result = cluster.run(2, [sys.executable, "-m", "mpireg.train", job, "--run-dir", tmp_path / "nodes",
                             *_sets(overrides)], ranks_per_node=1, cwd=ROOT, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = (json.loads((d / "summary.json").read_text()) for d in (here, tmp_path / "nodes"))
    assert one["compression"] == "none" and two["compression"] == "bf16", (one["plan"]["why"], two["plan"]["why"])
    assert any("comm.compression = auto: bf16" in line for line in two["plan"]["why"])
    assert two["train"]["loss"] == pytest.approx(one["train"]["loss"], rel=0.01)


def test_a_lost_node_is_named_when_hydra_leaves_the_survivors_to_mpireg(data, tmp_path):
    """`mpiexec -disable-auto-cleanup` (hydra's option, docs/operations.md): hydra does not kill
    the other node's ranks when a node is lost, so mpireg's watchdog says which node went and
    ends the job (every rank, mpiexec) within 40 s of the loss."""
    with EmulatedCluster(nodes=2, rate="1gbit") as c:
        job = tmp_path / "job.toml"
        job.write_text("")
        overrides = [f"data.train={data / 'dense'}", *SGD, "optimizer.epochs=60", "optimizer.lr=0.001",
                     "run.watchdog_seconds=10"]
        command = [sys.executable, "-m", "mpireg.train", job, "--run-dir", tmp_path / "run", *_sets(overrides)]
        proc = c.start_ranks(4, command, ranks_per_node=2, cwd=ROOT, options=["-disable-auto-cleanup"])
        deadline = time.monotonic() + 60
        while not any((tmp_path / "run" / "checkpoints").glob("ckpt-*.h5")):
            assert proc.poll() is None and time.monotonic() < deadline, "the fit ended or stalled before its first checkpoint"
            time.sleep(0.05)
        lost = time.monotonic()
        for pid in c.processes(node=1, matching="mpireg.train"):
            os.kill(pid, signal.SIGKILL)
        err = _ends_within(c, proc, lost, 40)
        assert "node 1 (host" in err and "ranks [2, 3]) lost" in err, err
