"""Synchronisation strategies, one file each, one interface (`base.Strategy`)."""
from .. import log
from ..errors import ConfigError
from .allreduce import AllreduceStrategy
from .base import EXTRA_SLOTS, Strategy, verify_identical

STRATEGIES = {s.name: s for s in (AllreduceStrategy,)}


def make_strategy(name: str, comm) -> Strategy:
    if name not in STRATEGIES:
        raise ConfigError(f"comm.strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")
    log.info(f"strategy: {name} over {comm.size} rank(s)")
    return STRATEGIES[name](comm)


__all__ = ["STRATEGIES", "Strategy", "EXTRA_SLOTS", "make_strategy", "verify_identical"]
