"""End to end: samples/s of one job under each strategy and compression at several rank counts,
and the cost of deterministic mode, measured side by side in one run (training time only, from
each run's summary.json; data loading and start-up excluded).

    python benchmarks/bench_strategies.py [--rows 200000] [--features 100] [--ranks 2,4,8]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mpi_launch import mpiexec

ROOT = Path(__file__).resolve().parents[1]


def best_rate(repeats, ranks, data, run_dir, overrides):
    """Best samples/s of several runs: short runs on a shared 2-core machine are noisy."""
    return max(run(ranks, data, f"{run_dir}-{i}", overrides)["samples_per_s"] for i in range(repeats))


def run(ranks, data, run_dir, overrides):
    job = Path(run_dir).with_suffix(".toml")
    job.write_text("")
    cmd = [*mpiexec(ranks), sys.executable, "-m",
           "mpireg.train", str(job), "--run-dir", str(run_dir)]
    for item in [f"data.train={data}", "run.progress=false", *overrides]:
        cmd += ["--set", item]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=dict(os.environ, CI="1"))
    return json.loads((Path(run_dir) / "summary.json").read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--ranks", default="2,4,8")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs per cell")
    args = p.parse_args()
    ranks = [int(r) for r in args.ranks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", "softmax", "--rows",
                        str(args.rows), "--features", str(args.features), "--classes", str(args.classes),
                        "--shards", "4", "--test-rows", "0", "--out", str(data)], check=True, cwd=ROOT,
                       capture_output=True)
        common = ["model.kind=softmax", "optimizer.kind=sgd", "optimizer.lr=0.1", "optimizer.momentum=0.9",
                  f"optimizer.epochs={args.epochs}", f"optimizer.batch_size={args.batch}", "optimizer.tol=0"]
        print(f"softmax, {args.rows:,} x {args.features} float32, {args.classes} classes "
              f"({(args.features + 1) * args.classes} parameters), batch {args.batch} per rank, "
              f"{args.epochs} epochs; best of {args.repeats}; {os.cpu_count()} cores (more ranks are "
              f"oversubscribed)")
        print(f"{'strategy':>10} {'wire':>5} | " + " | ".join(f"p={r:<2} samples/s" for r in ranks))
        i = 0
        for strategy in ("allreduce", "ring", "ps", "ps-async"):
            for compression in ("none", "fp16", "bf16"):
                cells = []
                for r in ranks:
                    i += 1
                    rate = best_rate(args.repeats, r, data, Path(tmp) / f"r{i}",
                                     common + [f"comm.strategy={strategy}", f"comm.compression={compression}"])
                    cells.append(f"{rate:14,.0f}")
                print(f"{strategy:>10} {compression:>5} | " + " | ".join(cells), flush=True)
        print("\ndeterministic mode (batch_size is global there: the same rows per step as above)")
        print(f"{'strategy':>10} {'mode':>13} | " + " | ".join(f"p={r:<2} samples/s" for r in ranks))
        for strategy in ("allreduce", "ring", "ps"):
            for deterministic in (False, True):
                cells = []
                for r in ranks:
                    i += 1
                    batch = args.batch * r if deterministic else args.batch
                    rate = best_rate(args.repeats, r, data, Path(tmp) / f"r{i}", common + [
                        f"comm.strategy={strategy}", f"comm.deterministic={str(deterministic).lower()}",
                        f"optimizer.batch_size={batch}"])
                    cells.append(f"{rate:14,.0f}")
                mode = "deterministic" if deterministic else "default"
                print(f"{strategy:>10} {mode:>13} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
