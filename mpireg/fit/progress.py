"""Counters and clocks of a fit: what a checkpoint saves, and where the time went.

`Progress` is the state a checkpoint restores. `Meter` keeps two kinds of time: the fit's
totals (`compute_s`, `comm_s`, in summary.json, for every procedure) and a window of per-step
parts (read, compute, update, wait) that each metrics record reports and resets. Procedures time
a phase with one clock, `with run.clock("compute"):`; clocks nest, and a phase's own time
excludes the phases timed inside it (a step's communication is what is left of it once its
computation, its update and the sampled wait are taken out).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

from .. import log

TIMED = ("read", "compute", "update", "wait")  # per-step parts each metrics record reports
# phase -> the total it adds to (None: reported per step only; the sampled wait is idle time)
TOTALS = {"read": "compute_s", "compute": "compute_s", "update": "compute_s", "wait": None,
          "step": "comm_s", "comm": "comm_s", "evaluate": None, "checkpoint": None}


@dataclass
class Progress:
    """Counters a checkpoint saves. The data position is step `epoch_step` of epoch `epoch`;
    shuffling is a function of (seed, epoch, rank), so no random state needs saving."""

    epoch: int = 0           # epochs completed (full-batch solvers: passes over the data)
    step: int = 0            # optimizer steps taken (full-batch solvers: iterations)
    epoch_step: int = 0      # steps taken in the current epoch
    epoch_loss_sum: float = 0.0
    epoch_rows: float = 0.0
    samples: int = 0         # rows that went into gradients
    best_loss: float = math.inf
    stale_epochs: int = 0    # epochs without an improvement of optimizer.tol
    stopped_early: bool = False
    segments: list = field(default_factory=list)  # what each earlier run of a resumed fit did


class Meter:
    def __init__(self, progress: Progress):
        self.progress = progress
        self.totals = {"compute_s": 0.0, "comm_s": 0.0}
        self.window = dict.fromkeys(TIMED, 0.0)
        self.restart(time.perf_counter())

    def restart(self, now: float) -> None:
        self._start, self._steps, self._samples = now, self.progress.step, self.progress.samples

    def record(self, topology, now: float) -> dict:
        """Mean per-step milliseconds of each part since the last record, rows/s, and bandwidth
        (nccl-tests definitions); wait is sampled once per record and scaled."""
        stats = topology.step_stats()
        steps = max(self.progress.step - self._steps, 1)
        rate = (self.progress.samples - self._samples) / max(now - self._start, 1e-9)
        algbw = stats["wire_bytes"] / stats["comm_s"] / 1e9 if stats.get("comm_s") else 0.0
        record = {f"{k}_ms": 1e3 * v / steps for k, v in self.window.items()}
        record.update(pack_ms=1e3 * stats.get("pack_s", 0.0) / steps,
                      comm_ms=1e3 * stats.get("comm_s", 0.0) / steps,
                      exposed_comm_ms=1e3 * stats.get("exposed_s", 0.0) / steps,
                      unpack_ms=1e3 * stats.get("unpack_s", 0.0) / steps,
                      wire_bytes=stats.get("wire_bytes", 0) // steps, algbw_gbs=algbw,
                      busbw_gbs=algbw * topology.bus_factor(), samples_per_s=rate)
        self.window.update(dict.fromkeys(TIMED, 0.0))  # in place: the step loops hold this dict
        self.restart(now)
        return record


class Clock:
    """`with clock(phase):` times a phase into the meter (its own time: nested phases are taken
    out) and, when profiling, onto the timeline. Re-entered several times a step, so its frames
    are reused and the meter's dictionaries written in place (1.2 -> 0.8 us a phase, measured)."""

    def __init__(self, meter: Meter, timeline, progress: Progress):
        self.meter, self.timeline, self.progress = meter, timeline, progress
        self._frames = [[None, 0.0, 0.0, 1.0] for _ in range(8)]  # [phase, start, nested, scale]
        self._depth = 0
        self.last = 0.0  # the own seconds of the phase that ended last

    def __call__(self, phase: str, scale: float = 1.0):
        if self._depth == len(self._frames):
            self._frames.append([None, 0.0, 0.0, 1.0])
        frame = self._frames[self._depth]
        frame[0], frame[2], frame[3] = phase, 0.0, scale
        self._depth += 1
        return self

    def __enter__(self):
        self._frames[self._depth - 1][1] = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        end = time.perf_counter()
        self._depth -= 1
        phase, start, nested, scale = self._frames[self._depth]
        self.last = own = end - start - nested
        window = self.meter.window
        if phase in window:
            window[phase] += own * scale
        total = TOTALS[phase]
        if total is not None:
            self.meter.totals[total] += own
        if self._depth:
            self._frames[self._depth - 1][2] += end - start
        if self.timeline is not None:
            self.timeline.add(phase, start, end, step=self.progress.step)


def progress_bar(show: bool, total: int, epoch: int, epochs: int, done: int = 0):
    """Rank 0's bar over one epoch's steps (loss, rows/s, ETA), or one that draws nothing."""
    if not (show and log.interactive()):
        return NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="step", leave=False, ncols=100,
                desc=f"epoch {epoch + 1}/{epochs}", file=sys.stderr)


class NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass
