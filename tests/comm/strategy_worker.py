"""Run under mpiexec by test_strategies.py: checks one strategy against a NumPy sum of the
gathered inputs, for awkward lengths and distinct values per rank. Exits non-zero on failure
(MPI_Abort, so no rank is left waiting)."""
import sys
import traceback

import numpy as np
from mpi4py import MPI

from mpireg.comm import EXTRA_SLOTS, make_strategy, verify_identical
from mpireg.errors import MpiregError

LENGTHS = [0, 1, 2, 3, 7, 31, 1009, 65537]


def check(name: str) -> None:
    comm = MPI.COMM_WORLD.Dup()
    strategy = make_strategy(name, comm)
    rank, size = comm.rank, comm.size
    for dtype in (np.float32, np.float64):
        for n in LENGTHS:
            rng = np.random.default_rng([rank, n])
            mine = (rng.standard_normal(n) + 1000 * rank).astype(dtype)  # distinct per rank
            expected = np.sum(comm.allgather(mine), axis=0, dtype=np.float64) if n else mine
            buf = mine.copy()
            strategy.allreduce(buf)
            np.testing.assert_allclose(buf, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
            verify_identical(comm, buf, step=n)  # every rank ends with the same bits

    # step(): sums of gradients and counts combine into the global mean; an idle rank sends zeros
    params = np.zeros(5)
    buffer = np.zeros(5 + EXTRA_SLOTS)
    if rank != size - 1 or size == 1:
        buffer[:5] = np.arange(5) * (rank + 1)
        buffer[5], buffer[6] = 10.0 * (rank + 1), rank + 1
    seen = {}
    loss, count = strategy.step(params, buffer, lambda p, g: seen.setdefault("grad", g.copy()))
    active = range(size) if size == 1 else range(size - 1)
    total = sum(r + 1 for r in active)
    assert count == total and loss == 10.0 * total
    np.testing.assert_allclose(seen["grad"], np.arange(5) * sum((r + 1) for r in active) / total)

    # diverged parameters are caught
    try:
        verify_identical(comm, np.full(3, float(rank)), step=99)
        assert size == 1, "divergence not detected"
    except MpiregError as exc:
        assert "diverged across ranks at step 99" in str(exc)
    strategy.finish()


if __name__ == "__main__":
    try:
        check(sys.argv[1])
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
    print(f"ok {MPI.COMM_WORLD.rank}")
