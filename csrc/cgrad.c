/*
 * mpireg._cgrad: loss and gradient sums of the linear and logistic models in one pass over the
 * rows. (Softmax, whose K logits per row need another register layout, is csoftmax.c.)
 *
 * NumPy's obvious form reads X twice (z = X w, then X^T r). Here rows are used twice while they
 * sit in L1, four at a time: their dot products give z, the loss gives the residuals r, and r x
 * is added to the gradient at once, so X streams from memory a single time.
 *
 * Layers (as in cpack.c):
 *   1. kernels   - plain C over rows [lo, hi) for one dtype (generated for float and double by a
 *                  macro); they never allocate or validate.
 *   2. wrappers  - validate shapes, dtypes, contiguity once, allocate the float64 accumulator,
 *                  release the GIL, run the kernels block by block.
 *   3. Python    - the models in mpireg/models call these for C-contiguous NumPy arrays, NumPy otherwise.
 *
 * Numerics: partial gradients are summed over blocks of BLOCK rows in the data's precision, and
 * the block sums are added into a float64 total (float32 data keeps float32 speed in the hot
 * loop without float32 round-off growing with the number of rows). The loss is summed in double.
 * The order of every sum is fixed, so results do not depend on anything but the rows given.
 * Mixed mode: float32 X with float64 params, grad and y computes every product and sum in double
 * (the f32x64 kernels), which the full-batch solvers use: their line searches need the objective
 * to more than float32's seven digits. X streams as float32 all the same.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vmath.h"

#define BLOCK 256

/* ------------------------------------------------------------------ 1. kernels */

/* Residuals r = dloss/dz of rows [0, m), m <= 4, from their logits z (in place); returns their
 * loss. The logistic one is written on a vector of four (vmath.h): as a loop over the rows,
 * GCC compiled its ~50 polynomial steps and two divisions scalar. */
#define DEFINE_RESIDUALS(T, V, SUFFIX)                                                              \
INLINE double linear_r_##SUFFIX(T *z, const T *y, size_t m)                                         \
{                                                                                                   \
    double loss = 0.0;                                                                              \
    for (size_t i = 0; i < m; i++) {                                                                \
        T r = z[i] - y[i];                                                                          \
        loss += 0.5 * (double)r * (double)r;                                                        \
        z[i] = r;                                                                                   \
    }                                                                                               \
    return loss;                                                                                    \
}                                                                                                   \
                                                                                                    \
/* log(1 + e^z) - y z without overflow; the sigmoid from the same exponential */                   \
INLINE double logistic_r_##SUFFIX(T *z, const T *y, size_t m)                                       \
{                                                                                                   \
    V v = {0}, label = {0};                                                                         \
    memcpy(&v, z, m * sizeof(T));                                                                   \
    memcpy(&label, y, m * sizeof(T));                                                               \
    const V zero = {0}, one = zero + (T)1;                                                          \
    V e = vexp_neg_##V(select_##V(v < zero, v, -v));                                                \
    V loss = select_##V(v > zero, v, zero) + vlog1p_unit_##V(e) - label * v;                        \
    V r = select_##V(v >= zero, one, e) / (one + e) - label;                                        \
    memcpy(z, &r, m * sizeof(T));                                                                   \
    double total = 0.0;                                                                             \
    for (size_t i = 0; i < m; i++) total += (double)loss[i];                                        \
    return total;                                                                                   \
}

/*
 * Rows go four at a time: their four dot products share each load of w; their residuals are
 * computed together in SIMD lanes; and the update g += r0 x0 + r1 x1 + r2 x2 + r3 x3 reuses the
 * four rows while they are still in L1 and loads and stores g once per four rows instead of
 * once per row. X comes from memory once.
 *
 * The chain dot -> residual -> update keeps the core from running ahead to the next rows'
 * loads, so software prefetches keep memory requests in flight (vmath.h: short and long rows).
 */
