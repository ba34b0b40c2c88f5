/*
 * mpireg._csparse: the sparse (CSR) row loops.
 *
 *   loss_grad(indptr, indices, data, y, params, grad, logistic, fit_intercept) -> loss sum
 *   softmax_loss_grad(indptr, indices, data, y, params, grad, n_classes, fit_intercept)
 *       linear or logistic loss and gradient sums, rows in blocks of GRAD_BLOCK: the block's
 *       dot products (independent gathers of w, many in flight), its residuals, then its
 *       scatters into the gradient while its entries are still in cache; X is read from memory
 *       once (SciPy reads it twice: X @ w, then X^T r). Sums in double, grad in params' dtype
 *
 * and one online pass of per-coordinate adaptive (AdaGrad) updates over CSR rows, the way Vowpal
 * Wabbit's learners go through a file:
 *
 *   adagrad_pass(indptr, indices, data, y, order, w, g2, lr, l2, logistic, fit_intercept)
 *       -> sum over the rows of the loss each had before its update (progressive validation)
 *
 * For each row i in `order`: z = w . x_i (+ w[d], the intercept); r = dloss/dz (z - y for
 * squared loss, sigmoid(z) - y for logistic); then for each of the row's entries j
 *     g = r x_ij + l2 w_j,   g2_j += g^2,   w_j -= lr g / sqrt(g2_j)
 * and the same for the intercept with x = 1 and no penalty. A row costs its own non-zeros:
 * the penalty is applied to the features a row touches (VW's convention), not to all d.
 * w and g2 are float64 (d + 1); data float32 or float64; indices int32 or int64.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "buffers.h"

#define DEFINE_PASS(TD, TI, SUFFIX)                                                                 \
static double pass_##SUFFIX(const int64_t *indptr, const TI *indices, const TD *data,             \
                            const double *y, const int64_t *order, Py_ssize_t n, double *w,        \
                            double *g2, Py_ssize_t d, double lr, double l2, int logistic, int fit) \
{                                                                                                   \
    double loss = 0.0;                                                                              \
    for (Py_ssize_t k = 0; k < n; k++) {                                                            \
        int64_t i = order[k], lo = indptr[i], hi = indptr[i + 1];                                   \
        double z = fit ? w[d] : 0.0;                                                                \
        for (int64_t p = lo; p < hi; p++) z += w[indices[p]] * (double)data[p];                    \
        double r;                                                                                   \
        if (logistic) {                                                                             \
            double a = fabs(z), e = exp(-a);                                                        \
            loss += (z > 0 ? z : 0.0) + log1p(e) - y[i] * z;                                        \
            r = (z >= 0 ? 1.0 : e) / (1.0 + e) - y[i];                                              \
        } else {                                                                                    \
            r = z - y[i];                                                                           \
            loss += 0.5 * r * r;                                                                    \
        }                                                                                           \
        for (int64_t p = lo; p < hi; p++) {                                                         \
            Py_ssize_t j = (Py_ssize_t)indices[p];                                                  \
            double g = r * (double)data[p] + l2 * w[j];                                             \
            g2[j] += g * g;                                                                         \
            if (g2[j] > 0) w[j] -= lr * g / sqrt(g2[j]);                                            \
        }                                                                                           \
        if (fit) {                                                                                  \
            g2[d] += r * r;                                                                         \
            if (g2[d] > 0) w[d] -= lr * r / sqrt(g2[d]);                                            \
        }                                                                                           \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_PASS(float, int32_t, f32_i32)
DEFINE_PASS(float, int64_t, f32_i64)
DEFINE_PASS(double, int32_t, f64_i32)
DEFINE_PASS(double, int64_t, f64_i64)

/* Loss and gradient sums of linear or logistic over CSR rows, in one pass: z_i from the row's
 * non-zeros, its residual, then the row's entries scattered into the gradient (float64). */
