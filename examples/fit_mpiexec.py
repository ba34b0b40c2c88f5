"""The Python API under mpiexec: every rank runs this script, fits on its own rows, gets the
same model.

    mpiexec -n 2 python examples/fit_mpiexec.py            # any number of ranks

It makes a small data set first (rank 0), then fits twice: from shard paths (each rank reads
only its own rows) and from arrays (each rank passes its own slice). `fit` and `score` are
collective: every rank calls them, in the same order.
"""
from pathlib import Path

import numpy as np
from mpi4py import MPI

import mpireg
from mpireg.convert.synth import synthesize

comm = MPI.COMM_WORLD
data = Path("data/example-linear")
if comm.rank == 0 and not data.exists():
    synthesize("linear", rows=100_000, features=20, out=data, shards=4, test_rows=10_000, seed=1)
comm.Barrier()

# 1. From shards: each rank reads only its rows.
from_shards = mpireg.LinearRegression(alpha=1.0).fit(str(data))
r2 = from_shards.score(str(data / "test"))          # over every rank's rows of the test shards

# 2. From arrays: here each rank draws its own rows; in practice, whatever this rank loaded.
rng = np.random.default_rng(comm.rank)
X = rng.standard_normal((5_000 + 1_000 * comm.rank, 20))
y = X @ np.arange(20.0) + 3.0 + 0.1 * rng.standard_normal(X.shape[0])
from_arrays = mpireg.LinearRegression().fit(X, y)
r2_arrays = from_arrays.score(X, y)                 # collective too: every rank calls it

if comm.rank == 0:
    print(f"{comm.size} rank(s): shards -> test R^2 {r2:.4f}; arrays -> intercept "
          f"{from_arrays.intercept_:.3f}, R^2 {r2_arrays:.6f}")
    from_shards.save("example-linear.h5")            # one rank writes; every rank holds the same model
