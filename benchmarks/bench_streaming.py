"""Streaming an epoch that does not fit the memory budget: with and without read-ahead.

One rank reads its rows from HDF5 in blocks of half the budget and runs one gradient pass per
block (the full-batch work of an L-BFGS epoch). Four epochs are timed, best of --repeats each:
    read only      every block read, nothing computed
    compute only   the gradient passes over blocks already in memory
    sequential     read a block, then compute on it (no read-ahead)
    double-buffer  compute on a block while the next one is read (mpireg's streamed path)
Target: double-buffer <= max(read, compute) x 1.1. The shards are written first and sit in the
page cache, so `read` is HDF5's copy and the NaN/Inf check, not the disk.

    python benchmarks/bench_streaming.py [--rows 2000000] [--features 100] [--budget-mb 128]
"""
import argparse
import os
import sys
import tempfile
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--model", default="logistic", choices=["linear", "logistic", "softmax"])
    p.add_argument("--budget-mb", type=float, default=128)
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args()


def main():
    args = parse()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from mpireg.data import ShardReader, read_schema, resolve_paths
    from mpireg.data.local import LocalData
    from mpireg.convert.synth import synthesize
    from mpireg.models import make_model

    with tempfile.TemporaryDirectory(prefix="mpireg-stream-") as tmp:
        synthesize(args.model, args.rows, args.features, tmp, shards=4, classes=10)
        schema = read_schema(resolve_paths([tmp]))
        model = make_model(args.model, args.features, schema.n_classes)
        params = np.zeros(model.layout.size, dtype=np.float32)
        grad = np.empty_like(params)

        def fresh():
            reader = ShardReader(schema, 0, 1, args.budget_mb * 2**20, x_dtype=np.float32)
            return LocalData(reader, model.prepare_targets, np)

        data = fresh()
        count = len(data.block_sizes)
        resident = [(X.copy(), y.copy()) for X, y in data.blocks()]  # blocks reuse two buffers

        def read_only():
            d = fresh()
            for i in range(count):
                d.block(i)
            d.close()

        def compute_only():
            for X, y in resident:
                model.loss_grad_sum(params, X, y, grad)

        def sequential():
            d = fresh()
            for i in range(count):
                X, y = d.block(i)
                model.loss_grad_sum(params, X, y, grad)
            d.close()

        def double_buffer():
            d = fresh()
            for X, y in d.blocks():
                model.loss_grad_sum(params, X, y, grad)
            d.close()

        cases = [("read only", read_only), ("compute only", compute_only),
                 ("sequential", sequential), ("double-buffer", double_buffer)]
        best = {name: min(timed(fn) for _ in range(args.repeats)) for name, fn in cases}

    mb = args.rows * (args.features * 4 + 8) / 2**20
    print(f"{args.model}, {args.rows:,} x {args.features} float32 ({mb:.0f} MiB), budget "
          f"{args.budget_mb:.0f} MiB -> {count} blocks; best of {args.repeats}")
    for name, t in best.items():
        print(f"  {name:14} {t * 1e3:9.1f} ms")
    slower = max(best["read only"], best["compute only"])
    print(f"  double-buffer / max(read, compute) = {best['double-buffer'] / slower:.2f}   "
          f"(sequential: {best['sequential'] / slower:.2f})")


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
