"""Linear regression: loss_i = (x_i.coef + b - y_i)^2 / 2; with l2 it is ridge, with l1 the lasso
or elastic net (sklearn's Ridge(alpha) is l2 = alpha / n)."""
from .model import Model, ParamSpec, _cgrad, add_offset, transpose_product, unpack


class LinearModel(Model):
    kind = "linear"
    csr_pass = "linear"
    task = ("regression",)
    output = "regression"

    def _param_specs(self):
        specs = [ParamSpec("coef", (self.n_features,), True)]
        return specs + ([ParamSpec("intercept", (), False)] if self.fit_intercept else [])

    def _loss_grad_native(self, params, X, y, grad) -> float:
        return _cgrad.linear(X, y.astype(params.dtype, copy=False), params, grad, self.fit_intercept)

    def loss_grad_xp(self, params, X, y, grad) -> float:
        r, w = self._residuals(params, X, y)
        loss = 0.5 * float(r @ r) if w is None else 0.5 * float(w @ (r * r))
        if w is not None:
            r *= w
        g = self.layout.views(grad)
        transpose_product(self.xp, X, r, g["coef"])
        self._write_bias_grad(g, r)
        return loss

    def loss_sum(self, params, X, y) -> float:
        r, w = self._residuals(params, X, y)
        return 0.5 * float(r @ r) if w is None else 0.5 * float(w @ (r * r))

    def _residuals(self, params, X, y):
        """(prediction - y, the rows' weights or None), in the parameters' dtype."""
        y, w, offset = unpack(y, params.dtype)
        r = self.decision(params, X)
        add_offset(r, offset)
        r -= y
        return r, w

    def predict(self, params, X, offset=None):
        z = self.decision(params, X)
        add_offset(z, offset)
        return z
