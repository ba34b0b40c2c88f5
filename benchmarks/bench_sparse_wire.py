"""Bytes on the wire per step, dense allreduce against the sharded sparse exchange, as the
hashed dimension grows (--bits 18..24), and what the step costs.

Each size: Criteo-like synthetic rows (`synth --sparse`, --nnz entries a row, power-law
columns), logistic regression, plain SGD with L2 and L1 (the sharded server applies them
lazily), batch --batch rows per rank, --ranks ranks, one epoch, as a user runs it
(`mpiexec ... python -m mpireg.train`). From rank 0's metrics: the mean wire bytes per step
(allreduce: the gradient buffer each rank hands MPI; sharded: the keys, values and gradient
sums rank 0 sends) and the mean step time (read + compute + communicate + update).

    python benchmarks/bench_sparse_wire.py [--bits 18,20,22,24] [--rows 40000] [--batch 256]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mpi_launch import ROOT, mpiexec


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bits", default="18,20,22,24")
    p.add_argument("--rows", type=int, default=40_000)
    p.add_argument("--nnz", type=int, default=39)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--ranks", type=int, default=2)
    return p.parse_args()


def train(data: Path, run_dir: Path, strategy: str, args) -> dict:
    sets = [f"data.train={data}", "model.kind=logistic", "optimizer.kind=sgd", "optimizer.lr=0.05",
            "optimizer.epochs=1", f"optimizer.batch_size={args.batch}", "optimizer.tol=0", "model.l2=1e-6",
            "model.l1=1e-7", "run.log_every=1", "run.progress=false", f"comm.strategy={strategy}"]
    job = run_dir.with_suffix(".toml")
    job.write_text("")
    cmd = mpiexec(args.ranks) + [sys.executable, "-m", "mpireg.train", str(job), "--run-dir", str(run_dir)]
    for item in sets:
        cmd += ["--set", item]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    whole = time.perf_counter() - start
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r["type"] == "step"][1:]  # the first step pays for set-up
    summary = json.loads((run_dir / "summary.json").read_text())
    step_ms = sum(r["read_ms"] + r["compute_ms"] + r["comm_ms"] + r["update_ms"] for r in steps) / len(steps)
    return dict(wire=sum(r["wire_bytes"] for r in steps) / len(steps), step_ms=step_ms, whole=whole,
                loss=summary["train"]["loss"])


def main() -> None:
    args = parse()
    print(f"{args.ranks} ranks, batch {args.batch} rows per rank, {args.nnz} entries a row")
    print(f"{'bits':>4} {'columns':>10} {'strategy':>9} {'wire bytes/step':>16} {'step ms':>8} "
          f"{'whole s':>8} {'train loss':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for bits in map(int, args.bits.split(",")):
            data = root / f"clicks{bits}"
            subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", "logistic", "--sparse",
                            "--rows", str(args.rows), "--hash-bits", str(bits), "--nnz", str(args.nnz),
                            "--shards", str(args.ranks), "--test-rows", "0", "--out", str(data)],
                           check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            results = {s: train(data, root / f"{s}{bits}", s, args) for s in ("allreduce", "sharded")}
            for strategy, r in results.items():
                print(f"{bits:4d} {2**bits:10d} {strategy:>9} {r['wire']:16,.0f} {r['step_ms']:8.2f} "
                      f"{r['whole']:8.2f} {r['loss']:11.6f}", flush=True)
            ratio = results["allreduce"]["wire"] / results["sharded"]["wire"]
            print(f"{'':4} {'':10} {'ratio':>9} {ratio:15.1f}x {results['allreduce']['step_ms'] / results['sharded']['step_ms']:7.1f}x")


if __name__ == "__main__":
    main()
