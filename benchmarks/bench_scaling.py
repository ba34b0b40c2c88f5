"""Weak and strong scaling of the real training loop, p = 1, 2, 4, 8, one run.

Workload: logistic regression, --features features, float32, mini-batch SGD, the default
allreduce strategy (or --strategy), one epoch, steady-state steps only (between two metrics
records: no start-up, no epoch-end evaluation or checkpoint).
    weak     --rows-per-rank rows and --batch rows per step on every rank: ideal = same step time
             efficiency = step time(1) / step time(p)
    strong   --rows-per-rank x 2 rows in all and a global batch of 2 x --batch, split over p
             ranks: ideal = p times the throughput; efficiency = rows/s(p) / (p rows/s(1))
Columns are mpireg's own per-step timings (ms): batch = gathering the step's rows, compute =
the gradient, comm = the reduction, wait = the sampled time a rank waits for the slowest before
it; comm % is comm's share of the step. Ranks beyond the
machine's cores are oversubscribed: the table marks them.

    python benchmarks/bench_scaling.py [--ranks 1,2,4,8] [--rows-per-rank 400000] [--batch 4096]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mpi_launch import mpiexec


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", default="1,2,4,8")
    p.add_argument("--rows-per-rank", type=int, default=400_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--strategy", default="allreduce")
    return p.parse_args()


def run(data_dir, run_dir, ranks, batch, strategy):
    job = [f"data.train={data_dir}", "model.kind=logistic", "optimizer.kind=sgd", "optimizer.lr=0.5",
           f"optimizer.batch_size={batch}", "optimizer.epochs=1", f"comm.strategy={strategy}",
           "run.progress=false", "run.log_every=10", "data.dtype=float32", "name=scaling"]
    job_file = run_dir.with_suffix(".toml")
    job_file.write_text("# every key comes from --set\n")
    command = [*mpiexec(ranks), sys.executable, "-m", "mpireg.train", str(job_file), "--run-dir",
               str(run_dir)]
    for item in job:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode:
        sys.exit(f"{' '.join(command)}\n{done.stderr}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "step"][1:]  # the first window holds warm-up
    if len(steps) < 2:  # steady state needs two windows of 10 steps after the warm-up one
        sys.exit(f"p = {ranks}: {len(steps) + 1} metrics windows of 10 steps; give --rows-per-rank at least "
                 f"{30 * batch} rows (30 steps of --batch {batch})")
    first, last = steps[0], steps[-1]
    n = last["step"] - first["step"]
    step_ms = 1e3 * (last["time_s"] - first["time_s"]) / n
    mean = lambda key: sum(r[key] for r in steps[1:]) / len(steps[1:])  # noqa: E731
    return {"step_ms": step_ms, "comm_ms": mean("comm_ms"), "wait_ms": mean("wait_ms"), "read_ms": mean("read_ms"),
            "compute_ms": mean("compute_ms"), "rows_s": batch * ranks / (step_ms / 1e3)}


def table(title, rows, base, efficiency):
    cores = os.cpu_count()
    print(f"\n{title}")
    print(f"  {'p':>3} {'rows/rank':>10} {'batch/rank':>10} {'step ms':>8} {'batch':>6} {'compute':>8} {'comm':>7} "
          f"{'wait':>6} {'comm %':>7} {'rows/s':>11} {'efficiency':>10}")
    for p, rows_per_rank, batch, r in rows:
        note = "  oversubscribed" if p > cores else ""
        print(f"  {p:3} {rows_per_rank:10,} {batch:10,} {r['step_ms']:8.2f} {r['read_ms']:6.2f} {r['compute_ms']:8.2f} "
              f"{r['comm_ms']:7.2f} {r['wait_ms']:6.2f} {100 * r['comm_ms'] / r['step_ms']:6.1f}% "
              f"{r['rows_s']:11,.0f} {efficiency(p, r, base):9.0%}{note}")


def main():
    args = parse()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mpireg.convert.synth import synthesize

    ranks = [int(p) for p in args.ranks.split(",")]
    with tempfile.TemporaryDirectory(prefix="mpireg-scaling-") as tmp:
        tmp = Path(tmp)
        weak, strong = [], []
        for p in ranks:
            data = tmp / f"weak-{p}"
            synthesize("logistic", args.rows_per_rank * p, args.features, data, shards=p, dtype="float32")
            weak.append((p, args.rows_per_rank, args.batch, run(data, tmp / f"run-weak-{p}", p, args.batch,
                                                                  args.strategy)))
        total_rows, global_batch = 2 * args.rows_per_rank, 2 * args.batch
        data = tmp / "strong"
        synthesize("logistic", total_rows, args.features, data, shards=max(ranks), dtype="float32")
        for p in ranks:
            strong.append((p, total_rows // p, global_batch // p,
                           run(data, tmp / f"run-strong-{p}", p, global_batch // p, args.strategy)))
    print(f"logistic, {args.features} features, float32, SGD, strategy {args.strategy}; "
          f"{os.cpu_count()} cores on this machine")
    table("weak scaling (fixed work per rank)", weak, weak[0][3],
          lambda p, r, b: b["step_ms"] / r["step_ms"])
    table("strong scaling (fixed total work)", strong, strong[0][3],
          lambda p, r, b: r["rows_s"] / (p * b["rows_s"]))


if __name__ == "__main__":
    main()
