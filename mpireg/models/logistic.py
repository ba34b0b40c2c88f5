"""Binary logistic regression: loss_i = log(1 + exp(z_i)) - y_i z_i, y in {0, 1}
(sklearn's LogisticRegression(C) is l2 = 1 / (C n)).

Stable for any z: log(1 + exp(z)) is computed as logaddexp(0, z), and the sigmoid as
(1 + tanh(z/2)) / 2, neither of which overflows.
"""
from .model import Model, ParamSpec, _cgrad, add_offset, transpose_product, unpack


class LogisticModel(Model):
    kind = "logistic"
    csr_pass = "logistic"
    task = ("binary",)
    output = "binary"

    def _param_specs(self):
        specs = [ParamSpec("coef", (self.n_features,), True)]
        return specs + ([ParamSpec("intercept", (), False)] if self.fit_intercept else [])

    def plain_targets(self, y):
        return y.astype(self.xp.float64) if y.dtype.kind in "iub" else y

    def _loss_grad_native(self, params, X, y, grad) -> float:
        return _cgrad.logistic(X, y.astype(params.dtype, copy=False), params, grad, self.fit_intercept)

    def loss_grad_xp(self, params, X, y, grad) -> float:
        z, y, w = self._logits(params, X, y)
        loss = self._loss(z, y, w)
        r = self.sigmoid(z)
        r -= y
        if w is not None:
            r *= w
        g = self.layout.views(grad)
        transpose_product(self.xp, X, r, g["coef"])
        self._write_bias_grad(g, r)
        return loss

    def loss_sum(self, params, X, y) -> float:
        return self._loss(*self._logits(params, X, y))

    def _logits(self, params, X, y):
        """(z with the rows' offsets, y, the weights or None), in the parameters' dtype."""
        y, w, offset = unpack(y)
        z = self.decision(params, X)
        add_offset(z, offset)
        return z, y.astype(z.dtype, copy=False), (w.astype(z.dtype, copy=False) if w is not None else None)

    def _loss(self, z, y, w) -> float:
        row = self.xp.logaddexp(0, z) - z * y
        return float(row.sum() if w is None else w @ row)

    def sigmoid(self, z):
        p = self.xp.tanh(0.5 * z)
        p += 1
        p *= 0.5
        return p

    def predict_proba(self, params, X, offset=None):
        z = self.decision(params, X)
        add_offset(z, offset)
        return self.sigmoid(z)

    def predict(self, params, X, offset=None):
        z = self.decision(params, X)
        add_offset(z, offset)
        return (z > 0).astype(self.xp.int64)