#define GRAD_BLOCK 256
#ifndef PREFETCH
#define PREFETCH 512  /* entries ahead: 32 -> 1.3x SciPy, 512 -> 1.8x (benchmarks/bench_sparse.py) */
#endif

#define DEFINE_GRAD(TD, TI, TW, SUFFIX)                                                             \
static double grad_##SUFFIX(const int64_t *indptr, const TI *indices, const TD *data,              \
                            const double *y, Py_ssize_t rows, const TW *w, Py_ssize_t d,           \
                            int logistic, int fit, double *g)                                       \
{                                                                                                   \
    double loss = 0.0, b = fit ? (double)w[d] : 0.0, r[GRAD_BLOCK];                                 \
    for (Py_ssize_t i0 = 0; i0 < rows; i0 += GRAD_BLOCK) {                                          \
        Py_ssize_t n = rows - i0 < GRAD_BLOCK ? rows - i0 : GRAD_BLOCK;                             \
        /* the block's dot products: independent gathers, many in flight; w's lines are asked  \
           for PREFETCH entries ahead (a hashed column is a cache miss the loop cannot predict) */ \
        const int64_t end = indptr[i0 + n];                                                         \
        for (Py_ssize_t k = 0; k < n; k++) {                                                        \
            double z = b;                                                                           \
            for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                         \
                if (p + PREFETCH < end) __builtin_prefetch(&w[indices[p + PREFETCH]], 0, 1);          \
                z += (double)w[indices[p]] * (double)data[p];                                       \
            }                                                                                       \
            r[k] = z;                                                                               \
        }                                                                                           \
        for (Py_ssize_t k = 0; k < n; k++) {                                                        \
            double z = r[k], t = y[i0 + k];                                                         \
            if (logistic) {                                                                         \
                double e = exp(-fabs(z));                                                           \
                loss += (z > 0 ? z : 0.0) + log1p(e) - t * z;                                       \
                r[k] = (z >= 0 ? 1.0 : e) / (1.0 + e) - t;                                          \
            } else {                                                                                \
                r[k] = z - t;                                                                       \
                loss += 0.5 * r[k] * r[k];                                                          \
            }                                                                                       \
        }                                                                                           \
        /* then the scatters, over the block's entries while they are still in cache */            \
        for (Py_ssize_t k = 0; k < n; k++) {                                                        \
            double rk = r[k];                                                                       \
            for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                         \
                if (p + PREFETCH < end) __builtin_prefetch(&g[indices[p + PREFETCH]], 1, 1);          \
                g[indices[p]] += rk * (double)data[p];                                              \
            }                                                                                       \
            if (fit) g[d] += rk;                                                                    \
        }                                                                                           \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_GRAD(float, int32_t, float, f32_i32_w32)
DEFINE_GRAD(float, int32_t, double, f32_i32_w64)
DEFINE_GRAD(float, int64_t, float, f32_i64_w32)
DEFINE_GRAD(float, int64_t, double, f32_i64_w64)
DEFINE_GRAD(double, int32_t, float, f64_i32_w32)
DEFINE_GRAD(double, int32_t, double, f64_i32_w64)
DEFINE_GRAD(double, int64_t, float, f64_i64_w32)
DEFINE_GRAD(double, int64_t, double, f64_i64_w64)

/* Softmax over K classes: the same blocks; a row's K logits from its entries' coefficient rows
 * (W is d x K, row-major: a column's K values are one cache line or two), log-sum-exp from the
 * row's maximum, then the probabilities minus the one-hot label scattered back row by row. */
