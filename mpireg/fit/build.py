"""What a fit computes with, built from a validated job: the array namespace, the data, the
model, the plan (fit/plan.py) and its reducer, the parameters and (mini-batch procedures) the
optimizer.

Every phase that can fail on some ranks only (opening shards, reading resident rows, a GPU that
is missing) runs inside `agree`, so every rank fails together with one message (agreement.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import log
from ..comm import make_reducer
from ..config import JobConfig
from ..cores import available_memory, share_cores
from ..data import MODEL_TASKS, RATINGS, Schema, ShardReader, read_schema, resolve_paths
from ..data.arrays import LocalArrays, arrays_schema
from ..data.local import LocalData
from ..device import array_module, select_gpu, to_host
from ..errors import CollectiveError, ConfigError, DataError
from ..models import HINTS, Model, make_model, model_options
from ..optim import FULL_BATCH, make_optimizer
from ..agreement import agree, root_then_bcast
from .plan import Plan, data_partition, make_plan


@dataclass
class Arrays:
    """This rank's training rows, handed over by the Python API (targets already encoded)."""

    X: Any
    y: Any
    task: str
    n_classes: int = 0


@dataclass
class Parts:
    cfg: JobConfig          # the job, resolved against the data (model.kind, model.l2)
    comm: Any
    xp: Any
    dtype: np.dtype
    schema: Schema
    model: Model
    plan: Plan
    reducer: Any            # global sums outside a step (comm/reducer.py's interface)
    train: Any              # LocalData or LocalArrays: this rank's training rows
    test: LocalData | None  # this rank's held-out rows
    params: Any             # the flat parameter vector (views: model.layout)
    optimizer: Any = None   # mini-batch procedures only
    topology: Any = None    # a mini-batch procedure's step topology (fit/topology/), its own
    gather_params: Any = None  # a procedure whose ranks hold parts of the model: assembles params

    @property
    def n_params(self) -> int:
        return self.model.layout.size

    @property
    def settings(self):
        """The comm settings with the plan's choices (strategy, fusion size) in them."""
        return self.plan.settings(self.cfg.comm)

    def close(self) -> None:
        for owner in (self.topology, self.reducer):
            if owner is not None:
                owner.finish()
        for data in (self.train, self.test):
            if data is not None:
                data.close()


def build_parts(cfg: JobConfig, comm, arrays: Arrays | None = None, check_schema=None) -> Parts:
    """Collective. Shards name the data unless `arrays` hands this rank its rows; `check_schema`
    (the API's) sees the training data's schema before anything is built."""
    xp = agree(comm, lambda: array_module(cfg.device))
    share_cores(comm)
    if cfg.device == "gpu":
        _, sharing = agree(comm, lambda: select_gpu(comm))
        if sharing > 1:
            log.warn(f"{sharing} ranks share each GPU on a node (allowed; each gets a fair share at best)")
    if arrays is None:
        schema, test_schema = root_then_bcast(comm, lambda: _read_schemas(cfg, check_schema))
        first_row = None
    else:
        schema, first_row = arrays_schema(comm, arrays.X, arrays.y, arrays.task, arrays.n_classes)
        test_schema = None
    cfg = agree(comm, lambda: resolve_job(cfg, schema, check_schema if arrays is not None else None))
    if schema.sparse and cfg.device == "gpu":
        raise CollectiveError(f"device: CSR shards ({schema.files[0]}) train on the CPU for now; "
                              f"set device = 'cpu'", None, comm.size)
    dtype = np.dtype(schema.dtype if cfg.data.dtype == "auto" else cfg.data.dtype)
    m = cfg.model
    sizes = dict(n_users=schema.n_users, n_items=schema.n_items) if m.kind == "mf" else {}
    model = make_model(m.kind, schema.n_features, schema.n_classes, m.fit_intercept, m.l2, m.l1,
                       xp=xp, task=schema.task, **model_options(m, cfg.seed), **sizes)
    agree(comm, lambda: check_model_fits(cfg, model, dtype, schema))  # memory differs by node
    partition = agree(comm, lambda: data_partition(cfg.comm.strategy, cfg.comm, comm.rank, comm.size))
    if arrays is None:
        # Deterministic mode: ranks own whole blocks of block_rows rows (some may own none).
        align = cfg.comm.block_rows if cfg.comm.deterministic else 1
        train = agree(comm, lambda: _open(cfg, comm, schema, partition, model, xp, dtype,
                                          cfg.comm.deterministic, align))
    else:
        train = agree(comm, lambda: _hand_over(cfg, arrays, first_row, partition, model, dtype))
    test = (agree(comm, lambda: _open(cfg, comm, test_schema, (comm.rank, comm.size), model, xp, dtype, True))
            if test_schema else None)
    if model.kind == "glm" or schema.packed:
        for data in (train, test):  # a GLM family's support, the weights and the offsets
            if data is not None:
                agree(comm, lambda data=data: check_targets(model, data))
    shape = (f"{schema.n_users} users x {schema.n_items} items" if schema.n_users
             else f"x {schema.n_features} features")
    log.info(f"data: {schema.n_rows} rows {shape} ({schema.task}, {dtype}) "
             + (f"in {len(schema.files)} shard(s); " if arrays is None else "handed over as arrays; ")
             + f"{'resident' if train.resident else 'streamed'} on each rank")
    if cfg.comm.compression not in ("none", "auto") and dtype != np.float32:
        raise CollectiveError(f"comm.compression: {cfg.comm.compression!r} compresses float32 "
                              f"gradients; this job computes in {dtype} (set data.dtype = "
                              f"'float32')", None, comm.size)
    plan = make_plan(cfg, comm, schema, model, train, dtype)
    reducer = agree(comm, lambda: make_reducer(plan.reducer, comm, plan.settings(cfg.comm), plan.staged))
    params = model.init_params(dtype)
    if model.needs_data_statistics:
        _init_from_data(comm, model, train, params)
    reducer.broadcast(params)
    optimizer = make_optimizer(cfg.optimizer, model, dtype) if cfg.optimizer.kind not in FULL_BATCH else None
    return Parts(cfg, comm, xp, dtype, schema, model, plan, reducer, train, test, params, optimizer)


