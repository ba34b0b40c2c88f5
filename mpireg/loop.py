"""The training loop: composes data, model, optimizer and strategy from a validated config.

It is the only place that knows the order of things:

    setup (every rank agrees it worked) -> resume -> epochs of steps, or one full-batch solve
    -> final evaluation over all rows -> model.h5, summary.json (and trace.json with --profile)

The hot loop is `_train_epoch`: gradient sum into the step buffer, `strategy.step`, counters.
Stopping (a signal) and time-based checkpoints are votes in the step buffer's tail, so every
rank acts at the same step without an extra collective. Rank 0 alone writes files and output.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from mpi4py import MPI

from . import log
from .checkpoint import clear_checkpoints, latest_checkpoint, save_checkpoint
from .comm import EXTRA_SLOTS, make_strategy, verify_identical
from .comm.exact import agree_exponents, decode, encode_sum
from .config import JobConfig, dumps_toml
from .data import MODEL_TASKS, ShardReader, epoch_plan, read_schema, resolve_paths
from .data.local import LocalData
from .data.synth import synthesize
from .device import array_module, select_gpu, to_host
from .errors import CollectiveError, ConfigError, DataError, MpiregError
from .metrics import add_sums, finalize, sums_length
from .model_io import save_model
from .models import make_model
from .optim import FULL_BATCH, gram_sums, learning_rate, make_optimizer, minimize_lbfgs, solve_normal
from .parallel import StopRequest, agree, on_rank_zero, root_then_bcast
from .timeline import Timeline
from .watchdog import Watchdog

LOSS, ROWS, STOP, CHECKPOINT = range(EXTRA_SLOTS)  # the step buffer's tail
TIMED = ("read", "compute", "update", "wait")       # per-step parts the loop times itself


@dataclass
class Progress:
    """Counters a checkpoint saves. The data position is step `epoch_step` of epoch `epoch`;
    shuffling is a function of (seed, epoch, rank), so no random state needs saving."""

    epoch: int = 0           # epochs completed
    step: int = 0            # optimizer steps taken
    epoch_step: int = 0      # steps taken in the current epoch
    epoch_loss_sum: float = 0.0
    epoch_rows: float = 0.0
    samples: int = 0         # rows that went into gradients
    best_loss: float = math.inf
    stale_epochs: int = 0    # epochs without an improvement of optimizer.tol
    stopped_early: bool = False


class Trainer:
    def __init__(self, cfg: JobConfig, comm, run_dir, resume: bool = False, stop: StopRequest | None = None):
        self.cfg = cfg
        self.comm = comm
        self.rank = comm.rank
        log.set_rank(comm.rank)  # rank 0 alone prints and writes metrics, however we were started
        self._batch_X = self._batch_y = None  # the step's gathered rows, reused (see _batch)
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.stop = stop or StopRequest()
        self.progress = Progress()
        self.stopped_by_signal = False
        self.timings = {"compute_s": 0.0, "comm_s": 0.0}
        self.window = dict.fromkeys(TIMED, 0.0)
        self._bar = _NoBar()

    # =================================================================== orchestration
    def run(self) -> dict | None:
        """Train; the summary, or None when a signal stopped training (after a checkpoint)."""
        start = time.perf_counter()
        self._setup()
        self._prepare_run_dir()
        self._restore()
        self.watchdog = Watchdog(self.comm, self.cfg.run.watchdog_seconds, self.cfg.comm.strategy)
        self.timeline = Timeline(self.comm, self.cfg.run.profile)
        self.train_start = time.perf_counter()
        self._last_checkpoint = self._window_start = self.train_start
        self._window_steps, self._window_samples = self.progress.step, self.progress.samples
        if self.cfg.optimizer.kind in FULL_BATCH:
            self._fit_full_batch()
        else:
            self._fit_minibatch()
        train_seconds = time.perf_counter() - self.train_start
        summary = None
        if self.stopped_by_signal:
            log.info(f"stopped by signal at step {self.progress.step}: checkpoint written; "
                     f"continue with --resume")
        else:
            verify_identical(self.comm, to_host(self.params), self.progress.step)
            summary = self._finish(train_seconds, time.perf_counter() - start)
        self.timeline.write(self.run_dir / "trace.json")
        self.watchdog.close()
        self.strategy.finish()
        for data in (self.train_data, self.test_data):
            if data is not None:
                data.close()
        self.metrics_log.close()
        return summary

    def _setup(self) -> None:
        cfg, comm = self.cfg, self.comm
        self.xp = agree(comm, lambda: array_module(cfg.device))
        if cfg.device == "gpu":
            gpu, sharing = agree(comm, lambda: select_gpu(comm))
            if sharing > 1 and self.rank == 0:
                log.warn(f"{sharing} ranks share each GPU on a node (allowed; each gets a fair share at best)")
        if cfg.data.synth is not None:
            on_rank_zero(comm, lambda: _ensure_synthetic(cfg))
        train_schema, test_schema = root_then_bcast(comm, self._read_schemas)
        self.schema = train_schema
        self.dtype = np.dtype(train_schema.dtype if cfg.data.dtype == "auto" else cfg.data.dtype)
        m = cfg.model
        self.model = make_model(m.kind, train_schema.n_features, train_schema.n_classes,
                                m.fit_intercept, m.l2, m.l1, xp=self.xp, task=train_schema.task)
        step_bytes = (self.model.layout.size + EXTRA_SLOTS) * self.dtype.itemsize
        self.strategy = agree(comm, lambda: make_strategy(cfg.comm, comm, cfg.device, message_bytes=step_bytes,
                                                          overlaps=self.model.overlaps))
        partition = self.strategy.data_partition()  # None: this rank trains on no rows (a server)
        # Deterministic mode: ranks own whole blocks of block_rows rows (some may own none).
        align = cfg.comm.block_rows if cfg.comm.deterministic else 1
        self.train_data = agree(comm, lambda: self._open(train_schema, partition, cfg.comm.deterministic, align))
        self.test_data = (agree(comm, lambda: self._open(test_schema, (self.rank, comm.size), True))
                          if test_schema else None)
        log.info(f"data: {train_schema.n_rows} rows x {train_schema.n_features} features "
                 f"({train_schema.task}, {self.dtype}) in {len(train_schema.files)} shard(s); "
                 f"{'resident' if self.train_data.reader.resident else 'streamed'} on each rank")
        if cfg.comm.compression != "none" and self.dtype != np.float32:
            raise CollectiveError(f"comm.compression: {cfg.comm.compression!r} compresses float32 "
                                  f"gradients; this job computes in {self.dtype} (set data.dtype = "
                                  f"'float32')", None, comm.size)
        self.params = self.model.init_params(self.dtype)
        self.strategy.broadcast(self.params)
        data_ranks = partition[1] if partition else comm.size - 1
        self.strategy.setup(self.params, rows_per_step=cfg.optimizer.batch_size * max(data_ranks, 1),
                            buffer_dtype=np.int64 if cfg.comm.deterministic else self.dtype)
        if cfg.optimizer.kind not in FULL_BATCH:
            self.optimizer = make_optimizer(cfg.optimizer, self.model, self.dtype)

    def _read_schemas(self):
        data = self.cfg.data
        train = read_schema(resolve_paths(data.train, "data.train"), "data.train")
        test = read_schema(resolve_paths(data.test, "data.test"), "data.test") if data.test else None
        if test is not None:
            for name in ("n_features", "task", "n_classes"):
                if getattr(test, name) != getattr(train, name):
                    raise DataError(f"data.test: {test.files[0]} has {name} = {getattr(test, name)}, "
                                    f"but the training data ({train.files[0]}) has "
                                    f"{getattr(train, name)}")
        if train.task not in MODEL_TASKS[self.cfg.model.kind]:
            hint = {"regression": "linear", "binary": "logistic", "multiclass": "softmax"}[train.task]
            raise ConfigError(f"model.kind: {self.cfg.model.kind!r} cannot train on "
                              f"{train.files[0]} (task {train.task!r}); use model.kind = {hint!r}")
        return train, test

    def _open(self, schema, partition, allow_empty: bool, align: int = 1) -> LocalData:
        budget = self.cfg.data.memory_budget_mb * 2**20
        index, count = partition if partition else (None, self.comm.size)
        reader = ShardReader(schema, index, count, budget, x_dtype=self.dtype, allow_empty=allow_empty,
                             align=align)
        return LocalData(reader, self.model.prepare_targets, self.xp).load()

    def _prepare_run_dir(self) -> None:
        def prepare():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.toml").write_text(dumps_toml(self.cfg.to_dict()), encoding="utf-8")
            if not self.resume:
                removed = clear_checkpoints(self.run_dir / "checkpoints")
                if removed:
                    log.warn(f"{self.run_dir}: removed {removed} checkpoint(s) of an earlier run "
                             f"(pass --resume to continue it instead)")

        on_rank_zero(self.comm, prepare)
        self.metrics_log = log.JsonlLog(self.run_dir / "metrics.jsonl", append=self.resume)

    # =================================================================== checkpoints
    def _restore(self) -> None:
        if not self.resume:
            return
        found = root_then_bcast(self.comm, lambda: latest_checkpoint(self.run_dir / "checkpoints"))
        if found is None:
            log.info(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'} yet; starting fresh")
            return
        path, arrays, meta = found
        if arrays["params"].shape != self.params.shape or meta["model"] != self.model.kind:
            raise CollectiveError(f"--resume: {path} holds a {meta['model']} model with "
                                  f"{arrays['params'].size} parameters; this job builds a "
                                  f"{self.model.kind} model with {self.params.size}", None, self.comm.size)
        self.params[...] = self.xp.asarray(arrays["params"])
        self.progress = Progress(**meta["progress"])
        if hasattr(self, "optimizer"):
            state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
            self.optimizer.load_state_dict({**state, **meta["optimizer"]})
        ranks = meta.get("ranks", self.comm.size)
        log.info(f"resumed from {path}: epoch {self.progress.epoch}, step {self.progress.step}"
                 + (f" (written by {ranks} ranks, resumed on {self.comm.size}: rows reassigned)"
                    if ranks != self.comm.size else ""))

    def _checkpoint(self) -> None:
        """Collective: rank 0 writes parameters, optimizer state and counters."""
        opt_arrays, opt_scalars = {}, {}
        if hasattr(self, "optimizer"):
            for key, value in self.optimizer.state_dict().items():
                (opt_scalars if np.isscalar(value) else opt_arrays)[key] = value
        arrays = {"params": self.params, **{f"opt.{k}": v for k, v in opt_arrays.items()}}
        meta = {"model": self.model.kind, "progress": asdict(self.progress), "optimizer": opt_scalars,
                "ranks": self.comm.size}
        start = time.perf_counter()
        with self.watchdog.waiting("checkpoint", self.progress.step):
            on_rank_zero(self.comm, lambda: save_checkpoint(
                self.run_dir / "checkpoints", self.progress.step, arrays, meta, self.cfg.run.checkpoint_keep))
        self._last_checkpoint = time.perf_counter()
        self.timeline.add("checkpoint", start, self._last_checkpoint, step=self.progress.step)

    def _checkpoint_vote(self) -> float:
        """Rank 0's clock decides time-based checkpoints; the vote reaches all ranks in the step."""
        every = self.cfg.run.checkpoint_every_seconds
        return float(self.rank == 0 and every > 0 and time.perf_counter() - self._last_checkpoint >= every)

    def _after_step(self, tail) -> bool:
        """Act on the step's votes; True when training must stop here."""
        if tail[STOP]:
            self.stopped_by_signal = True
            if self.strategy.synchronous:
                self._checkpoint()
            return True
        every = self.cfg.run.checkpoint_every_steps
        if self.strategy.synchronous and (tail[CHECKPOINT] or (every and self.progress.step % every == 0)):
            self._checkpoint()
        return False

    # =================================================================== mini-batch
    def _fit_minibatch(self) -> None:
        opt, progress = self.cfg.optimizer, self.progress
        if self.cfg.comm.deterministic:
            self._prepare_exact()
        else:
            local_steps = sum(-(-size // opt.batch_size) for size in self.train_data.block_sizes)
            # Every rank takes the same number of steps; a rank out of rows sends zeros. This is
            # what keeps uneven shards from hanging a rank in a collective (DDP's "uneven inputs").
            self.steps_per_epoch = self.comm.allreduce(local_steps, op=MPI.MAX)
            self.updates_per_epoch = self.comm.allreduce(local_steps, op=MPI.SUM)
            log.info(f"optimizer: {opt.kind}, lr {opt.lr} ({opt.schedule}), batch {opt.batch_size} "
                     f"per rank, {self.steps_per_epoch} steps/epoch")
        if self.strategy.serves:
            self._serve()
        train_epoch = self._train_epoch_exact if self.cfg.comm.deterministic else self._train_epoch
        while not self.strategy.serves and progress.epoch < opt.epochs and not progress.stopped_early:
            # Overflow shows up as a non-finite global loss, which the epoch reports once, on
            # every rank together; NumPy's per-rank warnings would only repeat it.
            with np.errstate(over="ignore", invalid="ignore"):
                train_epoch(progress.epoch)
            if self.stopped_by_signal:
                break
            epoch_loss = progress.epoch_loss_sum / max(progress.epoch_rows, 1) + self.model.penalty(self.params)
            progress.epoch += 1
            progress.epoch_step, progress.epoch_loss_sum, progress.epoch_rows = 0, 0.0, 0.0
            if self.strategy.synchronous:  # epoch-boundary collectives need every rank
                self._end_epoch(epoch_loss)
        with self.watchdog.waiting("finish", progress.step):
            self.strategy.finish_training(self.params)
        if not self.strategy.synchronous:
            self._checkpoint()

    def _train_epoch(self, epoch: int) -> None:
        cfg, model, data, strategy = self.cfg, self.model, self.train_data, self.strategy
        opt, xp, progress, window, timeline = cfg.optimizer, self.xp, self.progress, self.window, self.timeline
        n = model.layout.size
        buffer = strategy.step_buffer(n + EXTRA_SLOTS, self.dtype, xp)
        plan = epoch_plan(data.block_sizes, opt.batch_size, cfg.seed, epoch, self.rank)
        total_steps = self.steps_per_epoch * opt.epochs
        # Synchronous strategies: every rank takes the same number of steps. Asynchronous: each
        # worker takes its own.
        n_steps = self.steps_per_epoch if strategy.synchronous else len(plan)
        bar = self._progress_bar(epoch, done=progress.epoch_step)

        def update(params, reduced):
            start = time.perf_counter()
            tail = to_host(reduced[n:]).astype(np.float64)
            mean_grad = reduced[:n]
            if tail[ROWS]:
                mean_grad /= tail[ROWS]
            model.add_l2_grad(params, mean_grad)
            self.optimizer.step(params, mean_grad, lr)
            window["update"] += time.perf_counter() - start
            return tail

        for i in range(progress.epoch_step, n_steps):
            t0 = time.perf_counter()
            batch = self._batch(data, plan, i)
            t1 = time.perf_counter()
            buffer[n + STOP] = self.stop.requested
            buffer[n + CHECKPOINT] = self._checkpoint_vote()
            sample_wait = strategy.synchronous and progress.step % cfg.run.log_every == 0
            lr = learning_rate(opt, progress.step, epoch, total_steps)
            marks = {}

            def compute(on_ready, batch=batch, sample_wait=sample_wait, marks=marks):
                self._write_gradient(buffer, batch, on_ready)
                marks["computed"] = time.perf_counter()
                if sample_wait:
                    self.comm.Barrier()  # sampled: how long this rank waits for the slowest
                marks["waited"] = time.perf_counter()

            with self.watchdog.waiting("step", progress.step):
                tail = strategy.overlap_step(self.params, buffer, update, compute)
            t4 = time.perf_counter()
            t2, t3 = marks["computed"], marks["waited"]
            if sample_wait:
                window["wait"] += (t3 - t2) * cfg.run.log_every
            window["read"] += t1 - t0
            window["compute"] += t2 - t1
            self.timings["compute_s"] += t2 - t0
            self.timings["comm_s"] += t4 - t3
            timeline.add("read", t0, t1, step=progress.step)
            timeline.add("compute", t1, t2)
            timeline.add("step", t3, t4)
            self._count_step(tail, epoch, lr)
            bar.update(1)
            if self._after_step(tail):
                break
        bar.close()

    def _count_step(self, tail, epoch: int, lr: float) -> None:
        """Counters, the divergence check, the parameter checksum and the metrics record."""
        cfg, progress, strategy = self.cfg, self.progress, self.strategy
        loss_sum, count = float(tail[LOSS]), float(tail[ROWS])
        progress.step += 1
        progress.epoch_step += 1
        progress.samples += int(count)
        progress.epoch_loss_sum += loss_sum
        progress.epoch_rows += count
        if not math.isfinite(loss_sum):
            message = (f"training diverged at step {progress.step} (epoch {epoch + 1}): "
                       f"the loss is {loss_sum}; lower optimizer.lr")
            # The global loss is the same on every rank: they all stop together. An
            # asynchronous worker sees only its own and must abort the job.
            raise CollectiveError(message, None, self.comm.size) if strategy.synchronous else MpiregError(message)
        if cfg.comm.verify_every and strategy.synchronous and progress.step % cfg.comm.verify_every == 0:
            verify_identical(self.comm, to_host(self.params), progress.step)
        if progress.step % cfg.run.log_every == 0:
            now = time.perf_counter()
            record = dict(type="step", step=progress.step, epoch=epoch + 1, loss=loss_sum / max(count, 1),
                          lr=lr, time_s=now - self.train_start)
            record.update(self._timing_record(now))
            self.metrics_log.write(record)
            self._bar.set_postfix(loss=f"{record['loss']:.4g}", rows_s=f"{record['samples_per_s']:.3g}",
                                  refresh=False)

    def _batch(self, data, plan, i):
        """(X, y) of step i of this rank's epoch plan; None past its end (a rank short of rows
        still takes part in every reduction, with zeros)."""
        if i >= len(plan):
            return None
        block, rows = plan[i]
        X, y = data.block(block, then=plan[i + 1][0] if i + 1 < len(plan) else None)
        if self.xp is not np:
            rows = self.xp.asarray(rows)
            return X[rows], y[rows]
        # Gathered into buffers kept from step to step: a fresh megabyte-sized batch costs a
        # page fault per 4 KiB, as much again as the gather itself.
        if self._batch_X is None or self._batch_X.shape[0] < len(rows) \
                or self._batch_X.dtype != X.dtype or self._batch_y.dtype != y.dtype:
            self._batch_X = np.empty((max(len(rows), self.cfg.optimizer.batch_size), X.shape[1]), X.dtype)
            self._batch_y = np.empty(self._batch_X.shape[0], y.dtype)
        k = len(rows)
        # mode="clip": the plan's indices are in range by construction, and the default "raise"
        # gathers into a hidden temporary first (twice the time, measured).
        return (np.take(X, rows, axis=0, out=self._batch_X[:k], mode="clip"),
                np.take(y, rows, axis=0, out=self._batch_y[:k], mode="clip"))

    def _write_gradient(self, buffer, batch, on_ready) -> None:
        """Gradient sum, loss sum and row count of the batch into the step buffer."""
        n = self.model.layout.size
        if batch is None:
            buffer[:n + ROWS + 1] = 0
        else:
            X, y = batch
            buffer[n + LOSS] = self.model.loss_grad_sum(self.params, X, y, buffer[:n], on_ready)
            buffer[n + ROWS] = X.shape[0]
        if on_ready is not None:
            on_ready(buffer.size)  # every rank starts every reduction before any other collective

    def _timing_record(self, now: float) -> dict:
        """Mean per-step milliseconds of each part since the last record, rows/s, and bandwidth
        (nccl-tests definitions); wait is sampled once per record and scaled."""
        stats = self.strategy.step_stats()
        steps = max(self.progress.step - self._window_steps, 1)
        rate = (self.progress.samples - self._window_samples) / max(now - self._window_start, 1e-9)
        algbw = stats["wire_bytes"] / stats["comm_s"] / 1e9 if stats.get("comm_s") else 0.0
        record = {f"{k}_ms": 1e3 * v / steps for k, v in self.window.items()}
        record.update(pack_ms=1e3 * stats.get("pack_s", 0.0) / steps,
                      comm_ms=1e3 * stats.get("comm_s", 0.0) / steps,
                      exposed_comm_ms=1e3 * stats.get("exposed_s", 0.0) / steps,
                      unpack_ms=1e3 * stats.get("unpack_s", 0.0) / steps,
                      wire_bytes=stats.get("wire_bytes", 0) // steps, algbw_gbs=algbw,
                      busbw_gbs=algbw * self.strategy.bus_factor(), samples_per_s=rate)
        self.window.update(dict.fromkeys(TIMED, 0.0))  # in place: the step loop holds this dict
        self._window_start, self._window_steps, self._window_samples = now, self.progress.step, self.progress.samples
        return record

    def _serve(self) -> None:
        """The server rank of an asynchronous strategy: apply gradients as they arrive."""
        opt, progress = self.cfg.optimizer, self.progress
        total = self.updates_per_epoch * opt.epochs

        def update_at(params, grad, t):
            self.model.add_l2_grad(params, grad)
            self.optimizer.step(params, grad, learning_rate(opt, t, t // max(self.updates_per_epoch, 1), total))

        def on_update(t, loss, count, lag):
            progress.samples += int(count)
            if t % self.cfg.run.log_every == 0:
                self.metrics_log.write(dict(type="update", update=t, loss=loss / max(count, 1),
                                            version_lag=lag, time_s=time.perf_counter() - self.train_start))

        with self.watchdog.waiting("serve", 0):
            self.staleness = self.strategy.serve(self.params, update_at, on_update)
        progress.step, progress.epoch = self.staleness["updates"], opt.epochs
        log.info(f"{self.strategy.name}: {self.staleness['updates']} updates; clock gap at most "
                 f"{self.staleness['max_clock_gap']} (max_staleness {self.cfg.comm.max_staleness}); "
                 f"version lag max {self.staleness['max_version_lag']}, "
                 f"mean {self.staleness['mean_version_lag']:.2f}")

    def _end_epoch(self, epoch_loss: float) -> None:
        cfg, progress = self.cfg, self.progress
        record = dict(type="epoch", epoch=progress.epoch, step=progress.step, train_loss=epoch_loss,
                      time_s=time.perf_counter() - self.train_start)
        if self.test_data is not None and progress.epoch % cfg.run.eval_every == 0:
            record["eval"] = self._evaluate(self.test_data)
        tol = cfg.optimizer.tol
        if epoch_loss < progress.best_loss - tol:
            progress.best_loss, progress.stale_epochs = epoch_loss, 0
        else:
            progress.stale_epochs += 1
        progress.stopped_early = tol > 0 and progress.stale_epochs >= cfg.optimizer.patience
        self.metrics_log.write(record)
        evaluation = "".join(f"  eval {k} {v:.5g}" for k, v in record.get("eval", {}).items() if k != "rows")
        log.info(f"epoch {progress.epoch}/{cfg.optimizer.epochs}  loss {epoch_loss:.6g}{evaluation}"
                 + ("  (early stop: no improvement of optimizer.tol)" if progress.stopped_early else ""))
        self._checkpoint()

    def _progress_bar(self, epoch: int, done: int = 0):
        show = self.rank == 0 and self.cfg.run.progress and log.interactive()
        if not show:
            self._bar = _NoBar()
        else:
            from tqdm import tqdm

            self._bar = tqdm(total=self.steps_per_epoch, initial=done, unit="step", leave=False, ncols=100,
                             desc=f"epoch {epoch + 1}/{self.cfg.optimizer.epochs}", file=sys.stderr)
        return self._bar

    # =================================================================== deterministic mode
    def _prepare_exact(self) -> None:
        """Global batches of whole row blocks, chosen by (seed, epoch) alone: the same batches,
        and (exact.py) the same reduced gradients, bit for bit, on any number of ranks."""
        opt, rows = self.cfg.optimizer, self.cfg.comm.block_rows
        self.blocks_per_step = max(1, opt.batch_size // rows)
        self.steps_per_epoch = -(-self._n_blocks() // self.blocks_per_step)
        log.info(f"deterministic: global batch of {self.blocks_per_step} block(s) of {rows} rows "
                 f"(optimizer.batch_size is global in this mode), {self.steps_per_epoch} steps/epoch")

    def _n_blocks(self) -> int:
        return -(-self.schema.n_rows // self.cfg.comm.block_rows)

    def _owned_blocks(self) -> range:
        rows, data = self.cfg.comm.block_rows, self.train_data
        first = data.reader.first_row // rows
        return range(first, first + -(-data.n_rows // rows))

    def _block_partials(self, params, blocks) -> np.ndarray:
        """[gradient sum | loss sum | rows] of each given block this rank owns, in float64."""
        model, xp, data, rows = self.model, self.xp, self.train_data, self.cfg.comm.block_rows
        n = model.layout.size
        out = np.empty((len(blocks), n + 2))
        scratch = xp.empty(n, dtype=self.dtype)
        for i, block in enumerate(blocks):
            lo = block * rows - data.reader.first_row
            X, y = data.rows(lo, min(lo + rows, data.n_rows))
            # A fresh copy: the block's arithmetic sees the same alignment on any rank.
            out[i, n] = model.loss_grad_sum(params, xp.array(X, copy=True), xp.array(y, copy=True), scratch)
            out[i, :n] = to_host(scratch)
            out[i, n + 1] = X.shape[0]
        return out

    def _exact_sum(self, partials, n_terms, ints):
        """Encode this rank's block partials into `ints`; return the groups and agreed exponents."""
        n = self.model.layout.size
        groups = [slice(0, n), slice(n + LOSS, n + LOSS + 1)]
        exponents = agree_exponents(self.strategy, partials, groups, n_terms)
        encode_sum(partials, groups, exponents, n + ROWS, ints)
        return groups, exponents

    def _train_epoch_exact(self, epoch: int) -> None:
        cfg, model, progress, opt = self.cfg, self.model, self.progress, self.cfg.optimizer
        n = model.layout.size
        order = np.random.default_rng([cfg.seed, epoch]).permutation(self._n_blocks())
        owned = self._owned_blocks()
        ints = np.zeros(n + EXTRA_SLOTS, dtype=np.int64)
        decoded = np.empty(n + EXTRA_SLOTS)
        bar = self._progress_bar(epoch, done=progress.epoch_step)
        for i in range(progress.epoch_step, self.steps_per_epoch):
            batch = order[i * self.blocks_per_step:(i + 1) * self.blocks_per_step]
            mine = sorted(int(b) for b in batch if owned.start <= b < owned.stop)
            groups, exponents = self._exact_sum(self._block_partials(self.params, mine), len(batch), ints)
            ints[n + STOP] = self.stop.requested
            ints[n + CHECKPOINT] = self._checkpoint_vote()
            lr = learning_rate(opt, progress.step, epoch, self.steps_per_epoch * opt.epochs)

            def update(params, reduced):
                decode(reduced, groups, exponents, decoded)
                tail = reduced[n:].astype(np.float64)
                tail[LOSS] = decoded[n + LOSS]
                grad = self.xp.asarray((decoded[:n] / tail[ROWS]).astype(self.dtype))
                model.add_l2_grad(params, grad)
                self.optimizer.step(params, grad, lr)
                return tail

            with self.watchdog.waiting("step", progress.step):
                tail = self.strategy.step(self.params, ints, update)
            self._count_step(tail, epoch, lr)
            bar.update(1)
            if self._after_step(tail):
                break
        bar.close()

    # =================================================================== full batch
    def _fit_full_batch(self) -> None:
        opt = self.cfg.optimizer
        if opt.kind == "normal":
            self._solve_normal()
            return
        iterations = []

        def record(intermediate_result):
            iterations.append(self._last_loss)
            self.metrics_log.write(dict(type="iteration", iteration=len(iterations), loss=self._last_loss,
                                        time_s=time.perf_counter() - self.train_start))
            if self.comm.allreduce(int(self.stop.requested), op=MPI.MAX):  # every rank stops together
                self.stopped_by_signal = True
                raise StopIteration

        x, info = minimize_lbfgs(self._global_objective, to_host(self.params), opt.max_iter,
                                 opt.tol, opt.history, callback=record)
        self.params[...] = self.xp.asarray(x.astype(self.dtype))
        self.progress.step, self.progress.epoch = info["iterations"], info["evaluations"]
        self.progress.samples = info["evaluations"] * self.schema.n_rows
        if self.stopped_by_signal:
            self._checkpoint()
            return
        log.info(f"lbfgs: {info['iterations']} iterations, {info['evaluations']} passes over the "
                 f"data, {'converged' if info['converged'] else 'stopped'} ({info['message']})")

    def _global_objective(self, x: np.ndarray):
        """Objective and gradient over every rank's rows: one pass, one allreduce (float64)."""
        xp, model = self.xp, self.model
        params = xp.asarray(x, dtype=self.dtype)
        n = model.layout.size
        if self.cfg.comm.deterministic:
            sums = np.empty(n + EXTRA_SLOTS)
            ints = np.zeros(n + EXTRA_SLOTS, dtype=np.int64)
            groups, exponents = self._exact_sum(self._block_partials(params, list(self._owned_blocks())),
                                                self._n_blocks(), ints)
            self._allreduce(ints)
            decode(ints, groups, exponents, sums)
            sums[n + ROWS] = ints[n + ROWS]
        else:
            sums = xp.zeros(n + EXTRA_SLOTS, dtype=np.float64)
            scratch = xp.empty(n, dtype=self.dtype)
            for X, y in self.train_data.blocks():
                sums[n + LOSS] += model.loss_grad_sum(params, X, y, scratch)
                sums[:n] += scratch
                sums[n + ROWS] += X.shape[0]
            self._allreduce(sums)
        rows = float(sums[n + ROWS])
        grad = sums[:n] / rows
        model.add_l2_grad(xp.asarray(x), grad)
        self._last_loss = float(sums[n + LOSS]) / rows + model.penalty(xp.asarray(x))
        return self._last_loss, to_host(grad)

    def _solve_normal(self) -> None:
        d, fit = self.schema.n_features, self.model.fit_intercept
        k = d + 1 if fit else d
        sums = np.zeros(k * k + k + 1)
        A, b = sums[:k * k].reshape(k, k), sums[k * k:k * k + k]
        for X, y in self.train_data.blocks():
            gram_sums(to_host(X), to_host(y).astype(np.float64), fit, A, b)
            sums[-1] += X.shape[0]
        self._allreduce(sums)
        mask = to_host(self.model.mask(np.float64))
        w = solve_normal(A, b, int(sums[-1]), self.model.l2, mask)
        self.params[...] = self.xp.asarray(w.astype(self.dtype))
        self.progress.step, self.progress.epoch, self.progress.samples = 1, 1, int(sums[-1])
        log.info(f"normal equations: solved {k} x {k} system over {int(sums[-1])} rows")

    def _allreduce(self, buf) -> None:
        with self.watchdog.waiting("allreduce", self.progress.step):
            self.strategy.allreduce(buf)

    # =================================================================== results
    def _evaluate(self, data: LocalData) -> dict:
        start = time.perf_counter()
        sums = np.zeros(sums_length(self.model))
        for X, y in data.blocks():
            add_sums(self.model, self.params, X, y, sums)
        self._allreduce(sums)
        self.timeline.add("evaluate", start, time.perf_counter(), step=self.progress.step)
        return finalize(self.model, sums, self.model.penalty(self.params))

    def _finish(self, train_seconds: float, wall_seconds: float) -> dict:
        cfg = self.cfg
        summary = {
            "train": self._evaluate(self.train_data),
            "eval": self._evaluate(self.test_data) if self.test_data is not None else {},
            "steps": self.progress.step,
            "epochs": self.progress.epoch,
            "stopped_early": self.progress.stopped_early,
            "train_s": train_seconds,
            "wall_s": wall_seconds,
            "samples_per_s": self.progress.samples / max(train_seconds, 1e-9),
            "ranks": self.comm.size,
            "strategy": self.strategy.name,
            "model": cfg.model.kind,
            "optimizer": cfg.optimizer.kind,
            "dtype": str(self.dtype),
            "time_compute_s": self.timings["compute_s"],
            "time_comm_s": self.timings["comm_s"],
            "compression": cfg.comm.compression,
        }
        if getattr(self, "staleness", None):
            summary["staleness"] = self.staleness
        self.metrics_log.write({"type": "summary", **summary})

        def write():
            save_model(self.run_dir / "model.h5", self.model, self.params, cfg.to_dict(),
                       self.schema.describe(), {"train": summary["train"], "eval": summary["eval"]})
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

        on_rank_zero(self.comm, write)
        final = "  ".join(f"{split} {k} {v:.6g}" for split in ("train", "eval")
                          for k, v in summary[split].items() if k != "rows")
        log.info(f"done: {final}")
        log.info(f"{summary['samples_per_s']:.4g} samples/s over {train_seconds:.3g} s; "
                 f"model saved to {self.run_dir / 'model.h5'}")
        return summary


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def _ensure_synthetic(cfg: JobConfig) -> None:
    """The quickstart: make the job's synthetic data when its training directory is absent."""
    synth, target = cfg.data.synth, Path(cfg.data.train[0])
    if len(cfg.data.train) != 1:
        raise ConfigError("data.synth: data.train must be one directory to generate into")
    if target.exists():
        return
    log.info(f"making synthetic {synth.task} data in {target} ({synth.rows} rows, {synth.features} features)")
    synthesize(synth.task, synth.rows, synth.features, target, synth.shards, synth.classes,
               synth.test_rows, synth.noise, synth.seed, dtype="float32")
