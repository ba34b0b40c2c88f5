/*
 * mpireg._cpath: the first-order regularisation path's pass over CSR rows (fit/path_first_order.py).
 *
 *   fold_gradients(indptr, indices, data, targets, folds, B, G, D, sums, family, lanes, fit_intercept)
 *       -> non-zero where some model's mean left the family's range (its loss is then inf or nan)
 *
 * Every model of a k-fold path at once: B holds the models' coefficients interleaved, row j of
 * B (S float64, S a multiple of 8) is feature j's coefficient in each lane, so that a row's
 * entry gathers all of them in one or two cache lines and scatters its gradient the same way
 * into G (same layout). Row d of B and G is the intercept. lanes[l] is the model in lane l
 * (model f < k trains on the rows outside fold f, model k on every row), -1 for none, the
 * models in the first lanes. For each row i, with f = folds[i] and m = lanes[l]:
 *
 *     eta_l = offset_i + B[d, l] + sum_p B[j_p, l] x_p
 *     m != f:  loss_l += w l(y, eta_l),  weight_l += w,  r_l = w (mu_l - y)
 *     m == f (the fold's own model): held_l += w 2 l(y, eta_l), held_weight_l += w, r_l = 0
 *     G[j_p, l] += r_l x_p,  G[d, l] += r_l
 *     D[j_p, l] += v_l x_p^2, D[d, l] += v_l        (v_l = w mu'^2 / V: the information's diagonal;
 *                                                    D None: not summed, half the scatters)
 *
 * l is half the unit deviance of a canonical family (0 Gaussian-identity, 1 binomial-logit,
 * 2 Poisson-log), whose gradient in eta is w (mu - y). sums is (S, 4): [loss, weight, held
 * deviance, held weight] per lane. folds[i] = -1 holds the row out of no model (a path
 * without cross-validation). Rows go in blocks of BLOCK: the block's gathers (independent, many
 * in flight, B's rows asked for PREFETCH entries ahead), then its residuals, then its scatters.
 * 8 lanes go as two v4f64 (the AVX2+FMA clone where the CPU has it: the baseline build ran
 * them two at a time, without FMA, at 7.7 ns a cached entry); the residuals (exp, log1p) of
 * lanes 4..7 are skipped where no model is there (a round of 4 models or fewer: half the
 * residuals' time, which is half a working-set pass's).
 *
 *   take_lanes(G, out, models): out[m, j] = G[j, m] for m < models, and G zeroed for the next pass
 *       (one read of G: NumPy's transposed copy and a separate zeroing took 3x as long)
 *
 *   keep_columns(indptr, indices, data, position, out_indptr, out_indices, out_data) -> entries
 *       the rows' entries in the columns of a working set, renumbered: position[j] is column j's
 *       place in the set or -1; out_indices int32, out_data data's type, both as long as indices
 *       (the working-set passes' rows: their coefficients fit in cache, and no pass reads the
 *       entries of columns that are 0 in every model)
 *
 * fold_gradients trusts its indices (it runs every pass): the data read path has checked every
 * row's columns against n_features (data/sparse.py's check_csr_rows, on shards and on arrays).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffers.h"
#include "vmath.h"  /* FAST (the AVX2+FMA clone), v8f64 and its exp and log1p */

#define BLOCK 64
#define LANES 8     /* one cache line of float64 coefficients: one v8f64 */
#define MAX_S 32    /* up to 31 folds and the full model */
#ifndef PREFETCH
#define PREFETCH 64 /* entries ahead */
#endif

enum { GAUSSIAN, BINOMIAL, POISSON };

INLINE void store_v4f64(double *p, v4f64 v) { memcpy(p, &v, sizeof v); }

/* half the unit deviance of a canonical family at eta (scalar: Poisson's exp of any sign) */
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

/* the same for 4 models' etas at once: the binomial's and the Gaussian's in SIMD lanes (vmath.h's
 * exp and log1p, a few ulp: libm's scalar calls were half of a working-set pass, 134 of 280 ns
 * a row of 6 models at 31 entries), the Poisson's lane by lane. (On v8f64, two AVX2 registers
 * a value, GCC kept log1p's series on the stack: 470 ns a row.) */
