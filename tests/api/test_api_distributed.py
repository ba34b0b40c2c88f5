"""The Python API under mpiexec -n 2 and -n 3, with arrays and with shard paths, equals the same
estimators fitted in one process on all the rows; a mismatch between ranks fails every rank."""
import numpy as np
import pytest

from tests.api.api_worker import ESTIMATORS, LABELS, WEIGHTED, all_rows, row_offsets, row_weights, weights
from tests.helpers import run_ranks

# normal equations: one reduction, only the summation order differs; L-BFGS: the end points
# agree to the convergence tolerance; deterministic SGD: the same bits on any rank count.
RTOL = {"linear": 1e-10, "logistic": 1e-6, "softmax": 1e-6, "sgd_exact": 0.0, "mlp_exact": 0.0,
        "mf_als": 1e-10,  # ALS: each row's sums in a fixed order, on any rank count
        "glm_gaussian": 1e-10,  # IRLS: one Newton step from global sums
        "linear_w": 1e-10, "logistic_w": 1e-6, "softmax_w": 1e-6, "glm_w": 1e-10,
        "mlp_w": 1e-6, "cv_ovr_w": 1e-6}  # L-BFGS on a network: 20 iterations from the same start, sums in another order


@pytest.fixture(scope="module")
def single_process(datasets):
    """Each estimator fitted in this process on every row, with the scores the workers compute."""
    out = {}
    for name, make, data in ESTIMATORS:
        path = f"{datasets[data]}"
        X, y = all_rows(path)
        X_test, y_test = all_rows(f"{path}/test")
        estimator = make().fit(path)
        coef, intercept = weights(estimator)
        out[name] = dict(coef=coef, intercept=intercept,
                         shards_score=estimator.score(f"{path}/test"), arrays_score=estimator.score(X, y))
        assert estimator.score(f"{path}/test") == pytest.approx(estimator.score(X_test, y_test), rel=1e-12)
    for name, make, data in WEIGHTED:
        X, y = all_rows(f"{datasets[data]}")
        w, offset = row_weights(len(y)), row_offsets(len(y))
        estimator = make().fit(X, y, sample_weight=w, offset=offset)
        coef, intercept = weights(estimator)
        out[name] = dict(coef=coef, intercept=intercept, arrays_score=estimator.score(X, y, sample_weight=w,
                                                                                      offset=offset))
    return out


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("mode", ["arrays", "shards"])
def test_api_under_mpiexec_equals_one_process(datasets, single_process, tmp_path, ranks, mode):
    out = tmp_path / "fitted.npz"
    result = run_ranks(ranks, mode, datasets["linear"].parent, out, module="tests.api.api_worker")
    assert result.returncode == 0, result.stderr
    fitted = np.load(out)
    for name, _, _ in ESTIMATORS + (WEIGHTED if mode == "arrays" else []):
        expected = single_process[name]
        for part in ("coef", "intercept"):
            np.testing.assert_allclose(fitted[f"{name}.{part}"], expected[part], rtol=RTOL[name],
                                       atol=RTOL[name] * 1e-2, err_msg=f"{name}.{part}")
        assert float(fitted[f"{name}.score"]) == pytest.approx(expected[f"{mode}_score"], rel=1e-6)
    if mode == "arrays":  # text labels, gathered from every rank (rank 1 of 3 holds none)
        assert list(fitted["softmax.classes"]) == list(LABELS)


def test_ranks_that_disagree_on_features_fail_together(datasets):
    result = run_ranks(2, "mismatch", datasets["linear"].parent, "-", module="tests.api.api_worker",
                       timeout=120)
    assert result.returncode != 0
    assert "X: rank 1 has 5 features, rank 0 has 6" in result.stderr
