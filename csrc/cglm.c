/*
 * mpireg._cglm: one IRLS/Newton pass of the generalized linear model over a block of rows, with
 * X read once (models/glm.py, `newton_sums`).
 *
 * NumPy's form of the pass reads X and walks n-long vectors a dozen times: X in float64, eta = X
 * beta, mu, mu', V(mu), the deviance, the gradient weights, X^T r, the information weights, their
 * square roots, and the scaled copy sqrt(W) X for the Gram matrix. Here each row is used while it
 * sits in L1: its dot product gives eta, the family and link give mu, mu', V and the deviance in
 * registers, and the row's contributions to the gradient and to the intercept's row of the
 * information are added at once; the row scaled by sqrt(w_i) is written out for BLAS's syrk,
 * which forms X^T W X at the FMA rate (a rank-1 update per row here would not).
 *
 * Layers (as cgrad.c):
 *   1. kernels  - the families and links (scalar double code, one switch per row, which the
 *                 branch predictor settles on), newton_block over rows [0, n); the canonical
 *                 families four rows at a time in SIMD lanes (glm_newton4.h)
 *   2. wrapper  - validates shapes, dtypes, contiguity once, releases the GIL
 *   3. Python   - GLMModel.newton_sums calls it for C-contiguous NumPy rows (float32 or float64),
 *                 the inference pass's log-likelihood included; NumPy otherwise (CSR rows)
 *
 * Numerics: everything in double (float32 rows are widened as they are read), sums in row order,
 * so the result depends only on the rows given. The formulas are families.py's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "buffers.h"
#include "vmath.h"  /* FAST: the AVX2+FMA clone of the kernels where the CPU has it */

/* ------------------------------------------------------------------ 1. kernels */

enum family { GAUSSIAN, BINOMIAL, POISSON, GAMMA, INVERSE_GAUSSIAN, TWEEDIE, NEGATIVE_BINOMIAL };
enum link { IDENTITY, LOG, LOGIT, INVERSE };

struct glm {
    int family, link, observed;  /* observed: the observed information (a non-canonical link) */
    double power, theta;
};

/* y log(y / mu), 0 where y = 0 */
INLINE double xlogy_ratio(double y, double mu) { return y == 0.0 ? 0.0 : y * log(y / mu); }

/* mu, dmu/deta and d2mu/deta2 at eta */
INLINE void link_inverse(int link, double eta, double *mu, double *dmu, double *d2mu)
{
    switch (link) {
    case LOG: *mu = exp(eta); *dmu = *mu; *d2mu = *mu; return;
    case LOGIT: {
        double e = exp(-fabs(eta));  /* the stable expit */
        double m = eta >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        *mu = m; *dmu = m * (1.0 - m); *d2mu = *dmu * (1.0 - 2.0 * m);
        return;
    }
    case INVERSE: { double m = 1.0 / eta; *mu = m; *dmu = -(m * m); *d2mu = 2.0 * m * m * m; return; }
    default: *mu = eta; *dmu = 1.0; *d2mu = 0.0; return;
    }
}

INLINE int valid_mu(const struct glm *g, double mu)
{
    if (!isfinite(mu)) return 0;
    switch (g->family) {
    case BINOMIAL: return mu > 0.0 && mu < 1.0;
    case POISSON: case GAMMA: case INVERSE_GAUSSIAN: case NEGATIVE_BINOMIAL: return mu > 0.0;
    case TWEEDIE: return g->power > 0.0 ? mu > 0.0 : 1;
    default: return 1;
    }
}

/* V(mu) and V'(mu) */
INLINE void variance(const struct glm *g, double mu, double *v, double *dv)
{
    switch (g->family) {
    case BINOMIAL: *v = mu * (1.0 - mu); *dv = 1.0 - 2.0 * mu; return;
    case POISSON: *v = mu; *dv = 1.0; return;
    case GAMMA: *v = mu * mu; *dv = 2.0 * mu; return;
    case INVERSE_GAUSSIAN: *v = mu * mu * mu; *dv = 3.0 * mu * mu; return;
    case TWEEDIE: {
        double p = g->power;
        *v = pow(mu, p);
        *dv = p != 0.0 ? p * pow(mu, p - 1.0) : 0.0;
        return;
    }
    case NEGATIVE_BINOMIAL: *v = mu + mu * mu / g->theta; *dv = 1.0 + 2.0 * mu / g->theta; return;
    default: *v = 1.0; *dv = 0.0; return;
    }
}

