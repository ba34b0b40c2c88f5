"""The one-pass C gradient (csrc/cgrad.c) against the array-namespace reference."""
import warnings

import numpy as np
import pytest

from mpireg.models import make_model
from mpireg.models.model import _cgrad
from mpireg.models.softmax import _csoftmax

pytestmark = pytest.mark.skipif(_cgrad is None, reason="C extension not built")
CASES = [("linear", 0), ("logistic", 2)]
# the softmax passes this CPU runs: "avx2" (four rows at a time), "avx512" (blocked)
ISAS = _csoftmax.isas() if _csoftmax is not None else ()


def _data(kind, k, n, d, dtype, rng, model):
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.standard_normal(n).astype(dtype) if kind == "linear" else rng.integers(0, max(k, 2), n)
    return X, model.prepare_targets(y)


@pytest.mark.parametrize("kind,k", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fit", [True, False])
@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 320, 1000])  # around the 256-row block; a last
# block of 64 rows, split in four streams (csrc/streams.h)
@pytest.mark.parametrize("d", [9, 531])  # short and long rows (>= 2 KiB: the other dot products)
def test_one_pass_equals_the_reference(kind, k, dtype, fit, n, d, rng):
    model = make_model(kind, d, k, fit_intercept=fit)
    model.one_pass_dtypes = (np.float32, np.float64)  # both kernels, whichever the default picks
    X, y = _data(kind, k, n, d, dtype, rng, model)
    w = (rng.standard_normal(model.layout.size) * 2).astype(dtype)
    native, reference = np.empty_like(w), np.empty_like(w)
    loss = model.loss_grad_sum(w, X, y, native)
    expected = model.loss_grad_xp(w, X, y, reference)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(expected, rel=tol, abs=tol)
    np.testing.assert_allclose(native, reference, rtol=tol, atol=tol * max(1.0, np.abs(reference).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_stay_finite_in_c(dtype, rng):
    kind, k = "logistic", 2
    model = make_model(kind, 4, k)
    model.one_pass_dtypes = (dtype,)
    X = (rng.standard_normal((50, 4)) * 1e3).astype(dtype)
    y = model.prepare_targets(rng.integers(0, k, 50))
    w = (rng.standard_normal(model.layout.size) * 1e3).astype(dtype)
    grad = np.empty_like(w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = model.loss_grad_sum(w, X, y, grad)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)) and loss > 1e3


def test_strided_input_falls_back_to_the_reference(rng):
    model = make_model("linear", 3)
    X = rng.standard_normal((40, 6))[:, ::2]  # not C-contiguous
    y, w = rng.standard_normal(40), rng.standard_normal(model.layout.size)
    g1, g2 = np.empty_like(w), np.empty_like(w)
    assert model.loss_grad_sum(w, X, y, g1) == pytest.approx(model.loss_grad_xp(w, X, y, g2))
    np.testing.assert_allclose(g1, g2)


def test_bad_arguments_raise():
    X, w, g = np.zeros((4, 2)), np.zeros(3), np.zeros(3)
    with pytest.raises(TypeError, match="params and grad must have X's dtype"):
        _cgrad.linear(X, np.zeros(4), w.astype(np.float32), g, True)
    with pytest.raises(ValueError, match="must hold 3 values"):
        _cgrad.linear(X, np.zeros(4), np.zeros(2), g, True)
    with pytest.raises(TypeError, match="y must be a 1-D array of 4 values"):
        _cgrad.linear(X, np.zeros(5), w, g, True)
    with pytest.raises(TypeError, match="writable"):
        read_only = np.zeros(3)
        read_only.flags.writeable = False
        _cgrad.linear(X, np.zeros(4), w, read_only, True)


@pytest.mark.skipif(_csoftmax is None, reason="C extension not built")
@pytest.mark.parametrize("xtype,ptype", [(np.float32, np.float32), (np.float64, np.float64),
                                         (np.float32, np.float64)])  # the last: full-batch solvers
@pytest.mark.parametrize("k", [2, 3, 5, 9, 16])  # avx2 pads to 3, 3, 6, 9, 18; avx512 splits 6+3, 6+6+4
@pytest.mark.parametrize("fit", [True, False])
@pytest.mark.parametrize("n", [0, 1, 7, 255, 257, 320, 1000])  # around 4- and 16-row steps, 256-row
# blocks; a last block of 64 rows, split in four streams
@pytest.mark.parametrize("d", [3, 8, 9, 16, 531])  # all tail, no tail at 8 or 16 lanes; long rows
@pytest.mark.parametrize("isa", ISAS)
def test_softmax_one_pass_equals_the_reference(xtype, ptype, k, fit, n, d, isa, rng):
    model = make_model("softmax", d, k, fit_intercept=fit)
    X = rng.standard_normal((n, d)).astype(xtype)
    y = model.prepare_targets(rng.integers(0, k, n))
    w = (rng.standard_normal(model.layout.size) * 0.3).astype(ptype)
    native, reference = np.empty_like(w), np.empty_like(w)
    assert model._native_ok(w, X, native) or (xtype == np.float64 and k > 8 and d >= 512)
    loss = _csoftmax.loss_grad(X, y, w, native, k, fit, isa)
    expected = model.loss_grad_xp(w, X.astype(ptype), y, reference)
    tol = 1e-4 if ptype == np.float32 else 1e-11
    assert loss == pytest.approx(expected, rel=tol, abs=tol)
    np.testing.assert_allclose(native, reference, rtol=tol, atol=tol * max(1.0, np.abs(reference).max()))


@pytest.mark.skipif(_csoftmax is None, reason="C extension not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_huge_logits_stay_finite_in_c(dtype, rng):
    model = make_model("softmax", 4, 3)
    X = (rng.standard_normal((50, 4)) * 1e3).astype(dtype)
    y = model.prepare_targets(rng.integers(0, 3, 50))
    w = (rng.standard_normal(model.layout.size) * 1e3).astype(dtype)
    grad, reference = np.empty_like(w), np.empty_like(w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = model.loss_grad_sum(w, X, y, grad)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)) and loss > 1e3
    assert loss == pytest.approx(model.loss_grad_xp(w, X, y, reference), rel=1e-5)
    np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


@pytest.mark.skipif(_csoftmax is None, reason="C extension not built")
@pytest.mark.parametrize("xtype,ptype", [(np.float32, np.float32), (np.float64, np.float64),
                                         (np.float32, np.float64)])
@pytest.mark.parametrize("isa", ISAS)
def test_softmax_sub_normal_probabilities_add_nothing(xtype, ptype, isa, rng):
    # logits ~100 apart: most probabilities fall below the smallest normal number, where the
    # kernel makes them 0 (a sub-normal costs a microcode assist per multiply-add on Intel)
    model = make_model("softmax", 20, 3)
    X = rng.standard_normal((400, 20)).astype(xtype)
    y = model.prepare_targets(rng.integers(0, 3, 400))
    w = (rng.standard_normal(model.layout.size) * 40).astype(ptype)
    native, reference = np.empty_like(w), np.empty_like(w)
    loss = _csoftmax.loss_grad(X, y, w, native, 3, True, isa)
    expected = model.loss_grad_xp(w, X.astype(ptype), y, reference)
    assert loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(native, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


@pytest.mark.skipif(_csoftmax is None, reason="C extension not built")
def test_softmax_label_out_of_range_is_named_by_the_model():
    model = make_model("softmax", 2, 3)
    X, w = np.zeros((6, 2)), np.zeros(model.layout.size)
    with pytest.raises(ValueError, match=r"2 labels are not class numbers in \[0, 3\)"):
        model.loss_grad_sum(w, X, np.array([0, 1, 3, 2, -1, 0]), np.empty_like(w))


@pytest.mark.skipif(_csoftmax is None, reason="C extension not built")
@pytest.mark.parametrize("isa", ISAS)
def test_softmax_label_out_of_range_is_named(isa):
    X, w = np.zeros((20, 2)), np.zeros(2 * 3 + 3)
    y = np.array([0, 1, 3, 2, -1] + [0] * 15)
    with pytest.raises(ValueError, match=r"2 labels are not class numbers in \[0, 3\)"):
        _csoftmax.loss_grad(X, y, w, np.empty_like(w), 3, True, isa)


@pytest.mark.skipif("avx512" not in ISAS, reason="the blocked pass needs AVX-512")
@pytest.mark.parametrize("xtype,ptype", [(np.float32, np.float32), (np.float64, np.float64),
                                         (np.float32, np.float64)])
@pytest.mark.parametrize("k", [2, 3, 10])
@pytest.mark.parametrize("n", [0, 7, 64, 255, 256, 320, 1000, 1024])  # steps of 16 rows; blocks
# that split into 1 to 64 segments or go front to back
@pytest.mark.parametrize("d", [9, 531])
@pytest.mark.parametrize("streams", [1, 2, 4, 16, 64])  # the CPU picks 4 or 16 (csoftmax.c)
def test_blocked_softmax_any_stream_count_equals_the_reference(xtype, ptype, k, n, d, streams, rng):
    model = make_model("softmax", d, k)
    X = rng.standard_normal((n, d)).astype(xtype)
    y = model.prepare_targets(rng.integers(0, k, n))
    w = (rng.standard_normal(model.layout.size) * 0.3).astype(ptype)
    native, reference = np.empty_like(w), np.empty_like(w)
    loss = _csoftmax.loss_grad(X, y, w, native, k, True, "avx512", streams)
    expected = model.loss_grad_xp(w, X.astype(ptype), y, reference)
    tol = 1e-4 if ptype == np.float32 else 1e-11
    assert loss == pytest.approx(expected, rel=tol, abs=tol)
    np.testing.assert_allclose(native, reference, rtol=tol, atol=tol * max(1.0, np.abs(reference).max()))


@pytest.mark.skipif(_csoftmax is None, reason="C extension not built")
@pytest.mark.parametrize("streams", [-1, 3, 128])
def test_softmax_bad_stream_count_is_named(streams):
    X, w = np.zeros((4, 2)), np.zeros(2 * 3 + 3)
    with pytest.raises(ValueError, match=f"streams must be 0 .* not {streams}"):
        _csoftmax.loss_grad(X, np.zeros(4, np.int64), w, np.empty_like(w), 3, True, "auto", streams)


@pytest.mark.skipif(_csoftmax is None, reason="C extension not built")
def test_softmax_unknown_isa_is_named():
    X, w = np.zeros((4, 2)), np.zeros(2 * 3 + 3)
    with pytest.raises(ValueError, match="isa must be 'auto', 'avx2'.*not 'sse9'"):
        _csoftmax.loss_grad(X, np.zeros(4, np.int64), w, np.empty_like(w), 3, True, "sse9")


def test_softmax_overlaps_only_without_the_kernel():
    model = make_model("softmax", 3, 4)
    assert model.overlaps is (_csoftmax is None)
