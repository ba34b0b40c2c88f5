/*
 * mpireg._cals: the two loops of an ALS half-sweep (models/mf.py, fit/als.py), row by row.
 *
 *   solve(factors, index, ratings, starts, l2, out) -> rows that were not positive definite
 *       Row j owns ratings [starts[j], starts[j+1]); rating p was given with the other side's
 *       row factors[index[p]]. Row j of out solves (F^T F + l2 n_j I) x = F^T r by Cholesky.
 *   squared_error(factors, index, own, starts, ratings) -> sum over ratings of (f . x - r)^2
 *
 * NumPy's batched form writes an outer product per rating (k^2 doubles) to memory and reads it
 * back, and gathers a k-vector per rating first; here each row's k x k system stays in L1, the
 * factor rows are read in place through `index`, and nothing but `out` is written. Every sum
 * runs in rating order, so a row's factors do not depend on which rank solves it.
 * All arrays are float64 (int64 for index and starts), C-contiguous; the GIL is released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "buffers.h"
#include "vmath.h"

/* ------------------------------------------------------------------ kernels */

/* Lower Cholesky factor of the k x k matrix A in place; 0 when A is not positive definite. */
static int cholesky(double *A, size_t k) {
    for (size_t j = 0; j < k; j++) {
        double d = A[j * k + j];
        for (size_t c = 0; c < j; c++) d -= A[j * k + c] * A[j * k + c];
        if (!(d > 0.0)) return 0;
        d = sqrt(d);
        A[j * k + j] = d;
        for (size_t i = j + 1; i < k; i++) {
            double s = A[i * k + j];
            for (size_t c = 0; c < j; c++) s -= A[i * k + c] * A[j * k + c];
            A[i * k + j] = s / d;
        }
    }
    return 1;
}

/* x = (L L^T)^{-1} b, in place in b. */
static void cholesky_solve(const double *L, double *b, size_t k) {
    for (size_t i = 0; i < k; i++) {
        double s = b[i];
        for (size_t c = 0; c < i; c++) s -= L[i * k + c] * b[c];
        b[i] = s / L[i * k + i];
    }
    for (size_t i = k; i-- > 0;) {
        double s = b[i];
        for (size_t c = i + 1; c < k; c++) s -= L[c * k + i] * b[c];
        b[i] = s / L[i * k + i];
    }
}

FAST static size_t solve_rows(const double *F, const int64_t *index, const double *r,
                              const int64_t *starts, size_t n, size_t k, double l2, double *out,
                              double *A) {
    size_t failed = 0;
    for (size_t j = 0; j < n; j++) {
        double *x = out + j * k;
        int64_t lo = starts[j], hi = starts[j + 1];
        memset(x, 0, k * sizeof(double));
        if (hi <= lo) continue;  /* no rating: zero factors (predicted the mean) */
        memset(A, 0, k * k * sizeof(double));
        for (int64_t p = lo; p < hi; p++) {
            const double *f = F + (size_t)index[p] * k;
            double rp = r[p];
            for (size_t a = 0; a < k; a++) {
                double fa = f[a];
                double *row = A + a * k;
#pragma omp simd
                for (size_t c = 0; c < k; c++) row[c] += fa * f[c];
                x[a] += rp * fa;
            }
        }
        /* a row whose ratings do not span every direction is singular without a penalty */
        double ridge = l2 > 0.0 ? l2 * (double)(hi - lo) : 1e-10;
        for (size_t a = 0; a < k; a++) A[a * k + a] += ridge;
        if (!cholesky(A, k)) {
            memset(x, 0, k * sizeof(double));
            failed++;
            continue;
        }
        cholesky_solve(A, x, k);
    }
    return failed;
}

FAST static double squared_error(const double *F, const int64_t *index, const double *own,
                                 const int64_t *starts, const double *r, size_t n, size_t k) {
    double total = 0.0;
    for (size_t j = 0; j < n; j++) {
        const double *x = own + j * k;
        for (int64_t p = starts[j]; p < starts[j + 1]; p++) {
            const double *f = F + (size_t)index[p] * k;
            double e = -r[p];
            for (size_t a = 0; a < k; a++) e += f[a] * x[a];
            total += e * e;
        }
    }
    return total;
}

/* ------------------------------------------------------------------ wrappers */

enum { F, INDEX, R, STARTS, OUT, N_VIEWS };  /* the wrappers' views, in this order */

/* A view of float64 ("d") or int64 ("q") elements, or a TypeError naming the array. */
static int acquire_typed(PyObject *o, Py_buffer *b, int writable, char want, const char *name) {
    if (buffer_acquire(o, b, writable, name) < 0) return -1;
    if (buffer_kind(b) != want) {
        PyErr_Format(PyExc_TypeError, "%s must hold %s", name, want == 'd' ? "float64" : "int64");
        return -1;
    }
    return 0;
}

