"""Step topologies: how a mini-batch step's sums reach the update. Owned by the procedures that
use them; every one of them sends its global sums outside the step through the fit's reducer.

    step.py          the step buffer's layout and what every topology shares
    collective.py    every rank reduces (the reducer) and updates          strategy allreduce, ring,
                                                                           hierarchical, nccl
    server.py        rank 0 sums, updates, ships the parameters            ps
    async_server.py  rank 0 serves; workers step on their own              ps-async
    staleness.py     the asynchronous servers' loop and its staleness bound
    host_mirror.py   a server's steps on device buffers, through host memory
    key_shards.py    parameters split by key over server ranks             sharded, sharded-async
                     (built by fit/sharded.py, which keys its model)
    factor_rows.py   ALS's exchange of factor rows between their owners
"""
from __future__ import annotations

from ...capabilities import ASYNC_SERVER, COLLECTIVE, SERVER, STRATEGIES
from ...comm import make_reducer
from .async_server import AsyncServerSteps
from .collective import CollectiveSteps
from .host_mirror import HostMirror
from .server import ServerSteps
from .step import CHECKPOINT, EXTRA_SLOTS, LOSS, ROWS, STOP, StepTopology

TOPOLOGIES = {COLLECTIVE: CollectiveSteps, SERVER: ServerSteps, ASYNC_SERVER: AsyncServerSteps}


def make_step_topology(strategy: str, comm, settings, reducer, staged: bool = False, packer=None):
    """The step topology of a (resolved) strategy; a server's goes through host mirrors when its
    device buffers are staged. Set it up before the first step (`setup`)."""
    topology = STRATEGIES[strategy].topology
    steps = TOPOLOGIES[topology](comm, settings, reducer, packer)
    return HostMirror(steps) if staged and topology != COLLECTIVE else steps


def make_strategy(strategy: str, comm, settings, staged: bool = False):
    """(reducer, step topology) of a strategy, built together: for benchmarks and tests that
    drive one directly (a fit's come from its plan)."""
    reducer = make_reducer(STRATEGIES[strategy].reducer, comm, settings, staged)
    return reducer, make_step_topology(strategy, comm, settings, reducer, staged)


__all__ = ["CHECKPOINT", "EXTRA_SLOTS", "LOSS", "ROWS", "STOP", "StepTopology", "TOPOLOGIES",
           "make_step_topology", "make_strategy"]
