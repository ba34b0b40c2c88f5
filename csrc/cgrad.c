/*
 * mpireg._cgrad: loss and gradient sums of the linear and logistic models in one pass over the
 * rows. (Softmax, whose K logits per row need another register layout, is csoftmax.c.)
 *
 * NumPy's obvious form reads X twice (z = X w, then X^T r). Here rows are used twice while they
 * sit in L1, four at a time: their dot products give z, the loss gives the residuals r, and r x
 * is added to the gradient at once, so X streams from memory a single time.
 *
 * Layers (as in cpack.c):
 *   1. kernels   - glm_rows4.h: plain C over rows [lo, hi) for one dtype (generated for float and
 *                  double by macros); they never allocate or validate.
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

#define BLOCK 256

#include "buffers.h"
#include "glm_rows4.h"  /* 1. the kernels */

/* ------------------------------------------------------------------ 2. wrappers */

enum model { LINEAR, LOGISTIC };
typedef double kernel_f32(const float *, const float *, const float *, size_t, size_t, size_t, int, float *);
typedef double kernel_f64(const double *, const double *, const double *, size_t, size_t, size_t, int, double *);
typedef double kernel_f32x64(const float *, const double *, const double *, size_t, size_t, size_t, int, double *);

static PyObject *run(enum model which, PyObject *args)
{
    PyObject *Xo, *yo, *wo, *go;
    int fit;
    if (!PyArg_ParseTuple(args, "OOOOp", &Xo, &yo, &wo, &go, &fit)) return NULL;
    Py_buffer views[4] = {{0}};
    Py_buffer *X = &views[0], *y = &views[1], *w = &views[2], *g = &views[3];
    if (buffer_acquire(Xo, X, 0, "X") < 0 || buffer_acquire(yo, y, 0, "y") < 0 ||
        buffer_acquire(wo, w, 0, "params") < 0 || buffer_acquire(go, g, 1, "grad") < 0)
        goto fail;
    char t = buffer_kind(X);
    if ((t != 'f' && t != 'd') || X->ndim != 2) {
        PyErr_SetString(PyExc_TypeError, "X must be a 2-D float32 or float64 array");
        goto fail;
    }
    /* t: the compute dtype (params, grad, y); float32 X with float64 params computes in double */
    char xt = t;
    t = buffer_kind(w);
    if ((t != xt && !(xt == 'f' && t == 'd')) || buffer_kind(g) != t) {
        PyErr_SetString(PyExc_TypeError, "params and grad must have X's dtype, or float64 with float32 X");
        goto fail;
    }
    size_t n = (size_t)X->shape[0], d = (size_t)X->shape[1];
    size_t P = d + (fit ? 1 : 0);
    if ((size_t)(w->len / w->itemsize) != P || (size_t)(g->len / g->itemsize) != P) {
        PyErr_Format(PyExc_ValueError, "params and grad must hold %zu values, got %zd and %zd", P,
                     w->len / w->itemsize, g->len / g->itemsize);
        goto fail;
    }
    char yk = buffer_kind(y);
    if ((size_t)(y->len / (y->itemsize ? y->itemsize : 1)) != n || yk != t) {
        PyErr_Format(PyExc_TypeError, "y must be a 1-D array of %zu values of params' dtype", n);
        goto fail;
    }
    size_t item = (size_t)w->itemsize;  /* of the block sums: the compute dtype */
    double *total = PyMem_Calloc(P ? P : 1, sizeof(double));
    char *block = PyMem_Malloc(P * item + 1);
    if (!total || !block) {
        PyMem_Free(total);
        PyMem_Free(block);
        PyErr_NoMemory();
        goto fail;
    }
    int long_rows = d * (size_t)X->itemsize >= LONG_ROW_BYTES;
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
            loss += k32(X->buf, y->buf, w->buf, lo, hi, d, fit, gb);
            for (size_t j = 0; j < P; j++) total[j] += gb[j];
        } else {
            double *gb = (double *)block;
            loss += xt == 'f' ? kmix(X->buf, y->buf, w->buf, lo, hi, d, fit, gb)
                              : k64(X->buf, y->buf, w->buf, lo, hi, d, fit, gb);
            for (size_t j = 0; j < P; j++) total[j] += gb[j];
        }
    }
    if (t == 'f')
        for (size_t j = 0; j < P; j++) ((float *)g->buf)[j] = (float)total[j];
    else
        memcpy(g->buf, total, P * sizeof(double));
    Py_END_ALLOW_THREADS
    PyMem_Free(total);
    PyMem_Free(block);
    buffer_release(views, 4);
    return PyFloat_FromDouble(loss);
fail:
    buffer_release(views, 4);
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

PyMODINIT_FUNC PyInit__cgrad(void)
{
    prefetch_to_l2 = cpu_is_amd();
    return PyModule_Create(&module);
}