INLINE v4f64 half_deviance_v4(int family, double y, v4f64 eta, double ylogy, v4f64 *mu)
{
    const v4f64 zero = {0}, one = zero + 1.0;
    if (family == BINOMIAL) {
        v4f64 e = vexp_neg_v4f64(select_v4f64(eta < zero, eta, -eta));
        *mu = select_v4f64(eta >= zero, one, e) / (one + e);
        return select_v4f64(eta > zero, eta, zero) + vlog1p_unit_v4f64(e) - y * eta + ylogy;
    }
    if (family == GAUSSIAN) {
        *mu = eta;
        return 0.5 * (y - eta) * (y - eta);
    }
    double e[4], m[4], l[4];
    memcpy(e, &eta, sizeof e);
    for (int i = 0; i < 4; i++) l[i] = half_deviance(POISSON, y, e[i], ylogy, &m[i]);
    memcpy(mu, m, sizeof m);
    return load_v4f64(l);
}

/* the information weight mu'(eta)^2 / V(mu) of a canonical family */
INLINE v4f64 info_weight_v4(int family, v4f64 mu)
{
    return family == BINOMIAL ? mu * (1.0 - mu) : family == POISSON ? mu : (v4f64){0} + 1.0;
}

/* One row's residuals r = w (mu - y) and information weights for 4 lanes (models `id`, -1 none), into
 * r and v, from their half deviances l and means mu; the loss and held-out sums added to the
 * models' (s: loss, weight, held, held weight) */
