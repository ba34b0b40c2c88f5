"""What a fit ends with: metrics over every rank's rows, summary.json, model.h5, and the
`FitResult` both doors read (the CLI its summary; the API its model, parameters and schema)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import log
from ..metrics import add_sums, finalize, sums_length
from ..model_io import save_model
from ..agreement import on_rank_zero


@dataclass(frozen=True)
class FitResult:
    config: Any       # the job as it ran (JobConfig, resolved against the data)
    model: Any        # the engine's model (models/)
    params: Any       # its flat parameters, on the host
    schema: Any       # the training data's schema (data/format.py)
    plan: Any         # how it computed and communicated, and why (fit/plan.py)
    progress: Any     # the counters (epochs, steps, samples)
    summary: dict | None  # summary.json's content; None when a signal stopped the fit
    inference: dict | None = None  # a GLM's standard errors and coefficient table (fit/irls.py)

    @property
    def stopped(self) -> bool:
        return self.summary is None


def evaluate(parts, run, data) -> dict:
    """Collective: the model's metrics over every rank's rows of `data`."""
    with run.clock("evaluate"):
        sums = np.zeros(sums_length(parts.model))
        for X, y in data.blocks():
            add_sums(parts.model, parts.params, X, y, sums)
        run.allreduce(sums)
    return finalize(parts.model, sums, parts.model.penalty(parts.params))


def finish(parts, run, train_seconds: float, wall_seconds: float) -> dict:
    """Collective: the final evaluation; rank 0 writes model.h5 and summary.json."""
    cfg, progress = parts.cfg, run.progress
    summary = {
        "train": evaluate(parts, run, parts.train),
        "eval": evaluate(parts, run, parts.test) if parts.test is not None else {},
        "steps": progress.step,
        "epochs": progress.epoch,
        "stopped_early": progress.stopped_early,
        "train_s": train_seconds,
        "wall_s": wall_seconds,
        "samples_per_s": (progress.samples - run.segment_start[2]) / max(train_seconds, 1e-9),  # this run's rows
        "ranks": parts.comm.size,
        "strategy": parts.plan.strategy,
        "model": cfg.model.kind,
        "optimizer": cfg.optimizer.kind,
        "dtype": str(parts.dtype),
        "time_compute_s": run.meter.totals["compute_s"],
        "time_comm_s": run.meter.totals["comm_s"],
        "compression": parts.plan.compression,
        "plan": parts.plan.describe(),
        "segments": run.segments(train_seconds),
    }
    if run.staleness:
        summary["staleness"] = run.staleness
    if run.inference:
        summary["glm"] = run.inference
    if run.path:
        summary["path"] = run.path
    run.metrics.write({"type": "summary", **summary})
    final = "  ".join(f"{split} {k} {v:.6g}" for split in ("train", "eval")
                      for k, v in summary[split].items() if k != "rows")
    log.info(f"done: {final}")
    if run.inference:
        from .irls import coef_table_text

        log.info("coefficients:\n" + coef_table_text(run.inference))
    if run.run_dir is None:
        return summary

    def write():
        save_model(run.run_dir / "model.h5", parts.model, parts.params, cfg.to_dict(),
                   parts.schema.describe(), {"train": summary["train"], "eval": summary["eval"]})
        (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    on_rank_zero(parts.comm, write)
    log.info(f"{summary['samples_per_s']:.4g} samples/s over {train_seconds:.3g} s; "
             f"model saved to {run.run_dir / 'model.h5'}")
    return summary
