"""The generalized linear model: a family and a link (families.py), sample weights and offsets.

    mu_i = g^-1(eta_i),  eta_i = x_i . coef + b + offset_i
    objective = sum_i w_i d(y_i, mu_i) / (2 sum_i w_i) + l2/2 ||coef||^2 + l1 ||coef||_1

Scikit-learn's and glum's `alpha * (l1_ratio ||coef||_1 + (1 - l1_ratio)/2 ||coef||^2)` is
l1 = alpha l1_ratio, l2 = alpha (1 - l1_ratio). A weight of k counts as k copies of the row.

The targets travel as one float64 array of three columns, [y, w, offset] (`prepare_targets`), so
every procedure's batching, blocks and hand-over carry a row's weight and offset with it; the
step's row count is the weights' sum (`weight_sum`). Two passes:

    loss_grad_xp     loss and gradient sums (L-BFGS, SGD/Adam)
    newton_sums      the same plus the expected information X~^T W X~ (W = w mu'^2 / V, X~ = [X 1])
                     and the Pearson statistic: one pass of the IRLS/Newton solver (fit/irls.py)

Both run over chunks of CHUNK_ROWS rows in float64 (float32 rows are converted a chunk at a
time); the Gram matrix is one BLAS syrk per chunk. Dense C-contiguous rows take the one-read pass
of csrc/cglm.c for newton_sums (everything but the syrk, fused; NumPy stays the reference and
serves CSR rows).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import blas

from .families import FAMILIES, LINKS, Family, is_canonical, make_family, make_link
from .model import OFFSET, W, Y, Model, ParamSpec

try:  # the one-read Newton pass (csrc/cglm.c)
    from .. import _cglm
except ImportError:
    _cglm = None

# the C kernel's codes: csrc/cglm.c's enum family and enum link, in these orders
FAMILY_CODES = {name: code for code, name in enumerate(("gaussian", "binomial", "poisson", "gamma",
                                                        "inverse_gaussian", "tweedie", "negative_binomial"))}
LINK_CODES = {name: code for code, name in enumerate(("identity", "log", "logit", "inverse"))}
assert set(FAMILY_CODES) == set(FAMILIES) and set(LINK_CODES) == set(LINKS)

CHUNK_ROWS = 16384  # 60 float64 features: 7.9 MB a chunk, well inside the L3 of these hosts


class GLMModel(Model):
    kind = "glm"
    task = ("regression", "binary")
    output = "glm"
    one_pass_dtypes = ()  # the NumPy passes below (no C kernel of cgrad.c takes weights yet)

    def __init__(self, n_features: int, n_classes: int = 0, fit_intercept: bool = True, l2: float = 0.0,
                 l1: float = 0.0, xp=np, family: str = "gaussian", link: str = "auto", power: float = 1.5,
                 theta: float = 1.0):
        if xp is not np:
            raise ValueError("device: generalized linear models train on the CPU for now; set device = 'cpu'")
        self.family: Family = make_family(family, power, theta)
        self.link = make_link(link, self.family)
        self.canonical = is_canonical(self.family, self.link)
        super().__init__(n_features, n_classes, fit_intercept, l2, l1, xp)

    def _param_specs(self):
        specs = [ParamSpec("coef", (self.n_features,), True)]
        return specs + ([ParamSpec("intercept", (), False)] if self.fit_intercept else [])

    def options(self) -> dict:
        return {"family": self.family.name, "link": self.link.name,
                "power": getattr(self.family, "power", 1.5), "theta": getattr(self.family, "theta", 1.0)}

    # ----------------------------------------------------------------- targets
    def prepare_targets(self, y):
        """[y, w, offset] rows in float64: a 1-D y gets weight 1 and offset 0."""
        y = np.asarray(y)
        if y.ndim == 2:
            return np.ascontiguousarray(y, dtype=np.float64)
        out = np.empty((y.shape[0], 3))
        out[:, Y], out[:, W], out[:, OFFSET] = y, 1.0, 0.0
        return out

    def invalid_rows(self, targets):
        """(row, what) of the first target outside the family's support, or of a weight or
        offset the base model refuses; None when all are valid."""
        bad = self.family.invalid_y(targets[:, Y])
        if bad.any():
            row = int(np.argmax(bad))
            return row, f"y (the {self.family.name} family needs {self.family.y_rule}): {float(targets[row, Y])!r}"
        return super().invalid_rows(targets)

    # ----------------------------------------------------------------- predictions
    def linear_predictor(self, params, X, offset=None):
        eta = np.asarray(self.decision(params, X), dtype=np.float64)
        return eta + offset if offset is not None else eta

    def predict(self, params, X, offset=None):
        """The mean response mu."""
        return self.link.inverse(self.linear_predictor(params, X, offset))

    # ----------------------------------------------------------------- the passes
    def chunks(self, params, X, targets):
        """(X chunk in float64, y, w, eta, mu) over CHUNK_ROWS rows at a time."""
        for lo in range(0, X.shape[0], CHUNK_ROWS):
            Xc = X[lo:lo + CHUNK_ROWS]
            if not hasattr(Xc, "tocsr"):
                Xc = np.asarray(Xc, dtype=np.float64)
            t = targets[lo:lo + CHUNK_ROWS]
            eta = self.linear_predictor(params.astype(np.float64, copy=False), Xc, t[:, OFFSET])
            yield Xc, t[:, Y], t[:, W], eta, self.link.inverse(eta)

    def loss_grad_xp(self, params, X, y, grad) -> float:
        g = self.layout.views(grad)
        total = np.zeros(self.layout.size)
        tv = self.layout.views(total)
        loss = 0.0
        for Xc, yc, wc, eta, mu in self.chunks(params, X, y):
            loss += 0.5 * float(wc @ self.family.unit_deviance(yc, mu))
            r = wc * (mu - yc) * self.link.derivative(eta, mu) / self.family.variance(mu)
            tv["coef"] += Xc.T @ r
            if self.fit_intercept:
                tv["intercept"] += r.sum()
        g["coef"][...] = tv["coef"]
        if self.fit_intercept:
            g["intercept"][...] = tv["intercept"]
        return loss

    def loss_sum(self, params, X, y) -> float:
        return sum(0.5 * float(wc @ self.family.unit_deviance(yc, mu)) for _, yc, wc, _, mu in
                   self.chunks(params, X, y))

    def newton_sums(self, params, X, targets, out, expected: bool = False, loglike_scale=None,
                    columns=None) -> None:
        """Add this block's sums into `out` (float64, NewtonSums' layout): the loss, the weights,
        the gradient, the information (upper triangle) and the Pearson statistic, in the order
        [coef..., intercept] of the parameters; mu outside the family's range makes the loss inf
        (the line search then steps back). The information is the observed one (Newton's
        quadratic convergence with a non-canonical link; clipped at 0 per row so that it stays
        positive semi-definite), or with `expected` the expected one (standard errors). With
        `loglike_scale`, the log-likelihood at that dispersion too."""
        if self._native_pass(X, targets):
            return self._newton_native(params, X, targets, out, not (self.canonical or expected), loglike_scale,
                                       columns)
        k, d = self.layout.size, self.n_features
        H = out.gram  # Fortran-ordered (k, k): syrk writes its upper triangle in place
        for Xc, yc, wc, eta, mu in self.chunks(params, X, targets):
            if not self.family.valid_mu(mu).all():
                out.values[out.LOSS] = np.inf
                continue
            dmu = self.link.derivative(eta, mu)
            var = self.family.variance(mu)
            out.values[out.LOSS] += 0.5 * float(wc @ self.family.unit_deviance(yc, mu))
            out.values[out.WEIGHT] += float(wc.sum())
            out.values[out.PEARSON] += float(wc @ ((yc - mu) ** 2 / var))
            r = wc * (mu - yc) * dmu / var
            info = wc * dmu * dmu / var
            if not (self.canonical or expected):  # minus (y - mu) d/deta (mu' / V)
                slope = (self.link.second_derivative(eta, mu) * var
                         - dmu * dmu * self.family.variance_derivative(mu)) / (var * var)
                info = np.maximum(info - wc * (yc - mu) * slope, 0.0)
            if loglike_scale is not None:
                out.values[out.LOGLIKE] += self.family.loglike(yc, mu, wc, loglike_scale)
            grad = out.gradient
            if hasattr(Xc, "tocsr"):
                grad[:d] += Xc.T @ r
                H[:d, :d] += (Xc.T @ Xc.multiply(info[:, None])).toarray()
            else:
                grad[:d] += Xc.T @ r
                scaled = Xc * np.sqrt(info)[:, None]
                # syrk on the transposed (Fortran-ordered) view: X^T W X without copying X
                H[:d, :d] = blas.dsyrk(1.0, scaled.T, beta=1.0, c=H[:d, :d], trans=0, overwrite_c=0)
            if k > d:  # the intercept's row and column
                grad[d] += r.sum()
                H[:d, d] += Xc.T @ info
                H[d, d] += info.sum()


    def deviance_sums(self, params, X, targets) -> np.ndarray:
        """[sum w d(y, mu), sum w] over the rows (a held-out fold's deviance): the C pass with no
        information columns where it can, the NumPy chunks otherwise."""
        if self._native_pass(X, targets):  # the kernel with no information columns: its sums only
            sums = np.zeros(5 + self.layout.size + self.n_features)
            invalid = _cglm.newton_rows(X, np.ascontiguousarray(params, dtype=np.float64), targets, sums, np.empty(0),
                                        *self._kernel_family(), False, self.fit_intercept, np.nan,
                                        np.empty(0, dtype=np.int64))
            return np.array([np.inf if invalid else 2.0 * sums[0], sums[1]])
        out = np.zeros(2)
        for _, yc, wc, _, mu in self.chunks(params, X, targets):
            out += (float(wc @ self.family.unit_deviance(yc, mu)), float(wc.sum()))
        return out

    def _kernel_family(self) -> tuple:
        """(family, link, power, theta) as csrc/cglm.c takes them."""
        return (FAMILY_CODES[self.family.name], LINK_CODES[self.link.name],
                float(getattr(self.family, "power", 0.0)), float(getattr(self.family, "theta", 1.0)))

    def _native_pass(self, X, targets) -> bool:
        return (_cglm is not None and isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64)
                and X.flags.c_contiguous and targets.dtype == np.float64 and targets.flags.c_contiguous
                and targets.shape[1:] == (3,))

    def _newton_native(self, params, X, targets, out, observed: bool, loglike_scale=None, columns=None) -> None:
        """newton_sums through csrc/cglm.c: per chunk one read of its rows (eta, mu, the sums, the
        rows scaled by sqrt(information)), then BLAS's syrk on the scaled rows. `columns` (sorted
        coef indices): only their block of the information (a path's strong set: the Gram costs
        |columns|^2 instead of d^2 a row); the gradient and the intercept's row stay whole."""
        k, d, n = self.layout.size, self.n_features, X.shape[0]
        beta = np.ascontiguousarray(params, dtype=np.float64)
        sums = np.zeros(5 + k + d)
        if columns is not None:
            columns = np.ascontiguousarray(columns, dtype=np.int64)
        width = d if columns is None else len(columns)
        scaled = np.empty(min(CHUNK_ROWS, n) * width)
        H, gram = out.gram, None
        family = self._kernel_family()
        for lo in range(0, n, CHUNK_ROWS):
            count = min(CHUNK_ROWS, n - lo)
            rows = scaled[:count * width].reshape(count, width)
            if _cglm.newton_rows(X[lo:lo + CHUNK_ROWS], beta, targets[lo:lo + CHUNK_ROWS], sums, rows,
                                 *family, observed, self.fit_intercept,
                                 np.nan if loglike_scale is None else float(loglike_scale), columns):
                out.values[out.LOSS] = np.inf  # mu left the family's range: the line search steps back
                continue
            if columns is None:
                H[:d, :d] = blas.dsyrk(1.0, rows.T, beta=1.0, c=H[:d, :d], trans=0, overwrite_c=0)
            elif width:  # the kernel wrote only the strong set's columns
                gram = blas.dsyrk(1.0, rows.T, trans=0) if gram is None else \
                    blas.dsyrk(1.0, rows.T, beta=1.0, c=gram, trans=0, overwrite_c=1)
        if gram is not None:
            H[np.ix_(columns, columns)] += np.triu(gram)  # sorted columns: the upper triangle's place
        out.values[out.LOSS] += sums[0]
        out.values[out.WEIGHT] += sums[1]
        out.values[out.PEARSON] += sums[2]
        if loglike_scale is not None:
            out.values[out.LOGLIKE] += sums[3]
        out.gradient += sums[4:4 + k]
        if k > d:
            H[:d, d] += sums[4 + k:4 + k + d]
            H[d, d] += sums[4 + k + d]


class NewtonSums:
    """One pass's sums, in one float64 buffer for one allreduce:
    [loss | weight sum | Pearson | log-likelihood | gradient (k) | information (k x k, Fortran order)]."""

    LOSS, WEIGHT, PEARSON, LOGLIKE = range(4)

    def __init__(self, k: int):
        self.k = k
        self.buffer = np.zeros(4 + k + k * k)
        self.values = self.buffer[:4]
        self.gradient = self.buffer[4:4 + k]
        self.gram = self.buffer[4 + k:].reshape((k, k), order="F")

    def information(self):
        """The full symmetric information matrix (the passes fill its upper triangle)."""
        upper = np.triu(self.gram)
        return upper + np.triu(upper, 1).T