#define DEFINE_STEPS(TX, T, SUFFIX)                                                                 \
INLINE void dots_##SUFFIX(const TX *x[4], const T *w, size_t d, T z[4])                            \
{                                                                                                   \
    const TX *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];                                        \
    T z0 = z[0], z1 = z[1], z2 = z[2], z3 = z[3];                                                   \
    _Pragma("omp simd reduction(+:z0, z1, z2, z3)")                                                 \
    for (size_t j = 0; j < d; j++) {                                                                \
        z0 += x0[j] * w[j];                                                                         \
        z1 += x1[j] * w[j];                                                                         \
        z2 += x2[j] * w[j];                                                                         \
        z3 += x3[j] * w[j];                                                                         \
    }                                                                                               \
    z[0] = z0, z[1] = z1, z[2] = z2, z[3] = z3;                                                     \
}                                                                                                   \
                                                                                                    \
/* g[lo, hi) += r0 x0 + r1 x1 + r2 x2 + r3 x3 */                                                    \
INLINE void update_##SUFFIX(const TX *x[4], const T r[4], size_t lo, size_t hi, T *g)              \
{                                                                                                   \
    const TX *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];                                        \
    T r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];                                                   \
    _Pragma("omp simd")                                                                             \
    for (size_t j = lo; j < hi; j++) g[j] += (r0 * x0[j] + r1 * x1[j]) + (r2 * x2[j] + r3 * x3[j]); \
}                                                                                                   \
                                                                                                    \
INLINE void update_short_##SUFFIX(const TX *x[4], const T r[4], size_t d, T *g)                    \
{                                                                                                   \
    update_##SUFFIX(x, r, 0, d, g);                                                                 \
}                                                                                                   \
                                                                                                    \
/* each 64 bytes of the update asks for the same bytes of the next four rows */                   \
INLINE void update_long_##SUFFIX(const TX *x[4], const T r[4], size_t d, T *g)                     \
{                                                                                                   \
    const size_t line = 64 / sizeof(TX), next = 4 * d * sizeof(TX);                                 \
    for (size_t j = 0; j < d; j += line) {                                                          \
        for (int k = 0; k < 4; k++)                                                                 \
            __builtin_prefetch((const void *)((uintptr_t)(x[k] + j) + next), 0, PREFETCH_LOCALITY);   \
        update_##SUFFIX(x, r, j, j + line < d ? j + line : d, g);                                   \
    }                                                                                               \
}

