"""One fit, start to end: the only place that knows the order of things.

    build the parts and the plan (every rank agrees it worked) -> prepare the run directory
    -> resume -> the plan's fitting procedure -> final evaluation over all rows
    -> model.h5, summary.json (and trace.json with --profile) -> a FitResult

`Run` owns the services around a procedure and hands them to it: checkpoints, the metrics log,
the progress bar, the timeline, the watchdog, signals (a stop request) and the clocks. The
procedures own the arithmetic; neither reaches into the other's state. Rank 0 alone writes files
and output. Without a run directory (the Python API's default) nothing is written to disk. Both
doors (the CLI, the API) read what a fit ends with from the `FitResult` that `run()` returns.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from mpi4py import MPI

from .. import log
from ..checkpoint import clear_checkpoints, latest_checkpoint, save_checkpoint
from ..comm import verify_identical
from ..config import JobConfig, dumps_toml
from ..device import to_host
from ..errors import CollectiveError, ConfigError
from ..optim.lbfgs import import_in_background
from ..agreement import StopRequest, on_rank_zero, root_then_bcast
from ..timeline import Timeline
from ..watchdog import Watchdog
from .build import Arrays, build_parts
from .progress import Clock, Meter, NoBar, Progress, progress_bar
from .result import FitResult, finish
from .topology import CHECKPOINT, STOP


# Procedures without a step count to resume from (they solve to an optimum, or make whole online
# passes): a finished one resumed has nothing left to do unless epochs or max_iter were raised.
SOLVED_ONCE = ("fullbatch", "normal_equations", "irls", "path", "online")


class Run:
    def __init__(self, cfg: JobConfig, comm, run_dir=None, resume: bool = False,
                 stop: StopRequest | None = None, arrays: Arrays | None = None, check_schema=None):
        if resume and run_dir is None:
            raise ConfigError("resume: continuing a fit needs the run directory it checkpointed in")
        self.cfg = cfg
        self.comm = comm
        log.set_rank(comm.rank)  # rank 0 alone prints and writes metrics, however we were started
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = resume
        self.stop = stop or StopRequest()
        self.arrays = arrays
        self.check_schema = check_schema  # the API's: sees the data's schema before the build
        self.progress = Progress()
        self.meter = Meter(self.progress)
        self.stopped_by_signal = False
        self.worker_positions = None  # asynchronous strategies: [epoch, epoch_step, step] by rank
        self.bar = NoBar()
        self.clock = Clock(self.meter, None, self.progress)
        self.parts = self.watchdog = self.timeline = None
        self._closed = False
        self.metrics = log.JsonlLog(None)
        self.summary = None
        self.staleness = None  # ps-async's server: what its clocks saw
        self.inference = None  # a GLM's standard errors, deviance and coefficient table (fit/irls.py)
        self.path = None  # a GLM's regularisation path and cross-validation curve (fit/path.py)
        self.resumed = False  # restored from a checkpoint
        self.finished_before = None  # ... from a finished fit's last checkpoint: its lengths
        self.segment_start = (0, 0, 0)  # (step, epoch, samples) where this run of the fit began
        self._made_run_dir = None  # rank 0: the topmost folder of run_dir this run created

    # =================================================================== the order of things
    def run(self) -> FitResult:
        """Fit; what it ended with (its summary is None when a signal stopped the fit, after a
        checkpoint)."""
        from . import PROCEDURES

        start = time.perf_counter()
        try:
            if self.cfg.optimizer.kind == "lbfgs":
                import_in_background()
            self.parts = parts = build_parts(self.cfg, self.comm, self.arrays, self.check_schema)
            self.cfg = parts.cfg  # resolved against the data
            self._prepare_run_dir()
            self._restore()
            self.watchdog = Watchdog(self.comm, self.cfg.run.watchdog_seconds, parts.plan.strategy)
            self.timeline = Timeline(self.comm, self.cfg.run.profile and self.run_dir is not None)
            self.clock.timeline = self.timeline if self.timeline.enabled else None
            self.train_start = self._last_checkpoint = time.perf_counter()
            self.meter.restart(self.train_start)
            self.segment_start = (self.progress.step, self.progress.epoch, self.progress.samples)
            if not self._solved_already():
                PROCEDURES[parts.plan.procedure](parts, self)
            train_seconds = time.perf_counter() - self.train_start
            if self.stopped_by_signal:
                log.info(f"stopped by signal at step {self.progress.step}: checkpoint written; "
                         f"continue with --resume")
            elif self.resumed and self._nothing_trained():
                log.info(f"nothing left to train: the run had finished (epoch {self.progress.epoch}, step "
                         f"{self.progress.step}); raise optimizer.epochs or optimizer.max_iter to train on. "
                         f"summary.json and model.h5 are left as they were")
            else:
                verify_identical(self.comm, to_host(parts.params), self.progress.step)
                self.checkpoint(finished=True)  # a later --resume knows there is nothing left
                self.summary = finish(parts, self, train_seconds, time.perf_counter() - start)
            if self.run_dir is not None:
                self.timeline.write(self.run_dir / "trace.json")
        except CollectiveError:
            self.close()  # every rank is here: the closing collectives meet
            self._discard_run_dir_it_made()
            raise
        except BaseException:
            if self.comm.size == 1:
                self.close()
            raise  # one rank alone: the caller ends the job (parallel.exit_on_error)
        self.close()
        return FitResult(self.cfg, parts.model, to_host(parts.params), parts.schema, parts.plan,
                         self.progress, self.summary, self.inference)

    def _solved_already(self) -> bool:
        """Resumed from a finished fit of a procedure that solves to an optimum (no epoch count
        to raise): running it again would only repeat it."""
        procedure, opt, before = self.parts.plan.procedure, self.cfg.optimizer, self.finished_before
        if not before or opt.epochs > before["epochs"] or opt.max_iter > before["max_iter"]:
            return False
        return procedure in SOLVED_ONCE

    def _nothing_trained(self) -> bool:
        """Collective: no rank took a step in this run (every rank must agree: the finished
        branch has collectives of its own; an asynchronous server counts steps differently)."""
        idle = self.segment_start[:2] == (self.progress.step, self.progress.epoch)
        return bool(self.comm.allreduce(int(idle), op=MPI.MIN))

    def close(self) -> None:
        """Collective: stop the watchdog, free the strategy's communicators, close files. The
        parts stay readable (the API takes the fitted parameters from them)."""
        if self._closed:
            return
        self._closed = True
        if self.watchdog is not None:
            self.watchdog.close()
        if self.parts is not None:
            self.parts.close()
        self.metrics.close()

    def _prepare_run_dir(self) -> None:
        if self.run_dir is None:
            return
        run_dir = self.run_dir

        def prepare():
            absent = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
            self._made_run_dir = absent[-1] if absent else None
            run_dir.mkdir(parents=True, exist_ok=True)
            config, text = run_dir / "config.toml", dumps_toml(self.cfg.to_dict())
            earlier = [f for f in ("config.toml", "summary.json", "model.h5") if (run_dir / f).exists()]
            if earlier and not self.resume and (not config.exists() or config.read_text(encoding="utf-8") != text):
                log.warn(f"{run_dir}: holds an earlier run ({', '.join(earlier)}), which this job replaces "
                         f"(pass --resume to continue it, or --run-dir to keep it)")
            config.write_text(text, encoding="utf-8")
            if not self.resume:
                removed = clear_checkpoints(run_dir / "checkpoints")
                if removed:
                    log.warn(f"{run_dir}: removed {removed} checkpoint(s) of an earlier run "
                             f"(pass --resume to continue it instead)")

        on_rank_zero(self.comm, prepare)
        self.metrics = log.JsonlLog(run_dir / "metrics.jsonl", append=self.resume)

    def _discard_run_dir_it_made(self) -> None:
        """A fit that failed before its first checkpoint leaves no half-made run directory
        behind (only one this run created: an earlier run's directory stays)."""
        made = self._made_run_dir
        if made is not None and not any((self.run_dir / "checkpoints").glob("ckpt-*.h5")):
            shutil.rmtree(made, ignore_errors=True)

    # =================================================================== services
    def waiting(self, phase: str):
        """`with run.waiting("step"):` around a collective, for the watchdog."""
        return self.watchdog.waiting(phase, self.progress.step)

    def allreduce(self, buf) -> None:
        """In-place global sum of a buffer outside the step (evaluation, full-batch sums)."""
        with self.waiting("allreduce"):
            self.parts.reducer.allreduce(buf)

    def vote(self, tail) -> None:
        """This rank's votes into a step buffer's tail: stop (a signal reached it) and checkpoint
        (rank 0's clock says it is time); the reduction tells every rank the outcome."""
        every = self.cfg.run.checkpoint_every_seconds
        tail[STOP] = self.stop.requested
        tail[CHECKPOINT] = float(self.comm.rank == 0 and every > 0
                                 and time.perf_counter() - self._last_checkpoint >= every)

    def act_on_votes(self, tail) -> bool:
        """Checkpoint when the step's votes (or checkpoint_every_steps) say so; True when the
        fit must stop here."""
        synchronous = self.parts.plan.synchronous
        if tail[STOP]:
            self.stopped_by_signal = True
            if synchronous:
                self.checkpoint()
            return True
        every = self.cfg.run.checkpoint_every_steps
        if synchronous and (tail[CHECKPOINT] or (every and self.progress.step % every == 0)):
            self.checkpoint()
        return False

    def stop_requested_everywhere(self) -> bool:
        """Collective: did a signal reach any rank? (Full-batch solvers ask once per iteration.)"""
        return bool(self.comm.allreduce(int(self.stop.requested), op=MPI.MAX))

    def epoch_bar(self, total: int, epoch: int, done: int = 0):
        self.bar = progress_bar(self.comm.rank == 0 and self.cfg.run.progress, total, epoch,
                                self.cfg.optimizer.epochs, done)
        return self.bar

    def elapsed(self) -> float:
        return time.perf_counter() - self.train_start

    def segments(self, train_seconds: float) -> list:
        """Every run of this fit so far: the earlier ones (from the checkpoint resumed) and this
        one, each with its own steps, epochs, rows and training seconds."""
        step, epoch, samples = self.segment_start
        this = {"resumed": self.resumed, "from_step": step, "steps": self.progress.step - step,
                "epochs": self.progress.epoch - epoch, "samples": self.progress.samples - samples,
                "train_s": train_seconds, "ranks": self.comm.size}
        return [*self.progress.segments, this]

    def _restore_worker_position(self, positions) -> None:
        """An asynchronous worker goes on from its own step (the progress saved is its server's);
        on another number of ranks every worker starts its slowest worker's epoch afresh."""
        if positions is None:
            return
        if len(positions) == self.comm.size:
            mine = positions[self.comm.rank]
        else:
            slowest = min(p[0] for p in positions if p is not None)
            mine = [slowest, 0, self.progress.step]
        if mine is not None:
            self.progress.epoch, self.progress.epoch_step, self.progress.step = mine

    # =================================================================== checkpoints
    def checkpoint(self, finished: bool = False) -> None:
        """Collective: rank 0 writes parameters, optimizer state and counters (`finished`: the
        fit's last, after which nothing is left to train)."""
        if self.run_dir is None:
            return
        parts, opt_arrays, opt_scalars = self.parts, {}, {}
        if parts.gather_params is not None:  # (collective) the model as its owners hold it now
            parts.gather_params()
        if parts.optimizer is not None:
            for key, value in parts.optimizer.state_dict().items():
                (opt_scalars if np.isscalar(value) else opt_arrays)[key] = value
        arrays = {"params": parts.params, **{f"opt.{k}": v for k, v in opt_arrays.items()}}
        progress = {**asdict(self.progress), "segments": self.segments(time.perf_counter() - self.train_start)}
        meta = {"model": parts.model.kind, "progress": progress, "optimizer": opt_scalars, "ranks": self.comm.size}
        if self.worker_positions is not None:
            meta["workers"] = self.worker_positions
        if finished:  # with the lengths it was given: raising one trains on
            meta["finished"] = {"epochs": self.cfg.optimizer.epochs, "max_iter": self.cfg.optimizer.max_iter}
        with self.clock("checkpoint"), self.waiting("checkpoint"):
            on_rank_zero(self.comm, lambda: save_checkpoint(
                self.run_dir / "checkpoints", self.progress.step, arrays, meta, self.cfg.run.checkpoint_keep))
        self._last_checkpoint = time.perf_counter()

    def _restore(self) -> None:
        if not self.resume:
            return
        parts = self.parts
        found = root_then_bcast(self.comm, lambda: latest_checkpoint(self.run_dir / "checkpoints"))
        if found is None:
            log.info(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'} yet; starting fresh")
            return
        path, arrays, meta = found
        if arrays["params"].shape != parts.params.shape or meta["model"] != parts.model.kind:
            raise CollectiveError(f"--resume: {path} holds a {meta['model']} model with "
                                  f"{arrays['params'].size} parameters; this job builds a "
                                  f"{parts.model.kind} model with {parts.params.size}", None, self.comm.size)
        parts.params[...] = parts.xp.asarray(arrays["params"])
        for key, value in meta["progress"].items():
            setattr(self.progress, key, value)  # in place: the meter holds this object
        self._restore_worker_position(meta.get("workers"))
        self.finished_before = meta.get("finished")
        if parts.optimizer is not None:
            state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
            parts.optimizer.load_state_dict({**state, **meta["optimizer"]})
        self.resumed = True
        ranks = meta.get("ranks", self.comm.size)
        log.info(f"resumed from {path}: epoch {self.progress.epoch}, step {self.progress.step}"
                 + (f" (written by {ranks} ranks, resumed on {self.comm.size}: rows reassigned)"
                    if ranks != self.comm.size else ""))
