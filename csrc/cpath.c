/*
 * mpireg._cpath: the first-order regularisation path's pass over CSR rows (fit/path_first_order.py).
 *
 *   fold_gradients(indptr, indices, data, targets, folds, B, G, D, sums, family, models, fit_intercept)
 *       -> rows whose mean left the family's range
 *
 * Every model of a k-fold path at once: B holds the models' coefficients interleaved, row j of
 * B (S float64, S a multiple of 8) is feature j's coefficient in each model, so that a row's
 * entry gathers all of them in one or two cache lines and scatters its gradient the same way
 * into G (same layout). Row d of B and G is the intercept. For each row i, with f = folds[i]:
 *
 *     eta_m = offset_i + B[d, m] + sum_p B[j_p, m] x_p        (m < S)
 *     model m != f (m < models):  loss_m += w l(y, eta_m),  weight_m += w,  r_m = w (mu_m - y)
 *     model f (its fold's model): held_m += w 2 l(y, eta_m), held_weight_m += w, r_m = 0
 *     G[j_p, m] += r_m x_p,  G[d, m] += r_m
 *     D[j_p, m] += v_m x_p^2, D[d, m] += v_m        (v_m = w mu'^2 / V: the information's diagonal)
 *
 * l is half the unit deviance of a canonical family (0 Gaussian-identity, 1 binomial-logit,
 * 2 Poisson-log), whose gradient in eta is w (mu - y). sums is (S, 4): [loss, weight, held
 * deviance, held weight] per model. folds[i] = -1 holds the row out of no model (a path
 * without cross-validation). Rows go in blocks of BLOCK: the block's gathers (independent, many
 * in flight, B's rows asked for PREFETCH entries ahead), then its residuals, then its scatters.
 *
 *   take_lanes(G, out, models): out[m, j] = G[j, m] for m < models, and G zeroed for the next pass
 *       (one read of G: NumPy's transposed copy and a separate zeroing took 3x as long)
 *
 * fold_gradients trusts its indices (it runs every pass): the data read path has checked every
 * row's columns against n_features (data/sparse.py's check_csr_rows, on shards and on arrays).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "buffers.h"

#define BLOCK 64
#define LANES 8     /* one cache line of float64 coefficients */
#define MAX_S 32    /* up to 31 folds and the full model */
#ifndef PREFETCH
#define PREFETCH 64 /* entries ahead */
#endif

enum { GAUSSIAN, BINOMIAL, POISSON };

/* the information weight mu'(eta)^2 / V(mu) of a canonical family */
static inline double info_weight(int family, double mu)
{
    return family == BINOMIAL ? mu * (1.0 - mu) : family == POISSON ? mu : 1.0;
}

/* half the unit deviance at eta, and mu */
static inline double half_deviance(int family, double y, double eta, double ylogy, double *mu)
{
    switch (family) {
    case BINOMIAL: {
        double e = exp(-fabs(eta));
        *mu = (eta >= 0 ? 1.0 : e) / (1.0 + e);
        return (eta > 0 ? eta : 0.0) + log1p(e) - y * eta + ylogy;
    }
    case POISSON:
        *mu = exp(eta);
        return *mu - y * eta - y + ylogy;
    default:
        *mu = eta;
        return 0.5 * (y - eta) * (y - eta);
    }
}

/* y log y (+ (1 - y) log(1 - y) for the binomial): the deviance's constant, 0 at y in {0, 1} */
static inline double y_log_y(int family, double y)
{
    if (family == BINOMIAL)
        return (y > 0 && y < 1) ? y * log(y) + (1 - y) * log1p(-y) : 0.0;
    if (family == POISSON)
        return y > 0 ? y * log(y) : 0.0;
    return 0.0;
}

