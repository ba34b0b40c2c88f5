"""Allreduce across emulated nodes (tests/emulated_cluster.py: network namespaces joined by a
link capped with tc), every strategy against MPICH's own Allreduce, at 1 and 4 Gbit/s, on
2 nodes x 1 and x 2 ranks; and what `comm.strategy = "auto"` picks at each size. Needs root.

    python benchmarks/bench_multinode.py [--rates 1gbit,4gbit] [--layouts 2x1,2x2] [--sizes 64KiB,...]

Per point: the median time of one reduction of a float32 buffer; busbw = size / time x
2(N-1)/N for N nodes, the bytes each node's link must carry in a bandwidth-optimal allreduce
per second, against the cap; `crossed` the bytes that left the nodes per reduction (read from
each node's /proc/net/dev, headers included) against that minimum, 2 size (N-1). One BLAS
thread a rank (the emulated nodes share this machine's two cores).
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_allreduce import human, parse_size  # noqa: E402

STRATEGIES = ("allreduce", "ring", "hierarchical")
RATES = {"1gbit": 1e9 / 8, "4gbit": 4e9 / 8, "uncapped": 8e9 / 8}  # veth here: about 8 Gbit/s


def node_tx_bytes() -> int:
    """Bytes this process's network namespace has sent on the node's link."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        if line.strip().startswith("mpl0:"):
            return int(line.split(":")[1].split()[8])
    return 0


def worker(sizes, budget_s: float) -> None:
    """Every rank under mpiexec; rank 0 prints one JSON line per (strategy, size)."""
    import numpy as np
    from mpi4py import MPI

    from mpireg.comm import make_reducer
    from mpireg.comm.autotune import autotune
    from mpireg.comm.links import measure_links
    from mpireg.config import CommConfig

    comm = MPI.COMM_WORLD.Dup()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    links = measure_links(comm)
    for nbytes in sizes:
        choice = autotune(CommConfig(strategy="auto"), comm, nbytes, False,
                          lambda name: make_reducer(name, comm, CommConfig(strategy=name)), links)
        if comm.rank == 0:
            print(json.dumps(dict(kind="auto", bytes=nbytes, pick=choice.strategy)), flush=True)
    for name in STRATEGIES:
        if name == "hierarchical" and not links.hierarchy:
            continue
        reducer = make_reducer(name, comm, CommConfig(strategy=name))
        for nbytes in sizes:
            buf = reducer.step_buffer(max(1, nbytes // 4), np.float32)
            buf[...] = 1
            reducer.allreduce(buf)
            times, start = [], time.perf_counter()
            sent = node_tx_bytes() if node.rank == 0 else 0
            while True:
                comm.Barrier()
                t = time.perf_counter()
                reducer.allreduce(buf)
                times.append(time.perf_counter() - t)
                done = comm.allreduce(int(len(times) >= 3 and time.perf_counter() - start > budget_s
                                          or len(times) >= 200), op=MPI.MAX)
                if done:
                    break
            sent = (node_tx_bytes() - sent) if node.rank == 0 else 0
            crossed = comm.allreduce(sent) / (len(times) + 0.0)  # (the barriers' bytes included)
            elapsed = comm.allreduce(float(np.median(times)), op=MPI.MAX)
            if comm.rank == 0:
                print(json.dumps(dict(kind="time", strategy=name, bytes=nbytes, time_s=elapsed,
                                      crossed=crossed, nodes=links.nodes)), flush=True)
        reducer.finish()


def run_layout(rate: str, nodes: int, per_node: int, sizes, budget: float) -> list[dict]:
    from tests.emulated_cluster import EmulatedCluster

    with EmulatedCluster(nodes=nodes, rate=None if rate == "uncapped" else rate) as cluster:
        cmd = [sys.executable, __file__, "--worker", "--sizes", ",".join(map(str, sizes)), "--budget", str(budget)]
        out = cluster.run(nodes * per_node, cmd, ranks_per_node=per_node, cwd=ROOT, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"worker failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="1gbit,4gbit")
    p.add_argument("--layouts", default="2x1,2x2", help="NODESxRANKS_PER_NODE, comma-separated")
    p.add_argument("--sizes", default="64KiB,1MiB,4MiB,16MiB,64MiB,256MiB")
    p.add_argument("--budget", type=float, default=1.0, help="seconds of repetitions per point")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.worker:
        from mpi_launch import run_worker

        run_worker(lambda: worker(sizes, args.budget))
    print("allreduce across emulated nodes; float32; median of >= 3 reductions; busbw in GB/s and as a "
          "share of the cap; crossed: bytes that left the nodes per reduction / the minimum 2 size (N-1)")
    for rate in args.rates.split(","):
        cap = RATES[rate]
        for layout in args.layouts.split(","):
            nodes, per_node = map(int, layout.split("x"))
            t0 = time.time()
            rows = run_layout(rate, nodes, per_node, sizes, args.budget)
            picks = {r["bytes"]: r["pick"] for r in rows if r["kind"] == "auto"}
            table = {(r["strategy"], r["bytes"]): r for r in rows if r["kind"] == "time"}
            names = [s for s in STRATEGIES if any(k[0] == s for k in table)]
            print(f"\n{rate} link ({cap / 1e9:.3f} GB/s), {nodes} nodes x {per_node} rank(s) ({time.time() - t0:.0f} s)")
            print(f"{'size':>8} | " + " | ".join(f"{s:^30}" for s in names) + " | auto picks   auto/best")
            print(f"{'':>8} | " + " | ".join(f"{'ms':>8} {'busbw':>6} {'/cap':>5} {'crossed':>7}" for _ in names))
            for nbytes in sizes:
                cells, bus = [], {}
                for s in names:
                    r = table[(s, nbytes)]
                    bus[s] = nbytes / r["time_s"] * 2 * (nodes - 1) / nodes
                    minimum = 2 * nbytes * (nodes - 1)
                    cells.append(f"{r['time_s'] * 1e3:8.2f} {bus[s] / 1e9:6.3f} {bus[s] / cap:5.2f} "
                                 f"{r['crossed'] / minimum:7.2f}")
                pick = picks[nbytes]
                best = max(bus.values())
                print(f"{human(nbytes):>8} | " + " | ".join(cells)
                      + f" | {pick:<12} {bus.get(pick, 0) / best:8.2f}")


if __name__ == "__main__":
    main()
