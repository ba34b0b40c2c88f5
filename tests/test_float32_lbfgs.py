"""Full-batch L-BFGS on float32 shards converges like float64: its objective is computed and
summed in double at the solver's own (double) point, so the line search sees no float32 noise."""
import json

import numpy as np
import pytest

from mpireg.convert.synth import synthesize
from tests.helpers import train_job


@pytest.fixture(scope="module")
def float32_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("f32")
    for task, classes in (("linear", 0), ("logistic", 2), ("softmax", 4)):
        synthesize(task, rows=40000, features=30, out=root / task, shards=2, classes=classes or 3,
                   noise=0.5, seed=11, dtype="float32")
    return root


def _passes(run_dir) -> int:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return json.loads((run_dir / "summary.json").read_text())["epochs"], len([r for r in records if r["type"] == "iteration"])


@pytest.mark.parametrize("task", ["logistic", "linear", "softmax"])
def test_float32_takes_the_passes_of_float64_and_reaches_its_optimum(float32_data, tmp_path, task):
    job = [f"data.train={float32_data / task}", f"model.kind={task}", "optimizer.kind=lbfgs",
           "optimizer.tol=1e-9", "optimizer.max_iter=200", "model.l2=1e-4"]
    runs = {}
    for dtype in ("float32", "float64"):
        _, summary, _ = train_job(2, tmp_path / dtype, [*job, f"data.dtype={dtype}"])
        runs[dtype] = (summary["epochs"], summary["train"]["loss"])
    (passes32, loss32), (passes64, loss64) = runs["float32"], runs["float64"]
    assert passes32 <= 1.2 * passes64, runs
    assert loss32 == pytest.approx(loss64, rel=1e-6), runs


def test_the_c_kernels_mixed_mode_computes_in_double():
    """float32 rows with float64 parameters equal the float64 computation on the same values."""
    from mpireg.models import make_model

    rng = np.random.default_rng(0)
    for kind, task in (("linear", "regression"), ("logistic", "binary")):
        for d in (9, 531):  # short and long rows
            X = rng.normal(size=(1003, d)).astype(np.float32)
            y = (rng.random(1003) < 0.5).astype(np.float64)
            model = make_model(kind, d, 2 if task == "binary" else 0, True, task=task)
            w = rng.normal(size=model.layout.size) * 0.1
            grad, reference = np.empty_like(w), np.empty_like(w)
            loss = model.loss_grad_sum(w, X, y, grad)
            expected = model.loss_grad_xp(w, X.astype(np.float64), y, reference)
            assert loss == pytest.approx(expected, rel=1e-13)
            np.testing.assert_allclose(grad, reference, rtol=1e-12, atol=1e-12 * np.abs(reference).max())