#define DEFINE_SOFTMAX(TD, TI, TW, SUFFIX)                                                          \
static double softmax_##SUFFIX(const int64_t *indptr, const TI *indices, const TD *data,           \
                               const int64_t *y, Py_ssize_t rows, const TW *w, Py_ssize_t d,       \
                               Py_ssize_t K, int fit, double *g, double *z)                        \
{                                                                                                   \
    double loss = 0.0;                                                                              \
    const TW *b = w + d * K;                                                                        \
    for (Py_ssize_t i0 = 0; i0 < rows; i0 += GRAD_BLOCK) {                                          \
        Py_ssize_t n = rows - i0 < GRAD_BLOCK ? rows - i0 : GRAD_BLOCK;                             \
        const int64_t end = indptr[i0 + n];                                                         \
        for (Py_ssize_t k = 0; k < n; k++) {                                                        \
            double *zk = z + k * K;                                                                 \
            for (Py_ssize_t c = 0; c < K; c++) zk[c] = fit ? (double)b[c] : 0.0;                    \
            for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                         \
                if (p + PREFETCH < end) { /* a column's K values may straddle two lines */           \
                    __builtin_prefetch(&w[indices[p + PREFETCH] * K], 0, 1);                         \
                    __builtin_prefetch(&w[indices[p + PREFETCH] * K + K - 1], 0, 1);                 \
                }                                                                                   \
                const TW *wr = w + (Py_ssize_t)indices[p] * K;                                      \
                double x = (double)data[p];                                                         \
                for (Py_ssize_t c = 0; c < K; c++) zk[c] += x * (double)wr[c];                      \
            }                                                                                       \
        }                                                                                           \
        for (Py_ssize_t k = 0; k < n; k++) {                                                        \
            double *zk = z + k * K, top = zk[0], sum = 0.0;                                         \
            for (Py_ssize_t c = 1; c < K; c++) top = zk[c] > top ? zk[c] : top;                     \
            for (Py_ssize_t c = 0; c < K; c++) sum += exp(zk[c] - top);                             \
            int64_t label = y[i0 + k];                                                              \
            loss += log(sum) + top - zk[label];                                                     \
            for (Py_ssize_t c = 0; c < K; c++) zk[c] = exp(zk[c] - top) / sum;                      \
            zk[label] -= 1.0;                                                                       \
        }                                                                                           \
        for (Py_ssize_t k = 0; k < n; k++) {                                                        \
            const double *zk = z + k * K;                                                           \
            for (int64_t p = indptr[i0 + k]; p < indptr[i0 + k + 1]; p++) {                         \
                if (p + PREFETCH < end) {                                                           \
                    __builtin_prefetch(&g[indices[p + PREFETCH] * K], 1, 1);                         \
                    __builtin_prefetch(&g[indices[p + PREFETCH] * K + K - 1], 1, 1);                 \
                }                                                                                   \
                double *gr = g + (Py_ssize_t)indices[p] * K, x = (double)data[p];                   \
                for (Py_ssize_t c = 0; c < K; c++) gr[c] += x * zk[c];                              \
            }                                                                                       \
            if (fit)                                                                                \
                for (Py_ssize_t c = 0; c < K; c++) g[d * K + c] += zk[c];                           \
        }                                                                                           \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_SOFTMAX(float, int32_t, float, f32_i32_w32)
DEFINE_SOFTMAX(float, int32_t, double, f32_i32_w64)
DEFINE_SOFTMAX(float, int64_t, float, f32_i64_w32)
DEFINE_SOFTMAX(float, int64_t, double, f32_i64_w64)
DEFINE_SOFTMAX(double, int32_t, float, f64_i32_w32)
DEFINE_SOFTMAX(double, int32_t, double, f64_i32_w64)
DEFINE_SOFTMAX(double, int64_t, float, f64_i64_w32)
DEFINE_SOFTMAX(double, int64_t, double, f64_i64_w64)

/* Every column index in 0..d-1, else IndexError naming the first that is not. */
static int check_indices(const void *indices, char ki, Py_ssize_t nnz, Py_ssize_t d) {
    for (Py_ssize_t p = 0; p < nnz; p++) {
        long long j = ki == 'i' ? ((const int32_t *)indices)[p] : ((const int64_t *)indices)[p];
        if (j < 0 || j >= d) {
            PyErr_Format(PyExc_IndexError, "indices[%zd] = %lld is outside the %zd features", p, j, d);
            return -1;
        }
    }
    return 0;
}

/* The arrays' buffers, C-contiguous, those from index `first_writable` on writable; the count
 * acquired (a TypeError naming the first that is not as asked when it is under n). */
static int acquire(PyObject **objs, Py_buffer *b, const char **names, int n, int first_writable) {
    int got = 0;
    for (; got < n; got++) {
        int writable = got >= first_writable;
        if (buffer_acquire(objs[got], &b[got], writable, names[got]) < 0)
            break;
    }
    return got;
}

static PyObject *py_adagrad_pass(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *objs[8];
    double lr, l2;
    int logistic, fit;
    if (!PyArg_ParseTuple(args, "OOOOOOOddpp", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4],
                          &objs[5], &objs[6], &lr, &l2, &logistic, &fit))
        return NULL;
    const char *names[8] = {"indptr", "indices", "data", "y", "order", "w", "g2"};
    Py_buffer b[7];
    int got = acquire(objs, b, names, 7, 5);
    PyObject *result = NULL;
    if (got < 7) goto done;
    char ki = buffer_kind(&b[1]), kd = buffer_kind(&b[2]);
    if (buffer_kind(&b[0]) != 'q' || buffer_kind(&b[4]) != 'q' || buffer_kind(&b[3]) != 'd' || buffer_kind(&b[5]) != 'd' ||
        buffer_kind(&b[6]) != 'd' || (ki != 'i' && ki != 'q') || (kd != 'f' && kd != 'd')) {
        PyErr_SetString(PyExc_TypeError, "indptr and order int64; indices int32/int64; data float32/float64; "
                                         "y, w and g2 float64");
        goto done;
    }
    Py_ssize_t rows = b[0].len / 8 - 1, nnz = b[1].len / b[1].itemsize, n = b[4].len / 8;
    Py_ssize_t d = b[5].len / 8 - 1;
    const int64_t *indptr = b[0].buf, *order = b[4].buf;
    if (rows < 0 || b[2].len / b[2].itemsize != nnz || b[3].len / 8 != rows || b[6].len != b[5].len ||
        indptr[0] != 0 || indptr[rows] != nnz) {
        PyErr_SetString(PyExc_ValueError, "inconsistent CSR arrays, y, w and g2");
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++)
        if (order[k] < 0 || order[k] >= rows) {
            PyErr_Format(PyExc_IndexError, "order[%zd] = %lld is not a row", k, (long long)order[k]);
            goto done;
        }
    if (check_indices(b[1].buf, ki, nnz, d) < 0) goto done;
    double loss;
    Py_BEGIN_ALLOW_THREADS
    if (kd == 'f')
        loss = ki == 'i' ? pass_f32_i32(indptr, b[1].buf, b[2].buf, b[3].buf, order, n, b[5].buf, b[6].buf, d, lr, l2, logistic, fit)
                         : pass_f32_i64(indptr, b[1].buf, b[2].buf, b[3].buf, order, n, b[5].buf, b[6].buf, d, lr, l2, logistic, fit);
    else
        loss = ki == 'i' ? pass_f64_i32(indptr, b[1].buf, b[2].buf, b[3].buf, order, n, b[5].buf, b[6].buf, d, lr, l2, logistic, fit)
                         : pass_f64_i64(indptr, b[1].buf, b[2].buf, b[3].buf, order, n, b[5].buf, b[6].buf, d, lr, l2, logistic, fit);
    Py_END_ALLOW_THREADS
    result = PyFloat_FromDouble(loss);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return result;
}

