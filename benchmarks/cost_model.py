"""A cost model of one synchronous step, fitted here and projected to 16 ... 1,024 nodes.

Measured on this machine, in this run:
    alpha, beta  point-to-point latency and inverse bandwidth between two ranks (a ping-pong of
                 8 B ... 16 MiB under mpiexec -n 2, least-squares fit of t = alpha + n beta)
    mem          one core's copy rate, bytes copied per second (the shared-memory stage of
                 `hierarchical`; assumes the node's memory system keeps that rate for all R ranks)
    gamma        one rank's gradient time for each workload, with mpireg's model code
Per step, for P ranks (R per node, N = P / R nodes) and a gradient of n bytes (Hockney/Thakur):
    ring          2 (P-1) alpha + 2 (P-1)/P n beta
    MPI (tree)    min(recursive doubling  ceil(log2 P) (alpha + n beta),
                      Rabenseifner        2 ceil(log2 P) alpha + 2 (P-1)/P n beta)
    hierarchical  n / mem  +  2 (N-1) alpha + 2 (N-1)/N n beta   (shared memory: each rank reads n
                  and writes n, about one copy of the buffer; then the ring among node leaders)
    param server  2 (P-1) (alpha + n beta)                    (rank 0's link carries every copy)
Step time = gamma + comm (no overlap: an upper bound); weak-scaling efficiency = gamma / step.
The parameter server stops scaling where its comm equals the compute:
    P* = 1 + gamma / (2 (alpha + n beta)).
Inter-node links are slower than this machine's shared memory: --alpha/--beta-gbs project any
network instead of the measured link (the doc's second table uses a 100 Gb/s-class one, stated
as an assumption).

    python benchmarks/cost_model.py [--ranks-per-node 8] [--plot docs/cost_model.png]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from mpi_launch import mpiexec, run_worker

ROOT = Path(__file__).resolve().parents[1]
NODES = (1, 16, 64, 256, 1024)
STRATEGIES = ("ring", "MPI (tree)", "hierarchical", "param server")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks-per-node", type=int, default=8)
    p.add_argument("--alpha-us", type=float, help="use this latency instead of the measured one")
    p.add_argument("--beta-gbs", type=float, help="use this link bandwidth (GB/s) instead of the measured one")
    p.add_argument("--plot", default=str(ROOT / "benchmarks" / "out" / "cost_model.png"))
    p.add_argument("--pingpong", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- measurements
def pingpong():
    """Under mpiexec -n 2: rank 0 prints {n: one-way seconds}."""
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    out = {}
    for n in [8, 1024, 65536, 1 << 20, 4 << 20, 16 << 20]:
        buf = np.zeros(n, dtype=np.uint8)
        reps = max(5, min(1000, (64 << 20) // n))
        comm.Barrier()
        t = time.perf_counter()
        for _ in range(reps):
            if comm.rank == 0:
                comm.Send(buf, 1)
                comm.Recv(buf, 1)
            else:
                comm.Recv(buf, 0)
                comm.Send(buf, 0)
        out[n] = (time.perf_counter() - t) / reps / 2
    if comm.rank == 0:
        print(json.dumps(out))


def measure_link():
    done = subprocess.run([*mpiexec(2), sys.executable, __file__, "--pingpong"],
                          capture_output=True, text=True, timeout=300, check=True)
    points = json.loads(done.stdout.strip().splitlines()[-1])
    sys.path.insert(0, str(ROOT))
    from mpireg.comm.autotune import fit  # least squares in relative error, as the autotuner fits

    link = fit("link", [float(k) for k in points], list(points.values()))
    print("ping-pong, one way: " + ", ".join(f"{int(k):,} B {v * 1e6:.1f} us" for k, v in points.items()))
    return link.alpha, link.beta


def measure_memory():
    import numpy as np

    src = np.ones(64 << 20, dtype=np.uint8)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(5))
    return src.nbytes / best


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def workloads():
    """(label, gradient bytes, gamma seconds) measured with mpireg's model code on one rank."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from mpireg.models import make_model

    rng = np.random.default_rng(0)
    out = []
    for label, kind, rows, d, k in (("logistic, 100 features, 1M rows/rank, full batch", "logistic", 1_000_000, 100, 2),
                                    ("softmax, 1000 x 100 classes, 4096 rows/rank", "softmax", 4096, 1000, 100)):
        model = make_model(kind, d, k)
        X = rng.standard_normal((rows, d)).astype(np.float32)
        y = model.prepare_targets(rng.integers(0, k, rows))
        params = np.zeros(model.layout.size, dtype=np.float32)
        grad = np.empty_like(params)
        gamma = min(_timed(lambda: model.loss_grad_sum(params, X, y, grad)) for _ in range(3))
        out.append((label, grad.nbytes, gamma))
    return out


