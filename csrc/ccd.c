/*
 * mpireg._ccd: cyclic coordinate descent on a penalised quadratic model (optim/newton.py), the
 * inner loop of the L1 Newton step and of every point of a regularisation path:
 *
 *     argmin_z  c.z + z.H.z / 2 + sum_j l1_j |z_j|          (H symmetric positive semi-definite)
 *
 * It touches only the k x k matrix, never the rows (glmnet's "covariance updates"): the residual
 * r = c + H z is kept up to date, a coordinate's change costing one row of H (H is symmetric, so
 * its row j is its column j, read contiguously). As glmnet, sweeps alternate between the
 * coefficients that are non-zero (the active set), until they settle, and a full sweep, which
 * either confirms that no other coefficient enters or adds those that do. In Python the same
 * loop costs ~2 us a coordinate; here ~k nanoseconds.
 *
 * The same descent on a limited-memory quasi-Newton model (the first-order path's step,
 * fit/path_first_order.py), whose matrix is never formed:
 *
 *     H = D - W M W^T,   W (k x 2m) = [D S, Y],  P = W M   (Byrd, Nocedal, Schnabel 1994; D diagonal)
 *
 * keeps u = W^T z, so a coordinate's (H z)_j = D_j z_j - P_j . u and its change updates u in
 * O(m): a sweep costs k m, not k^2.
 *
 * Layers: 1. the kernel (plain C, no validation), 2. the wrapper (checks shapes once, releases the
 * GIL), 3. Python (optim/newton.py; its NumPy loop stays the reference).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>

#include "buffers.h"
#include "vmath.h"  /* FAST: the AVX2+FMA clone where the CPU has it */

/* ------------------------------------------------------------------ 1. kernel */

/* One sweep over the coordinates in idx[0..m); the largest |change|. */
INLINE double sweep(const double *H, double *z, double *r, const double *l1, const size_t *idx, size_t m,
                    size_t k)
{
    double largest = 0.0;
    for (size_t t = 0; t < m; t++) {
        size_t j = idx[t];
        double hjj = H[j * k + j];
        if (hjj <= 0.0) continue;
        double old = z[j], u = old - r[j] / hjj, shrink = fabs(u) - l1[j] / hjj;
        double new = shrink > 0.0 ? copysign(shrink, u) : 0.0;
        if (new == old) continue;
        double delta = new - old;
        const double *row = H + j * k;
        for (size_t i = 0; i < k; i++) r[i] += row[i] * delta;
        z[j] = new;
        if (fabs(delta) > largest) largest = fabs(delta);
    }
    return largest;
}

INLINE double scale_of(const double *z, size_t k)
{
    double m = 1.0;
    for (size_t j = 0; j < k; j++)
        if (fabs(z[j]) > m) m = fabs(z[j]);
    return m;
}

/* Returns the sweeps taken (full and active ones). */
static FAST size_t descend(const double *c, const double *H, double *z, const double *l1, size_t k, double tol,
                      size_t max_sweeps, double *r, size_t *all, size_t *active)
{
    for (size_t i = 0; i < k; i++) {
        double s = c[i];
        for (size_t j = 0; j < k; j++) s += H[i * k + j] * z[j];
        r[i] = s;
        all[i] = i;
    }
    size_t sweeps = 0;
    while (sweeps < max_sweeps) {
        double largest = sweep(H, z, r, l1, all, k, k);  /* a full sweep */
        sweeps++;
        if (largest <= tol * scale_of(z, k)) break;
        size_t m = 0;
        for (size_t j = 0; j < k; j++)
            if (z[j] != 0.0 || l1[j] == 0.0) active[m++] = j;
        while (sweeps < max_sweeps) {  /* the active set until it settles */
            largest = sweep(H, z, r, l1, active, m, k);
            sweeps++;
            if (largest <= tol * scale_of(z, k)) break;
        }
    }
    return sweeps;
}

