"""Rows of a sharded matrix, fetched by the ranks that need them (ALS's factor exchange).

Rank r owns the contiguous rows `rank_range(n_rows, r, p)` of a matrix (ALS's user or item
factors) and a rank needs a fixed set of rows each sweep (the items its users rated). Two ways
to get them, chosen once:

    allgather   every rank receives every row (MPI Allgatherv), then picks its own: one
                collective, best while the whole matrix is small
    pull        every rank asks each owner for exactly the rows it needs, once at set-up;
                each sweep the owners send those rows (MPI Alltoallv): traffic is what is
                needed, memory is what is needed. Every rank is a parameter-server shard
                for the rows it owns.

The set of needed rows does not change between sweeps (the ratings do not), so the requests
travel once and each sweep moves only factor values.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ...data.assign import rank_range

ALLGATHER_MAX_BYTES = 16 * 2**20  # auto: allgather a matrix up to this size


def choose_exchange(mode: str, n_rows: int, width: int, itemsize: int = 8) -> str:
    if mode != "auto":
        return mode
    return "allgather" if n_rows * width * itemsize <= ALLGATHER_MAX_BYTES else "pull"


class RowExchange:
    def __init__(self, comm, n_rows: int, needed, mode: str):
        """`needed`: this rank's sorted, distinct row indices. Collective."""
        self.comm, self.mode = comm, mode
        self.n_rows = n_rows
        self.needed = np.asarray(needed, dtype=np.int64)
        bounds = [rank_range(n_rows, r, comm.size) for r in range(comm.size)]
        self.owned = bounds[comm.rank]
        self.starts = np.array([lo for lo, _ in bounds], dtype=np.int64)
        self.bytes_moved = 0
        if mode == "pull":
            self._ask_owners()
        elif mode != "allgather":
            raise ValueError(f"unknown factor exchange {mode!r}")

    def _ask_owners(self) -> None:
        comm = self.comm
        owner = np.searchsorted(self.starts, self.needed, side="right") - 1
        self.asked = np.bincount(owner, minlength=comm.size).astype(np.int64)  # rows I get from each
        self.served = np.empty(comm.size, dtype=np.int64)                        # rows each gets from me
        comm.Alltoall(self.asked, self.served)
        requests = np.empty(int(self.served.sum()), dtype=np.int64)
        comm.Alltoallv([self.needed, (self.asked, displacements(self.asked)), MPI.INT64_T],
                       [requests, (self.served, displacements(self.served)), MPI.INT64_T])
        self.serve_rows = requests - self.owned[0]  # local indices, grouped by requester

    def gather(self, owned_rows):
        """The needed rows, in the order of `needed`, from each owner's `owned_rows`
        (float64, rows x width, C-contiguous). Collective."""
        width = owned_rows.shape[1]
        if self.mode == "allgather":
            full = assemble_rows(self.comm, self.n_rows, owned_rows)
            self.bytes_moved += full.nbytes - owned_rows.nbytes
            return full[self.needed]
        send = np.ascontiguousarray(owned_rows[self.serve_rows], dtype=np.float64)
        out = np.empty((len(self.needed), width), dtype=np.float64)
        sent, got = self.served * width, self.asked * width
        self.comm.Alltoallv([send, (sent, displacements(sent)), MPI.DOUBLE], [out, (got, displacements(got)), MPI.DOUBLE])
        self.bytes_moved += out.nbytes
        return out



def assemble_rows(comm, n_rows: int, owned_rows):
    """The whole matrix on every rank from each rank's owned rows (the final model). Collective."""
    width = owned_rows.shape[1]
    full = np.empty((n_rows, width), dtype=np.float64)
    counts = np.array([hi - lo for lo, hi in (rank_range(n_rows, r, comm.size) for r in range(comm.size))],
                      dtype=np.int64) * width
    comm.Allgatherv(np.ascontiguousarray(owned_rows, dtype=np.float64),
                    [full, (counts, displacements(counts)), MPI.DOUBLE])
    return full


def displacements(counts) -> np.ndarray:
    """Where each rank's part starts in a v-collective's buffer."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
