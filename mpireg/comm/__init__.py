"""Reducers: global sums of buffers, one file each, one interface (`reducer.Reducer`).

    allreduce.py     MPI's Allreduce (the default; Iallreduce for overlapped buckets)
    ring.py          ring-allreduce on point-to-point (baidu-allreduce)
    hierarchical.py  shared memory within a node, a ring among node leaders
    nccl.py          NCCL on GPU buffers
    staged.py        any reducer, device buffers through pinned host mirrors
    fusion.py        the bucket pipe: a step buffer in buckets, compressed by a codec
    codecs.py, packing.py   16-bit wire words (the C extension fuses the packing)
    fixed_point.py   exact integer sums for deterministic mode
    autotune.py      the probe behind comm.strategy = "auto" (fit/plan.py decides)
    verify.py        the checksum that every rank holds the same parameters

Which reducer a fit uses is decided by fit/plan.py alone; topologies that are not a reduction
(parameter servers, key shards, ALS's factor rows) live with the procedures that use them
(fit/topology/).
"""
from .allreduce import AllreduceReducer
from .hierarchical import HierarchicalReducer
from .nccl import NcclReducer
from .reducer import INT_MAX, Reducer
from .ring import RingReducer
from .staged import StagedReducer
from .verify import verify_identical

REDUCERS = {r.name: r for r in (AllreduceReducer, RingReducer, HierarchicalReducer, NcclReducer)}


def make_reducer(name: str, comm, settings, staged: bool = False):
    """The reducer `name` on `comm`, wrapped in host staging when asked. Collective."""
    reducer = REDUCERS[name](comm, settings)
    return StagedReducer(reducer) if staged else reducer


__all__ = ["INT_MAX", "REDUCERS", "Reducer", "StagedReducer", "make_reducer", "verify_identical"]