/* The low-rank model: W and P are k x q (q = 2m) row-major; hjj[j] = D_j - P_j . W_j. */
INLINE double dot(const double *a, const double *b, size_t q)
{
    double s = 0.0;
    for (size_t i = 0; i < q; i++) s += a[i] * b[i];
    return s;
}

INLINE double lowrank_sweep(const double *c, const double *D, const double *W, const double *P, const double *hjj,
                            double *z, double *u, const double *l1, const size_t *idx, size_t m, size_t q)
{
    double largest = 0.0;
    for (size_t t = 0; t < m; t++) {
        size_t j = idx[t];
        if (hjj[j] <= 0.0) continue;
        double old = z[j], r = c[j] + D[j] * old - dot(P + j * q, u, q);
        double v = old - r / hjj[j], shrink = fabs(v) - l1[j] / hjj[j];
        double new = shrink > 0.0 ? copysign(shrink, v) : 0.0;
        if (new == old) continue;
        double delta = new - old;
        const double *w = W + j * q;
        for (size_t i = 0; i < q; i++) u[i] += w[i] * delta;
        z[j] = new;
        if (fabs(delta) > largest) largest = fabs(delta);
    }
    return largest;
}

static size_t lowrank_descend(const double *c, const double *D, const double *W, const double *P, double *z,
                              const double *l1, size_t k, size_t q, double tol, size_t max_sweeps, double *u,
                              double *hjj, size_t *all, size_t *active)
{
    for (size_t i = 0; i < q; i++) u[i] = 0.0;
    for (size_t j = 0; j < k; j++) {
        hjj[j] = D[j] - dot(P + j * q, W + j * q, q);
        for (size_t i = 0; i < q; i++) u[i] += W[j * q + i] * z[j];
        all[j] = j;
    }
    size_t sweeps = 0;
    while (sweeps < max_sweeps) {
        double largest = lowrank_sweep(c, D, W, P, hjj, z, u, l1, all, k, q);
        sweeps++;
        if (largest <= tol * scale_of(z, k)) break;
        size_t m = 0;
        for (size_t j = 0; j < k; j++)
            if (z[j] != 0.0 || l1[j] == 0.0) active[m++] = j;
        while (sweeps < max_sweeps) {
            largest = lowrank_sweep(c, D, W, P, hjj, z, u, l1, active, m, q);
            sweeps++;
            if (largest <= tol * scale_of(z, k)) break;
        }
    }
    return sweeps;
}

/* ------------------------------------------------------------------ 2. wrapper */

static PyObject *coordinate_descent(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *co, *Ho, *zo, *lo;
    double tol;
    Py_ssize_t max_sweeps;
    if (!PyArg_ParseTuple(args, "OOOOdn", &co, &Ho, &zo, &lo, &tol, &max_sweeps)) return NULL;
    Py_buffer views[4] = {{0}};
    Py_buffer *c = &views[0], *H = &views[1], *z = &views[2], *l1 = &views[3];
    if (buffer_acquire(co, c, 0, "c") < 0 || buffer_acquire(Ho, H, 0, "H") < 0 ||
        buffer_acquire(zo, z, 1, "z") < 0 || buffer_acquire(lo, l1, 0, "l1") < 0)
        goto fail;
    size_t k = (size_t)(z->len / 8);
    if (buffer_kind(c) != 'd' || buffer_kind(H) != 'd' || buffer_kind(z) != 'd' || buffer_kind(l1) != 'd' ||
        (size_t)(c->len / 8) != k || (size_t)(l1->len / 8) != k || (size_t)(H->len / 8) != k * k) {
        PyErr_Format(PyExc_ValueError, "c, z, l1: %zu float64 values each; H: %zu x %zu float64", k, k, k);
        goto fail;
    }
    double *r = PyMem_Malloc((k ? k : 1) * sizeof(double));
    size_t *idx = PyMem_Malloc((k ? 2 * k : 1) * sizeof(size_t));
    if (!r || !idx) {
        PyMem_Free(r);
        PyMem_Free(idx);
        PyErr_NoMemory();
        goto fail;
    }
    size_t sweeps;
    Py_BEGIN_ALLOW_THREADS
    sweeps = descend(c->buf, H->buf, z->buf, l1->buf, k, tol, (size_t)max_sweeps, r, idx, idx + k);
    Py_END_ALLOW_THREADS
    PyMem_Free(r);
    PyMem_Free(idx);
    buffer_release(views, 4);
    return PyLong_FromSize_t(sweeps);
fail:
    buffer_release(views, 4);
    return NULL;
}

