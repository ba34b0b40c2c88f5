"""Synchronisation strategies, one file each, one interface (`base.Strategy`)."""
from .. import log
from ..errors import ConfigError
from . import packing
from .allreduce import AllreduceStrategy
from .base import EXTRA_SLOTS, Strategy, verify_identical
from .ps import ParameterServerStrategy
from .ps_async import AsyncParameterServerStrategy
from .ring import RingStrategy

STRATEGIES = {s.name: s for s in (AllreduceStrategy, RingStrategy, ParameterServerStrategy,
                                  AsyncParameterServerStrategy)}


def make_strategy(settings, comm, packer=None) -> Strategy:
    """The strategy named by `settings.strategy` (a CommConfig), logged once on rank 0."""
    if settings.strategy not in STRATEGIES:
        raise ConfigError(f"comm.strategy: expected one of {', '.join(STRATEGIES)}, got {settings.strategy!r}")
    strategy = STRATEGIES[settings.strategy](comm, settings, packer)
    log.info(f"strategy: {settings.strategy} over {comm.size} rank(s), compression "
             f"{settings.compression}, fusion buckets of {settings.fusion_bytes} bytes; {packing.describe()}")
    return strategy


__all__ = ["STRATEGIES", "Strategy", "EXTRA_SLOTS", "make_strategy", "verify_identical"]