def check_model_fits(cfg: JobConfig, model, dtype, schema: Schema) -> None:
    """A model whose parameters, gradient and optimizer state cannot fit this machine's memory
    is an error naming where its size comes from (a shard's n_features of 2^40 would otherwise
    end in NumPy's allocation traceback)."""
    copies = 4 + (2 * cfg.optimizer.memory(cfg.optimizer.path is not None) if cfg.optimizer.kind == "lbfgs" else 0)
    if cfg.optimizer.kind == "lbfgs" and cfg.optimizer.path is not None:  # every fold's model, and the full one
        copies *= cfg.optimizer.cv + 1
    need = model.layout.size * np.dtype(dtype).itemsize * copies
    have = available_memory()
    source = (f"{schema.n_users} users x {schema.n_items} items" if schema.n_users else
              f"n_features = {schema.n_features}" + (f", n_classes = {schema.n_classes}" if schema.n_classes > 2 else ""))
    where = schema.files[0] if schema.files else "the arrays"
    if cfg.optimizer.kind == "irls":  # k x k information matrices: 3 float64 copies a model summed
        models = (cfg.optimizer.cv + 1) if cfg.optimizer.path is not None else 1
        information = 3 * 8 * model.layout.size ** 2 * models
        if have is not None and information > have:
            what = (f"{models} information matrices" if models > 1 else "an information matrix")
            raise DataError(f"{where}: optimizer.kind = 'irls' ({source}): the second-order "
                            f"{'path' if models > 1 else 'solver'} forms {what} of {model.layout.size:,} x "
                            f"{model.layout.size:,}, about {information / 2**30:,.1f} GiB; this machine has "
                            f"{have / 2**30:,.1f} GiB available. Hash to fewer columns, or fit with "
                            f"optimizer.kind = 'lbfgs' (first-order, no information matrix)")
    if have is not None and need > have:
        raise DataError(f"{where}: a {model.kind} model of {model.layout.size:,} parameters ({source}) "
                        f"needs about {need / 2**30:,.1f} GiB for its parameters, gradient and "
                        f"optimizer state; this machine has {have / 2**30:,.1f} GiB available. "
                        f"Hash to fewer columns (--hash-bits) or check the shard's attributes")


WEIGHTED_KINDS = ("glm", "linear", "logistic", "softmax", "mlp")  # the models that take packed rows


def resolve_job(cfg: JobConfig, schema: Schema, check_schema=None) -> JobConfig:
    """The job as it runs on this data: model.l2 from model.l2_sum (a penalty on the summed
    loss, divided by the rows of all ranks), a logistic model on more than two classes as
    softmax where model.multiclass allows it; the model's task checked."""
    if check_schema is not None:
        check_schema(schema)
    m = cfg.model
    if m.l2_sum:
        m = replace(m, l2=m.l2_sum / max(schema.n_rows, 1), l2_sum=0.0)
    if m.kind == "logistic" and m.multiclass == "softmax" and schema.n_classes > 2:
        m = replace(m, kind="softmax")
    resolved = replace(cfg, model=m)
    _check_task(resolved, schema)
    if schema.packed and m.kind not in WEIGHTED_KINDS:
        raise ConfigError(f"model.kind: {schema.files[0]} carries {' and '.join(schema.extras)} (sample "
                          f"weights, offsets), which {', '.join(map(repr, WEIGHTED_KINDS))} take; "
                          f"{m.kind!r} does not")
    if cfg.comm.strategy in ("sharded", "sharded-async") and not schema.sparse:
        raise ConfigError(f"comm.strategy: {cfg.comm.strategy!r} exchanges the columns of sparse batches; "
                          f"{schema.files[0] if schema.files else 'the training data'} is dense (use "
                          f"'allreduce', or CSR shards)")
    if schema.packed and cfg.optimizer.kind == "adagrad":
        raise ConfigError(f"optimizer.kind: 'adagrad' (the adaptive passes' C loop) reads plain targets, "
                          f"but {schema.files[0]} carries {' and '.join(schema.extras)}; use 'lbfgs', "
                          f"'sgd' or 'adam'")
    return resolved