# ----------------------------------------------------------------------------- the model
def comm_time(strategy, P, R, n, alpha, beta, mem):
    if P == 1:
        return 0.0
    if strategy == "ring":
        return 2 * (P - 1) * alpha + 2 * (P - 1) / P * n * beta
    if strategy == "MPI (tree)":
        logp = math.ceil(math.log2(P))
        return min(logp * (alpha + n * beta), 2 * logp * alpha + 2 * (P - 1) / P * n * beta)
    if strategy == "hierarchical":
        N = max(1, P // R)
        inter = 2 * (N - 1) * alpha + 2 * (N - 1) / N * n * beta if N > 1 else 0.0
        return n / mem + inter
    if strategy == "param server":
        return 2 * (P - 1) * (alpha + n * beta)
    raise ValueError(strategy)


def main():
    args = parse()
    if args.pingpong:  # under mpiexec
        run_worker(pingpong)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    alpha, beta = measure_link()
    mem = measure_memory()
    source = "measured here (shared memory between two ranks)"
    if args.alpha_us is not None or args.beta_gbs is not None:
        alpha = args.alpha_us * 1e-6 if args.alpha_us is not None else alpha
        beta = 1 / (args.beta_gbs * 1e9) if args.beta_gbs is not None else beta
        source = "given on the command line (an assumed network)"
    R = args.ranks_per_node
    print(f"alpha = {alpha * 1e6:.2f} us, 1/beta = {1 / beta / 1e9:.2f} GB/s ({source}); "
          f"copy bandwidth {mem / 1e9:.1f} GB/s; {R} ranks per node")
    curves = {}
    for label, n, gamma in workloads():
        print(f"\n{label}: gradient {n:,} bytes, compute {gamma * 1e3:.2f} ms per step per rank")
        print(f"  {'nodes':>6} {'ranks':>6} " + " ".join(f"{s:>24}" for s in STRATEGIES))
        for N in NODES:
            P = N * R
            cells = []
            for s in STRATEGIES:
                c = comm_time(s, P, R, n, alpha, beta, mem)
                cells.append(f"{(gamma + c) * 1e3:10.2f} ms {gamma / (gamma + c):6.1%}    ")
                curves.setdefault((label, s), []).append((P, gamma / (gamma + c)))
            print(f"  {N:6} {P:6} " + " ".join(f"{c:>24}" for c in cells))
        p_star = 1 + gamma / (2 * (alpha + n * beta))
        print(f"  (step time and weak-scaling efficiency) the parameter server falls below 50% "
              f"efficiency past P* = {p_star:,.0f} ranks")
    plot(curves, Path(args.plot), source)


def plot(curves, path, source):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({label for label, _ in curves})
    fig, axes = plt.subplots(1, len(labels), figsize=(6 * len(labels), 4.2), squeeze=False)
    for ax, label in zip(axes[0], labels):
        for (lab, s), points in curves.items():
            if lab == label:
                P, eff = zip(*points)
                ax.plot(P, eff, marker="o", label=s)
        ax.set(xscale="log", xlabel="ranks", ylabel="weak-scaling efficiency", ylim=(0, 1.05),
               title=label)
        ax.legend(fontsize=8)
    fig.suptitle(f"projected from alpha, beta {source}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
