"""The engine: a plan, fitting procedures one module each, one step loop, behind one entry point.

    plan.py          the only place that chooses: procedure, strategy, reducer, buckets, and why
    build.py         what a fit computes with, built from the job: data, model, plan, reducer, params
    run.py           Run: the order of things and the services around a fit (checkpoints, metrics,
                     progress bar, timeline, watchdog, signals, clocks); returns a FitResult
    loop.py          the step loop and the epoch loop the mini-batch procedures feed; a server's loop
    progress.py      counters (what a checkpoint saves) and clocks
    result.py        final metrics, summary.json, model.h5, FitResult
    topology/        how a mini-batch step's sums meet: collective, parameter servers, key shards;
                     ALS's factor rows
  procedures (`fit(parts, run)`):
    minibatch.py     shuffled mini-batch SGD/Adam (the hot loop)
    deterministic.py deterministic mini-batches (fixed blocks, exact integer sums)
    fullbatch.py     full-batch L-BFGS
    normal_equations.py  the normal equations
    als.py           alternating least squares (matrix factorisation), factors sharded
    online.py        online adaptive passes averaged over the ranks, then an L-BFGS polish
    sharded.py       sparse mini-batch SGD through the sharded parameter server (by column)
    irls.py          IRLS / Newton for generalized linear models, and their inference

Every procedure is `fit(parts, run)`: it reads and writes `parts.params` and `run.progress`
and calls `run`'s services; it never reaches into another procedure. The CLI (train.py) and
the Python API (api/) both come in through `train` (or `Run`) and read its `FitResult`.
"""
from __future__ import annotations

import importlib

from .build import Arrays, Parts
from .plan import Plan
from .result import FitResult
from .run import Run


class _Procedures(dict):
    """procedure name -> its `fit`, the module imported on first use: a job pays only for its
    own (the GLM solver's SciPy linear algebra is 0.25 s of import that an SGD job need not wait for)."""

    NAMES = ("minibatch", "deterministic", "fullbatch", "normal_equations", "als", "online", "sharded", "irls",
             "path")

    def __missing__(self, name):
        if name not in self.NAMES:
            raise KeyError(name)
        self[name] = importlib.import_module(f"{__name__}.{name}").fit
        return self[name]

    def __contains__(self, name):
        return name in self.NAMES


PROCEDURES = _Procedures()


def train(cfg, comm, run_dir=None, resume: bool = False, stop=None, arrays: Arrays | None = None) -> FitResult:
    """Fit the job on `comm`; what it ended with. Collective."""
    return Run(cfg, comm, run_dir, resume, stop, arrays).run()


__all__ = ["Arrays", "FitResult", "PROCEDURES", "Parts", "Plan", "Run", "train"]