typedef double grad_fn(const int64_t *, const void *, const void *, const double *, Py_ssize_t,
                       const void *, Py_ssize_t, int, int, double *);

static PyObject *py_loss_grad(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *objs[6];
    int logistic, fit;
    if (!PyArg_ParseTuple(args, "OOOOOOpp", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                          &logistic, &fit))
        return NULL;
    const char *names[6] = {"indptr", "indices", "data", "y", "params", "grad"};
    Py_buffer b[6];
    int got = acquire(objs, b, names, 6, 5);
    PyObject *result = NULL;
    double *total = NULL;
    if (got < 6) goto done;
    char ki = buffer_kind(&b[1]), kd = buffer_kind(&b[2]), kw = buffer_kind(&b[4]);
    if (buffer_kind(&b[0]) != 'q' || buffer_kind(&b[3]) != 'd' || (ki != 'i' && ki != 'q') || (kd != 'f' && kd != 'd') ||
        (kw != 'f' && kw != 'd') || buffer_kind(&b[5]) != kw) {
        PyErr_SetString(PyExc_TypeError, "indptr int64; indices int32/int64; data float32/float64; y float64; "
                                         "params and grad float32 or float64 alike");
        goto done;
    }
    Py_ssize_t rows = b[0].len / 8 - 1, nnz = b[1].len / b[1].itemsize;
    Py_ssize_t P = b[4].len / b[4].itemsize, d = P - (fit ? 1 : 0);
    const int64_t *indptr = b[0].buf;
    if (rows < 0 || b[2].len / b[2].itemsize != nnz || b[3].len / 8 != rows || b[5].len != b[4].len ||
        indptr[0] != 0 || indptr[rows] != nnz) {
        PyErr_SetString(PyExc_ValueError, "inconsistent CSR arrays, y, params and grad");
        goto done;
    }
    if (check_indices(b[1].buf, ki, nnz, d) < 0) goto done;
    double *acc = kw == 'd' ? memset(b[5].buf, 0, (size_t)P * sizeof(double)) : (total = PyMem_Calloc(P ? P : 1, sizeof(double)));
    if (!acc) {
        PyErr_NoMemory();
        goto done;
    }
    grad_fn *fn = kd == 'f' ? (ki == 'i' ? (kw == 'f' ? (grad_fn *)grad_f32_i32_w32 : (grad_fn *)grad_f32_i32_w64)
                                         : (kw == 'f' ? (grad_fn *)grad_f32_i64_w32 : (grad_fn *)grad_f32_i64_w64))
                            : (ki == 'i' ? (kw == 'f' ? (grad_fn *)grad_f64_i32_w32 : (grad_fn *)grad_f64_i32_w64)
                                         : (kw == 'f' ? (grad_fn *)grad_f64_i64_w32 : (grad_fn *)grad_f64_i64_w64));
    double loss;
    Py_BEGIN_ALLOW_THREADS
    loss = fn(indptr, b[1].buf, b[2].buf, b[3].buf, rows, b[4].buf, d, logistic, fit, acc);
    if (kw == 'f')
        for (Py_ssize_t j = 0; j < P; j++) ((float *)b[5].buf)[j] = (float)total[j];
    Py_END_ALLOW_THREADS
    result = PyFloat_FromDouble(loss);
done:
    PyMem_Free(total);
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return result;
}