INLINE double unit_deviance(const struct glm *g, double y, double mu)
{
    switch (g->family) {
    case BINOMIAL: return 2.0 * (xlogy_ratio(y, mu) + xlogy_ratio(1.0 - y, 1.0 - mu));
    case POISSON: return 2.0 * (xlogy_ratio(y, mu) - y + mu);
    case GAMMA: return 2.0 * (log(mu / y) + y / mu - 1.0);
    case INVERSE_GAUSSIAN: return (y - mu) * (y - mu) / (y * mu * mu);
    case TWEEDIE: {
        double p = g->power;
        if (p == 0.0) return (y - mu) * (y - mu);
        if (p == 1.0) return 2.0 * (xlogy_ratio(y, mu) - y + mu);
        if (p == 2.0) return 2.0 * (log(mu / y) + y / mu - 1.0);
        double first = pow(y > 0.0 ? y : 0.0, 2.0 - p) / ((1.0 - p) * (2.0 - p));
        return 2.0 * (first - y * pow(mu, 1.0 - p) / (1.0 - p) + pow(mu, 2.0 - p) / (2.0 - p));
    }
    case NEGATIVE_BINOMIAL: {
        double t = g->theta;
        return 2.0 * (xlogy_ratio(y, mu) - (y + t) * log((y + t) / (mu + t)));
    }
    default: return (y - mu) * (y - mu);
    }
}

INLINE double xlogy(double y, double x) { return y == 0.0 ? 0.0 : y * log(x); }

/* log f(y; mu, scale) of one row (families.py's loglike, the AIC's), NaN for Tweedie */
INLINE double loglike(const struct glm *g, double y, double mu, double scale)
{
    const double two_pi = 6.283185307179586;
    switch (g->family) {
    case GAUSSIAN: return -(y - mu) * (y - mu) / (2.0 * scale) - 0.5 * log(two_pi * scale);
    case BINOMIAL: {
        double m = mu < 1e-300 ? 1e-300 : mu > 1.0 - 1e-16 ? 1.0 - 1e-16 : mu;
        return xlogy(y, m) + xlogy(1.0 - y, 1.0 - m) - lgamma(y + 1.0) - lgamma(2.0 - y);
    }
    case POISSON: return xlogy(y, mu) - mu - lgamma(y + 1.0);
    case GAMMA: {
        double shape = 1.0 / scale, ratio = y / mu;
        return shape * log(shape * ratio) - shape * ratio - lgamma(shape) - log(y);
    }
    case INVERSE_GAUSSIAN:
        return -(y - mu) * (y - mu) / (2.0 * scale * y * mu * mu) - 0.5 * log(two_pi * scale * y * y * y);
    case NEGATIVE_BINOMIAL: {
        double a = 1.0 / g->theta;
        return xlogy(y, a * mu / (1.0 + a * mu)) - log1p(a * mu) / a + lgamma(y + 1.0 / a) - lgamma(y + 1.0)
               - lgamma(1.0 / a);
    }
    default: return NAN;
    }
}

/* V, V' and the unit deviance. Tweedie powers other than 0, 1, 2 from one pow of mu (mu^(1-p); V =
 * mu^p = mu / mu^(1-p), mu^(2-p) = mu mu^(1-p)) and one of y where y > 0: 4 pows a row -> 1-2,
 * the pass 295 -> 233 ms at 1M x 60 (benchmarks/bench_glm_pass.py). */
INLINE void family_terms(const struct glm *g, double y, double mu, double *v, double *dv, double *dev)
{
    double p = g->power;
    if (g->family == TWEEDIE && p != 0.0 && p != 1.0 && p != 2.0) {
        double a = pow(mu, 1.0 - p);
        *v = mu / a;
        *dv = p * *v / mu;
        double first = y > 0.0 ? pow(y, 2.0 - p) / ((1.0 - p) * (2.0 - p)) : 0.0;
        *dev = 2.0 * (first - y * a / (1.0 - p) + a * mu / (2.0 - p));
        return;
    }
    variance(g, mu, v, dv);
    *dev = unit_deviance(g, y, mu);
}

/* The sums of one pass, in `sums` (added to):
 *   [0] loss (sum w d / 2)  [1] weight sum  [2] Pearson  [3] log-likelihood at `scale` (where
 *   scale is not NaN)  [4 .. 4+k) gradient (coef, intercept)
 *   [4+k .. 4+k+d) X^T info (the intercept's column of the information)  [4+k+d] sum info
 * and each row scaled by sqrt(info) into `scaled` (n x d, float64; with `cols`, only those m columns,
 * n x m: a path's strong set, whose Gram is all it needs). Returns the number of rows
 * whose mu left the family's range (then the sums are not to be used: the line search steps back). */
