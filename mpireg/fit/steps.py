"""Counters and clocks of a fit: what a checkpoint saves, and where the time went.

`Progress` is the state a checkpoint restores. `Meter` keeps two kinds of time: the fit's
totals (`compute_s`, `comm_s`, in summary.json, for every procedure) and a window of per-step
parts (read, compute, update, wait) that each metrics record reports and resets.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

from .. import log
from ..comm import EXTRA_SLOTS

LOSS, ROWS, STOP, CHECKPOINT = range(EXTRA_SLOTS)  # the step buffer's tail (comm/base.py)
TIMED = ("read", "compute", "update", "wait")  # per-step parts the procedures time themselves


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


class Meter:
    def __init__(self, progress: Progress):
        self.progress = progress
        self.totals = {"compute_s": 0.0, "comm_s": 0.0}
        self.window = dict.fromkeys(TIMED, 0.0)
        self.restart(time.perf_counter())

    def restart(self, now: float) -> None:
        self._start, self._steps, self._samples = now, self.progress.step, self.progress.samples

    def compute(self, seconds: float) -> None:
        self.totals["compute_s"] += seconds

    def comm(self, seconds: float) -> None:
        self.totals["comm_s"] += seconds

    def record(self, strategy, now: float) -> dict:
        """Mean per-step milliseconds of each part since the last record, rows/s, and bandwidth
        (nccl-tests definitions); wait is sampled once per record and scaled."""
        stats = strategy.step_stats()
        steps = max(self.progress.step - self._steps, 1)
        rate = (self.progress.samples - self._samples) / max(now - self._start, 1e-9)
        algbw = stats["wire_bytes"] / stats["comm_s"] / 1e9 if stats.get("comm_s") else 0.0
        record = {f"{k}_ms": 1e3 * v / steps for k, v in self.window.items()}
        record.update(pack_ms=1e3 * stats.get("pack_s", 0.0) / steps,
                      comm_ms=1e3 * stats.get("comm_s", 0.0) / steps,
                      exposed_comm_ms=1e3 * stats.get("exposed_s", 0.0) / steps,
                      unpack_ms=1e3 * stats.get("unpack_s", 0.0) / steps,
                      wire_bytes=stats.get("wire_bytes", 0) // steps, algbw_gbs=algbw,
                      busbw_gbs=algbw * strategy.bus_factor(), samples_per_s=rate)
        self.window.update(dict.fromkeys(TIMED, 0.0))  # in place: the step loops hold this dict
        self.restart(now)
        return record


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
