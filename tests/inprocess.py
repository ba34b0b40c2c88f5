"""Run the real engine inside the test process, on one rank (COMM_SELF)."""
from __future__ import annotations

from mpi4py import MPI

from mpireg.config import load_job
from mpireg.fit import train as fit
from mpireg.model_io import load_model


def train(run_dir, overrides, resume=False):
    """(summary, flat params) of one training run on COMM_SELF."""
    cfg = load_job(None, ["run.progress=false", *overrides])
    summary = fit(cfg, MPI.COMM_SELF, run_dir, resume=resume).summary
    _, params, _ = load_model(run_dir / "model.h5")
    return summary, params
