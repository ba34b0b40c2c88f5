"""Whole fits across emulated nodes (tests/emulated_cluster.py), the link capped. Needs root.

    python benchmarks/bench_multinode_fits.py [--rate 1gbit] [--sparse-rows 100000] [--lbfgs-rows 1000000]

1. Sparse logistic on 2^22 hashed columns, 2 nodes x 1 rank: the sharded exchange (each step
   pulls and pushes only the columns its batch touches) against the dense allreduce of all
   4 million coefficients: bytes that crossed the link per step and seconds per step.
2. L-BFGS logistic, 1M x 100 float32, on 1, 2 and 4 nodes x 1 rank: seconds per pass over the
   data (one gradient evaluation and one allreduce) and the share of the fit spent communicating.
One BLAS thread a rank; the nodes share this machine's two cores, so 4 nodes x 1 rank
oversubscribes it (their computation does not speed up; the link share is what to read).
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fit(cluster, n, job, run_dir, sets):
    before = cluster.link_bytes()
    out = cluster.run(n, [sys.executable, "-m", "mpireg.train", job, "--run-dir", run_dir,
                          *[a for s in ["run.progress=false", *sets] for a in ("--set", s)]],
                      ranks_per_node=1, cwd=ROOT, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads((Path(run_dir) / "summary.json").read_text()), cluster.link_bytes() - before, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", default="1gbit")
    p.add_argument("--sparse-rows", type=int, default=100_000)
    p.add_argument("--lbfgs-rows", type=int, default=1_000_000)
    p.add_argument("--nodes", default="1,2,4")
    args = p.parse_args()

    from mpireg.convert.synth import synthesize, synthesize_sparse
    from tests.emulated_cluster import EmulatedCluster

    work = Path(tempfile.mkdtemp(prefix="bench-fits-"))
    (work / "job.toml").write_text("")
    synthesize_sparse("logistic", args.sparse_rows, 22, 39, work / "sparse", 2, 2, 0, 0.1, 0, "float32")
    synthesize("logistic", rows=args.lbfgs_rows, features=100, out=work / "dense", shards=4, classes=2,
               test_rows=0, noise=0.1, seed=0, dtype="float32")

    print(f"1. sparse logistic, {args.sparse_rows} rows x 2^22 columns, 39 entries a row, SGD batch 256, "
          f"2 nodes x 1 rank, {args.rate} link")
    print(f"{'exchange':<10} {'steps':>6} {'s/step':>9} {'bytes/step crossed':>19}")
    with EmulatedCluster(nodes=2, rate=args.rate) as cluster:
        for strategy in ("sharded", "allreduce"):
            s, crossed, _ = fit(cluster, 2, work / "job.toml", work / f"sparse-{strategy}",
                                [f"data.train={work / 'sparse'}", "model.kind=logistic", "optimizer.kind=sgd",
                                 "optimizer.lr=0.1", "optimizer.batch_size=256", "optimizer.epochs=1",
                                 "optimizer.tol=0", f"comm.strategy={strategy}"])
            print(f"{strategy:<10} {s['steps']:>6} {s['train_s'] / s['steps'] * 1e3:8.2f}ms {crossed / s['steps']:>19,.0f}",
                  flush=True)

    print(f"\n2. L-BFGS logistic, {args.lbfgs_rows} x 100 float32, N nodes x 1 rank, {args.rate} link")
    print(f"{'nodes':>5} {'passes':>6} {'s/pass':>8} {'comm share':>10} {'train s':>8}")
    for nodes in map(int, args.nodes.split(",")):
        with EmulatedCluster(nodes=nodes, rate=args.rate) as cluster:
            s, crossed, out = fit(cluster, nodes, work / "job.toml", work / f"lbfgs-{nodes}",
                                  [f"data.train={work / 'dense'}", "model.kind=logistic", "optimizer.kind=lbfgs",
                                   "optimizer.max_iter=30", "optimizer.tol=0", "model.l2=1e-6"])
            passes = next((int(w) for line in out.stdout.splitlines() if line.startswith("lbfgs:")
                           for w, nxt in zip(line.split(), line.split()[1:]) if nxt == "passes"), s["steps"])
            print(f"{nodes:>5} {passes:>6} {s['train_s'] / passes:8.3f} "
                  f"{s['time_comm_s'] / max(s['train_s'], 1e-9):10.2f} {s['train_s']:8.2f}", flush=True)


if __name__ == "__main__":
    main()