/* Shapes: F (R, k), index (m,), r (m,), starts (n + 1,), own/out (n, k); every index in range. */
static int check(Py_buffer *v, size_t *n, size_t *k) {
    if (v[F].ndim != 2 || v[OUT].ndim != 2 || v[F].shape[1] != v[OUT].shape[1]) {
        PyErr_SetString(PyExc_ValueError, "factors and the row block must be 2-D with the same width");
        return -1;
    }
    *k = (size_t)v[F].shape[1];
    *n = (size_t)v[OUT].shape[0];
    size_t m = (size_t)(v[R].len / 8), R = (size_t)v[F].shape[0];
    if ((size_t)(v[INDEX].len / 8) != m || (size_t)(v[STARTS].len / 8) != *n + 1) {
        PyErr_SetString(PyExc_ValueError, "index must match ratings, and starts hold one more entry than rows");
        return -1;
    }
    const int64_t *s = v[STARTS].buf, *idx = v[INDEX].buf;
    if (s[0] != 0 || (size_t)s[*n] != m) {
        PyErr_SetString(PyExc_ValueError, "starts must run from 0 to the number of ratings");
        return -1;
    }
    for (size_t j = 0; j < *n; j++)
        if (s[j + 1] < s[j]) {
            PyErr_SetString(PyExc_ValueError, "starts must not decrease");
            return -1;
        }
    for (size_t p = 0; p < m; p++)
        if (idx[p] < 0 || (size_t)idx[p] >= R) {
            PyErr_Format(PyExc_IndexError, "index[%zu] = %lld is outside the %zu factor rows", p,
                         (long long)idx[p], R);
            return -1;
        }
    return 0;
}

static PyObject *py_solve(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *Fo, *io, *ro, *so, *oo;
    double l2;
    if (!PyArg_ParseTuple(args, "OOOOdO", &Fo, &io, &ro, &so, &l2, &oo)) return NULL;
    Py_buffer v[N_VIEWS] = {{0}};
    size_t n, k;
    if (acquire_typed(Fo, &v[F], 0, 'd', "factors") < 0 || acquire_typed(io, &v[INDEX], 0, 'q', "index") < 0 ||
        acquire_typed(ro, &v[R], 0, 'd', "ratings") < 0 || acquire_typed(so, &v[STARTS], 0, 'q', "starts") < 0 ||
        acquire_typed(oo, &v[OUT], 1, 'd', "out") < 0 || check(v, &n, &k) < 0) {
        buffer_release(v, N_VIEWS);
        return NULL;
    }
    double *A = PyMem_Malloc((k ? k * k : 1) * sizeof(double));
    if (!A) {
        buffer_release(v, N_VIEWS);
        return PyErr_NoMemory();
    }
    size_t failed;
    Py_BEGIN_ALLOW_THREADS
    failed = solve_rows(v[F].buf, v[INDEX].buf, v[R].buf, v[STARTS].buf, n, k, l2, v[OUT].buf, A);
    Py_END_ALLOW_THREADS
    PyMem_Free(A);
    buffer_release(v, N_VIEWS);
    return PyLong_FromSize_t(failed);
}

static PyObject *py_squared_error(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *Fo, *io, *xo, *so, *ro;
    if (!PyArg_ParseTuple(args, "OOOOO", &Fo, &io, &xo, &so, &ro)) return NULL;
    Py_buffer v[N_VIEWS] = {{0}};
    size_t n, k;
    /* `own` takes the place of `out` (read only) */
    if (acquire_typed(Fo, &v[F], 0, 'd', "factors") < 0 || acquire_typed(io, &v[INDEX], 0, 'q', "index") < 0 ||
        acquire_typed(ro, &v[R], 0, 'd', "ratings") < 0 || acquire_typed(so, &v[STARTS], 0, 'q', "starts") < 0 ||
        acquire_typed(xo, &v[OUT], 0, 'd', "own") < 0 || check(v, &n, &k) < 0) {
        buffer_release(v, N_VIEWS);
        return NULL;
    }
    double total;
    Py_BEGIN_ALLOW_THREADS
    total = squared_error(v[F].buf, v[INDEX].buf, v[OUT].buf, v[STARTS].buf, v[R].buf, n, k);
    Py_END_ALLOW_THREADS
    buffer_release(v, N_VIEWS);
    return PyFloat_FromDouble(total);
}

static PyMethodDef methods[] = {
    {"solve", py_solve, METH_VARARGS,
     "solve(factors, index, ratings, starts, l2, out) -> rows not positive definite (left zero)\n\n"
     "Row j of out solves (F^T F + l2 n_j I) x = F^T r over its ratings [starts[j], starts[j+1])."},
    {"squared_error", py_squared_error, METH_VARARGS,
     "squared_error(factors, index, own, starts, ratings) -> sum of (factors[index[p]] . own[j] - r[p])^2"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cals", "The row loops of alternating least squares.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cals(void) { return PyModule_Create(&module); }
