"""Framework overhead per step: what mpireg adds beyond the gradient arithmetic and the wire.

On a tiny model (linear, --features features, --batch rows per rank per step) three things are
timed on every rank, median per step:
    gradient   model.loss_grad_sum on one batch
    wire       comm.Allreduce of the step buffer alone
    floor      a hand-written loop: batch slice, gradient, Allreduce, SGD update (NumPy + mpi4py)
    mpireg     the real training loop (mpireg.fit), steady-state steps between two log records
overhead = step - gradient - wire, for the floor and for mpireg. mpireg's extra over the floor
pays for: the epoch plan's row gather, stop and checkpoint votes in the reduced tail, timing,
the watchdog's bookkeeping and the sampled wait barrier.

    python benchmarks/bench_overhead.py [--ranks 2] [--steps 3000] [--features 8] [--batch 16]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mpi_launch import mpiexec, run_worker

ROOT = Path(__file__).resolve().parents[1]


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="job overrides for the mpireg loop, e.g. --set run.watchdog_seconds=0")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def median_per_step(fn, steps, comm):
    times = []
    comm.Barrier()
    for i in range(steps):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return float(sorted(times)[len(times) // 2])


def worker(args):
    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, str(ROOT))
    from mpireg import log
    from mpireg.config import load_job
    from mpireg.convert.synth import synthesize
    from mpireg.fit import train
    from mpireg.models import make_model

    comm = MPI.COMM_WORLD
    log.set_rank(comm.rank)
    rows = args.batch * args.steps * comm.size
    data_dir = Path(args.dir) / "data"
    if comm.rank == 0:
        synthesize("linear", rows, args.features, data_dir, shards=comm.size)
    comm.Barrier()

    # The parts and the hand-written floor, on this rank's share of rows.
    rng = np.random.default_rng(comm.rank)
    X = rng.standard_normal((rows // comm.size, args.features))
    y = rng.standard_normal(rows // comm.size)
    model = make_model("linear", args.features)
    params = model.init_params(np.float64)
    n = model.layout.size
    buffer = np.zeros(n + 4)
    batch = lambda i: slice(i * args.batch, (i + 1) * args.batch)  # noqa: E731

    def gradient(i):
        s = batch(i)
        buffer[n] = model.loss_grad_sum(params, X[s], y[s], buffer[:n])

    def wire(i):
        comm.Allreduce(MPI.IN_PLACE, buffer)

    def floor(i):
        gradient(i)
        buffer[n + 1] = args.batch
        comm.Allreduce(MPI.IN_PLACE, buffer)
        params[:] -= 0.01 * buffer[:n] / buffer[n + 1]

    parts = {name: median_per_step(fn, args.steps, comm) for name, fn in
             (("gradient", gradient), ("wire", wire), ("floor", floor))}

    # The real loop: one epoch of args.steps steps per rank, six step records.
    run_dir = Path(args.dir) / "run"
    cfg = load_job(None, [f"data.train={data_dir}", "model.kind=linear", "optimizer.kind=sgd",
                          "optimizer.lr=0.01", f"optimizer.batch_size={args.batch}", "optimizer.epochs=1",
                          "data.dtype=float64", "run.progress=false", f"run.log_every={max(1, args.steps // 6)}",
                          *args.overrides])
    train(cfg, comm, run_dir)
    if comm.rank == 0:
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in records if r["type"] == "step"]
        first, last = steps[0], steps[-1]
        parts["mpireg"] = (last["time_s"] - first["time_s"]) / (last["step"] - first["step"])
        print(json.dumps(parts))


def main():
    args = parse()
    if args.worker:  # under mpiexec
        run_worker(lambda: worker(args))
    with tempfile.TemporaryDirectory(prefix="mpireg-overhead-") as tmp:
        command = [*mpiexec(args.ranks), sys.executable, __file__, "--worker", "--dir", tmp,
                   "--steps", str(args.steps), "--features", str(args.features), "--batch", str(args.batch)]
        for item in args.overrides:
            command += ["--set", item]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode:
        sys.exit(out.stderr)
    parts = json.loads(out.stdout.strip().splitlines()[-1])
    us = {k: v * 1e6 for k, v in parts.items()}
    print(f"per-step time, linear model with {args.features} features, {args.batch} rows per rank, "
          f"p = {args.ranks} (median over {args.steps} steps; mpireg: mean of steady-state steps)")
    print(f"  gradient arithmetic      {us['gradient']:8.1f} us")
    print(f"  wire (Allreduce alone)   {us['wire']:8.1f} us")
    for name in ("floor", "mpireg"):
        label = "hand-written loop" if name == "floor" else "mpireg training loop"
        print(f"  {label:24} {us[name]:8.1f} us   overhead {us[name] - us['gradient'] - us['wire']:7.1f} us")
    print(f"  mpireg over the hand-written loop: {us['mpireg'] - us['floor']:+.1f} us per step")


if __name__ == "__main__":
    main()
