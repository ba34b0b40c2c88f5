"""The loop every asynchronous server runs (ps-async, sharded-async), with bounded staleness
(stale-synchronous parallel).

A server answers each worker's message at once, unless that worker is more than
`max_staleness` steps ahead of the slowest worker still running: then its answer waits
(it is parked) until the slowest catches up. Workers never wait for each other otherwise.
Measured: the clock gap (how far the fastest answered worker is ahead of the slowest, never
above max_staleness).

    while a worker runs:
        head <- any worker                    [kind, ...]; kind DONE: that worker has finished
        handle(worker, head)                  receive the rest; tick / park the worker
        answer every parked worker within max_staleness of the slowest
"""
from __future__ import annotations

from mpi4py import MPI

DONE = -1


class StalenessGate:
    """Worker clocks and the workers waiting for an answer."""

    def __init__(self, workers, max_staleness: int):
        self.clocks = {w: 0 for w in workers}
        self.parked: list[int] = []
        self.max_staleness = max_staleness
        self.max_clock_gap = 0

    @property
    def running(self) -> bool:
        return bool(self.clocks)

    def done(self, worker: int) -> None:
        del self.clocks[worker]

    def set_clock(self, worker: int, clock: int) -> None:
        self.clocks[worker] = clock

    def park(self, worker: int) -> None:
        self.parked.append(worker)

    def release(self) -> list[int]:
        """The parked workers that may be answered now (the others stay parked)."""
        slowest = min(self.clocks.values()) if self.clocks else 0
        ready, waiting = [], []
        for worker in self.parked:
            gap = self.clocks.get(worker, slowest) - slowest
            if gap > self.max_staleness:
                waiting.append(worker)
                continue
            self.max_clock_gap = max(self.max_clock_gap, gap)
            ready.append(worker)
        self.parked = waiting
        return ready


def serve_loop(comm, head, tag: int, gate: StalenessGate, handle, answer) -> None:
    """Receive heads until every worker is done; `handle(worker)` reads the rest of a message
    (the head is in `head`), `answer(worker)` replies to a released one."""
    status = MPI.Status()
    while gate.running:
        comm.Recv(head, source=MPI.ANY_SOURCE, tag=tag, status=status)
        worker = status.Get_source()
        if head[0] == DONE:
            gate.done(worker)
        else:
            handle(worker)
        for ready in gate.release():
            answer(ready)