#define NEWTON_BLOCK(NAME, T)                                                                           \
static FAST size_t NAME(const T *X, const double *beta, const double *targets, size_t n, size_t d, int fit,  \
                   const struct glm *g, double scale, double *sums, double *scaled,                     \
                   const int64_t *cols, size_t m)                                                       \
{                                                                                                       \
    size_t k = d + (fit ? 1 : 0), invalid = 0;                                                          \
    double *grad = sums + 4, *infox = sums + 4 + k;                                                     \
    double b = fit ? beta[d] : 0.0, loss = 0.0, weight = 0.0, pearson = 0.0, rsum = 0.0, isum = 0.0;   \
    double ll = 0.0;                                                                                    \
    int with_ll = !isnan(scale);                                                                        \
    for (size_t i = 0; i < n; i++) {                                                                    \
        const T *x = X + i * d;                                                                         \
        double y = targets[3 * i], w = targets[3 * i + 1], eta = b + targets[3 * i + 2];                \
        double dot = 0.0;                                                                               \
        _Pragma("omp simd reduction(+:dot)")                                                            \
        for (size_t j = 0; j < d; j++) dot += (double)x[j] * beta[j];                                   \
        eta += dot;                                                                                     \
        double mu, dmu, d2mu, v, dv;                                                                    \
        link_inverse(g->link, eta, &mu, &dmu, &d2mu);                                                   \
        double *out = scaled + i * m;                                                                   \
        if (!valid_mu(g, mu)) {                                                                         \
            invalid++;                                                                                  \
            memset(out, 0, m * sizeof(double));                                                         \
            continue;                                                                                   \
        }                                                                                               \
        double dev;                                                                                     \
        family_terms(g, y, mu, &v, &dv, &dev);                                                          \
        loss += 0.5 * w * dev;                                                                          \
        weight += w;                                                                                    \
        pearson += w * (y - mu) * (y - mu) / v;                                                         \
        if (with_ll) ll += w * loglike(g, y, mu, scale);                                                \
        double r = w * (mu - y) * dmu / v, info = w * dmu * dmu / v;                                    \
        if (g->observed) { /* minus (y - mu) d/deta (mu' / V), clipped at 0 (PSD) */                   \
            double slope = (d2mu * v - dmu * dmu * dv) / (v * v);                                       \
            info -= w * (y - mu) * slope;                                                               \
            if (!(info > 0.0)) info = 0.0;                                                              \
        }                                                                                               \
        double s = sqrt(info);                                                                          \
        rsum += r;                                                                                      \
        isum += info;                                                                                   \
        if (!cols) {                                                                                    \
            _Pragma("omp simd")                                                                         \
            for (size_t j = 0; j < d; j++) {                                                            \
                double xj = (double)x[j];                                                               \
                grad[j] += r * xj;                                                                      \
                infox[j] += info * xj;                                                                  \
                out[j] = s * xj;                                                                        \
            }                                                                                           \
            continue;                                                                                   \
        }                                                                                               \
        _Pragma("omp simd")                                                                             \
        for (size_t j = 0; j < d; j++) {                                                                \
            double xj = (double)x[j];                                                                   \
            grad[j] += r * xj;                                                                          \
            infox[j] += info * xj;                                                                      \
        }                                                                                               \
        for (size_t t = 0; t < m; t++) out[t] = s * (double)x[cols[t]];                                 \
    }                                                                                                   \
    sums[0] += loss; sums[1] += weight; sums[2] += pearson; sums[3] += ll;                              \
    if (fit) grad[d] += rsum;                                                                           \
    sums[4 + k + d] += isum;                                                                            \
    return invalid;                                                                                     \
}

NEWTON_BLOCK(newton_f32, float)
NEWTON_BLOCK(newton_f64, double)

#include "glm_newton4.h"  /* the canonical families four rows at a time */
NEWTON_BLOCK4(newton4_f32, newton_f32, float)
NEWTON_BLOCK4(newton4_f64, newton_f64, double)

/* ------------------------------------------------------------------ 2. wrapper */

