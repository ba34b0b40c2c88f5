"""The engine: fitting procedures, one module each, behind one entry point.

    run.py        Run: the order of things and the services around a fit (checkpoints, metrics,
                  progress bar, timeline, watchdog, signals, clocks)
    parts.py      what a fit computes with, built from the job: data, model, strategy, params
    minibatch.py  shuffled mini-batch SGD/Adam (the hot loop); serve.py: the async server rank
    exact.py      deterministic mini-batches (fixed blocks, exact integer sums)
    fullbatch.py  full-batch L-BFGS
    normal.py     the normal equations
    als.py        alternating least squares (matrix factorisation), factors sharded
    online.py     online adaptive passes averaged over the ranks, then an L-BFGS polish
    sharded.py    sparse mini-batch SGD through the sharded parameter server (by column)
    epochs.py     the epoch loop the mini-batch procedures share; steps.py: counters and clocks
    results.py    final metrics, summary.json, model.h5

Every procedure is `fit(parts, run)`: it reads and writes `parts.params` and `run.progress`
and calls `run`'s services; it never reaches into another procedure. The CLI (train.py) and
the Python API (api/) both come in through `train`.
"""
from __future__ import annotations

from . import als, exact, fullbatch, minibatch, normal, online, sharded
from .parts import Arrays, Parts
from .run import Run


def procedure_for(cfg, strategy: str | None = None):
    """The fitting procedure a job asks for (`strategy`: the one it got, where comm.strategy =
    "auto" chose)."""
    kind = cfg.optimizer.kind
    if kind == "normal":
        return normal.fit
    if kind == "lbfgs":
        return fullbatch.fit
    if kind == "als":
        return als.fit
    if kind == "adagrad":
        return online.fit
    if (strategy or cfg.comm.strategy) in ("sharded", "sharded-async"):
        return sharded.fit
    return exact.fit if cfg.comm.deterministic else minibatch.fit


def train(cfg, comm, run_dir=None, resume: bool = False, stop=None, arrays: Arrays | None = None):
    """Fit the job on `comm`; the summary, or None when a signal stopped it. Collective."""
    return Run(cfg, comm, run_dir, resume, stop, arrays).run()


__all__ = ["Arrays", "Parts", "Run", "procedure_for", "train"]
