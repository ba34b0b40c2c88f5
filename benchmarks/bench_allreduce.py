"""Allreduce bandwidth and latency: MPI's own Allreduce, the ring, and the parameter server,
side by side in one run, for message sizes from bytes to hundreds of MiB and several rank counts.

    python benchmarks/bench_allreduce.py [--sizes 8B:256MiB] [--ranks 2,4,8] [--plot allreduce.png]

Definitions (nccl-tests): algbw = bytes / time; busbw = algbw x 2(p-1)/p, the bandwidth each
rank's link carries in a bandwidth-optimal allreduce, comparable across p. The parameter server
moves a worker's buffer up and the parameters down: its busbw uses the same factor so the three
columns compare on one scale. Time is the median over repetitions, float32 buffers.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mpi_launch import mpiexec, run_worker

ROOT = Path(__file__).resolve().parents[1]
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
STRATEGIES = ("allreduce", "ring", "hierarchical", "ps")


def parse_size(text: str) -> int:
    for unit in sorted(UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * UNITS[unit])
    return int(text)


def human(nbytes: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if nbytes >= UNITS[unit]:
            return f"{nbytes / UNITS[unit]:g}{unit}"
    return f"{nbytes}B"


def worker(sizes, budget_s: float) -> None:
    """Runs on every rank under mpiexec; rank 0 prints one JSON line per (strategy, size)."""
    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, str(ROOT))
    from mpireg.config import CommConfig
    from mpireg.fit.topology import EXTRA_SLOTS, make_strategy

    comm = MPI.COMM_WORLD.Dup()
    for name in STRATEGIES:
        reducer, strategy = make_strategy(name, comm, CommConfig(strategy=name))
        for nbytes in sizes:
            count = max(1, nbytes // 4)
            buf = np.ones(count, dtype=np.float32)
            if name == "ps":  # a step moves the gradient entries plus the buffer's tail
                params = np.zeros(max(count - EXTRA_SLOTS, 1), dtype=np.float32)
                strategy.setup(params)
                step_buf = np.ones(params.size + EXTRA_SLOTS, dtype=np.float32)
                tail = np.zeros(EXTRA_SLOTS)
                op = lambda: strategy.step(params, step_buf, lambda p, r: tail)  # noqa: E731
            else:  # the step's own buffer: hierarchical places it in its shared window
                buf = strategy.step_buffer(count, np.float32)
                buf[...] = 1
                op = lambda: reducer.allreduce(buf)  # noqa: E731
            op()
            times, start = [], time.perf_counter()
            while True:
                comm.Barrier()
                t = time.perf_counter()
                op()
                times.append(time.perf_counter() - t)
                # every rank must agree on when to stop, or they would fall out of step
                done = comm.allreduce(int(len(times) >= 5 and time.perf_counter() - start > budget_s
                                          or len(times) >= 1000), op=MPI.MAX)
                if done:
                    break
            elapsed = comm.allreduce(float(np.median(times)), op=MPI.MAX)
            if comm.rank == 0:
                print(json.dumps(dict(strategy=name, p=comm.size, bytes=count * 4, time_s=elapsed)), flush=True)
        strategy.finish()
        reducer.finish()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="8B:256MiB", help="FROM:TO, powers of 4 between, or a list a,b,c")
    p.add_argument("--ranks", default="2,4,8")
    p.add_argument("--budget", type=float, default=0.3, help="seconds of repetitions per point")
    p.add_argument("--plot", default="benchmarks/out/allreduce.png")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if ":" in args.sizes:
        lo, hi = (parse_size(s) for s in args.sizes.split(":"))
        sizes = []
        while lo <= hi:
            sizes.append(lo)
            lo *= 4
        if sizes[-1] != hi:
            sizes.append(hi)  # the end point is always measured
    else:
        sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.worker:  # under mpiexec
        run_worker(lambda: worker(sizes, args.budget))
    rows = []
    for ranks in (int(r) for r in args.ranks.split(",")):
        cmd = [*mpiexec(ranks), sys.executable, __file__,
               "--worker", "--sizes", ",".join(map(str, sizes)), "--budget", str(args.budget)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=dict(os.environ, CI="1"))
        rows += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    print(f"{os.cpu_count()} cores; ranks beyond that are oversubscribed. float32; median time.")
    print(f"{'p':>2} {'size':>8} | " + " | ".join(f"{s:^27}" for s in STRATEGIES) + " | ring/MPI hier/MPI")
    print(f"{'':>2} {'':>8} | " + " | ".join(f"{'lat us':>8} {'algbw':>8} {'busbw':>8}" for _ in STRATEGIES)
          + " | busbw    busbw")
    table = {(r["strategy"], r["p"], r["bytes"]): r for r in rows}
    for ranks in sorted({r["p"] for r in rows}):
        for nbytes in sorted({r["bytes"] for r in rows}):
            cells, bus = [], {}
            for s in STRATEGIES:
                r = table[(s, ranks, nbytes)]
                algbw = nbytes / r["time_s"] / 1e9
                bus[s] = algbw * 2 * (ranks - 1) / ranks
                cells.append(f"{r['time_s'] * 1e6:8.1f} {algbw:8.3f} {bus[s]:8.3f}")
            print(f"{ranks:>2} {human(nbytes):>8} | " + " | ".join(cells)
                  + f" | {bus['ring'] / bus['allreduce']:8.2f} {bus['hierarchical'] / bus['allreduce']:9.2f}")
    print("algbw and busbw in GB/s")
    _plot(rows, args.plot)


def _plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no plot: pip install -e '.[bench]')")
        return
    ranks = sorted({r["p"] for r in rows})
    fig, axes = plt.subplots(1, len(ranks), figsize=(5 * len(ranks), 4), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], ranks):
        for s in STRATEGIES:
            pts = sorted((r["bytes"], r["bytes"] / r["time_s"] / 1e9 * 2 * (p - 1) / p)
                         for r in rows if r["p"] == p and r["strategy"] == s)
            ax.loglog([x for x, _ in pts], [y for _, y in pts], marker="o", label=s)
        ax.set_title(f"p = {p}")
        ax.set_xlabel("message bytes")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("bus bandwidth, GB/s")
    axes[0][0].legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
