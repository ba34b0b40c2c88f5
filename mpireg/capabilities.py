"""What each strategy and each optimizer can do: the one table that config validation (config.py)
and the plan (fit/plan.py) both read, so a combination is refused, or chosen, by the same facts.

A *strategy* is how a fit's ranks meet: a topology (how a mini-batch step's sums reach the
update) and a reducer (how every other global sum is made: evaluation, full-batch solvers).

    topology      collective      every rank reduces the step buffer and updates (the reducer)
                  server          rank 0 sums the workers' buffers, updates, ships parameters
                  async-server    rank 0 only serves; workers never wait for each other
                  key-shards      parameters split by key over server ranks (sparse models)
                  async-key-shards  the same, the servers only serving

An *optimizer* is a procedure (fit/<procedure>.py) and what it accepts.
"""
from __future__ import annotations

from dataclasses import dataclass

COLLECTIVE, SERVER, ASYNC_SERVER, KEY_SHARDS, ASYNC_KEY_SHARDS = (
    "collective", "server", "async-server", "key-shards", "async-key-shards")


@dataclass(frozen=True)
class StrategyTraits:
    name: str
    topology: str
    reducer: str                  # the reducer of its global sums (comm/<reducer>.py)
    deterministic: bool = True    # can sum exactly (comm.deterministic)
    compression: bool = True      # can send 16-bit words (comm.compression)
    full_batch: bool = True       # the full-batch optimizers may use it for their sums
    device: tuple = ("cpu", "gpu")
    direct_on_device: bool = False  # may hand device memory to a CUDA-aware MPI as it is
    models: tuple | None = None   # None: every model
    why_not_full_batch: str = ""

    @property
    def synchronous(self) -> bool:
        return self.topology not in (ASYNC_SERVER, ASYNC_KEY_SHARDS)


SPARSE_MODELS = ("linear", "logistic", "softmax")

STRATEGIES = {t.name: t for t in (
    StrategyTraits("allreduce", COLLECTIVE, "allreduce", direct_on_device=True),
    StrategyTraits("ring", COLLECTIVE, "ring", direct_on_device=True),
    StrategyTraits("hierarchical", COLLECTIVE, "hierarchical"),
    StrategyTraits("ps", SERVER, "allreduce"),
    StrategyTraits("ps-async", ASYNC_SERVER, "allreduce", deterministic=False, full_batch=False,
                   why_not_full_batch="is for mini-batch optimizers"),
    StrategyTraits("nccl", COLLECTIVE, "nccl", device=("gpu",)),
    StrategyTraits("sharded", KEY_SHARDS, "allreduce", deterministic=False, compression=False,
                   models=SPARSE_MODELS),
    StrategyTraits("sharded-async", ASYNC_KEY_SHARDS, "allreduce", deterministic=False, compression=False,
                   models=SPARSE_MODELS),
)}
AUTO = "auto"  # the plan chooses: the sparse exchange, or the fastest collective by a probe
PROBED = ("allreduce", "ring", "hierarchical")  # what "auto" races on the CPU


@dataclass(frozen=True)
class OptimizerTraits:
    name: str
    procedure: str              # fit/<procedure>.py; mini-batch ones depend on the strategy
    minibatch: bool
    models: tuple | None = None  # None: every model but matrix factorisation's ALS-only rules
    l1: bool = True
    deterministic: bool = True
    strategies: tuple | None = None  # None: every strategy its batch kind allows


COLLECTIVES = ("allreduce", "ring", "hierarchical", AUTO)
OPTIMIZERS = {t.name: t for t in (
    OptimizerTraits("sgd", "minibatch", True),
    OptimizerTraits("adam", "minibatch", True),
    OptimizerTraits("lbfgs", "fullbatch", False, l1=False),
    OptimizerTraits("normal", "normal_equations", False, models=("linear", "glm"), l1=False, deterministic=False),
    OptimizerTraits("als", "als", False, models=("mf",), l1=False, deterministic=False,
                    strategies=COLLECTIVES),
    OptimizerTraits("adagrad", "online", False, models=("linear", "logistic"), l1=False,
                    deterministic=False, strategies=COLLECTIVES),
    OptimizerTraits("irls", "irls", False, models=("glm",), deterministic=False, strategies=COLLECTIVES),
)}
MF_OPTIMIZERS = ("als", "sgd", "adam")


def procedure_name(optimizer: str, strategy: str, deterministic: bool) -> str:
    """The fitting procedure (a module of mpireg.fit) for a resolved strategy."""
    traits = OPTIMIZERS[optimizer]
    if not traits.minibatch:
        return traits.procedure
    if strategy in STRATEGIES and STRATEGIES[strategy].topology in (KEY_SHARDS, ASYNC_KEY_SHARDS):
        return "sharded"
    return "deterministic" if deterministic else "minibatch"
