"""What every model shares: the parameter layout and the penalty.

Parameters live in one flat vector; each named array (`coef`, `intercept`) is a view into it.
Gradients are written the same way, into a flat buffer that the strategy reduces in place: the
model never allocates a gradient, and nothing is packed on the way to the wire.

The objective of every model is
    (1/n) * sum_i loss(x_i, y_i)  +  l2/2 * ||coef||^2  +  l1 * ||coef||_1
(the intercept is never penalised). Models return the *sum* of per-row losses and gradients, so
ranks with different row counts combine exactly: global mean = (sum of sums) / (sum of counts).

Weighted rows: targets may travel packed, one float64 row [y, w, offset...] per row of X
(`unpack`): the sums are then weighted, Σ w_i loss_i, a row's count is its weight, and the
offset (one column, or one per output of a multi-output model, as glmnet's multinomial offsets)
is added to the model's raw output. A weight of k counts as k copies of the row. Packed rows take
the array-namespace code (the C kernels read plain targets).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:  # one pass over the rows (csrc/cgrad.c, csrc/csparse.c); the xp code stays the reference
    from .. import _cgrad
except ImportError:
    _cgrad = None
try:
    from .. import _csparse
except ImportError:
    _csparse = None


Y, W, OFFSET = 0, 1, 2  # packed targets' columns: y, the weight, the offset(s) from here on


def unpack(y, dtype=None):
    """(y, w, offset) of targets: plain ones are (y, None, None); packed rows give their columns
    (offset: a column, or rows x outputs where there are several), in `dtype` where given."""
    if y.ndim == 1:
        return y, None, None
    cast = (lambda a: a) if dtype is None else (lambda a: a.astype(dtype, copy=False))
    offset = y[:, OFFSET] if y.shape[1] == OFFSET + 1 else y[:, OFFSET:]
    return cast(y[:, Y]), cast(y[:, W]), cast(offset)


def add_offset(z, offset) -> None:
    """z += offset: one offset per row (every output moves with it), or one per row and output."""
    if offset is None:
        return
    z += offset[:, None] if (z.ndim == 2 and offset.ndim == 1) else offset


@dataclass(frozen=True)
class ParamSpec:
    name: str
    shape: tuple
    penalized: bool


class ParamLayout:
    """Names, shapes and offsets of the arrays inside one flat parameter vector."""

    def __init__(self, specs: list[ParamSpec]):
        self.specs = specs
        self.offsets = {}
        offset = 0
        for spec in specs:
            self.offsets[spec.name] = offset
            offset += math.prod(spec.shape)
        self.size = offset

    def views(self, flat) -> dict:
        out = {}
        for spec in self.specs:
            lo = self.offsets[spec.name]
            out[spec.name] = flat[lo:lo + math.prod(spec.shape)].reshape(spec.shape)
        return out

    def penalty_mask(self, xp, dtype):
        mask = xp.zeros(self.size, dtype=dtype)
        for spec in self.specs:
            if spec.penalized:
                lo = self.offsets[spec.name]
                mask[lo:lo + math.prod(spec.shape)] = 1
        return mask

    def describe(self) -> list:
        return [(s.name, list(s.shape)) for s in self.specs]


class Model:
    """Pure arithmetic over arrays of one namespace `xp` (NumPy or CuPy): no MPI, no I/O."""

    kind = "base"
    task = ()  # data tasks the model trains on
    output = ""  # what it predicts: "regression" values, "binary" or "multiclass" labels
    overlaps = False  # True: loss_grad_sum reports parts of the gradient ready as it goes
    # True: the initial parameters depend on the training data (data_statistics, init_from_data)
    needs_data_statistics = False

    def __init__(self, n_features: int, n_classes: int = 0, fit_intercept: bool = True,
                 l2: float = 0.0, l1: float = 0.0, xp=np):
        self.n_features = n_features
        self.n_classes = n_classes
        self.fit_intercept = fit_intercept
        self.l2 = l2
        self.l1 = l1
        self.xp = xp
        self.layout = ParamLayout(self._param_specs())
        self._masks = {}

    # ----------------------------------------------------------------- subclass API
    def _param_specs(self) -> list[ParamSpec]:
        raise NotImplementedError

    def decision(self, params, X):
        """Raw model output z = X coef + intercept."""
        v = self.layout.views(params)
        z = X @ v["coef"]
        if self.fit_intercept:
            z += v["intercept"]
        return z

    def loss_grad_sum(self, params, X, y, grad, on_ready=None) -> float:
        """Sum over rows of the data loss; writes the sum of per-row gradients into `grad`.

        C-contiguous NumPy arrays take the one-pass C kernel (X read once); anything else
        (CuPy arrays, strided views, no compiler at install) the array-namespace code.
        `on_ready(hi)`, where given, may be called as grad[:hi] becomes final, so that its
        reduction can start early; models with one gradient pass never call it."""
        if y.ndim == 2:  # weighted rows: the array-namespace code
            return self.loss_grad_xp(params, X, y, grad)
        if self.one_pass and self._native_ok(params, X, grad):
            return self._loss_grad_native(params, X, y, grad)
        if self.csr_pass is not None and _csparse is not None and getattr(X, "format", "") == "csr" \
                and params.dtype == grad.dtype and isinstance(params, np.ndarray):
            return _csparse.loss_grad(X.indptr.astype(np.int64, copy=False), X.indices, X.data,
                                      np.ascontiguousarray(y, dtype=np.float64), params, grad,
                                      self.csr_pass == "logistic", self.fit_intercept)
        return self.loss_grad_xp(params, X, y, grad)

    # CSR rows: the one-pass sparse loop of csrc/csparse.c ("linear", "logistic"), or None
    csr_pass = None
    # Where the one-pass kernel measured faster than NumPy (benchmarks/bench_gradient.py).
    one_pass_dtypes = (np.float32, np.float64)

    @property
    def one_pass(self) -> bool:
        return _cgrad is not None and bool(self.one_pass_dtypes)

    def _native_ok(self, params, X, grad) -> bool:
        # float32 X with float64 parameters: computed and summed in double (full-batch solvers)
        mixed = X.dtype == np.float32 and params.dtype == np.float64
        return (self.xp is np and isinstance(X, np.ndarray) and X.flags.c_contiguous
                and (X.dtype == params.dtype or mixed) and params.dtype == grad.dtype
                and params.flags.c_contiguous and grad.flags.c_contiguous
                and X.dtype in self.one_pass_dtypes)

    def loss_grad_xp(self, params, X, y, grad) -> float:
        raise NotImplementedError

    def _loss_grad_native(self, params, X, y, grad) -> float:
        raise NotImplementedError

    def loss_sum(self, params, X, y) -> float:
        raise NotImplementedError

    def predict(self, params, X):
        raise NotImplementedError

    # ----------------------------------------------------------------- shared
    def options(self) -> dict:
        """Constructor arguments beyond the common ones (saved in model files)."""
        return {}

    def init_params(self, dtype):
        return self.xp.zeros(self.layout.size, dtype=dtype)

    def prepare_targets(self, y):
        """Targets as the loss wants them: packed rows in float64, plain ones as `plain_targets`."""
        if y.ndim == 2:
            return y.astype(self.xp.float64, copy=False)
        return self.plain_targets(y)

    def plain_targets(self, y):
        """Floats for regression and logistic, ints for softmax."""
        return y

    def invalid_rows(self, targets):
        """(row, what) of the first packed row whose weight is negative or not finite, or whose
        offset is not finite; None when all are valid (plain targets have neither)."""
        if targets.ndim == 1:
            return None
        host = targets.get() if hasattr(targets, "get") else targets
        for column, bad, what in ((W, ~np.isfinite(host[:, W]) | (host[:, W] < 0),
                                   "a sample weight (weights must be finite and >= 0)"),
                                  (OFFSET, ~np.isfinite(host[:, OFFSET:]).all(axis=1),
                                   "an offset (offsets must be finite)")):
            if bad.any():
                row = int(np.argmax(bad))
                value = host[row, column] if column == W else host[row, OFFSET:][~np.isfinite(host[row, OFFSET:])][0]
                return row, f"{what}: {float(value)!r}"
        return None

    def weight_sum(self, y) -> float:
        """What a block's rows count for in a mean: their number, or their weights' sum."""
        return float(y[:, W].sum()) if y.ndim == 2 else y.shape[0]

    def mask(self, dtype):
        key = np.dtype(dtype).str
        if key not in self._masks:
            self._masks[key] = self.layout.penalty_mask(self.xp, dtype)
        return self._masks[key]

    def penalty(self, params) -> float:
        mask = self.mask(params.dtype)
        value = 0.0
        if self.l2:
            value += 0.5 * self.l2 * float(self.xp.sum((params * mask) ** 2))
        if self.l1:
            value += self.l1 * float(self.xp.sum(self.xp.abs(params * mask)))
        return value

    def add_l2_grad(self, params, grad) -> None:
        """grad += l2 * coef (the smooth part of the penalty; L1 is a proximal step)."""
        if self.l2:
            grad += self.l2 * self.mask(params.dtype) * params

    def _sum_blocks(self, whole, params, X, y, grad, block: int) -> float:
        """Loss and gradient sums of `whole(params, X, y, grad)` over blocks of `block` rows:
        the blocks' arrays stay small (in cache, bounded memory), and float32 blocks add up in
        double."""
        total = self.xp.zeros(grad.shape, dtype=np.float64)
        loss = 0.0
        for lo in range(0, X.shape[0], block):
            loss += whole(params, X[lo:lo + block], y[lo:lo + block], grad)
            total += grad
        grad[...] = total
        return loss

    def _write_bias_grad(self, g, r) -> None:
        if self.fit_intercept:
            g["intercept"][...] = r.sum(axis=0)


def transpose_product(xp, X, r, out) -> None:
    """out = X^T r (r: one value per row, or rows x k): dense X without a transposed copy,
    SciPy sparse X (CSR shards) through its own product, which costs its non-zeros."""
    if hasattr(X, "tocsr"):  # scipy.sparse
        out[...] = X.T @ r
    elif r.ndim == 1:
        xp.matmul(r, X, out=out)
    else:
        xp.matmul(X.T, r, out=out)