typedef double softmax_fn(const int64_t *, const void *, const void *, const int64_t *, Py_ssize_t,
                          const void *, Py_ssize_t, Py_ssize_t, int, double *, double *);

static PyObject *py_softmax_loss_grad(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *objs[6];
    Py_ssize_t K;
    int fit;
    if (!PyArg_ParseTuple(args, "OOOOOOnp", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5], &K, &fit))
        return NULL;
    const char *names[6] = {"indptr", "indices", "data", "y", "params", "grad"};
    Py_buffer b[6];
    int got = acquire(objs, b, names, 6, 5);
    PyObject *result = NULL;
    double *total = NULL, *scratch = NULL;
    if (got < 6) goto done;
    char ki = buffer_kind(&b[1]), kd = buffer_kind(&b[2]), kw = buffer_kind(&b[4]);
    if (buffer_kind(&b[0]) != 'q' || buffer_kind(&b[3]) != 'q' || (ki != 'i' && ki != 'q') || (kd != 'f' && kd != 'd') ||
        (kw != 'f' && kw != 'd') || buffer_kind(&b[5]) != kw || K < 1) {
        PyErr_SetString(PyExc_TypeError, "indptr int64; indices int32/int64; data float32/float64; y int64; "
                                         "params and grad float32 or float64 alike; n_classes >= 1");
        goto done;
    }
    Py_ssize_t rows = b[0].len / 8 - 1, nnz = b[1].len / b[1].itemsize;
    Py_ssize_t P = b[4].len / b[4].itemsize, d = P / K - (fit ? 1 : 0);
    const int64_t *indptr = b[0].buf, *y = b[3].buf;
    if (rows < 0 || P % K || d < 0 || b[2].len / b[2].itemsize != nnz || b[3].len / 8 != rows ||
        b[5].len != b[4].len || indptr[0] != 0 || indptr[rows] != nnz) {
        PyErr_SetString(PyExc_ValueError, "inconsistent CSR arrays, y, params, grad and n_classes");
        goto done;
    }
    for (Py_ssize_t i = 0; i < rows; i++)
        if (y[i] < 0 || y[i] >= K) {
            PyErr_Format(PyExc_IndexError, "y[%zd] = %lld is not a class of %zd", i, (long long)y[i], K);
            goto done;
        }
    if (check_indices(b[1].buf, ki, nnz, d) < 0) goto done;
    /* a float64 grad is the accumulator itself (no d x K temporary to fault in and copy) */
    double *acc = kw == 'd' ? memset(b[5].buf, 0, (size_t)P * sizeof(double)) : (total = PyMem_Calloc(P, sizeof(double)));
    scratch = PyMem_Malloc((size_t)GRAD_BLOCK * (size_t)K * sizeof(double));
    if (!acc || !scratch) {
        PyErr_NoMemory();
        goto done;
    }
    softmax_fn *fn = kd == 'f' ? (ki == 'i' ? (kw == 'f' ? (softmax_fn *)softmax_f32_i32_w32 : (softmax_fn *)softmax_f32_i32_w64)
                                            : (kw == 'f' ? (softmax_fn *)softmax_f32_i64_w32 : (softmax_fn *)softmax_f32_i64_w64))
                               : (ki == 'i' ? (kw == 'f' ? (softmax_fn *)softmax_f64_i32_w32 : (softmax_fn *)softmax_f64_i32_w64)
                                            : (kw == 'f' ? (softmax_fn *)softmax_f64_i64_w32 : (softmax_fn *)softmax_f64_i64_w64));
    double loss;
    Py_BEGIN_ALLOW_THREADS
    loss = fn(indptr, b[1].buf, b[2].buf, y, rows, b[4].buf, d, K, fit, acc, scratch);
    if (kw == 'f')
        for (Py_ssize_t j = 0; j < P; j++) ((float *)b[5].buf)[j] = (float)total[j];
    Py_END_ALLOW_THREADS
    result = PyFloat_FromDouble(loss);
done:
    PyMem_Free(total);
    PyMem_Free(scratch);
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"loss_grad", py_loss_grad, METH_VARARGS,
     "loss_grad(indptr, indices, data, y, params, grad, logistic, fit_intercept) -> loss sum\n\n"
     "Linear or logistic loss and gradient sums over CSR rows in one pass (sums in double)."},
    {"softmax_loss_grad", py_softmax_loss_grad, METH_VARARGS,
     "softmax_loss_grad(indptr, indices, data, y, params, grad, n_classes, fit_intercept) -> loss sum\n\n"
     "Softmax loss and gradient sums over CSR rows in one pass (sums in double)."},
    {"adagrad_pass", py_adagrad_pass, METH_VARARGS,
     "adagrad_pass(indptr, indices, data, y, order, w, g2, lr, l2, logistic, fit_intercept) -> loss sum\n\n"
     "One online pass of per-coordinate adaptive updates over the CSR rows in `order`."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_csparse", "Online adaptive passes over CSR rows.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__csparse(void) { return PyModule_Create(&module); }
