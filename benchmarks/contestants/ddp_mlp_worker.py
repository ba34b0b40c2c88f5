"""PyTorch DDP (gloo) training the MLP 784-H-10 as bench_multinode_mlp.py runs mpireg's: one
process a node, `steps` steps of `batch` rows a rank, plain SGD, one intra-op thread.

    python ddp_mlp_worker.py RANK SIZE DATA HIDDEN STEPS BATCH MASTER_ADDR PORT IFACE

Prints (rank 0) "RESULT train_s compute_s loss": the DDP step loop's seconds; the same steps
without DDP (the computation alone, timed first on the same rows after one untimed round); the
training loss after.
DDP's defaults otherwise (25 MB buckets: one bucket for these models, gradients reduced as
back-propagation hands them over)."""
import glob
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.distributed as dist
from torch import nn

rank, size, data, hidden, steps, batch, addr, port, iface = sys.argv[1:10]
rank, size, hidden, steps, batch = int(rank), int(size), int(hidden), int(steps), int(batch)
torch.set_num_threads(1)
os.environ.update(MASTER_ADDR=addr, MASTER_PORT=port, GLOO_SOCKET_IFNAME=iface)
files = sorted(glob.glob(f"{data}/*.h5"))
X = np.concatenate([h5py.File(f)["X"][()] for f in files])
y = np.concatenate([h5py.File(f)["y"][()] for f in files])
lo, hi = rank * len(y) // size, (rank + 1) * len(y) // size
X, y = torch.from_numpy(X[lo:hi]), torch.from_numpy(y[lo:hi].astype(np.int64))
loss_fn = nn.CrossEntropyLoss()


def network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, int(y.max()) + 1))


def loop(model, opt):
    for i in range(steps):
        rows = slice(i * batch, (i + 1) * batch)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(X[rows]), y[rows]).backward()
        opt.step()


alone = network()
loop(alone, torch.optim.SGD(alone.parameters(), lr=0.01))  # warm-up: first-call allocations and kernels
start = time.perf_counter()
loop(alone, torch.optim.SGD(alone.parameters(), lr=0.01))
compute = time.perf_counter() - start
dist.init_process_group("gloo", rank=rank, world_size=size)
model = nn.parallel.DistributedDataParallel(network())
dist.barrier()
start = time.perf_counter()
loop(model, torch.optim.SGD(model.parameters(), lr=0.01))
dist.barrier()
train = time.perf_counter() - start
with torch.no_grad():
    total = torch.tensor([float(nn.functional.cross_entropy(model(X), y, reduction="sum")), float(len(y))])
dist.all_reduce(total)
if rank == 0:
    print("RESULT", train, compute, float(total[0] / total[1]), flush=True)
dist.destroy_process_group()