#define DEFINE_KERNEL(TX, T, SUFFIX, MODEL, SHAPE)                                                  \
FAST static double MODEL##_##SHAPE##_##SUFFIX(const TX *X, const T *y, const T *w, size_t lo,      \
                                              size_t hi, size_t d, int fit, T *g)                   \
{                                                                                                   \
    double loss = 0.0;                                                                              \
    T b = fit ? w[d] : (T)0;                                                                        \
    for (size_t i = lo; i < hi; i += 4) {                                                           \
        size_t m = hi - i < 4 ? hi - i : 4;                                                         \
        const TX *x0 = X + i * d;   /* rows past hi repeat row i, and get a zero residual */       \
        const TX *x[4] = {x0, m > 1 ? x0 + d : x0, m > 2 ? x0 + 2 * d : x0, m > 3 ? x0 + 3 * d : x0}; \
        prefetch_##SHAPE(x0, 4 * d * sizeof(TX));                                                   \
        T r[4] = {b, b, b, b};                                                                      \
        dots_##SUFFIX(x, w, d, r);                                                                  \
        if (m == 4) {  /* a constant count: the residuals of four rows vectorise */                \
            loss += MODEL##_r_##SUFFIX(r, y + i, 4);                                                \
        } else {                                                                                    \
            loss += MODEL##_r_##SUFFIX(r, y + i, m);                                                \
            for (size_t k = m; k < 4; k++) r[k] = (T)0;                                             \
        }                                                                                           \
        update_##SHAPE##_##SUFFIX(x, r, d, g);                                                      \
        if (fit) g[d] += (r[0] + r[1]) + (r[2] + r[3]);                                             \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_RESIDUALS(float, v4f32, f32)
DEFINE_RESIDUALS(double, v4f64, f64)
DEFINE_STEPS(float, float, f32)
DEFINE_STEPS(double, double, f64)
DEFINE_STEPS(float, double, f32x64)
DEFINE_KERNEL(float, float, f32, linear, short)
DEFINE_KERNEL(float, float, f32, linear, long)
DEFINE_KERNEL(double, double, f64, linear, short)
DEFINE_KERNEL(double, double, f64, linear, long)
DEFINE_KERNEL(float, float, f32, logistic, short)
DEFINE_KERNEL(float, float, f32, logistic, long)
DEFINE_KERNEL(double, double, f64, logistic, short)
DEFINE_KERNEL(double, double, f64, logistic, long)
/* float32 rows, double parameters and sums: the full-batch solvers' objective, whose line
 * searches need more than float32's seven digits (fit/fullbatch.py) */
#define linear_r_f32x64 linear_r_f64
#define logistic_r_f32x64 logistic_r_f64
DEFINE_KERNEL(float, double, f32x64, linear, short)
DEFINE_KERNEL(float, double, f32x64, linear, long)
DEFINE_KERNEL(float, double, f32x64, logistic, short)
DEFINE_KERNEL(float, double, f32x64, logistic, long)

/* ------------------------------------------------------------------ 2. wrappers */

enum model { LINEAR, LOGISTIC };
typedef double kernel_f32(const float *, const float *, const float *, size_t, size_t, size_t, int, float *);
typedef double kernel_f64(const double *, const double *, const double *, size_t, size_t, size_t, int, double *);
typedef double kernel_f32x64(const float *, const double *, const double *, size_t, size_t, size_t, int, double *);

typedef struct {
    Py_buffer X, y, w, g;
    int have[4];
} Views;

static void release(Views *v)
{
    Py_buffer *all[4] = {&v->X, &v->y, &v->w, &v->g};
    for (int i = 0; i < 4; i++)
        if (v->have[i]) PyBuffer_Release(all[i]);
}

static int acquire(PyObject *obj, Py_buffer *view, int writable, const char *name, int *have)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s array", name, writable ? ", writable" : "");
        return -1;
    }
    *have = 1;
    return 0;
}

static char kind_of(const Py_buffer *v)
{
    const char *f = v->format ? v->format : "B";
    if (*f == '@' || *f == '=' || *f == '<') f++;
    if (f[1]) return 0;
    if (*f == 'f' && v->itemsize == 4) return 'f';
    if (*f == 'd' && v->itemsize == 8) return 'd';
    if ((*f == 'q' || *f == 'l') && v->itemsize == 8) return 'q';
    return 0;
}

