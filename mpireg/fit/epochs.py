"""The epoch loop that the mini-batch procedures share (stochastic and deterministic batches).

    epochs of `train_epoch(epoch)` until optimizer.epochs, an early stop or a signal
      -> at each epoch end (every rank): held-out evaluation, early-stop test, record, checkpoint
    -> strategy.finish_training (a parameter server ships its final parameters)

A procedure's `train_epoch` takes the steps; after each it calls `end_step`, which counts the
step, checks for divergence, writes the step record and acts on the step's votes.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import log
from ..comm import verify_identical
from ..device import to_host
from ..errors import CollectiveError, MpiregError
from .results import evaluate
from .steps import LOSS, ROWS


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
        if parts.strategy.synchronous:  # epoch-boundary collectives need every rank
            _end_epoch(parts, run, epoch_loss)
    finish_epochs(parts, run)


def finish_epochs(parts, run) -> None:
    """Every rank, the server of an asynchronous strategy included."""
    with run.waiting("finish"):
        parts.strategy.finish_training(parts.params)
    if not parts.strategy.synchronous:
        run.checkpoint()


def end_step(parts, run, tail, epoch: int, lr: float) -> bool:
    """Count a step; True when the fit must stop after it (a signal)."""
    cfg, progress, strategy = parts.cfg, run.progress, parts.strategy
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
        raise CollectiveError(message, None, parts.comm.size) if strategy.synchronous else MpiregError(message)
    if cfg.comm.verify_every and strategy.synchronous and progress.step % cfg.comm.verify_every == 0:
        verify_identical(parts.comm, to_host(parts.params), progress.step)
    if progress.step % cfg.run.log_every == 0:
        now = time.perf_counter()
        record = dict(type="step", step=progress.step, epoch=epoch + 1, loss=loss_sum / max(count, 1),
                      lr=lr, time_s=run.elapsed())
        record.update(run.meter.record(strategy, now))
        run.metrics.write(record)
        run.bar.set_postfix(loss=f"{record['loss']:.4g}", rows_s=f"{record['samples_per_s']:.3g}",
                            refresh=False)
    return run.act_on_votes(tail)


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
