"""Ranks on one node share its cores (each rank's BLAS gets its share of threads) and its memory.

OpenBLAS (NumPy's BLAS) starts one thread per core in every process, and its idle threads spin.
With p ranks on a node, p x cores BLAS threads then fight each other and MPI's polling for the
cores: measured on 2 cores, 2 ranks, the 64-128-10 MLP's step went from 0.1 ms to 10 ms of
communication (the other rank was descheduled), 12,500 samples/s against 231,000 with one thread
each. torchrun sets OMP_NUM_THREADS=1 for the same reason. A thread count the user set in the
environment (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS) is left alone.
"""
from __future__ import annotations

import os

from mpi4py import MPI

from . import log

USER_KEYS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_limit = []  # the limit set, kept alive (it holds while the object does); once per process


def share_cores(comm) -> int | None:
    """Limit this rank's BLAS threads to its node's cores / ranks on the node. Collective.
    The thread count set, or None where nothing was changed (one rank on the node, the user's
    environment decides, or an earlier fit of this process set it already)."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local = node.size
    node.Free()
    if local == 1 or _limit or any(os.environ.get(key) for key in USER_KEYS):
        return None
    threads = max(1, _cores() // local)
    from threadpoolctl import threadpool_limits

    _limit.append(threadpool_limits(limits=threads, user_api="blas"))
    log.info(f"threads: {local} ranks share this node's {_cores()} cores; BLAS uses {threads} "
             f"thread(s) per rank (set OMP_NUM_THREADS to choose)")
    return threads


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes this node can still hand out (MemAvailable), or None where the OS does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
