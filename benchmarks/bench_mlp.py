"""The MLP step: mpireg against PyTorch DDP (gloo), 2 processes, same data, network and batch.

    python benchmarks/bench_mlp.py [--rows 30000] [--features 784] [--batch 128] [--epochs 2]

MNIST-size synthetic data (784 features, 10 classes, float32 shards from `mpireg.data synth`),
the seeds' network (784-128-10, ReLU, softmax), plain SGD, `--batch` rows per rank per step.
Both sides run one BLAS/intra-op thread per process (2 processes on the 2 cores). Printed side by
side: training samples/s (the step loop only), the whole command's wall time, and mpireg's
per-step compute, communication and exposed communication (what the step still waits for after
its computation) with one gradient bucket (no overlap) and with 256 KiB and 64 KiB buckets that
start reducing while back-propagation goes on (overlap). Loss: the training loss over all rows
after the last epoch, both sides.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mpi_launch import ROOT, mpiexec

TORCH_WORKER = r'''
import os, sys, time, h5py, glob, numpy as np, torch, torch.distributed as dist
from torch import nn
rank, size = int(sys.argv[1]), int(sys.argv[2]); data, batch, epochs = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[6])
dist.init_process_group("gloo", rank=rank, world_size=size)
files = sorted(glob.glob(f"{data}/*.h5"))
X = np.concatenate([h5py.File(f)["X"][()] for f in files]); y = np.concatenate([h5py.File(f)["y"][()] for f in files])
lo, hi = rank * len(y) // size, (rank + 1) * len(y) // size
X, y = torch.from_numpy(X[lo:hi]), torch.from_numpy(y[lo:hi].astype(np.int64))
torch.manual_seed(0)
model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(X.shape[1], 128), nn.ReLU(), nn.Linear(128, int(y.max()) + 1)))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = nn.CrossEntropyLoss()
steps = len(y) // batch
dist.barrier(); start = time.perf_counter()
for epoch in range(epochs):
    order = torch.randperm(len(y))
    for i in range(steps):
        rows = order[i * batch:(i + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X[rows]), y[rows]); loss.backward(); opt.step()
dist.barrier(); elapsed = time.perf_counter() - start
with torch.no_grad():  # the training loss over every row, as mpireg reports it
    total = torch.tensor([float(nn.functional.cross_entropy(model(X), y, reduction="sum")), float(len(y))])
dist.all_reduce(total)
if rank == 0:
    print("RESULT", steps * epochs * batch * size / elapsed, float(total[0] / total[1]))
dist.destroy_process_group()
'''


BUCKETS = (64 * 2**20, 256 * 2**10, 64 * 2**10)  # fusion_bytes: one bucket (402 KB), 2, 7


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MiB" if nbytes >= 2**20 else f"{nbytes >> 10} KiB"


def make_data(root: Path, rows: int, features: int) -> Path:
    out = root / "mnist-size"
    subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", "softmax", "--rows", str(rows),
                    "--features", str(features), "--classes", "10", "--shards", "2", "--test-rows", "0",
                    "--out", str(out)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def run_mpireg(data: Path, root: Path, args, fusion_bytes: int) -> dict:
    run_dir = root / f"run-{fusion_bytes}"
    job = root / "job.toml"
    job.write_text("")
    sets = [f"data.train={data}", "model.kind=mlp", "model.hidden=[128]", "optimizer.kind=sgd",
            "optimizer.lr=0.01", f"optimizer.epochs={args.epochs}", f"optimizer.batch_size={args.batch}",
            "optimizer.tol=0", f"comm.fusion_bytes={fusion_bytes}", "run.progress=false", "run.log_every=20"]
    cmd = mpiexec(2) + [sys.executable, "-m", "mpireg.train", str(job), "--run-dir", str(run_dir)]
    for item in sets:
        cmd += ["--set", item]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads((run_dir / "summary.json").read_text())
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["type"] == "step"][1:]  # the first window holds the warm-up
    mean = lambda key: sum(s[key] for s in steps) / len(steps)  # noqa: E731
    return dict(samples_per_s=summary["samples_per_s"], wall_s=wall, loss=summary["train"]["loss"],
                compute_ms=mean("compute_ms"), comm_ms=mean("comm_ms"), exposed_ms=mean("exposed_comm_ms"))


def run_torch(data: Path, root: Path, args) -> dict | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch not installed (pip install torch==2.13.0): DDP row skipped")
        return None
    script = root / "ddp_worker.py"
    script.write_text(TORCH_WORKER)
    port = str(29500 + os.getpid() % 1000)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", str(data), str(args.batch),
                               str(args.epochs), port], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1")) for r in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    wall = time.perf_counter() - start
    line = next(l for l in outs[0].splitlines() if l.startswith("RESULT"))
    rate, loss = map(float, line.split()[1:])
    return dict(samples_per_s=rate, wall_s=wall, loss=loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, args.rows, args.features)
        runs = [(f"mpireg, {_size(b)} buckets" + (" (no overlap)" if b >= 2**26 else ""),
                 run_mpireg(data, root, args, b)) for b in BUCKETS]
        ddp = run_torch(data, root, args)
    print(f"\nMLP {args.features}-128-10, {args.rows} rows, batch {args.batch} per rank, 2 ranks, "
          f"{args.epochs} epochs, SGD lr 0.01, 1 thread per rank")
    print(f"{'':34}{'samples/s':>12}{'whole s':>10}{'loss':>9}{'compute ms':>12}{'comm ms':>10}{'exposed ms':>12}")
    for name, r in runs:
        print(f"{name:34}{r['samples_per_s']:12.0f}{r['wall_s']:10.2f}{r['loss']:9.4f}{r['compute_ms']:12.3f}"
              f"{r['comm_ms']:10.3f}{r['exposed_ms']:12.3f}")
    if ddp:
        print(f"{'PyTorch DDP (gloo)':34}{ddp['samples_per_s']:12.0f}{ddp['wall_s']:10.2f}{ddp['loss']:9.4f}")
        best = max(r["samples_per_s"] for _, r in runs)
        print(f"\nmpireg / DDP samples/s: {best / ddp['samples_per_s']:.2f}x")


if __name__ == "__main__":
    main()
