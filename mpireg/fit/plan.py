"""The plan of a fit: how it computes and how its ranks communicate, and why. The only place that
chooses; everything else reads the plan.

    (job, data schema, communicator, this rank's rows)
        -> procedure       fit/<procedure>.py, from the optimizer (capabilities.OPTIMIZERS)
        -> strategy        the job's, or for "auto": the sparse exchange where it moves far fewer
                           bytes (decided first, from the first batch), else the collective the
                           probe predicts fastest (comm/autotune.py), with its bucket size
        -> reducer         the global sums' reducer (capabilities.STRATEGIES[strategy].reducer)
        -> staged          device buffers through host mirrors (an MPI that is not CUDA-aware)
        -> links           latency and bandwidth inside a node and between nodes, measured once
                           (comm/links.py): what "auto" may choose and how much it may probe
        -> compression     the job's, or for "auto": bf16 words across a slow link between nodes
        -> why             one line per decision

It is logged on rank 0 and written into summary.json. Config validation (config.py) reads the
same capability table, so what the plan may choose and what a job may ask agree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from mpi4py import MPI

from .. import log
from ..agreement import agree
from ..capabilities import ASYNC_KEY_SHARDS, ASYNC_SERVER, AUTO, SPARSE_MODELS, STRATEGIES, procedure_name
from ..comm import make_reducer, packing
from ..comm.autotune import autotune
from ..comm.links import measure_links
from ..data import epoch_plan
from ..errors import ConfigError
from .topology import EXTRA_SLOTS

# comm.strategy = "auto" takes the sparse exchange where it moves this many times fewer bytes than
# the dense allreduce: it makes more, smaller messages (benchmarks/bench_sparse_wire.py, 2 ranks:
# 13x fewer bytes still lost 0.9x at 2^18 columns; 48x won 3.3x at 2^20).
SPARSE_MIN_SAVING = 16
# comm.compression = "auto" takes bf16 across links slower than this (bytes/s), for step buffers of
# at least MIN_COMPRESSED bytes: packing runs at memory speed, well above such a link.
SLOW_LINK = 2e9
MIN_COMPRESSED = 64 << 10


@dataclass(frozen=True)
class Plan:
    procedure: str
    strategy: str
    reducer: str
    topology: str
    synchronous: bool
    fusion_bytes: int
    compression: str
    staged: bool
    why: tuple
    links: dict | None = None  # the start-up measurement of the links (comm/links.py)

    def settings(self, comm_cfg):
        """The job's comm settings with the plan's choices in them (what reducers read)."""
        return replace(comm_cfg, strategy=self.strategy, fusion_bytes=self.fusion_bytes, compression=self.compression)

    def describe(self) -> dict:
        return {**asdict(self), "why": list(self.why)}


def procedure_of(cfg, strategy: str | None = None) -> str:
    """The fitting procedure (a key of fit.PROCEDURES) a job runs under `strategy` (the job's own
    unless "auto" chose another)."""
    if cfg.optimizer.kind in ("irls", "lbfgs") and cfg.optimizer.path is not None:
        return "path"  # the regularisation path (and its cross-validation) of fit/path.py
    return procedure_name(cfg.optimizer.kind, strategy or cfg.comm.strategy, cfg.comm.deterministic)


def data_partition(strategy: str, settings, rank: int, size: int):
    """(index, count) of this rank among the ranks that hold training rows; None for a rank that
    only serves. "auto" chooses among strategies where every rank trains."""
    topology = STRATEGIES[strategy].topology if strategy in STRATEGIES else None
    if topology == ASYNC_SERVER:
        if size < 2:
            raise ConfigError(f"comm.strategy: {strategy!r} needs at least 2 ranks "
                              f"(rank 0 serves, the others work)")
        return None if rank == 0 else (rank - 1, size - 1)
    if topology == ASYNC_KEY_SHARDS:
        servers = max(settings.servers, 1)
        if size <= servers:
            raise ConfigError(f"comm.servers: {strategy!r} needs a worker rank besides its {servers} server "
                              f"rank(s); run more ranks or set fewer servers")
        return None if rank < servers else (rank - servers, size - servers)
    return rank, size


def make_plan(cfg, comm, schema, model, train, dtype) -> Plan:
    """Collective: every rank reaches the same plan (the probe and the first-batch count are
    reduced before anyone decides)."""
    why = []
    strategy, fusion = cfg.comm.strategy, cfg.comm.fusion_bytes
    links = agree(comm, lambda: measure_links(comm)) if comm.size > 1 and cfg.device == "cpu" else None
    if links is not None:
        why.append(f"links: {links.describe()}")
    if strategy == AUTO:
        strategy, fusion = _choose(cfg, comm, schema, model, train, dtype, why, links)
    traits = STRATEGIES[strategy]
    reducer = traits.reducer
    compression = _compression(cfg, traits, model, dtype, links, why)
    staged = _staged(cfg, traits, why, compression)
    procedure = procedure_of(cfg, strategy)
    why.append(f"procedure {procedure}: optimizer.kind = {cfg.optimizer.kind!r}"
               + (", deterministic" if procedure == "deterministic" else ""))
    plan = Plan(procedure, strategy, reducer, traits.topology, traits.synchronous, int(fusion),
                compression, staged, tuple(why), links.as_dict() if links else None)
    log.info(f"plan: {procedure} over {comm.size} rank(s); strategy {strategy} (reducer {reducer}, "
             f"{traits.topology} steps), compression {plan.compression}, fusion buckets of "
             f"{plan.fusion_bytes} bytes; {packing.describe()}")
    for line in why:
        log.info(f"  because {line}")
    return plan


def _choose(cfg, comm, schema, model, train, dtype, why, links=None) -> tuple[str, int]:
    """comm.strategy = "auto": the sparse exchange first (no probe then), else the probe."""
    if cfg.device != "cpu" or comm.size == 1:
        why.append(f"comm.strategy = auto: allreduce ({'device = gpu' if cfg.device != 'cpu' else 'one rank'})")
        return "allreduce", cfg.comm.fusion_bytes
    if _sparse_exchange_pays(cfg, comm, schema, model, train, dtype, why):
        return "sharded", cfg.comm.fusion_bytes
    nbytes = max((model.layout.size + EXTRA_SLOTS) * dtype.itemsize, 8)
    choice = agree(comm, lambda: autotune(cfg.comm, comm, nbytes, model.overlaps,
                                          lambda name: make_reducer(name, comm, replace(cfg.comm, strategy=name)),
                                          links))
    why.append(choice.reason)
    return choice.strategy, choice.fusion_bytes


def sparse_bytes_per_key(width: int) -> int:
    """The key out (8 bytes), its `width` values back and its gradient sums out (8 each)."""
    return 8 + 16 * width


def _sparse_exchange_pays(cfg, comm, schema, model, train, dtype, why) -> bool:
    """On CSR shards with plain SGD: the bytes a step would move both ways, measured on each
    rank's first batch. Collective."""
    opt, c = cfg.optimizer, cfg.comm
    if not (schema.sparse and model.kind in SPARSE_MODELS and opt.kind == "sgd" and not opt.momentum
            and not c.deterministic and c.compression == "none"):
        return False

    def first_batch_keys() -> int:
        plan = epoch_plan(train.block_sizes, opt.batch_size, cfg.seed, 0, comm.rank)
        if not plan:
            return 0
        X, _ = train.block(plan[0][0])
        return len(np.unique(X[plan[0][1]].indices)) + model.fit_intercept

    keys = comm.allreduce(agree(comm, first_batch_keys), op=MPI.MAX)
    width = max(model.n_classes, 1) if model.kind == "softmax" else 1
    sparse = keys * sparse_bytes_per_key(width)
    dense = (model.layout.size + EXTRA_SLOTS) * dtype.itemsize * 2 * (comm.size - 1) / comm.size
    chosen = dense > SPARSE_MIN_SAVING * sparse
    why.append(f"comm.strategy = auto: {'sharded' if chosen else 'dense'} exchange; a step's batch touches "
               f"{keys} keys: {sparse:,.0f} bytes by key against {dense:,.0f} for the dense allreduce "
               f"(sparse taken below 1/{SPARSE_MIN_SAVING})")
    return chosen


