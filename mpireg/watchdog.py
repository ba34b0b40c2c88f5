"""A watchdog that ends a job whose collective makes no progress, and says who is missing.

The main thread marks where it waits (`with watchdog.waiting("step", step):`). A thread on every
rank sends a heartbeat, [step, phase], to rank 0 on a communicator of its own, about four times
per `seconds`. When a rank has waited in one phase longer than `seconds`, rank 0's thread knows
who did not arrive: ranks whose last heartbeat is old (a dead or frozen process) or shows an
earlier step or no collective (still computing, or stuck elsewhere). It prints

    watchdog: no progress for 31 s in step at step 1234 (strategy ring); rank(s) [3] did not
    arrive (rank 3: last heartbeat 30 s ago, at step 1233, outside a collective)

and aborts every rank (MPI_Abort). Other ranks wait twice as long before aborting by themselves,
in case rank 0 is the one that froze. Needs MPI_THREAD_MULTIPLE, which mpi4py asks for.

MPI_Abort itself can hang: with the link to a node cut, hydra's server cannot reach that node's
proxy, so it never kills anyone, and the ranks on both sides sat in MPI_Abort (holding the GIL)
40 s later with mpiexec still running. So the watchdog ends the job through agreement.abort_job,
which first starts a reaper for the rank and its launcher proxy; with every rank and proxy gone,
mpiexec returns (measured on emulated nodes: 15-25 s after the cut with run.watchdog_seconds = 10).
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
from mpi4py import MPI

from .agreement import abort_job
from .comm.links import rank_leaders

HEARTBEAT_TAG = 17
PHASES = ["none", "step", "allreduce", "broadcast", "checkpoint", "serve", "finish"]


def _rank_nodes(comm):
    """Rank 0: [(node index, host name)] of every rank, nodes numbered by their lowest rank; the
    others: None. Collective."""
    leaders = rank_leaders(comm)
    hosts = comm.gather(MPI.Get_processor_name(), root=0)
    if hosts is None:
        return None
    index = {lead: i for i, lead in enumerate(sorted(set(leaders)))}
    return [(index[lead], host) for lead, host in zip(leaders, hosts)]


class Watchdog:
    def __init__(self, comm, seconds: float, strategy: str):
        self.seconds = seconds
        self.strategy = strategy
        self.world = comm
        self.enabled = seconds > 0 and comm.size > 1 and MPI.Query_thread() == MPI.THREAD_MULTIPLE
        self._step = 0
        self._phase = 0
        self._since = time.monotonic()
        if self.enabled:
            self.comm = comm.Dup()  # heartbeats never meet training messages
            self.rank = comm.rank
            self._nodes = _rank_nodes(comm)  # rank 0: each rank's (node index, host name)
            self._stop = threading.Event()
            self._sends = []
            self._seen = {}  # rank 0: rank -> (step, phase, monotonic time received)
            self._thread = threading.Thread(target=self._run, name="mpireg-watchdog", daemon=True)
            self._thread.start()

    @contextmanager
    def waiting(self, phase: str, step: int):
        """Mark the main thread as waiting in a collective `phase` at `step`."""
        self._step, self._phase, self._since = step, PHASES.index(phase), time.monotonic()
        try:
            yield
        finally:
            self._phase = 0

    def close(self) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join()
        MPI.Request.Waitall(self._sends)
        self.comm.Barrier()
        if self.rank == 0:
            self._drain()
        self.comm.Free()
        self.enabled = False

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        interval = max(0.05, min(1.0, self.seconds / 4))
        beat = np.zeros(2, dtype=np.int64)
        while not self._stop.wait(interval):
            if self.rank == 0:
                self._drain()
            else:
                beat[:] = (self._step, self._phase)
                self._sends = [r for r in self._sends if not r.Test()]
                self._sends.append(self.comm.Isend(beat.copy(), dest=0, tag=HEARTBEAT_TAG))
            waited = time.monotonic() - self._since
            limit = self.seconds if self.rank == 0 else 2 * self.seconds
            if self._phase and waited > limit:
                self._fire(waited)

    def _drain(self) -> None:
        beat = np.zeros(2, dtype=np.int64)
        status = MPI.Status()
        while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=HEARTBEAT_TAG, status=status):
            self.comm.Recv(beat, source=status.Get_source(), tag=HEARTBEAT_TAG)
            self._seen[status.Get_source()] = (int(beat[0]), int(beat[1]), time.monotonic())

    def _fire(self, waited: float) -> None:
        where = f"in {PHASES[self._phase]} at step {self._step} (strategy {self.strategy})"
        if self.rank == 0:
            missing, details = self._missing()
            message = (f"watchdog: no progress for {waited:.0f} s {where}; rank(s) {missing} did not "
                       f"arrive ({'; '.join(details)}){self._lost_nodes(missing)}")
        else:
            message = (f"watchdog (rank {self.rank}): no progress for {waited:.0f} s {where}; rank 0, "
                       f"which names the missing ranks, did not act: it may be the one that stalled")
        print(f"mpireg: error: {message}", file=sys.stderr, flush=True)
        abort_job(self.world)

    def _lost_nodes(self, missing: list) -> str:
        """'; node N (host H, ranks [..]) lost: ...' for each node none of whose ranks is heard
        (every rank of a node silent at once is the node, or its link, not the ranks)."""
        if not self._nodes:
            return ""
        now, lost = time.monotonic(), []
        for node in sorted({n for n, _ in self._nodes}):
            ranks = [r for r, (n, _) in enumerate(self._nodes) if n == node]
            silent = [r for r in ranks if r in missing and
                      (r not in self._seen or now - self._seen[r][2] > self.seconds / 2)]
            if 0 not in ranks and silent == ranks:
                lost.append(f"node {node} (host {self._nodes[ranks[0]][1]}, ranks {ranks}) lost: "
                            f"none of its ranks is heard")
        return "".join(f"; {line}" for line in lost)

    def _missing(self):
        now = time.monotonic()
        missing, details = [], []
        for rank in range(1, self.world.size):
            step, phase, when = self._seen.get(rank, (None, 0, None))
            stale = when is None or now - when > self.seconds / 2
            if stale or step < self._step or phase == 0:
                missing.append(rank)
                if when is None:
                    details.append(f"rank {rank}: no heartbeat ever")
                else:
                    state = f"in {PHASES[phase]}" if phase else "outside a collective"
                    details.append(f"rank {rank}: last heartbeat {now - when:.0f} s ago, at step {step}, {state}")
        return missing, details