def check_targets(model, data) -> None:
    """The first row whose target, weight or offset the model cannot take, named by file and row
    (or by its place in this rank's arrays)."""
    start = 0
    for X, targets in data.blocks():
        found = model.invalid_rows(targets)
        if found is not None:
            row, what = found
            if hasattr(data, "reader"):
                path, file_row = data.reader.locate(start + row)
                raise DataError(f"{path}: row {file_row} holds {what}")
            raise DataError(f"row {start + row} of this rank's arrays holds {what}")
        start += X.shape[0]


def _init_from_data(comm, model, train, params) -> None:
    """Parameters that start from the data (matrix factorisation: the mean rating, which rows
    have ratings): the model's statistics of every rank's rows, summed. Collective."""
    from mpi4py import MPI

    def local():  # streamed rows are read here: a bad block fails on its rank only
        stats = None
        for X, y in train.blocks():
            block = to_host(model.data_statistics(X, y))
            stats = block if stats is None else stats + block
        if stats is None:  # a rank with no rows (an asynchronous server)
            xp = model.xp
            stats = to_host(model.data_statistics(xp.zeros((0, 2), dtype=np.int64), xp.zeros(0)))
        return stats

    stats = agree(comm, local)
    comm.Allreduce(MPI.IN_PLACE, stats)
    model.init_from_data(params, stats)


def _read_schemas(cfg: JobConfig, check_schema=None):
    data = cfg.data
    train = read_schema(resolve_paths(data.train, "data.train"), "data.train")
    if check_schema is not None:  # before the test set: the estimator's own words come first
        check_schema(train)
    test = read_schema(resolve_paths(data.test, "data.test"), "data.test") if data.test else None
    if test is not None:
        for name in ("n_features", "task", "n_classes", "n_users", "n_items"):
            if getattr(test, name) != getattr(train, name):
                raise DataError(f"data.test: {test.files[0]} has {name} = {getattr(test, name)}, "
                                f"but the training data ({train.files[0]}) has "
                                f"{getattr(train, name)}")
    return train, test


def _check_task(cfg: JobConfig, schema: Schema) -> None:
    if schema.task not in MODEL_TASKS[cfg.model.kind]:
        raise ConfigError(f"model.kind: {cfg.model.kind!r} cannot train on {schema.files[0]} "
                          f"(task {schema.task!r}); use model.kind = {HINTS[schema.task]!r}")


def _open(cfg, comm, schema, partition, model, xp, dtype, allow_empty: bool, align: int = 1) -> LocalData:
    budget = cfg.data.memory_budget_mb * 2**20
    index, count = partition if partition else (None, comm.size)
    reader = ShardReader(schema, index, count, budget, x_dtype=dtype, allow_empty=allow_empty, align=align)
    return LocalData(reader, model.prepare_targets, xp).load()


def _hand_over(cfg, arrays: Arrays, first_row: int, partition, model, dtype) -> LocalArrays:
    X, y = arrays.X, arrays.y
    if partition is None and X.shape[0]:
        raise ConfigError(f"comm.strategy: {cfg.comm.strategy!r} makes rank 0 a server that trains "
                          f"on no rows, but it was handed {X.shape[0]}; give rank 0 no rows, or "
                          f"pass shard paths")
    rows = cfg.comm.block_rows
    if cfg.comm.deterministic and first_row % rows:
        raise ConfigError(f"comm.deterministic: this rank's rows start at global row {first_row}, "
                          f"not at a multiple of comm.block_rows ({rows}); hand every rank but the "
                          f"last a multiple of {rows} rows, or pass shard paths")
    if arrays.task == RATINGS:  # index pairs stay integers; ratings in the compute dtype
        y = y.astype(dtype, copy=False)
    else:
        X = X.astype(dtype, copy=False)
    if not (hasattr(X, "tocsr") or X.flags.c_contiguous):
        X = model.xp.ascontiguousarray(X)
    return LocalArrays(X, model.prepare_targets(y), first_row)
