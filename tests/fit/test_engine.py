"""The engine's seams: which procedure a job runs, and the clocks every procedure keeps."""
import pytest

from mpireg import fit
from mpireg.fit import deterministic, fullbatch, minibatch, normal_equations
from mpireg.config import load_job
from tests.inprocess import train


@pytest.mark.parametrize("overrides,procedure", [
    (["optimizer.kind=normal"], normal_equations.fit),
    (["optimizer.kind=lbfgs"], fullbatch.fit),
    (["optimizer.kind=sgd"], minibatch.fit),
    (["optimizer.kind=adam", "comm.deterministic=true"], deterministic.fit),
])
def test_the_job_names_its_procedure(overrides, procedure):
    assert fit.PROCEDURES[fit.plan.procedure_of(load_job(None, ["data.train=x", *overrides]))] is procedure


@pytest.mark.parametrize("task,overrides", [
    ("linear", ["optimizer.kind=normal"]),
    ("logistic", ["optimizer.kind=lbfgs"]),
    ("softmax", ["optimizer.kind=lbfgs", "comm.deterministic=true"]),
    ("linear", ["optimizer.kind=sgd", "optimizer.epochs=2"]),
    ("logistic", ["optimizer.kind=adam", "optimizer.epochs=2", "comm.deterministic=true"]),
])
def test_every_procedure_records_its_time_split(datasets, tmp_path, task, overrides):
    summary, _ = train(tmp_path / "run", [f"data.train={datasets[task]}", f"model.kind={task}", *overrides])
    assert summary["time_compute_s"] > 0
    assert summary["time_comm_s"] > 0  # one rank: the (trivial) reductions still take time
    assert summary["time_compute_s"] + summary["time_comm_s"] <= summary["train_s"]