static PyObject *lowrank_coordinate_descent(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *co, *Do, *Wo, *Po, *zo, *lo;
    double tol;
    Py_ssize_t max_sweeps;
    if (!PyArg_ParseTuple(args, "OOOOOOdn", &co, &Do, &Wo, &Po, &zo, &lo, &tol, &max_sweeps)) return NULL;
    Py_buffer views[6] = {{0}};
    if (buffer_acquire(co, &views[0], 0, "c") < 0 || buffer_acquire(Do, &views[1], 0, "D") < 0 ||
        buffer_acquire(Wo, &views[2], 0, "W") < 0 || buffer_acquire(Po, &views[3], 0, "P") < 0 ||
        buffer_acquire(zo, &views[4], 1, "z") < 0 || buffer_acquire(lo, &views[5], 0, "l1") < 0)
        goto fail;
    size_t k = (size_t)(views[4].len / 8), q = k ? (size_t)(views[2].len / 8) / k : 0;
    int ok = 1;
    for (int a = 0; a < 6; a++) ok &= buffer_kind(&views[a]) == 'd';
    if (!ok || (size_t)(views[0].len / 8) != k || (size_t)(views[1].len / 8) != k || (size_t)(views[5].len / 8) != k ||
        views[2].len != views[3].len || (size_t)(views[2].len / 8) != k * q) {
        PyErr_Format(PyExc_ValueError, "c, D, z, l1: %zu float64 values each; W and P: %zu x q float64", k, k);
        goto fail;
    }
    double *u = PyMem_Malloc((q + k + 1) * sizeof(double));
    size_t *idx = PyMem_Malloc((k ? 2 * k : 1) * sizeof(size_t));
    if (!u || !idx) {
        PyMem_Free(u);
        PyMem_Free(idx);
        PyErr_NoMemory();
        goto fail;
    }
    size_t sweeps;
    Py_BEGIN_ALLOW_THREADS
    sweeps = lowrank_descend(views[0].buf, views[1].buf, views[2].buf, views[3].buf, views[4].buf, views[5].buf, k,
                             q, tol, (size_t)max_sweeps, u, u + q, idx, idx + k);
    Py_END_ALLOW_THREADS
    PyMem_Free(u);
    PyMem_Free(idx);
    buffer_release(views, 6);
    return PyLong_FromSize_t(sweeps);
fail:
    buffer_release(views, 6);
    return NULL;
}

static PyMethodDef methods[] = {
    {"lowrank_coordinate_descent", lowrank_coordinate_descent, METH_VARARGS,
     "lowrank_coordinate_descent(c, D, W, P, z, l1, tol, max_sweeps) -> sweeps. Minimises c.z + z.H.z/2 +"
     " sum_j l1_j |z_j| from z, in place, H = diag(D) - W P^T (W, P: k x q, C-contiguous float64)."},
    {"coordinate_descent", coordinate_descent, METH_VARARGS,
     "coordinate_descent(c, H, z, l1, tol, max_sweeps) -> sweeps. Minimises c.z + z.H.z/2 +"
     " sum_j l1_j |z_j| from z, in place (H: k x k, symmetric, C-contiguous float64)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ccd", "Coordinate descent on a quadratic model.",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ccd(void) { return PyModule_Create(&module); }
