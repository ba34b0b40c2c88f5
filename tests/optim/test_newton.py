"""The Newton step's coordinate descent (optim/newton.py): csrc/ccd.c against its NumPy loop and
against the quadratic model's optimality conditions, on dense, sparse and degenerate solutions."""
import numpy as np
import pytest

from mpireg.optim import newton


def _problem(k, rng, rank=None):
    A = rng.standard_normal((max(k, rank or k) * 3, k))
    if rank is not None:  # collinear columns: a semi-definite H
        A[:, rank:] = A[:, :k - rank] * 0.5
    b = rng.standard_normal(len(A)) * 5  # c = A^T b, in H's range, as a GLM's X^T r: the model is bounded below
    return A.T @ b / len(A), A.T @ A / len(A)


def _kkt(c, H, z, l1):
    """The largest violation of 0 in c + H z + l1 d|z|."""
    g = c + H @ z
    nonzero = z != 0
    return max(np.max(np.abs(g[nonzero] + l1[nonzero] * np.sign(z[nonzero])), initial=0.0),
               np.max(np.abs(g[~nonzero]) - l1[~nonzero], initial=0.0))


@pytest.mark.skipif(newton._ccd is None, reason="the C extension was not built")
@pytest.mark.parametrize("k,rank,l1_scale", [(5, None, 0.1), (40, None, 1.0), (40, None, 4.0),
                                             (30, 20, 0.5), (12, None, 0.0)])
def test_the_c_loop_equals_numpys_and_meets_the_optimality_conditions(k, rank, l1_scale, monkeypatch):
    rng = np.random.default_rng(k)
    c, H = _problem(k, rng, rank)
    l1 = np.full(k, l1_scale)
    l1[0] = 0.0  # an unpenalised coefficient (the intercept's place)
    start = rng.standard_normal(k) * (rng.random(k) < 0.3)
    native = newton._coordinate_descent(c, H, start.copy(), l1)
    monkeypatch.setattr(newton, "_ccd", None)
    reference = newton._coordinate_descent(c, H, start.copy(), l1)
    assert _kkt(c, H, native, l1) < 1e-9
    objective = lambda z: c @ z + 0.5 * z @ H @ z + l1 @ np.abs(z)  # noqa: E731
    assert objective(native) == pytest.approx(objective(reference), rel=1e-12, abs=1e-12)
    if rank is None:  # a unique optimum
        np.testing.assert_allclose(native, reference, atol=1e-8)
        assert np.array_equal(native == 0, reference == 0)
