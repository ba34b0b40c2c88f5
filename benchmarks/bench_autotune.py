"""Does `comm.strategy = "auto"` pick well? Its choice against every fixed setting, one run.

For each model below, every rank takes real steps (the model's gradient on a batch, written into
the step buffer while the strategy reduces it: overlapped where the strategy can) under each fixed
(strategy, fusion size), median step time over --steps steps. Then the alpha-beta probe
(mpireg/comm/autotune.py) picks a setting, which is timed the same way. Target: the pick within
10% of the best fixed setting. The softmax rows also show overlap at work: exposed
communication (what the step waits for after its gradient) against the whole reduction.

    python benchmarks/bench_autotune.py [--ranks 2] [--steps 100]
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
MODELS = [  # label, kind, features, classes, rows per rank per step
    ("linear, 100 features", "linear", 100, 0, 256),
    ("softmax, 1000 features x 200 classes", "softmax", 1000, 200, 256),
    ("softmax, 2000 features x 1000 classes", "softmax", 2000, 1000, 64),
]
FUSIONS = (64 << 10, 512 << 10, 2 << 20, 64 << 20)
STRATEGIES = ("allreduce", "ring", "hierarchical")
ROUNDS = 10


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


class Setting:
    """One (strategy, fusion) ready to take real steps; times accumulate over rounds."""

    def __init__(self, strategy, model, X, y):
        import numpy as np

        (self.reducer, self.strategy), self.model, self.X, self.y = strategy, model, X, y
        self.params = model.init_params(np.float32)
        strategy.setup(self.params)
        self.buffer = strategy.step_buffer(self.params.size + 4, np.float32)
        self.times = []
        strategy.step_stats()

    def compute(self, on_ready):
        n = self.params.size
        self.buffer[n] = self.model.loss_grad_sum(self.params, self.X, self.y, self.buffer[:n], on_ready)
        self.buffer[n + 1] = len(self.y)
        if on_ready is not None:
            on_ready(self.buffer.size)

    def run(self, steps, comm):
        n = self.params.size
        for _ in range(steps):
            comm.Barrier()
            t = time.perf_counter()
            self.strategy.overlap_step(self.params, self.buffer, lambda p, r: r[n:], self.compute)
            self.times.append(time.perf_counter() - t)

    def result(self, comm):
        """(median step seconds over all rounds, the slowest rank's; exposed and total comm per step)."""
        import numpy as np
        from mpi4py import MPI

        stats = self.strategy.step_stats()
        per = max(stats.get("steps", 1), 1)
        median = comm.allreduce(float(np.median(self.times)), op=MPI.MAX)
        return median, stats.get("exposed_s", 0.0) / per, stats.get("comm_s", 0.0) / per


def worker(args):
    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, str(ROOT))
    from mpireg import log
    from dataclasses import replace

    from mpireg.comm import make_reducer
    from mpireg.comm.autotune import autotune
    from mpireg.config import CommConfig
    from mpireg.fit.topology import make_strategy
    from mpireg.models import make_model

    comm = MPI.COMM_WORLD.Dup()
    log.set_rank(comm.rank)
    rng = np.random.default_rng(comm.rank)
    results = []
    for label, kind, d, k, rows in MODELS:
        model = make_model(kind, d, k)
        X = rng.standard_normal((rows, d)).astype(np.float32)
        y = model.prepare_targets(rng.standard_normal(rows).astype(np.float32) if kind == "linear"
                                  else rng.integers(0, k, rows))
        nbytes = (model.layout.size + 4) * 4
        start = time.perf_counter()
        probe = CommConfig(strategy="auto")
        choice = autotune(probe, comm, nbytes, model.overlaps,
                          lambda name: make_reducer(name, comm, replace(probe, strategy=name)))
        auto = make_strategy(choice.strategy, comm, CommConfig(strategy=choice.strategy,
                                                               fusion_bytes=choice.fusion_bytes))
        probe_s = time.perf_counter() - start
        settings = {f"{name} {fusion >> 10} KiB": Setting(make_strategy(name, comm, CommConfig(strategy=name,
                                                                                              fusion_bytes=fusion)),
                                                           model, X, y)
                    for name in STRATEGIES for fusion in FUSIONS}
        settings["auto"] = Setting(auto, model, X, y)
        order = list(settings.values())
        for r in range(ROUNDS):  # round after round, each in a rotated order: a drift in the
            for setting in order[r::] + order[:r]:  # machine's speed, or a place in the order,
                setting.run(max(1, args.steps // ROUNDS), comm)  # hits every setting alike
        measured = {name: setting.result(comm) for name, setting in settings.items()}
        for setting in settings.values():
            setting.strategy.finish()
            setting.reducer.finish()
        pick = f"{choice.strategy} {choice.fusion_bytes} B"
        results.append({"label": label, "bytes": nbytes, "fixed": {k: v for k, v in measured.items() if k != "auto"},
                        "pick": pick, "auto": measured["auto"], "probe_s": probe_s})
    if comm.rank == 0:
        print(json.dumps(results))


def main():
    args = parse()
    if args.worker:  # under mpiexec
        run_worker(lambda: worker(args))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([*mpiexec(args.ranks), sys.executable, __file__, "--worker", "--steps",
                          str(args.steps)], capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode:
        sys.exit(out.stderr)
    results = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"p = {args.ranks}; median step time over {args.steps} steps (gradient + reduction)")
    for r in results:
        best_name, best = min(r["fixed"].items(), key=lambda kv: kv[1][0])
        print(f"\n{r['label']} ({r['bytes']:,} bytes per step)")
        print(f"  {'setting':24} {'step ms':>8} {'exposed ms':>10} {'comm ms':>8}")
        for name, (t, exposed, total) in sorted(r["fixed"].items(), key=lambda kv: kv[1][0]):
            mark = "  <- best fixed" if name == best_name else ""
            print(f"  {name:24} {t * 1e3:8.3f} {exposed * 1e3:10.3f} {total * 1e3:8.3f}{mark}")
        t, exposed, total = r["auto"]
        print(f"  {'auto -> ' + r['pick']:24} {t * 1e3:8.3f} {exposed * 1e3:10.3f} {total * 1e3:8.3f}"
              f"  = {t / best[0]:.2f} x best fixed (probe {r['probe_s'] * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