def _compression(cfg, traits, model, dtype, links, why) -> str:
    """comm.compression = "auto": bf16 words on the wire where the links between nodes are slow
    against the step buffer (halving the bytes that bound the step there); else none."""
    asked = cfg.comm.compression
    if asked != "auto":
        return asked
    nbytes = (model.layout.size + EXTRA_SLOTS) * dtype.itemsize
    if dtype != np.float32 or not traits.compression or cfg.comm.deterministic:
        why.append("comm.compression = auto: none (16-bit words are for float32 gradients of a "
                   "non-deterministic collective or parameter-server step)")
        return "none"
    if links is None or links.inter is None or links.inter.bandwidth > SLOW_LINK or nbytes < MIN_COMPRESSED:
        where = "one node" if links is None or links.inter is None else \
            f"{links.inter.bandwidth * 8 / 1e9:.1f} Gbit/s between nodes, {nbytes} bytes a step"
        why.append(f"comm.compression = auto: none ({where})")
        return "none"
    why.append(f"comm.compression = auto: bf16: the step's {nbytes} bytes take "
               f"{nbytes / links.inter.bandwidth * 1e3:.2f} ms on the {links.inter.bandwidth * 8 / 1e9:.1f} "
               f"Gbit/s link between nodes; 16-bit words (float32's range) halve that")
    return "bf16"


def _staged(cfg, traits, why, compression: str = "none") -> bool:
    """On the GPU: device buffers go to a CUDA-aware MPI directly, else through host mirrors."""
    if cfg.device != "gpu" or traits.reducer == "nccl":
        return False
    from ..device import mpi_is_cuda_aware

    settings = cfg.comm
    aware = settings.cuda_aware == "on" or (settings.cuda_aware == "auto" and mpi_is_cuda_aware())
    direct = aware and traits.direct_on_device and compression == "none"
    if direct:
        why.append("device buffers go to CUDA-aware MPI directly")
    else:
        why.append(f"device buffers staged through pinned host memory ("
                   f"{'MPI is not CUDA-aware' if not aware else traits.name + ' keeps host buffers'}"
                   f"{'' if aware else '; comm.cuda_aware = on forces direct'})")
    return not direct
