"""Run under mpiexec by test_hostile_inputs.py: API errors that only one rank's input has, each
caught on every rank and printed with the rank's number; exit 0 when every case raised."""
import sys

import numpy as np
from mpi4py import MPI

import mpireg


def main(shards: str) -> int:
    rank = MPI.COMM_WORLD.rank
    X = np.random.default_rng(rank).standard_normal((40, 3))
    y = X[:, 0] + 0.1
    cases = {
        "nan": lambda: mpireg.LinearRegression().fit(np.where(np.arange(40)[:, None] == 7, np.nan, X) if rank == 1
                                                      else X, y),
        "paths": lambda: mpireg.LinearRegression().fit(shards if rank == 0 else shards + "-elsewhere"),
    }
    for name, fit in cases.items():
        try:
            fit()
        except ValueError as exc:
            print(f"{name} rank {rank}: {str(exc).splitlines()[0]}", flush=True)
        else:
            print(f"{name} rank {rank}: no error", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
