"""A multi-layer perceptron: ReLU hidden layers of the widths in `hidden` (the seeds' one layer of
128 units by default), then a linear output layer with the linear models' losses: one unit and
the squared loss for regression, one unit and the logistic loss for binary targets, K units and
softmax for K classes. With hidden = [] it is exactly linear, logistic or softmax regression.

Weights start He-normal, N(0, 2 / fan_in) as the seeds initialise a ReLU network, drawn from
`seed` (rank 0's draw is broadcast); biases start at 0. L2 and L1 apply to weights, never biases.

Parameters are laid out output layer first. Back-propagation finishes the output layer's
gradient first, so the finished part of the gradient grows as a prefix of the flat buffer, which
is what `on_ready(hi)` reports: each layer's reduction starts while the layers below it are still
being differentiated (the order of DDP's reverse buckets).
"""
from __future__ import annotations

import numpy as np

from .model import Model, ParamSpec, add_offset, transpose_product, unpack

OUTPUTS = ("regression", "binary", "multiclass")
BLOCK_BYTES = 4 << 20  # full-batch inputs go in blocks whose activations stay this small


class MLPModel(Model):
    kind = "mlp"
    task = OUTPUTS
    overlaps = True
    OVERLAP_CHUNKS = 8
    one_pass_dtypes = ()  # matrix products: BLAS does them

    def __init__(self, n_features: int, n_classes: int = 0, fit_intercept: bool = True,
                 l2: float = 0.0, l1: float = 0.0, xp=np, hidden=(128,), output: str = "multiclass",
                 seed: int = 0):
        if output not in OUTPUTS:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
        self.hidden = [int(h) for h in hidden]
        self.output = output
        self.seed = int(seed)
        width = n_classes if output == "multiclass" else 1
        self.widths = [n_features, *self.hidden, width]
        super().__init__(n_features, n_classes, fit_intercept, l2, l1, xp)
        self._ready = [self._layer_end(i) for i in range(self.n_layers)]

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1

    def options(self) -> dict:
        return {"hidden": self.hidden, "output": self.output, "seed": self.seed}

    def _param_specs(self):
        specs = []
        for i in reversed(range(self.n_layers)):  # output layer first (see the module's note)
            specs.append(ParamSpec(f"coef_{i}", (self.widths[i], self.widths[i + 1]), True))
            if self.fit_intercept:
                specs.append(ParamSpec(f"intercept_{i}", (self.widths[i + 1],), False))
        return specs

    def _layer_end(self, i: int) -> int:
        """Where layer i's arrays end in the flat vector: its gradient is then final up to here."""
        last = f"intercept_{i}" if self.fit_intercept else f"coef_{i}"
        spec = next(s for s in self.layout.specs if s.name == last)
        return self.layout.offsets[last] + int(np.prod(spec.shape))

    def init_params(self, dtype):
        rng = np.random.default_rng(self.seed)
        host = np.zeros(self.layout.size, dtype=dtype)
        views = self.layout.views(host)
        for i in range(self.n_layers):
            fan_in = self.widths[i]
            views[f"coef_{i}"][...] = rng.standard_normal(views[f"coef_{i}"].shape) * np.sqrt(2.0 / fan_in)
        return self.xp.asarray(host)

    def plain_targets(self, y):
        if self.output == "multiclass":
            return y.astype(self.xp.int64, copy=False)
        return y.astype(self.xp.float64) if y.dtype.kind in "iub" else y

    # ----------------------------------------------------------------- forward and backward
    def _forward(self, params, X) -> list:
        """[X, a_1, ..., a_L-1, z]: each hidden layer's ReLU output, then the output logits."""
        v = self.layout.views(params)
        acts = [X]
        for i in range(self.n_layers):
            z = acts[-1] @ v[f"coef_{i}"]
            if self.fit_intercept:
                z += v[f"intercept_{i}"]
            if i < self.n_layers - 1:
                self.xp.maximum(z, 0, out=z)
            acts.append(z)
        return acts

    def _output_loss(self, z, y, want_grad: bool):
        """(loss sum, dloss/dz) of the output layer; dz overwrites z. Packed rows: z moves by
        their offsets, and each row's loss and dz count its weight."""
        y, w, offset = unpack(y)
        add_offset(z if self.output == "multiclass" else z[:, 0], offset)
        if w is not None:
            w = w.astype(z.dtype, copy=False)
        loss, dz = self._unweighted_loss(z, y, w, want_grad)
        if w is not None and dz is not None:
            dz *= w[:, None]
        return loss, dz

    def _unweighted_loss(self, z, y, w, want_grad: bool):
        """(Σ w_i loss_i (w: 1 where None), each row's dloss/dz, unweighted)."""
        xp = self.xp
        total = (lambda row: float(row.sum())) if w is None else (lambda row: float(w @ row))
        if self.output != "multiclass":
            y = y.astype(z.dtype, copy=False)
        if self.output == "regression":
            r = z[:, 0] - y
            return 0.5 * total(r * r), (r[:, None] if want_grad else None)
        if self.output == "binary":
            s = z[:, 0]
            loss = total(xp.logaddexp(0, s) - s * y)
            if not want_grad:
                return loss, None
            p = _sigmoid(xp, s)
            p -= y
            return loss, p[:, None]
        y = y.astype(xp.int64, copy=False)
        z -= z.max(axis=1, keepdims=True)
        rows = xp.arange(z.shape[0])
        lse = xp.log(xp.exp(z).sum(axis=1))
        loss = total(lse - z[rows, y])
        if not want_grad:
            return loss, None
        z -= lse[:, None]
        xp.exp(z, out=z)       # probabilities
        z[rows, y] -= 1        # dloss/dz
        return loss, z

    def _backward(self, params, acts, dz, grad, on_ready) -> None:
        v, g = self.layout.views(params), self.layout.views(grad)
        for i in reversed(range(self.n_layers)):
            self._weight_grad(i, acts[i], dz, g[f"coef_{i}"], on_ready)
            if self.fit_intercept:
                g[f"intercept_{i}"][...] = dz.sum(axis=0)
            if on_ready is not None:
                on_ready(self._ready[i])
            if i:
                dz = dz @ v[f"coef_{i}"].T
                dz *= acts[i] > 0  # ReLU': 1 where the unit was active

    def _weight_grad(self, i, a, dz, out, on_ready) -> None:
        """out = a^T dz. With `on_ready`, in OVERLAP_CHUNKS slabs of input units, each reported
        final as it is written: the first layer's gradient, the largest and the last, then starts
        its reduction slab by slab instead of after the whole product."""
        fan_in, fan_out = out.shape
        sparse = hasattr(a, "tocsr")  # the first layer of CSR rows: one product
        step = fan_in if on_ready is None or sparse else -(-fan_in // self.OVERLAP_CHUNKS)
        base = self.layout.offsets[f"coef_{i}"]
        for lo in range(0, fan_in, step):
            hi = min(lo + step, fan_in)
            transpose_product(self.xp, a if step == fan_in else a[:, lo:hi], dz, out[lo:hi])
            if on_ready is not None and hi < fan_in:
                on_ready(base + hi * fan_out)

    def loss_grad_sum(self, params, X, y, grad, on_ready=None) -> float:
        if on_ready is not None:
            return self._loss_grad_whole(params, X, y, grad, on_ready)
        return self.loss_grad_xp(params, X, y, grad)

    def _loss_grad_whole(self, params, X, y, grad, on_ready=None) -> float:
        acts = self._forward(params, X)
        loss, dz = self._output_loss(acts[-1], y, want_grad=True)
        self._backward(params, acts, dz, grad, on_ready)
        return loss

    def _block_rows(self, X) -> int:
        return max(256, BLOCK_BYTES // (max(self.widths) * X.dtype.itemsize))

    def loss_grad_xp(self, params, X, y, grad) -> float:
        block = self._block_rows(X)
        if X.shape[0] <= block:
            return self._loss_grad_whole(params, X, y, grad)
        return self._sum_blocks(self._loss_grad_whole, params, X, y, grad, block)  # full batch

    def loss_sum(self, params, X, y) -> float:
        block = self._block_rows(X)
        return sum(self._output_loss(self._forward(params, X[lo:lo + block])[-1], y[lo:lo + block],
                                     want_grad=False)[0]
                   for lo in range(0, X.shape[0], block))

    # ----------------------------------------------------------------- prediction
    def decision(self, params, X):
        z = self._forward(params, X)[-1]
        return z if self.output == "multiclass" else z[:, 0]

    def predict_proba(self, params, X, offset=None):
        z = self.decision(params, X)
        add_offset(z, offset)
        if self.output == "binary":
            return _sigmoid(self.xp, z)
        if self.output == "regression":
            raise ValueError("a regression MLP predicts values, not probabilities")
        z -= z.max(axis=1, keepdims=True)
        e = self.xp.exp(z)
        e /= e.sum(axis=1, keepdims=True)
        return e

    def predict(self, params, X, offset=None):
        z = self.decision(params, X)
        add_offset(z, offset)
        if self.output == "regression":
            return z
        if self.output == "binary":
            return (z > 0).astype(self.xp.int64)
        return self.xp.argmax(z, axis=1)


def _sigmoid(xp, z):
    p = xp.tanh(0.5 * z)
    p += 1
    p *= 0.5
    return p
