"""The server rank of an asynchronous parameter server: apply gradients as they arrive.

The strategy owns the protocol (comm/ps_async.py); this module owns what an update is (penalty,
optimizer step on the learning-rate schedule of the whole fit) and what is recorded.
"""
from __future__ import annotations

from .. import log
from ..optim import learning_rate


def serve(parts, run, updates_per_epoch: int) -> None:
    opt, progress, model = parts.cfg.optimizer, run.progress, parts.model
    total = updates_per_epoch * opt.epochs

    def update_at(params, grad, t):
        model.add_l2_grad(params, grad)
        parts.optimizer.step(params, grad, learning_rate(opt, t, t // max(updates_per_epoch, 1), total))

    def on_update(t, loss, count, lag):
        progress.samples += int(count)
        if t % parts.cfg.run.log_every == 0:
            run.metrics.write(dict(type="update", update=t, loss=loss / max(count, 1),
                                   version_lag=lag, time_s=run.elapsed()))

    with run.waiting("serve"):
        run.staleness = staleness = parts.strategy.serve(parts.params, update_at, on_update)
    progress.step, progress.epoch = staleness["updates"], opt.epochs
    log.info(f"{parts.strategy.name}: {staleness['updates']} updates; clock gap at most "
             f"{staleness['max_clock_gap']} (max_staleness {parts.cfg.comm.max_staleness}); "
             f"version lag max {staleness['max_version_lag']}, "
             f"mean {staleness['mean_version_lag']:.2f}")