INLINE void account_v4(double y, double w, double own, v4f64 id, v4f64 l, v4f64 mu, int family,
                       double *r, double *v, v4f64 s[4], v4f64_mask *bad)
{
    const v4f64 zero = {0};
    v4f64_mask used = id >= zero, mine = used & (id == own), trains = used & ~mine;
    *bad |= used & ~((l - l) == zero); /* l inf or nan */
    s[0] += select_v4f64(trains, w * l, zero);
    s[1] += select_v4f64(trains, zero + w, zero);
    s[2] += select_v4f64(mine, w * 2.0 * l, zero);
    s[3] += select_v4f64(mine, zero + w, zero);
    store_v4f64(r, select_v4f64(trains, w * (mu - y), zero));
    store_v4f64(v, select_v4f64(trains, w * info_weight_v4(family, mu), zero));
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

/* The pass for 8 models, lanes c * 8.. of B, G and D (row stride S), the sums of models
 * c * 8.. : where S > 8 (8 folds and more) the rows are read once for each 8. The models go as
 * two v4f64 (AVX2's width), each row's etas and the sums in registers; the sums are added in
 * the rows' order, as a lane-by-lane loop adds them. */
#define DEFINE_FOLDS(TD, TI, SUFFIX)                                                                 \
static FAST size_t folds_##SUFFIX(const int64_t *indptr, const TI *indices, const TD *data,         \
                                  const double *targets, const int8_t *folds, Py_ssize_t rows,      \
                                  const double *B, double *G, double *D, double *sums, Py_ssize_t d, \
                                  Py_ssize_t S, int c, int family, const double *ids, int fit)       \
{                                                                                                    \
    double eta[BLOCK * LANES], v[BLOCK * LANES]; /* 8 KiB: then the residuals */                  \
    const v4f64 zero = {0}, lo = load_v4f64(ids + c * LANES), hi = load_v4f64(ids + c * LANES + 4);  \
    const int upper = ids[c * LANES + 4] >= 0; /* lanes 4..7 hold a model (they are filled in order) */ \
    double t[4][LANES];                                                                              \
    for (int l = 0; l < LANES; l++)                                                                  \
        for (int q = 0; q < 4; q++) t[q][l] = sums[4 * (c * LANES + l) + q];                         \
    v4f64 s_lo[4], s_hi[4];                                                                          \
    for (int q = 0; q < 4; q++) s_lo[q] = load_v4f64(t[q]), s_hi[q] = load_v4f64(t[q] + 4);          \
    v4f64_mask bad = {0};                                                                            \
    B += c * LANES, G += c * LANES;                                                                  \
    if (D) D += c * LANES;                                                  \
    for (Py_ssize_t i0 = 0; i0 < rows; i0 += BLOCK) {                                                \
        Py_ssize_t n = rows - i0 < BLOCK ? rows - i0 : BLOCK;                                        \
        const int64_t end = indptr[i0 + n];                                                          \
        for (Py_ssize_t k = 0; k < n; k++) {                                                         \
            double offset = targets[3 * (i0 + k) + 2];                                               \
            v4f64 e0 = offset + (fit ? load_v4f64(B + d * S) : zero);                                \
            v4f64 e1 = offset + (fit ? load_v4f64(B + d * S + 4) : zero);                            \
            for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                          \
                if (p + PREFETCH < end) __builtin_prefetch(&B[(size_t)indices[p + PREFETCH] * S], 0, 1); \
                const double *b = B + (size_t)indices[p] * S, x = (double)data[p];                   \
                e0 += load_v4f64(b) * x;                                                             \
                e1 += load_v4f64(b + 4) * x;                                                         \
            }                                                                                        \
            store_v4f64(eta + k * LANES, e0);                                                        \
            store_v4f64(eta + k * LANES + 4, e1);                                                    \
        }                                                                                            \
        Py_ssize_t k = 0;                                                                            \
        for (; k + 1 < n; k += 2) { /* two rows: independent exp and log1p chains */                \
            const double *t = targets + 3 * (i0 + k);                                                \
            double y0 = t[0], w0 = t[1], y1 = t[3], w1 = t[4];                                       \
            double c0 = y_log_y(family, y0), c1 = y_log_y(family, y1);                               \
            double own0 = (double)folds[i0 + k], own1 = (double)folds[i0 + k + 1];                   \
            double *e = eta + k * LANES, *vv = v + k * LANES;                                        \
            v4f64 m0, m2, l0 = half_deviance_v4(family, y0, load_v4f64(e), c0, &m0);                 \
            v4f64 l2 = half_deviance_v4(family, y1, load_v4f64(e + 8), c1, &m2);                     \
            if (upper) {                                                                             \
                v4f64 m1, m3, l1 = half_deviance_v4(family, y0, load_v4f64(e + 4), c0, &m1);         \
                v4f64 l3 = half_deviance_v4(family, y1, load_v4f64(e + 12), c1, &m3);                \
                account_v4(y0, w0, own0, hi, l1, m1, family, e + 4, vv + 4, s_hi, &bad);             \
                account_v4(y1, w1, own1, hi, l3, m3, family, e + 12, vv + 12, s_hi, &bad);           \
            } else {                                                                                 \
                store_v4f64(e + 4, zero), store_v4f64(vv + 4, zero);                                 \
                store_v4f64(e + 12, zero), store_v4f64(vv + 12, zero);                               \
            }                                                                                        \
            account_v4(y0, w0, own0, lo, l0, m0, family, e, vv, s_lo, &bad);                         \
            account_v4(y1, w1, own1, lo, l2, m2, family, e + 8, vv + 8, s_lo, &bad);                 \
        }                                                                                            \
        for (; k < n; k++) {                                                                         \
            const double *t = targets + 3 * (i0 + k);                                                \
            double y = t[0], w = t[1], yly = y_log_y(family, y), own = (double)folds[i0 + k];        \
            double *e = eta + k * LANES, *vv = v + k * LANES;                                        \
            v4f64 m0, l0 = half_deviance_v4(family, y, load_v4f64(e), yly, &m0);                     \
            account_v4(y, w, own, lo, l0, m0, family, e, vv, s_lo, &bad);                            \
            if (upper) {                                                                             \
                v4f64 m1, l1 = half_deviance_v4(family, y, load_v4f64(e + 4), yly, &m1);             \
                account_v4(y, w, own, hi, l1, m1, family, e + 4, vv + 4, s_hi, &bad);                \
            } else                                                                                   \
                store_v4f64(e + 4, zero), store_v4f64(vv + 4, zero);                                 \
        }                                                                                            \
        for (Py_ssize_t k = 0; k < n; k++) {                                                         \
            v4f64 r0 = load_v4f64(eta + k * LANES), r1 = load_v4f64(eta + k * LANES + 4);            \
            v4f64 v0 = load_v4f64(v + k * LANES), v1 = load_v4f64(v + k * LANES + 4);                \
            if (D) {                                                                                 \
                for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                      \
                    if (p + PREFETCH < end) {                                                        \
                        __builtin_prefetch(&G[(size_t)indices[p + PREFETCH] * S], 1, 1);             \
                        __builtin_prefetch(&D[(size_t)indices[p + PREFETCH] * S], 1, 1);             \
                    }                                                                                \
                    double *g = G + (size_t)indices[p] * S, *h = D + (size_t)indices[p] * S;         \
                    double x = (double)data[p], xx = x * x;                                          \
                    store_v4f64(g, load_v4f64(g) + r0 * x);                                          \
                    store_v4f64(g + 4, load_v4f64(g + 4) + r1 * x);                                  \
                    store_v4f64(h, load_v4f64(h) + v0 * xx);                                         \
                    store_v4f64(h + 4, load_v4f64(h + 4) + v1 * xx);                                 \
                }                                                                                    \
                if (fit) {                                                                           \
                    double *h = D + d * S;                                                           \
                    store_v4f64(h, load_v4f64(h) + v0), store_v4f64(h + 4, load_v4f64(h + 4) + v1);  \
                }                                                                                    \
            } else {                                                                                 \
                for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                      \
                    if (p + PREFETCH < end) __builtin_prefetch(&G[(size_t)indices[p + PREFETCH] * S], 1, 1); \
                    double *g = G + (size_t)indices[p] * S, x = (double)data[p];                     \
                    store_v4f64(g, load_v4f64(g) + r0 * x);                                          \
                    store_v4f64(g + 4, load_v4f64(g + 4) + r1 * x);                                  \
                }                                                                                    \
            }                                                                                        \
            if (fit) {                                                                               \
                double *g = G + d * S;                                                               \
                store_v4f64(g, load_v4f64(g) + r0), store_v4f64(g + 4, load_v4f64(g + 4) + r1);      \
            }                                                                                        \
        }                                                                                            \
    }                                                                                                \
    for (int q = 0; q < 4; q++) store_v4f64(t[q], s_lo[q]), store_v4f64(t[q] + 4, s_hi[q]);          \
    for (int l = 0; l < LANES; l++)                                                                  \
        for (int q = 0; q < 4; q++) sums[4 * (c * LANES + l) + q] = t[q][l];                         \
    int64_t counts[4];                                                                               \
    memcpy(counts, &bad, sizeof counts);                                                             \
    return (size_t)(counts[0] != 0) + (counts[1] != 0) + (counts[2] != 0) + (counts[3] != 0);        \
}

