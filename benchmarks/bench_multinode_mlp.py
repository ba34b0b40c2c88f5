"""The MLP across two emulated nodes (one rank each, tests/emulated_cluster.py), the link capped:
is a training step bound by the larger of its computation and its communication, or by their
sum? Needs root.

    python benchmarks/bench_multinode_mlp.py [--rates 1gbit,4gbit] [--hidden 512,128]

Per run (one epoch of 157 steps of 128 rows a rank, the issue's set-up, whole command):
  train      the fit's seconds (summary.json train_s)
  compute    rank 0's seconds computing gradients (time_compute_s; in slabs, for buckets, it
             costs more than in one piece)
  link       the link time of the gradients an allreduce must move: steps x 2 n (N-1)/N / cap
  bound      train / max(computation in one piece (the one-bucket run's), link): 1.0 is perfect
             overlap; no-ovl = (that computation + link) / the same max, what no overlap gives
  crossed    bytes that left the nodes over the whole command (start-up measurement and probe
             included) against steps x 2 n (N-1)
PyTorch DDP (gloo, its defaults: contestants/ddp_mlp_worker.py) trains the same network on the
same rows across the same nodes where torch is installed (pip install torch==2.13.0); its
`compute` is its own step loop without DDP, timed in the same process first, and its bound is
against the larger of that and the link.
"""
import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATES = {"1gbit": 1e9 / 8, "4gbit": 4e9 / 8}
SETTINGS = {  # name -> (job overrides, environment)
    "one bucket": (["comm.fusion_bytes=67108864"], {}),
    "256 KiB buckets": (["comm.fusion_bytes=262144"], {}),
    "256K + progress": (["comm.fusion_bytes=262144"], {"MPIR_CVAR_ASYNC_PROGRESS": "1"}),  # MPICH's thread
    "auto": (["comm.strategy=auto"], {}),
    "auto, bf16 auto": (["comm.strategy=auto", "comm.compression=auto", "data.dtype=float32"], {}),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="1gbit,4gbit")
    p.add_argument("--hidden", default="512,128", help="hidden widths to run, each a model 784-H-10")
    p.add_argument("--steps", type=int, default=157)
    args = p.parse_args()

    from mpireg.convert.synth import synthesize
    from tests.emulated_cluster import EmulatedCluster

    work = Path(tempfile.mkdtemp(prefix="bench-mlp-"))
    rows = 2 * args.steps * 128
    synthesize("softmax", rows=rows, features=784, out=work / "data", shards=2, classes=10, test_rows=0,
               noise=0.1, seed=0, dtype="float32")
    (work / "job.toml").write_text("")
    print(f"MLP 784-H-10, 2 nodes x 1 rank, {args.steps} steps of 128 rows a rank, float32, one BLAS thread a rank")
    print(f"{'rate':>6} {'H':>4} {'setting':<16} {'strategy':<10} {'train s':>8} {'compute':>8} {'link':>7} "
          f"{'bound':>6} {'no-ovl':>6} {'crossed':>8}")
    for rate in args.rates.split(","):
        cap = RATES[rate]
        with EmulatedCluster(nodes=2, rate=rate) as cluster:
            for hidden in map(int, args.hidden.split(",")):
                n = (784 * hidden + hidden + hidden * 10 + 10) * 4
                whole = None  # the computation in one piece: the one-bucket run's
                for name, (extra, env) in SETTINGS.items():
                    run_dir = work / f"run-{rate}-{hidden}-{name.replace(' ', '_')}"
                    sets = [f"data.train={work / 'data'}", "model.kind=mlp", f"model.hidden=[{hidden}]",
                            "optimizer.kind=sgd", "optimizer.lr=0.01", "optimizer.batch_size=128",
                            "optimizer.epochs=1", "optimizer.tol=0", "run.progress=false", *extra]
                    before = cluster.link_bytes()
                    t = time.time()
                    out = cluster.run(2, [sys.executable, "-m", "mpireg.train", work / "job.toml", "--run-dir", run_dir,
                                          *[a for s in sets for a in ("--set", s)]], ranks_per_node=1, cwd=ROOT,
                                      env=env, timeout=600)
                    if out.returncode != 0:
                        raise SystemExit(out.stderr[-3000:])
                    crossed = cluster.link_bytes() - before
                    s = json.loads((run_dir / "summary.json").read_text())
                    steps = s["steps"]
                    link = steps * n * 2 * (2 - 1) / 2 / cap
                    compute = s["time_compute_s"]
                    whole = compute if whole is None else whole
                    bound = s["train_s"] / max(whole, link)
                    print(f"{rate:>6} {hidden:>4} {name:<16} {s['strategy']:<10} {s['train_s']:8.3f} {compute:8.3f} "
                          f"{link:7.3f} {bound:6.2f} {(whole + link) / max(whole, link):6.2f} "
                          f"{crossed / (steps * 2 * n):8.2f}   ({time.time() - t:.1f} s whole command)", flush=True)
                if importlib.util.find_spec("torch") is not None:
                    ddp(cluster, work / "data", hidden, args.steps, rate, cap, n)


def ddp(cluster, data, hidden: int, steps: int, rate: str, cap: float, n: int) -> None:
    """PyTorch DDP's row: one worker a node, entered as hydra's launcher enters them."""
    from tests.emulated_cluster import IFACE, NETNS

    worker = Path(__file__).resolve().parent / "contestants" / "ddp_mlp_worker.py"
    before, t = cluster.link_bytes(), time.time()
    procs = [subprocess.Popen(["nsenter", f"--net={NETNS / node}", sys.executable, str(worker), str(r), "2",
                               str(data), str(hidden), str(steps), "128", cluster.addresses[0], "29512", IFACE],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=cluster.env({"OMP_NUM_THREADS": "1"}))
             for r, node in enumerate(cluster.nodes[:2])]
    outs = [p.communicate(timeout=600) for p in procs]
    crossed = cluster.link_bytes() - before
    line = next((x for x in outs[0][0].splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"DDP worker failed: {outs[0][1][-2000:]}")
    train, compute, _ = map(float, line.split()[1:])
    link = steps * n * 2 * (2 - 1) / 2 / cap
    print(f"{rate:>6} {hidden:>4} {'PyTorch DDP':<16} {'gloo':<10} {train:8.3f} {compute:8.3f} {link:7.3f} "
          f"{train / max(compute, link):6.2f} {(compute + link) / max(compute, link):6.2f} "
          f"{crossed / (steps * 2 * n):8.2f}   ({time.time() - t:.1f} s whole command)", flush=True)


if __name__ == "__main__":
    main()
