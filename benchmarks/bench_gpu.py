"""GPU figures (needs CuPy and a GPU; prints why not otherwise), measured side by side:

1. the gradient pass on the device in GB/s of X read, for each model, float32 and float64, next to
   a device-to-device copy of X and a streaming read of X (X @ ones) in the same run
   (issue target: float32 gradient >= 0.7x the copy);
2. end to end: samples/s of the same job on CPU and GPU, for each model, at 1 and 2 ranks.

    python benchmarks/bench_gpu.py [--rows 4000000] [--features 100] [--ranks 1,2]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from mpi_launch import mpiexec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def device_gradient_table(cp, rows, features, classes, repeats):
    from mpireg.models import make_model

    start, end = cp.cuda.Event(), cp.cuda.Event()

    def best(fn):
        fn()
        times = []
        for _ in range(repeats):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
        return min(times)

    print(f"device gradient pass, {rows:,} x {features}, best of {repeats}")
    print(f"{'dtype':8} {'pass':22} {'ms':>8} {'GB/s of X':>10} {'vs copy':>8}")
    for dtype in (np.float32, np.float64):
        X = cp.random.standard_normal((rows, features), dtype=np.float64).astype(dtype)
        dst, ones = cp.empty_like(X), cp.ones(features, dtype=dtype)
        gb = X.nbytes / 1e9
        results = [("copy (device to device)", best(lambda: cp.copyto(dst, X))),
                   ("read (X @ ones)", best(lambda: X @ ones))]
        for kind, k in (("linear", 0), ("logistic", 2), ("softmax", classes)):
            model = make_model(kind, features, k, l2=1e-4, xp=cp)
            y = (cp.random.standard_normal(rows).astype(dtype) if kind == "linear"
                 else model.prepare_targets(cp.random.randint(0, max(k, 2), rows)))
            params = (cp.random.standard_normal(model.layout.size) * 0.01).astype(dtype)
            grad = cp.empty_like(params)
            results.append((kind + (f" (K={k})" if kind == "softmax" else ""),
                            best(lambda: model.loss_grad_sum(params, X, y, grad))))
        copy = results[0][1]
        for name, t in results:
            print(f"{np.dtype(dtype).name:8} {name:22} {t * 1e3:8.2f} {gb / t:10.1f} {copy / t:8.2f}")
        del X, dst


def end_to_end(rows, features, classes, ranks):
    print(f"\nend to end, {rows:,} x {features} float32, 2 epochs, batch 4096 per rank; samples/s")
    print(f"{'model':10} {'ranks':>5} {'cpu':>14} {'gpu':>14} {'gpu/cpu':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("linear", "logistic", "softmax"):
            data = Path(tmp) / kind
            subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", kind, "--rows", str(rows),
                            "--features", str(features), "--classes", str(classes), "--shards", "2",
                            "--test-rows", "0", "--out", str(data)], check=True, cwd=ROOT, capture_output=True)
            job = Path(tmp) / "job.toml"
            job.write_text("")
            for p in ranks:
                rates = {}
                for device in ("cpu", "gpu"):
                    run = Path(tmp) / f"{kind}-{p}-{device}"
                    cmd = [*mpiexec(p), sys.executable, "-m",
                           "mpireg.train", str(job), "--run-dir", str(run)]
                    for item in (f"data.train={data}", f"model.kind={kind}", "optimizer.kind=adam",
                                 "optimizer.lr=0.01", "optimizer.epochs=2", "optimizer.batch_size=4096",
                                 f"device={device}", "run.progress=false"):
                        cmd += ["--set", item]
                    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, env=dict(os.environ, CI="1"))
                    rates[device] = json.loads((run / "summary.json").read_text())["samples_per_s"]
                print(f"{kind:10} {p:>5} {rates['cpu']:14,.0f} {rates['gpu']:14,.0f} {rates['gpu'] / rates['cpu']:8.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=4_000_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--ranks", default="1,2")
    p.add_argument("--e2e-rows", type=int, default=1_000_000)
    args = p.parse_args()
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no GPU visible")
    except Exception as exc:  # noqa: BLE001
        print(f"bench_gpu: skipped: needs CuPy and a GPU ({exc})")
        return
    print(f"GPU: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    device_gradient_table(cp, args.rows, args.features, args.classes, args.repeats)
    end_to_end(args.e2e_rows, args.features, args.classes, [int(r) for r in args.ranks.split(",")])


if __name__ == "__main__":
    main()