DEFINE_FOLDS(float, int32_t, f32_i32)
DEFINE_FOLDS(float, int64_t, f32_i64)
DEFINE_FOLDS(double, int32_t, f64_i32)
DEFINE_FOLDS(double, int64_t, f64_i64)

static PyObject *fold_gradients(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o[10];
    int family, fit;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOiOp", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &o[8],
                          &family, &o[9], &fit))
        return NULL;
    static const char *names[10] = {"indptr", "indices", "data", "targets", "folds", "B", "G", "D", "sums", "lanes"};
    Py_buffer v[10] = {{0}};
    int information = o[7] != Py_None; /* D None: the gradients only */
    if (buffer_acquire(o[9], &v[9], 0, names[9]) < 0) goto fail;
    for (int a = 0; a < 9; a++)
        if ((a != 7 || information) && buffer_acquire(o[a], &v[a], a >= 6, names[a]) < 0) goto fail;
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
    if (S <= 0 || S % LANES || S > MAX_S || family < GAUSSIAN || family > POISSON || buffer_kind(&v[9]) != 'd' ||
        v[9].len / 8 != S) {
        PyErr_SetString(PyExc_ValueError, "sums must be (S, 4) float64, S a multiple of 8 up to 32, family 0, 1 or 2, "
                                          "lanes S float64 (each lane's model, -1 for none)");
        goto fail;
    }
    const double *ids = v[9].buf;
    for (Py_ssize_t l = 0; l < S; l++)
        if (!(ids[l] >= -1 && ids[l] < 128 && ids[l] == (int)ids[l]) || (l && ids[l] >= 0 && ids[l - 1] < 0)) {
            PyErr_SetString(PyExc_ValueError, "lanes: models (0 to 127) in the first lanes, then -1");
            goto fail;
        }
    Py_ssize_t d = v[5].len / 8 / S - 1;
    if (buffer_kind(&v[3]) != 'd' || v[3].len / 8 != 3 * rows || v[4].len != rows || v[4].itemsize != 1 ||
        buffer_kind(&v[5]) != 'd' || buffer_kind(&v[6]) != 'd' || d < 0 || v[6].len != v[5].len ||
        (information && (buffer_kind(&v[7]) != 'd' || v[7].len != v[5].len)) || buffer_kind(&v[8]) != 'd') {
        PyErr_SetString(PyExc_ValueError, "targets (rows, 3) float64, folds int8 per row, B, G and D (d + 1, S) float64");
        goto fail;
    }
    size_t invalid = 0;
    Py_BEGIN_ALLOW_THREADS
    const void *ix = v[1].buf, *x = v[2].buf;
    const double *t = v[3].buf, *B = v[5].buf;
    const int8_t *f = v[4].buf;
    double *G = v[6].buf, *H = information ? v[7].buf : NULL, *s = v[8].buf;
    for (int c = 0; c < S / LANES && ids[c * LANES] >= 0; c++) {
        if (kd == 'f')
            invalid += ki == 'i' ? folds_f32_i32(indptr, ix, x, t, f, rows, B, G, H, s, d, S, c, family, ids, fit)
                                 : folds_f32_i64(indptr, ix, x, t, f, rows, B, G, H, s, d, S, c, family, ids, fit);
        else
            invalid += ki == 'i' ? folds_f64_i32(indptr, ix, x, t, f, rows, B, G, H, s, d, S, c, family, ids, fit)
                                 : folds_f64_i64(indptr, ix, x, t, f, rows, B, G, H, s, d, S, c, family, ids, fit);
    }
    Py_END_ALLOW_THREADS
    buffer_release(v, 10);
    return PyLong_FromSize_t(invalid);