static PyObject *run(enum model which, PyObject *args)
{
    PyObject *Xo, *yo, *wo, *go;
    int fit;
    if (!PyArg_ParseTuple(args, "OOOOp", &Xo, &yo, &wo, &go, &fit)) return NULL;
    Views v = {0};
    if (acquire(Xo, &v.X, 0, "X", &v.have[0]) < 0 || acquire(yo, &v.y, 0, "y", &v.have[1]) < 0 ||
        acquire(wo, &v.w, 0, "params", &v.have[2]) < 0 || acquire(go, &v.g, 1, "grad", &v.have[3]) < 0)
        goto fail;
    char t = kind_of(&v.X);
    if ((t != 'f' && t != 'd') || v.X.ndim != 2) {
        PyErr_SetString(PyExc_TypeError, "X must be a 2-D float32 or float64 array");
        goto fail;
    }
    /* t: the compute dtype (params, grad, y); float32 X with float64 params computes in double */
    char xt = t;
    t = kind_of(&v.w);
    if ((t != xt && !(xt == 'f' && t == 'd')) || kind_of(&v.g) != t) {
        PyErr_SetString(PyExc_TypeError, "params and grad must have X's dtype, or float64 with float32 X");
        goto fail;
    }
    size_t n = (size_t)v.X.shape[0], d = (size_t)v.X.shape[1];
    size_t P = d + (fit ? 1 : 0);
    if ((size_t)(v.w.len / v.w.itemsize) != P || (size_t)(v.g.len / v.g.itemsize) != P) {
        PyErr_Format(PyExc_ValueError, "params and grad must hold %zu values, got %zd and %zd", P,
                     v.w.len / v.w.itemsize, v.g.len / v.g.itemsize);
        goto fail;
    }
    char yk = kind_of(&v.y);
    if ((size_t)(v.y.len / (v.y.itemsize ? v.y.itemsize : 1)) != n || yk != t) {
        PyErr_Format(PyExc_TypeError, "y must be a 1-D array of %zu values of params' dtype", n);
        goto fail;
    }
    size_t item = (size_t)v.w.itemsize;  /* of the block sums: the compute dtype */
    double *total = PyMem_Calloc(P ? P : 1, sizeof(double));
    char *block = PyMem_Malloc(P * item + 1);
    if (!total || !block) {
        PyMem_Free(total);
        PyMem_Free(block);
        PyErr_NoMemory();
        goto fail;
    }
    int long_rows = d * (size_t)v.X.itemsize >= LONG_ROW_BYTES;
    kernel_f32 *k32 = which == LINEAR ? (long_rows ? linear_long_f32 : linear_short_f32)
                                      : (long_rows ? logistic_long_f32 : logistic_short_f32);
    kernel_f64 *k64 = which == LINEAR ? (long_rows ? linear_long_f64 : linear_short_f64)
                                      : (long_rows ? logistic_long_f64 : logistic_short_f64);
    kernel_f32x64 *kmix = which == LINEAR ? (long_rows ? linear_long_f32x64 : linear_short_f32x64)
                                          : (long_rows ? logistic_long_f32x64 : logistic_short_f32x64);
    double loss = 0.0;
    Py_BEGIN_ALLOW_THREADS
    for (size_t lo = 0; lo < n; lo += BLOCK) {
        size_t hi = lo + BLOCK < n ? lo + BLOCK : n;
        memset(block, 0, P * item);
        if (t == 'f') {
            float *gb = (float *)block;
            loss += k32(v.X.buf, v.y.buf, v.w.buf, lo, hi, d, fit, gb);
            for (size_t j = 0; j < P; j++) total[j] += gb[j];
        } else {
            double *gb = (double *)block;
            loss += xt == 'f' ? kmix(v.X.buf, v.y.buf, v.w.buf, lo, hi, d, fit, gb)
                              : k64(v.X.buf, v.y.buf, v.w.buf, lo, hi, d, fit, gb);
            for (size_t j = 0; j < P; j++) total[j] += gb[j];
        }
    }
    if (t == 'f')
        for (size_t j = 0; j < P; j++) ((float *)v.g.buf)[j] = (float)total[j];
    else
        memcpy(v.g.buf, total, P * sizeof(double));
    Py_END_ALLOW_THREADS
    PyMem_Free(total);
    PyMem_Free(block);
    release(&v);
    return PyFloat_FromDouble(loss);
fail:
    release(&v);
    return NULL;
}

static PyObject *py_linear(PyObject *self, PyObject *args) { (void)self; return run(LINEAR, args); }
static PyObject *py_logistic(PyObject *self, PyObject *args) { (void)self; return run(LOGISTIC, args); }

static PyMethodDef methods[] = {
    {"linear", py_linear, METH_VARARGS,
     "linear(X, y, params, grad, fit_intercept) -> loss sum\n\n"
     "Sum over rows of (x.w + b - y)^2 / 2; writes the sum of its gradients into grad."},
    {"logistic", py_logistic, METH_VARARGS,
     "logistic(X, y, params, grad, fit_intercept) -> loss sum (log(1 + e^z) - y z)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cgrad", "One-pass loss and gradient sums.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cgrad(void) { return PyModule_Create(&module); }
