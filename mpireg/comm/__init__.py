"""Synchronisation strategies, one file each, one interface (`base.Strategy`)."""
from dataclasses import replace

from .. import log
from ..errors import ConfigError
from . import packing
from .allreduce import AllreduceStrategy
from .base import EXTRA_SLOTS, Strategy, verify_identical
from .hierarchical import HierarchicalStrategy
from .keyshards import ShardedAsyncStrategy, ShardedStrategy
from .nccl import NcclStrategy
from .ps import ParameterServerStrategy
from .ps_async import AsyncParameterServerStrategy
from .ring import RingStrategy
from .staged import StagedStrategy

STRATEGIES = {s.name: s for s in (AllreduceStrategy, RingStrategy, HierarchicalStrategy,
                                  ParameterServerStrategy, AsyncParameterServerStrategy, NcclStrategy,
                                  ShardedStrategy, ShardedAsyncStrategy)}
# Strategies that may hand device memory to a CUDA-aware MPI as it is (the servers keep host
# buffers; MPI's user-defined reduction for compressed words runs on the host).
DIRECT_ON_DEVICE = ("allreduce", "ring")


def make_strategy(settings, comm, device: str = "cpu", packer=None, force_staging: bool = False,
                  message_bytes: int = 0, overlaps: bool = False):
    """The strategy named by `settings.strategy` (a CommConfig), logged once on rank 0.

    "auto" probes the candidates for a step buffer of `message_bytes` (autotune.py); on the GPU
    it means allreduce.

    On the GPU, buffers go to MPI directly when it is CUDA-aware (or `comm.cuda_aware = "on"`),
    else through pinned host buffers (`StagedStrategy`). NCCL always reduces on the device.
    """
    name = settings.strategy
    if name == "auto" and device == "cpu" and comm.size > 1 and not force_staging:
        from .autotune import autotune

        return autotune(settings, comm, max(message_bytes, 8), overlaps,
                        lambda chosen: STRATEGIES[chosen.strategy](comm, chosen, packer))[0]
    if name == "auto":
        settings = replace(settings, strategy="allreduce")
        name = settings.strategy
    if name not in STRATEGIES:
        raise ConfigError(f"comm.strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "nccl" and device != "gpu":
        raise ConfigError("comm.strategy: 'nccl' reduces GPU buffers; set device = 'gpu' (or use 'allreduce')")
    strategy = STRATEGIES[name](comm, settings, packer)
    how = ""
    if (device == "gpu" and name != "nccl") or force_staging:
        from ..device import mpi_is_cuda_aware

        aware = settings.cuda_aware == "on" or (settings.cuda_aware == "auto" and mpi_is_cuda_aware())
        direct = aware and name in DIRECT_ON_DEVICE and settings.compression == "none" and not force_staging
        how = ("; device buffers go to CUDA-aware MPI directly" if direct else
               f"; device buffers staged through pinned host memory ({'MPI is not CUDA-aware' if not aware else name + ' keeps host buffers'}"
               f"{'' if aware else '; comm.cuda_aware = on forces direct'})")
        if not direct:
            strategy = StagedStrategy(strategy)
    log.info(f"strategy: {name} over {comm.size} rank(s), compression {settings.compression}, "
             f"fusion buckets of {settings.fusion_bytes} bytes; {packing.describe()}{how}")
    return strategy


__all__ = ["STRATEGIES", "Strategy", "EXTRA_SLOTS", "make_strategy", "verify_identical"]