fail:
    buffer_release(v, 10);
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

#define DEFINE_KEEP(TD, TI, SUFFIX)                                                                  \
static int64_t keep_##SUFFIX(const int64_t *indptr, const TI *indices, const TD *data, Py_ssize_t rows, \
                             const int32_t *position, const uint64_t *kept, int64_t *out_indptr,     \
                             int32_t *out_indices, TD *out_data)                                     \
{                                                                                                    \
    int64_t q = 0;                                                                                   \
    out_indptr[0] = 0;                                                                               \
    for (Py_ssize_t i = 0; i < rows; i++) {                                                          \
        for (int64_t p = indptr[i]; p < indptr[i + 1]; p++) {                                        \
            size_t j = (size_t)indices[p]; /* written always, kept by the count: no branch */      \
            out_indices[q] = position[j];                                                            \
            out_data[q] = data[p];                                                                   \
            q += kept[j >> 6] >> (j & 63) & 1;                                                       \
        }                                                                                            \
        out_indptr[i + 1] = q;                                                                       \
    }                                                                                                \
    return q;                                                                                        \
}

DEFINE_KEEP(float, int32_t, f32_i32)
DEFINE_KEEP(float, int64_t, f32_i64)
DEFINE_KEEP(double, int32_t, f64_i32)
DEFINE_KEEP(double, int64_t, f64_i64)

