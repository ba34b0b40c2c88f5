"""Conversion of files larger than memory budgets: throughput (MB/s of input) and peak RSS.

A CSV (numeric columns and a label) and a libsvm file (Criteo-like: 39 entries a row) of about
--gb GB each are made once under --dir (a block of rows drawn once, written again and again: the
parsers see every byte). Each contestant then runs as its own process, whose peak RSS is the
kernel's (wait4), one after another over the same files (in the page cache after the first):

    read bytes          the file read in 16 MiB blocks: the floor for any parser
    pyarrow raw read    pyarrow.csv.open_csv, every column float64, batches iterated and dropped
    mpireg convert      python -m mpireg.data convert ... (two passes: survey, then write shards)

    python benchmarks/bench_convert.py [--gb 3] [--dir /tmp/mpireg-bench-convert] [--shards 8]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BLOCK_ROWS = 200_000


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gb", type=float, default=3.0, help="size of each input file")
    p.add_argument("--dir", default="/tmp/mpireg-bench-convert")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--columns", type=int, default=40, help="CSV: numeric columns besides the label")
    p.add_argument("--formats", default="csv,libsvm")
    p.add_argument("--make", nargs=2, metavar=("FORMAT", "PATH"), help=argparse.SUPPRESS)
    return p.parse_args()


def make_csv(path: Path, gb: float, columns: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(BLOCK_ROWS, columns)).round(6)
    lines = [",".join([f"x{j}" for j in range(columns)] + ["y"]) + "\n"]
    labels = rng.integers(0, 2, BLOCK_ROWS)
    block = "".join(",".join(map(repr, row.tolist())) + f",{label}\n" for row, label in zip(X, labels))
    _repeat(path, lines[0], block, gb)


def make_libsvm(path: Path, gb: float, nnz: int = 39, bits: int = 22) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    rows = []
    for label in rng.integers(0, 2, BLOCK_ROWS // 4):
        slots = np.unique(rng.zipf(1.3, nnz) % (1 << bits))
        rows.append(f"{label} " + " ".join(f"{s}:1" for s in slots) + "\n")
    _repeat(path, "", "".join(rows), gb)


def _repeat(path: Path, head: str, block: str, gb: float) -> None:
    data = block.encode()
    with open(path, "wb") as f:
        f.write(head.encode())
        for _ in range(max(1, int(gb * 2**30 / len(data)))):
            f.write(data)


RAW_READ = """
import sys
with open(sys.argv[1], 'rb', buffering=0) as f:
    while f.read(1 << 24):
        pass
"""

PYARROW_READ = """
import sys
import pyarrow as pa, pyarrow.csv as pcsv
with open(sys.argv[1]) as f:
    names = f.readline().strip().split(',')
reader = pcsv.open_csv(sys.argv[1], read_options=pcsv.ReadOptions(block_size=1 << 22),
                       convert_options=pcsv.ConvertOptions(column_types={n: pa.float64() for n in names}))
for batch in reader:
    pass
"""


def run(argv) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one process."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(map(str, argv))}")
    return seconds, usage.ru_maxrss / 1024


def main():
    args = parse()
    makers = {"csv": lambda p: make_csv(p, args.gb, args.columns), "libsvm": lambda p: make_libsvm(p, args.gb)}
    if args.make:  # in a child: Linux counts the parent's pages at fork in a child's peak RSS
        return makers[args.make[0]](Path(args.make[1]))
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    files = {"csv": root / "big.csv", "libsvm": root / "big.svm"}
    py = sys.executable
    print(f"{'input':8} {'contestant':18} {'GB':>6} {'seconds':>8} {'MB/s':>7} {'peak RSS MiB':>13}")
    for fmt in args.formats.split(","):
        path = files[fmt]
        if not path.exists() or path.stat().st_size < 0.9 * args.gb * 2**30:
            subprocess.run([py, __file__, "--gb", str(args.gb), "--columns", str(args.columns),
                            "--make", fmt, str(path)], check=True)
        size = path.stat().st_size
        out = root / f"shards-{fmt}"
        contestants = [("read bytes", [py, "-c", RAW_READ, path])]
        if fmt == "csv":
            contestants.append(("pyarrow raw read", [py, "-c", PYARROW_READ, path]))
        contestants.append(("mpireg convert", [py, "-m", "mpireg.data", "convert", path, "--out", out,
                                               "--shards", str(args.shards)]))
        for name, argv in contestants:
            shutil.rmtree(out, ignore_errors=True)
            seconds, rss = run(argv)
            print(f"{fmt:8} {name:18} {size / 1e9:6.2f} {seconds:8.2f} {size / 1e6 / seconds:7.0f} {rss:13.0f}",
                  flush=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
