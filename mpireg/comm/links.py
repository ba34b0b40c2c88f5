"""What the links between ranks cost, measured once at start-up for the plan (fit/plan.py):
latency and bandwidth inside a node and between nodes.

Two ping-pongs, each between two ranks only: the first two ranks of rank 0's node (through
shared memory), and rank 0 with the first rank of the next node (through the network). A
message of 8 bytes gives the latency; the bandwidth is the slope between SIZES[1] and SIZES[2]
bytes (a link shaped by a token bucket passes its burst at line rate: 256 KiB alone measured
2.97 Gbit/s on a 1 Gbit/s cap; the slope cancels the burst). The best of REPEATS round trips
counts, after one that sets up the connection. On a 1 Gbit/s link: 7.5 MiB across it, ~65 ms,
once. The results are broadcast, so every rank plans with the same figures.

Nodes are MPI's: the ranks that share memory (MPI_Comm_split_type SHARED), which is what hydra
and Slurm place on one host.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from mpi4py import MPI

SIZES = (8, 256 << 10, 1 << 20)
REPEATS = 2
_TAG = 7711


@dataclass(frozen=True)
class Link:
    latency: float    # seconds, one way
    bandwidth: float  # bytes per second, one way

    def seconds(self, nbytes: float) -> float:
        return self.latency + nbytes / self.bandwidth

    def describe(self) -> str:
        return f"{self.latency * 1e6:.0f} us, {self.bandwidth * 8 / 1e9:.2f} Gbit/s"


@dataclass(frozen=True)
class Links:
    nodes: int
    ranks_per_node: int       # the most ranks on one node
    intra: Link | None        # None where no node holds two ranks
    inter: Link | None        # None on one node

    @property
    def hierarchy(self) -> bool:
        """Whether a node-aware reduction has anything to gather inside the nodes."""
        return self.ranks_per_node > 1

    def describe(self) -> str:
        parts = [f"{self.nodes} node(s) x up to {self.ranks_per_node} rank(s)"]
        if self.intra:
            parts.append(f"inside a node {self.intra.describe()}")
        if self.inter:
            parts.append(f"between nodes {self.inter.describe()}")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)


def rank_leaders(comm) -> list[int]:
    """Every rank's node, named by the lowest world rank on it (the watchdog's too). Collective."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        leader = node.bcast(comm.rank, root=0)
    finally:
        node.Free()
    return comm.allgather(leader)


def measure_links(comm) -> Links:
    """Collective: every rank returns the same Links."""
    if comm.size == 1:
        return Links(1, 1, None, None)
    of_rank = rank_leaders(comm)
    leaders = sorted(set(of_rank))
    per_node = max(of_rank.count(lead) for lead in leaders)
    node_of_zero = [r for r, lead in enumerate(of_rank) if lead == leaders[0]]
    intra = _pingpong(comm, 0, node_of_zero[1]) if len(node_of_zero) > 1 else None
    inter = _pingpong(comm, 0, leaders[1]) if len(leaders) > 1 else None
    intra, inter = comm.bcast((intra, inter), root=0)
    return Links(len(leaders), per_node, intra, inter)


def _pingpong(comm, a: int, b: int) -> Link | None:
    """Rank a's best half round trips to b at SIZES; None on other ranks."""
    if comm.rank not in (a, b):
        return None
    other = b if comm.rank == a else a
    best = []
    for nbytes in SIZES:
        buf = np.zeros(nbytes, dtype=np.uint8)
        times = []
        for _ in range(REPEATS + 1):
            t = time.perf_counter()
            if comm.rank == a:
                comm.Send(buf, dest=other, tag=_TAG)
                comm.Recv(buf, source=other, tag=_TAG)
            else:
                comm.Recv(buf, source=other, tag=_TAG)
                comm.Send(buf, dest=other, tag=_TAG)
            times.append((time.perf_counter() - t) / 2)
        best.append(min(times[1:]))
    slope = max(best[2] - best[1], 1e-9) / (SIZES[2] - SIZES[1])
    return Link(best[0], 1 / slope)
