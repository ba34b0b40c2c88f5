"""The step loop and the epoch loop that every mini-batch procedure feeds (stochastic,
deterministic and sparse batches), and the loop of an asynchronous server rank.

    fit_epochs: epochs of `train_epoch(epoch)` until optimizer.epochs, an early stop or a signal
      -> at each epoch end (every rank): held-out evaluation, early-stop test, record, checkpoint
    -> topology.finish_training (a parameter server ships its final parameters)

    take_steps: the steps of one epoch, each `step(i, lr) -> reduced tail` (the procedure's own),
      then `end_step`: count the step, check for divergence, write the step record and act on
      the step's votes (checkpoint, stop)

    serve_updates: a server rank applies the workers' updates on the fit's learning-rate schedule
"""
from __future__ import annotations

import math
import time

import numpy as np
from mpi4py import MPI

from .. import log
from ..comm import verify_identical
from ..device import to_host
from ..errors import CollectiveError, MpiregError
from ..optim import learning_rate
from .result import evaluate
from .topology import LOSS, ROWS


def count_steps(parts) -> tuple[int, int]:
    """(steps per epoch: the most batches any rank has, so every rank takes that many; updates
    per epoch: every rank's batches, what an asynchronous server applies). Collective."""
    batch = parts.cfg.optimizer.batch_size
    local = sum(-(-size // batch) for size in parts.train.block_sizes)
    return parts.comm.allreduce(local, op=MPI.MAX), parts.comm.allreduce(local, op=MPI.SUM)


def fit_epochs(parts, run, train_epoch) -> None:
    opt, progress = parts.cfg.optimizer, run.progress
    while progress.epoch < opt.epochs and not progress.stopped_early:
        # Overflow shows up as a non-finite global loss, which end_step reports once, on every
        # rank together; NumPy's per-rank warnings would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            train_epoch(progress.epoch)
        if run.stopped_by_signal:
            break
        epoch_loss = progress.epoch_loss_sum / max(progress.epoch_rows, 1) + parts.model.penalty(parts.params)
        progress.epoch += 1
        progress.epoch_step, progress.epoch_loss_sum, progress.epoch_rows = 0, 0.0, 0.0
        if parts.plan.synchronous:  # epoch-boundary collectives need every rank
            _end_epoch(parts, run, epoch_loss)
    finish_epochs(parts, run)


def finish_epochs(parts, run) -> None:
    """Every rank, the server of an asynchronous strategy included."""
    with run.waiting("finish"):
        parts.topology.finish_training(parts.params)
        if parts.gather_params is not None:  # ranks hold parts of the model: the whole, everywhere
            parts.gather_params()
        if not parts.plan.synchronous:
            _agree_worker_positions(parts, run)
    if not parts.plan.synchronous:
        run.checkpoint()


def _agree_worker_positions(parts, run) -> None:
    """Asynchronous strategies: each worker stopped at its own step. Every rank learns where each
    one is (the checkpoint keeps them, so a resume takes each worker's rows from there) and
    whether a signal stopped any of them (then every rank reports the stop, the servers
    included, and a server counts the epochs its slowest worker completed)."""
    progress, serves = run.progress, parts.topology.serves
    mine = None if serves else (progress.epoch, progress.epoch_step, progress.step, run.stopped_by_signal)
    positions = parts.comm.allgather(mine)
    workers = [p for p in positions if p is not None]
    run.stopped_by_signal = any(p[3] for p in workers)
    run.worker_positions = [None if p is None else list(p[:3]) for p in positions]
    if serves and run.stopped_by_signal:
        progress.epoch = min(p[0] for p in workers)


def take_steps(parts, run, epoch: int, steps_per_epoch: int, n_steps: int, step) -> None:
    """Steps progress.epoch_step..n_steps-1 of an epoch of `steps_per_epoch` synchronous steps."""
    opt, progress = parts.cfg.optimizer, run.progress
    total_steps = steps_per_epoch * opt.epochs
    bar = run.epoch_bar(steps_per_epoch, epoch, done=progress.epoch_step)
    for i in range(progress.epoch_step, n_steps):
        lr = learning_rate(opt, progress.step, epoch, total_steps)
        stop = end_step(parts, run, step(i, lr), epoch, lr)
        bar.update(1)
        if stop:
            break
    bar.close()


def end_step(parts, run, tail, epoch: int, lr: float) -> bool:
    """Count a step; True when the fit must stop after it (a signal)."""
    cfg, progress, synchronous = parts.cfg, run.progress, parts.plan.synchronous
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
        raise CollectiveError(message, None, parts.comm.size) if synchronous else MpiregError(message)
    if cfg.comm.verify_every and synchronous and progress.step % cfg.comm.verify_every == 0:
        verify_identical(parts.comm, to_host(parts.params), progress.step)
    if progress.step % cfg.run.log_every == 0:
        now = time.perf_counter()
        record = dict(type="step", step=progress.step, epoch=epoch + 1, loss=loss_sum / max(count, 1),
                      lr=lr, time_s=run.elapsed())
        record.update(run.meter.record(parts.topology, now))
        run.metrics.write(record)
        run.bar.set_postfix(loss=f"{record['loss']:.4g}", rows_s=f"{record['samples_per_s']:.3g}",
                            refresh=False)
    return run.act_on_votes(tail)


def serve_updates(parts, run, serve, updates_per_epoch: int) -> None:
    """An asynchronous server rank: `serve(lr_at, on_update) -> stats` applies updates until
    every worker is done; here, what an update's learning rate is and what is recorded."""
    opt, progress = parts.cfg.optimizer, run.progress
    total = updates_per_epoch * opt.epochs

    first = progress.step  # updates applied before a resume: the schedule goes on from there

    def lr_at(t):
        t += first
        return learning_rate(opt, t, t // max(updates_per_epoch, 1), total)

    def on_update(t, loss, rows, **extra):
        progress.samples += int(rows)
        if (first + t) % parts.cfg.run.log_every == 0:
            run.metrics.write(dict(type="update", update=first + t, loss=loss / max(rows, 1), **extra,
                                   time_s=run.elapsed()))

    with run.waiting("serve"):
        run.staleness = stats = serve(lr_at, on_update)
    progress.step, progress.epoch = first + stats["updates"], opt.epochs  # (a stop: finish_epochs)
    lag = (f"; version lag max {stats['max_version_lag']}, mean {stats['mean_version_lag']:.2f}"
           if "max_version_lag" in stats else "")
    log.info(f"{parts.plan.strategy}: {stats['updates']} updates"
             f"{' per server' if parts.plan.procedure == 'sharded' else ''}; clock gap at most "
             f"{stats['max_clock_gap']} (max_staleness {parts.cfg.comm.max_staleness}){lag}")


def _end_epoch(parts, run, epoch_loss: float) -> None:
    held_out = (lambda: evaluate(parts, run, parts.test)) if parts.test is not None else None
    record_epoch(parts, run, epoch_loss, held_out)
    run.checkpoint()


def record_epoch(parts, run, epoch_loss: float, held_out=None) -> None:
    """Every rank, at an epoch's end: the held-out metrics (`held_out()`, collective) every
    run.eval_every epochs, the early-stop test, the metrics record and the log line."""
    cfg, progress = parts.cfg, run.progress
    record = dict(type="epoch", epoch=progress.epoch, step=progress.step, train_loss=epoch_loss,
                  time_s=run.elapsed())
    if held_out is not None and progress.epoch % cfg.run.eval_every == 0:
        record["eval"] = held_out()
    tol = cfg.optimizer.tol
    if epoch_loss < progress.best_loss - tol:
        progress.best_loss, progress.stale_epochs = epoch_loss, 0
    else:
        progress.stale_epochs += 1
    progress.stopped_early = tol > 0 and progress.stale_epochs >= cfg.optimizer.patience
    run.metrics.write(record)
    evaluation = "".join(f"  eval {k} {v:.5g}" for k, v in record.get("eval", {}).items() if k != "rows")
    log.info(f"epoch {progress.epoch}/{cfg.optimizer.epochs}  loss {epoch_loss:.6g}{evaluation}"
             + ("  (early stop: no improvement of optimizer.tol)" if progress.stopped_early else ""))