static PyObject *keep_columns(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o[7];
    if (!PyArg_ParseTuple(args, "OOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6])) return NULL;
    static const char *names[7] = {"indptr", "indices", "data", "position", "out_indptr", "out_indices", "out_data"};
    Py_buffer v[7] = {{0}};
    for (int a = 0; a < 7; a++)
        if (buffer_acquire(o[a], &v[a], a >= 4, names[a]) < 0) goto fail;
    char ki = buffer_kind(&v[1]), kd = buffer_kind(&v[2]);
    Py_ssize_t rows = v[0].len / 8 - 1, nnz = v[1].len / (v[1].itemsize ? v[1].itemsize : 1);
    if (buffer_kind(&v[0]) != 'q' || rows < 0 || (ki != 'i' && ki != 'q') || (kd != 'f' && kd != 'd') ||
        v[2].len / v[2].itemsize != nnz || buffer_kind(&v[3]) != 'i' || buffer_kind(&v[4]) != 'q' ||
        v[4].len / 8 != rows + 1 || buffer_kind(&v[5]) != 'i' || v[5].len / 4 < nnz || buffer_kind(&v[6]) != kd ||
        v[6].len / v[6].itemsize < nnz) {
        PyErr_SetString(PyExc_ValueError, "indptr int64, indices int32/int64, data float32/float64, position int32, "
                                          "out_indptr int64 (rows + 1), out_indices int32 and out_data of data's "
                                          "type, each at least as long as indices");
        goto fail;
    }
    const int64_t *indptr = v[0].buf;
    if (rows > 0 && (indptr[0] != 0 || indptr[rows] != nnz)) {
        PyErr_SetString(PyExc_ValueError, "indptr must run from 0 to the number of entries");
        goto fail;
    }
    int64_t kept;
    /* a bit a column, whether it is kept: 128 KiB for 2^20 columns, in L2, where the positions
     * (4 MiB) were read and branched on for every entry (with the branchless count, 6.0 -> 4.0 ns
     * an entry keeping 1,000 of 2^20 hashed columns, 3.6 -> 2.9 keeping 100,000) */
    Py_ssize_t columns = v[3].len / 4;
    uint64_t *bits = calloc((size_t)columns / 64 + 1, sizeof(uint64_t));
    if (!bits) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    const void *ix = v[1].buf, *x = v[2].buf;
    const int32_t *pos = v[3].buf;
    for (Py_ssize_t j = 0; j < columns; j++)
        if (pos[j] >= 0) bits[j >> 6] |= (uint64_t)1 << (j & 63);
    int64_t *oi = v[4].buf;
    int32_t *oj = v[5].buf;
    if (kd == 'f')
        kept = ki == 'i' ? keep_f32_i32(indptr, ix, x, rows, pos, bits, oi, oj, v[6].buf)
                         : keep_f32_i64(indptr, ix, x, rows, pos, bits, oi, oj, v[6].buf);
    else
        kept = ki == 'i' ? keep_f64_i32(indptr, ix, x, rows, pos, bits, oi, oj, v[6].buf)
                         : keep_f64_i64(indptr, ix, x, rows, pos, bits, oi, oj, v[6].buf);
    Py_END_ALLOW_THREADS
    free(bits);
    buffer_release(v, 7);
    return PyLong_FromLongLong(kept);
fail:
    buffer_release(v, 7);
    return NULL;
}

static PyMethodDef methods[] = {
    {"fold_gradients", fold_gradients, METH_VARARGS,
     "fold_gradients(indptr, indices, data, targets, folds, B, G, D, sums, family, lanes, fit_intercept) -> non-zero"
     " where some model's mean left the family's range. Adds every model's loss, weight, gradient and information diagonal, and each fold's"
     " held-out deviance, over the CSR rows (their columns already checked by the data read path)."},
    {"take_lanes", take_lanes, METH_VARARGS,
     "take_lanes(G, out, models): out[m, j] = G[j, m] for m < models; G zeroed."},
    {"keep_columns", keep_columns, METH_VARARGS,
     "keep_columns(indptr, indices, data, position, out_indptr, out_indices, out_data) -> entries kept: the"
     " entries of the columns with position >= 0, renumbered to their positions (position: the column's check"
     " is the caller's: every index < len(position))."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cpath",
                                    "Every model of a k-fold path in one pass over CSR rows.",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cpath(void) { return PyModule_Create(&module); }