#define DEFINE_FOLDS(TD, TI, SUFFIX)                                                                 \
static size_t folds_##SUFFIX(const int64_t *indptr, const TI *indices, const TD *data,              \
                             const double *targets, const int8_t *folds, Py_ssize_t rows,           \
                             const double *B, double *G, double *D, double *sums, Py_ssize_t d,     \
                             Py_ssize_t S, int family, int models, int fit)                          \
{                                                                                                    \
    double eta[BLOCK * MAX_S], v[BLOCK * MAX_S]; /* 64 KiB */                                   \
    size_t invalid = 0;                                                                              \
    for (Py_ssize_t i0 = 0; i0 < rows; i0 += BLOCK) {                                                \
        Py_ssize_t n = rows - i0 < BLOCK ? rows - i0 : BLOCK;                                        \
        const int64_t end = indptr[i0 + n];                                                          \
        for (Py_ssize_t k = 0; k < n; k++) {                                                         \
            double *e = eta + k * S, offset = targets[3 * (i0 + k) + 2];                             \
            for (Py_ssize_t m = 0; m < S; m++) e[m] = offset + (fit ? B[d * S + m] : 0.0);           \
            for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                          \
                if (p + PREFETCH < end) __builtin_prefetch(&B[(size_t)indices[p + PREFETCH] * S], 0, 1); \
                const double *b = B + (size_t)indices[p] * S, x = (double)data[p];                   \
                for (Py_ssize_t l0 = 0; l0 < S; l0 += LANES)                                         \
                    _Pragma("GCC unroll 8") for (int l = 0; l < LANES; l++) e[l0 + l] += b[l0 + l] * x; \
            }                                                                                        \
        }                                                                                            \
        for (Py_ssize_t k = 0; k < n; k++) {                                                         \
            double *e = eta + k * S, *vk = v + k * S;                                                \
            const double *t = targets + 3 * (i0 + k);                                                \
            double y = t[0], w = t[1], c = y_log_y(family, y);                                       \
            int own = folds[i0 + k];                                                                 \
            for (int m = 0; m < models; m++) {                                                       \
                double mu, l = half_deviance(family, y, e[m], c, &mu);                               \
                if (!isfinite(l)) invalid++;                                                         \
                if (m == own) {                                                                      \
                    sums[4 * m + 2] += w * 2.0 * l;                                                  \
                    sums[4 * m + 3] += w;                                                            \
                    e[m] = 0.0;                                                                      \
                    vk[m] = 0.0;                                                                     \
                } else {                                                                             \
                    sums[4 * m] += w * l;                                                            \
                    sums[4 * m + 1] += w;                                                            \
                    e[m] = w * (mu - y);                                                             \
                    vk[m] = w * info_weight(family, mu);                                             \
                }                                                                                    \
            }                                                                                        \
            for (Py_ssize_t m = models; m < S; m++) e[m] = vk[m] = 0.0;                              \
        }                                                                                            \
        for (Py_ssize_t k = 0; k < n; k++) {                                                         \
            const double *r = eta + k * S, *vk = v + k * S;                                          \
            for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                          \
                if (p + PREFETCH < end) {                                                            \
                    __builtin_prefetch(&G[(size_t)indices[p + PREFETCH] * S], 1, 1);                 \
                    __builtin_prefetch(&D[(size_t)indices[p + PREFETCH] * S], 1, 1);                 \
                }                                                                                    \
                size_t j = (size_t)indices[p] * S;                                                   \
                double *g = G + j, *h = D + j, x = (double)data[p], xx = x * x;                      \
                for (Py_ssize_t l0 = 0; l0 < S; l0 += LANES)                                         \
                    _Pragma("GCC unroll 8") for (int l = 0; l < LANES; l++) {                        \
                        g[l0 + l] += r[l0 + l] * x;                                                  \
                        h[l0 + l] += vk[l0 + l] * xx;                                                \
                    }                                                                                \
            }                                                                                        \
            if (fit)                                                                                 \
                for (Py_ssize_t m = 0; m < S; m++) {                                                 \
                    G[d * S + m] += r[m];                                                            \
                    D[d * S + m] += vk[m];                                                           \
                }                                                                                    \
        }                                                                                            \
    }                                                                                                \
    return invalid;                                                                                  \
}

DEFINE_FOLDS(float, int32_t, f32_i32)
DEFINE_FOLDS(float, int64_t, f32_i64)
DEFINE_FOLDS(double, int32_t, f64_i32)
DEFINE_FOLDS(double, int64_t, f64_i64)