static PyObject *newton_rows(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *Xo, *bo, *to, *so, *oo, *co = Py_None;
    struct glm g;
    int fit;
    double scale;
    if (!PyArg_ParseTuple(args, "OOOOOiiddppd|O", &Xo, &bo, &to, &so, &oo, &g.family, &g.link, &g.power,
                          &g.theta, &g.observed, &fit, &scale, &co))
        return NULL;
    Py_buffer views[6] = {{0}};
    Py_buffer *cols = &views[5];
    Py_buffer *X = &views[0], *beta = &views[1], *t = &views[2], *sums = &views[3], *out = &views[4];
    if (buffer_acquire(Xo, X, 0, "X") < 0 || buffer_acquire(bo, beta, 0, "beta") < 0 ||
        buffer_acquire(to, t, 0, "targets") < 0 || buffer_acquire(so, sums, 1, "sums") < 0 ||
        buffer_acquire(oo, out, 1, "scaled") < 0)
        goto fail;
    char xk = buffer_kind(X);
    if ((xk != 'f' && xk != 'd') || X->ndim != 2) {
        PyErr_SetString(PyExc_TypeError, "X must be a 2-D float32 or float64 array");
        goto fail;
    }
    size_t n = (size_t)X->shape[0], d = (size_t)X->shape[1], k = d + (fit ? 1 : 0);
    if (buffer_kind(beta) != 'd' || (size_t)(beta->len / 8) != k) {
        PyErr_Format(PyExc_ValueError, "beta must be %zu float64 values", k);
        goto fail;
    }
    if (buffer_kind(t) != 'd' || (size_t)(t->len / 8) != 3 * n) {
        PyErr_Format(PyExc_ValueError, "targets must be %zu rows [y, w, offset] of float64", n);
        goto fail;
    }
    if (buffer_kind(sums) != 'd' || (size_t)(sums->len / 8) != 5 + k + d) {
        PyErr_Format(PyExc_ValueError, "sums must be %zu float64 values", 5 + k + d);
        goto fail;
    }
    size_t m = d;
    const int64_t *cp = NULL;
    if (co != Py_None) {
        if (buffer_acquire(co, cols, 0, "columns") < 0) goto fail;
        m = (size_t)(cols->len / (cols->itemsize ? cols->itemsize : 1));
        cp = cols->buf;
        if (buffer_kind(cols) != 'q') {
            PyErr_SetString(PyExc_TypeError, "columns must be int64");
            goto fail;
        }
        for (size_t t = 0; t < m; t++)
            if (cp[t] < 0 || (size_t)cp[t] >= d) {
                PyErr_Format(PyExc_ValueError, "columns: %lld is outside 0..%zu", (long long)cp[t], d - 1);
                goto fail;
            }
    }
    if (buffer_kind(out) != 'd' || (size_t)(out->len / 8) < n * m) {
        PyErr_Format(PyExc_ValueError, "scaled must hold %zu x %zu float64 values", n, m);
        goto fail;
    }
    if (g.family < GAUSSIAN || g.family > NEGATIVE_BINOMIAL || g.link < IDENTITY || g.link > INVERSE) {
        PyErr_SetString(PyExc_ValueError, "unknown family or link");
        goto fail;
    }
    size_t invalid;
    int four = isnan(scale) && canonical_pass(&g);  /* no log-likelihood asked: the four-row kernel */
    Py_BEGIN_ALLOW_THREADS
    if (xk == 'f')
        invalid = four ? newton4_f32(X->buf, beta->buf, t->buf, n, d, fit, &g, sums->buf, out->buf, cp, m)
                       : newton_f32(X->buf, beta->buf, t->buf, n, d, fit, &g, scale, sums->buf, out->buf, cp, m);
    else
        invalid = four ? newton4_f64(X->buf, beta->buf, t->buf, n, d, fit, &g, sums->buf, out->buf, cp, m)
                       : newton_f64(X->buf, beta->buf, t->buf, n, d, fit, &g, scale, sums->buf, out->buf, cp, m);
    Py_END_ALLOW_THREADS
    buffer_release(views, 6);
    return PyLong_FromSize_t(invalid);
fail:
    buffer_release(views, 6);
    return NULL;
}

static PyMethodDef methods[] = {
    {"newton_rows", newton_rows, METH_VARARGS,
     "newton_rows(X, beta, targets, sums, scaled, family, link, power, theta, observed, fit_intercept,"
     " scale[, columns]) -> rows whose mu left the family's range. Adds one Newton pass's sums over X's rows into"
     " sums (the log-likelihood at scale, unless NaN) and writes the rows scaled by sqrt(information)"
     " into scaled."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cglm", "The GLM's Newton pass in one read of X.",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cglm(void) { return PyModule_Create(&module); }
