"""Multinomial (softmax) regression over K classes: loss_i = logsumexp(z_i) - z_i[y_i].

The log-sum-exp subtracts each row's maximum first, so no logit overflows whatever its size.
Dense C-contiguous NumPy rows with up to 16 classes take the one-pass C kernel (csrc/csoftmax.c:
X read once; 2.2-3.8x NumPy's blocked matrix products with 3 classes, 1.5-3.5x with 10 on an
AVX-512 host, measured by benchmarks/bench_gradient.py), except, where the CPU lacks AVX-512,
float64 rows of many features and more than 8 classes: there BLAS measured as fast (0.27 vs 0.25
of a read).
On the CPU, other inputs of more than a mini-batch go in blocks of about BLOCK_BYTES of X: the block's
logits and probabilities stay in cache instead of streaming n x K arrays through memory several
times, and memory stays bounded (measured 1.0-1.25x faster at 1,000,000 x 100 and 100,000 x
1,000, K = 10; benchmarks/bench_gradient.py).
"""
import numpy as np

from .model import Model, ParamSpec, _csparse, add_offset, transpose_product, unpack

try:
    from .. import _csoftmax
except ImportError:
    _csoftmax = None

BLOCK_BYTES = 256 << 10
NATIVE_MAX_CLASSES = 16  # the kernels keep up to K x 16 logits on their stack
# the blocked AVX-512 pass, which outruns BLAS where the four-row pass does not
BLOCKED_PASS = _csoftmax is not None and "avx512" in _csoftmax.isas()


class SoftmaxModel(Model):
    kind = "softmax"
    task = ("multiclass", "binary")
    output = "multiclass"

    def _param_specs(self):
        k = self.n_classes
        specs = [ParamSpec("coef", (self.n_features, k), True)]
        return specs + ([ParamSpec("intercept", (k,), False)] if self.fit_intercept else [])

    def plain_targets(self, y):
        return y.astype(self.xp.int64, copy=False)

    def _shifted(self, params, X, offset=None):
        """(z - max z, exp of it, log sum exp(z - max z)) per row; z with the rows' offsets."""
        z = self.decision(params, X)
        add_offset(z, offset)
        z -= z.max(axis=1, keepdims=True)
        e = self.xp.exp(z)
        return z, e, self.xp.log(e.sum(axis=1))

    OVERLAP_CHUNKS = 8  # pieces of the coef gradient reported ready one after another

    @property
    def one_pass(self) -> bool:
        return _csoftmax is not None and bool(self.one_pass_dtypes) and self.n_classes <= NATIVE_MAX_CLASSES

    @property
    def overlaps(self) -> bool:
        """The NumPy path reports the coef gradient in slabs; the one-pass kernel at its end."""
        return not (self.xp is np and self.one_pass)

    def _native_ok(self, params, X, grad) -> bool:
        # float64 rows, > 8 classes, ~1,000 features: BLAS measured as fast as the four-row pass
        blas_wins = not BLOCKED_PASS and X.dtype == np.float64 and self.n_classes > 8 and X.shape[1] >= 512
        return super()._native_ok(params, X, grad) and not blas_wins

    def _loss_grad_native(self, params, X, y, grad) -> float:
        return _csoftmax.loss_grad(X, np.ascontiguousarray(y, dtype=np.int64), params, grad,
                                   self.n_classes, self.fit_intercept)

    def loss_grad_sum(self, params, X, y, grad, on_ready=None) -> float:
        if y.ndim == 2:  # weighted rows: the array-namespace code
            return self.loss_grad_xp(params, X, y, grad) if on_ready is None else \
                self.loss_grad_whole(params, X, y, grad, on_ready)
        if self.one_pass and self._native_ok(params, X, grad):
            return self._loss_grad_native(params, X, y, grad)
        if _csparse is not None and getattr(X, "format", "") == "csr" and isinstance(params, np.ndarray) \
                and params.dtype == grad.dtype:  # CSR rows: one C pass over the non-zeros
            return _csparse.softmax_loss_grad(X.indptr.astype(np.int64, copy=False), X.indices, X.data,
                                              np.ascontiguousarray(y, dtype=np.int64), params, grad,
                                              self.n_classes, self.fit_intercept)
        if on_ready is None:
            return self.loss_grad_xp(params, X, y, grad)
        return self.loss_grad_whole(params, X, y, grad, on_ready)

    def loss_grad_xp(self, params, X, y, grad) -> float:
        block = max(64, BLOCK_BYTES // max(1, X.shape[1] * X.dtype.itemsize))
        # A mini-batch's arrays fit in cache anyway; CSR rows are not blocked (each block's
        # product would be a dense d x K gradient).
        if self.xp is not np or X.shape[0] <= 8 * block or hasattr(X, "tocsr"):
            return self.loss_grad_whole(params, X, y, grad)
        return self._sum_blocks(self.loss_grad_whole, params, X, y, grad, block)

    def loss_grad_whole(self, params, X, y, grad, on_ready=None) -> float:
        """The loss and gradient sums over all of X at once (on a GPU, one kernel per operation).
        With `on_ready`, the coef gradient X^T (P - Y) is written in OVERLAP_CHUNKS slabs of
        features, each reported ready (coef row j is grad[j K:(j + 1) K]), so that the reduction
        of the first slabs overlaps the product for the later ones."""
        rows = self.xp.arange(X.shape[0])
        y, w, offset = unpack(y)
        y = y.astype(self.xp.int64, copy=False)
        z, e, lse = self._shifted(params, X, offset)
        loss = self._loss(z, lse, rows, y, w)
        e /= self.xp.exp(lse)[:, None]       # probabilities
        e[rows, y] -= 1                      # dloss/dz
        if w is not None:
            e *= w.astype(e.dtype, copy=False)[:, None]
        g = self.layout.views(grad)
        d, k = self.n_features, self.n_classes
        sparse = hasattr(X, "tocsr")  # CSR columns do not slice cheaply: one product
        step = d if on_ready is None or sparse else -(-d // self.OVERLAP_CHUNKS)
        for lo in range(0, d, step):
            hi = min(lo + step, d)
            transpose_product(self.xp, X if step == d else X[:, lo:hi], e, g["coef"][lo:hi])
            if on_ready is not None:
                on_ready(hi * k)
        self._write_bias_grad(g, e)
        return loss

    def loss_sum(self, params, X, y) -> float:
        y, w, offset = unpack(y)
        z, _, lse = self._shifted(params, X, offset)
        return self._loss(z, lse, self.xp.arange(X.shape[0]), y.astype(self.xp.int64, copy=False), w)

    @staticmethod
    def _loss(z, lse, rows, y, w) -> float:
        """Σ w_i (log Σ exp z_i - z_i[y_i]) (w: 1 where None)."""
        if w is None:
            return float(lse.sum() - z[rows, y].sum())
        return float(w @ (lse - z[rows, y]))

    def predict_proba(self, params, X, offset=None):
        z, e, lse = self._shifted(params, X, offset)
        e /= self.xp.exp(lse)[:, None]
        return e

    def predict(self, params, X, offset=None):
        z = self.decision(params, X)
        add_offset(z, offset)
        return self.xp.argmax(z, axis=1)