static PyObject *fold_gradients(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o[9];
    int family, models, fit;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOiip", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &o[8],
                          &family, &models, &fit))
        return NULL;
    static const char *names[9] = {"indptr", "indices", "data", "targets", "folds", "B", "G", "D", "sums"};
    Py_buffer v[9] = {{0}};
    for (int a = 0; a < 9; a++)
        if (buffer_acquire(o[a], &v[a], a >= 6, names[a]) < 0) goto fail;
    char ki = buffer_kind(&v[1]), kd = buffer_kind(&v[2]);
    Py_ssize_t rows = v[0].len / 8 - 1, nnz = v[1].len / (v[1].itemsize ? v[1].itemsize : 1);
    if (buffer_kind(&v[0]) != 'q' || rows < 0 || (ki != 'i' && ki != 'q') || (kd != 'f' && kd != 'd') ||
        v[2].len / v[2].itemsize != nnz) {
        PyErr_SetString(PyExc_TypeError, "indptr int64, indices int32/int64 and data float32/float64 of one length");
        goto fail;
    }
    const int64_t *indptr = v[0].buf;
    if (rows > 0 && (indptr[0] != 0 || indptr[rows] != nnz)) {
        PyErr_SetString(PyExc_ValueError, "indptr must run from 0 to the number of entries");
        goto fail;
    }
    Py_ssize_t S = v[8].len / 8 / 4;
    if (S <= 0 || S % LANES || S > MAX_S || models < 1 || models > S || family < GAUSSIAN || family > POISSON) {
        PyErr_SetString(PyExc_ValueError, "sums must be (S, 4) float64, S a multiple of 8 up to 64, models <= S, "
                                          "family 0, 1 or 2");
        goto fail;
    }
    Py_ssize_t d = v[5].len / 8 / S - 1;
    if (buffer_kind(&v[3]) != 'd' || v[3].len / 8 != 3 * rows || v[4].len != rows || v[4].itemsize != 1 ||
        buffer_kind(&v[5]) != 'd' || buffer_kind(&v[6]) != 'd' || buffer_kind(&v[7]) != 'd' || d < 0 ||
        v[6].len != v[5].len || v[7].len != v[5].len || buffer_kind(&v[8]) != 'd') {
        PyErr_SetString(PyExc_ValueError, "targets (rows, 3) float64, folds int8 per row, B, G and D (d + 1, S) float64");
        goto fail;
    }
    size_t invalid = 0;
    Py_BEGIN_ALLOW_THREADS
    const void *ix = v[1].buf, *x = v[2].buf;
    const double *t = v[3].buf, *B = v[5].buf;
    const int8_t *f = v[4].buf;
    double *G = v[6].buf, *H = v[7].buf, *s = v[8].buf;
    if (kd == 'f')
        invalid = ki == 'i' ? folds_f32_i32(indptr, ix, x, t, f, rows, B, G, H, s, d, S, family, models, fit)
                            : folds_f32_i64(indptr, ix, x, t, f, rows, B, G, H, s, d, S, family, models, fit);
    else
        invalid = ki == 'i' ? folds_f64_i32(indptr, ix, x, t, f, rows, B, G, H, s, d, S, family, models, fit)
                            : folds_f64_i64(indptr, ix, x, t, f, rows, B, G, H, s, d, S, family, models, fit);
    Py_END_ALLOW_THREADS
    buffer_release(v, 9);
    return PyLong_FromSize_t(invalid);
fail:
    buffer_release(v, 9);
    return NULL;
}

static PyObject *take_lanes(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *go, *oo;
    int models;
    if (!PyArg_ParseTuple(args, "OOi", &go, &oo, &models)) return NULL;
    Py_buffer g = {0}, o = {0};
    if (buffer_acquire(go, &g, 1, "G") < 0) return NULL;
    if (buffer_acquire(oo, &o, 1, "out") < 0) {
        PyBuffer_Release(&g);
        return NULL;
    }
    Py_ssize_t rows = g.ndim == 2 ? g.shape[0] : 0, S = g.ndim == 2 ? g.shape[1] : 0;
    if (buffer_kind(&g) != 'd' || buffer_kind(&o) != 'd' || models < 1 || models > S ||
        o.len / 8 != (Py_ssize_t)models * rows) {
        PyBuffer_Release(&g);
        PyBuffer_Release(&o);
        PyErr_SetString(PyExc_ValueError, "G must be (rows, S) float64 and out (models, rows) float64, models <= S");
        return NULL;
    }
    double *G = g.buf, *out = o.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < rows; j++) {
        double *row = G + j * S;
        for (int m = 0; m < models; m++) out[(size_t)m * rows + j] = row[m];
        memset(row, 0, (size_t)S * sizeof(double));
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&g);
    PyBuffer_Release(&o);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"fold_gradients", fold_gradients, METH_VARARGS,
     "fold_gradients(indptr, indices, data, targets, folds, B, G, D, sums, family, models, fit_intercept) -> rows"
     " whose mean left the family's range. Adds every model's loss, weight, gradient and information diagonal, and each fold's"
     " held-out deviance, over the CSR rows (their columns already checked by the data read path)."},
    {"take_lanes", take_lanes, METH_VARARGS,
     "take_lanes(G, out, models): out[m, j] = G[j, m] for m < models; G zeroed."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cpath",
                                    "Every model of a k-fold path in one pass over CSR rows.",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cpath(void) { return PyModule_Create(&module); }
