/*
 * mpireg._csoftmax: loss and gradient sums of multinomial (softmax) regression, K <= 16 classes,
 * in one pass over dense rows.
 *
 * NumPy's form is two matrix products, Z = X W and then X^T (P - Y): X is read twice and the
 * n x K logits and probabilities stream through memory between them. Here rows go R at a time
 * (R x registers-per-row = 8 accumulators, enough chains to fill both FMA units): W's row j
 * (K classes padded to KP lanes, one to four SIMD registers) is loaded once for the R rows'
 * logits, which stay in registers; their softmax residuals p - e_y are computed in SIMD lanes;
 * and G[j] += sum_r x_r[j] (p_r - e_y) runs while the R rows are still in L1.
 * X streams from memory once. A row costs 2 KP d multiply-adds, so from a few classes on the
 * kernel is bound by arithmetic, not memory (docs/performance.md, section 1).
 *
 * Layers and numerics as in cgrad.c: kernels over rows [lo, hi) for one dtype and padding; the
 * wrapper validates once, copies W into a zero-padded d x KP array, releases the GIL and adds
 * the gradient sums of each BLOCK of rows into a float64 total. f32x64: float32 rows, double
 * parameters, products and sums (the full-batch solvers' objective).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vmath.h"

#define BLOCK 256
#define MAX_CLASSES 16
/* the padded classes' logit: far below any real one, yet finite in float32 (e^(-PAD - top) is
 * clamped to e^-87 or e^-708, which adds nothing to a sum of at least 1) */
#define PAD_LOGIT 1e30

/*
 * Probabilities below the smallest normal number are made 0. The padded classes' are e^-87 (or
 * e^-708) over the sum, sub-normal as soon as the sum passes 1.4; every multiply-add of the
 * gradient update that reads a sub-normal takes a microcode assist on Intel cores (~100+
 * cycles): the pass over 3 classes ran at 3.3 us a row, 0.01x of a read. Such a p adds nothing
 * to a sum of normal numbers anyway.
 */
#define TINY_f32 FLT_MIN
#define TINY_f64 DBL_MIN

/* 32-byte vectors that may sit at any element boundary (W's rows, G's rows) */
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef double v4d __attribute__((vector_size(32), aligned(8)));

/* ------------------------------------------------------------------ 1. kernels */

/*
 * z[r][0, KP): R rows' logits, past K at about -HUGE (the padded bias), so that they drop out
 * of the maximum and their exponentials underflow to nothing beside the sum (>= 1). Becomes
 * p - e_y in place (rows r >= m: 0). Returns the rows' loss. All R rows' exponentials are
 * independent, so they overlap in the core instead of waiting on one another.
 */
#define DEFINE_RESIDUALS(T, MATH, R, KP)                                                            \
INLINE double residuals_##MATH##_##R##_##KP(T (*z)[KP], const int64_t *y, size_t m, size_t K,      \
                                            size_t *bad)                                            \
{                                                                                                   \
    double loss = 0.0;                                                                              \
    int64_t label[R];                                                                               \
    T sum[R];                                                                                       \
    _Pragma("GCC unroll 8")                                                                         \
    for (size_t r = 0; r < R; r++) {                                                                \
        int64_t yi = r < m ? y[r] : 0;                                                              \
        if ((uint64_t)yi >= K) *bad += 1, yi = 0;                                                   \
        label[r] = yi;                                                                              \
        T top = z[r][0];                                                                            \
        for (size_t k = 1; k < KP; k++) top = z[r][k] > top ? z[r][k] : top;                        \
        loss += r < m ? (double)top - (double)z[r][yi] : 0.0;                                       \
        T s = 0;                                                                                    \
        _Pragma("omp simd reduction(+:s)")                                                          \
        for (size_t k = 0; k < KP; k++) {                                                           \
            T e = exp_neg_##MATH(z[r][k] - top);                                                    \
            s += e;                                                                                 \
            z[r][k] = e;                                                                            \
        }                                                                                           \
        sum[r] = s;                                                                                 \
    }                                                                                               \
    for (size_t r = 0; r < R; r++) {                                                                \
        if (r >= m) {                                                                               \
            memset(z[r], 0, sizeof z[r]);                                                           \
            continue;                                                                               \
        }                                                                                           \
        loss += log((double)sum[r]);  /* loss = top + log sum - z_y */                              \
        T scale = (T)1 / sum[r];                                                                    \
        _Pragma("omp simd")                                                                         \
        for (size_t k = 0; k < KP; k++) {  /* sub-normal p: 0 (see TINY) */                        \
            T p = z[r][k] * scale;                                                                  \
            z[r][k] = p < (T)TINY_##MATH ? (T)0 : p;                                                \
        }                                                                                           \
        z[r][label[r]] -= (T)1;                                                                     \
    }                                                                                               \
    return loss;                                                                                    \
}

/*
 * V: the vector type; a row's KP lanes are NV of them; R rows at a time (8 vector accumulators:
 * enough independent multiply-add chains to fill both FMA units). Rows past hi repeat row i and
 * get a zero residual. A label outside [0, K) is counted in *bad (and read as 0), so the
 * wrapper can name it once the pass is over.
 */
#define DEFINE_KERNEL(TX, T, V, NV, KP, R, SUFFIX, MATH)                                            \
FAST static double softmax_##SUFFIX##_##NV(const TX *X, const int64_t *y, const T *W, const T *b, \
                                           size_t lo, size_t hi, size_t d, size_t K, T *G, T *gb,  \
                                           size_t *bad)                                             \
{                                                                                                   \
    enum { L = KP / NV };                                                                           \
    double loss = 0.0;                                                                              \
    for (size_t i = lo; i < hi; i += R) {                                                           \
        size_t m = hi - i < R ? hi - i : R;                                                         \
        const TX *x[R];                                                                             \
        for (size_t r = 0; r < R; r++) x[r] = X + (i + (r < m ? r : 0)) * d;                        \
        prefetch_ahead(x[0], R * d * sizeof(TX));                                                   \
        V z[R][NV];                                                                                 \
        _Pragma("GCC unroll 8")                                                                     \
        for (size_t r = 0; r < R; r++)                                                              \
            for (int v = 0; v < NV; v++) z[r][v] = *(const V *)(b + v * L);                         \
        for (size_t j = 0; j < d; j++) {                                                            \
            const V *wj = (const V *)(W + j * KP);                                                  \
            _Pragma("GCC unroll 8")                                                                 \
            for (size_t r = 0; r < R; r++) {                                                        \
                T a = (T)x[r][j];                                                                   \
                _Pragma("GCC unroll 4")                                                             \
                for (int v = 0; v < NV; v++) z[r][v] += a * wj[v];                                  \
            }                                                                                       \
        }                                                                                           \
        T lanes[R][KP];                                                                             \
        memcpy(lanes, z, sizeof lanes);                                                             \
        loss += residuals_##MATH##_##R##_##KP(lanes, y + i, m, K, bad);                             \
        memcpy(z, lanes, sizeof lanes);                                                             \
        for (size_t j = 0; j < d; j++) {                                                            \
            V *gj = (V *)(G + j * KP);                                                              \
            _Pragma("GCC unroll 4")                                                                 \
            for (int v = 0; v < NV; v++) {                                                          \
                V acc = gj[v];                                                                      \
                _Pragma("GCC unroll 8")                                                             \
                for (size_t r = 0; r < R; r++) acc += (T)x[r][j] * z[r][v];                         \
                gj[v] = acc;                                                                        \
            }                                                                                       \
        }                                                                                           \
        _Pragma("GCC unroll 8")                                                                     \
        for (size_t r = 0; r < R; r++)                                                              \
            for (int v = 0; v < NV; v++) *(V *)(gb + v * L) += z[r][v];                             \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_RESIDUALS(float, f32, 8, 8)
DEFINE_RESIDUALS(float, f32, 4, 16)
DEFINE_RESIDUALS(double, f64, 8, 4)
DEFINE_RESIDUALS(double, f64, 4, 8)
DEFINE_RESIDUALS(double, f64, 2, 16)
DEFINE_KERNEL(float, float, v8f, 1, 8, 8, f32, f32)
DEFINE_KERNEL(float, float, v8f, 2, 16, 4, f32, f32)
DEFINE_KERNEL(double, double, v4d, 1, 4, 8, f64, f64)
DEFINE_KERNEL(double, double, v4d, 2, 8, 4, f64, f64)
DEFINE_KERNEL(double, double, v4d, 4, 16, 2, f64, f64)
DEFINE_KERNEL(float, double, v4d, 1, 4, 8, f32x64, f64)
DEFINE_KERNEL(float, double, v4d, 2, 8, 4, f32x64, f64)
DEFINE_KERNEL(float, double, v4d, 4, 16, 2, f32x64, f64)

/* ------------------------------------------------------------------ 2. wrapper */

typedef double kernel(const void *, const int64_t *, const void *, const void *, size_t, size_t,
                      size_t, size_t, void *, void *, size_t *);

/* the kernel for the data's and parameters' dtypes and K, and its padded width KP */
static kernel *pick(char xt, char t, size_t K, size_t *KP)
{
    if (t == 'f') {
        *KP = K <= 8 ? 8 : 16;
        return (kernel *)(K <= 8 ? softmax_f32_1 : softmax_f32_2);
    }
    *KP = K <= 4 ? 4 : K <= 8 ? 8 : 16;
    if (xt == 'f')
        return (kernel *)(K <= 4 ? softmax_f32x64_1 : K <= 8 ? softmax_f32x64_2 : softmax_f32x64_4);
    return (kernel *)(K <= 4 ? softmax_f64_1 : K <= 8 ? softmax_f64_2 : softmax_f64_4);
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

static int acquire(PyObject *obj, Py_buffer *view, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) == 0) return 0;
    view->obj = NULL;
    PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s array", name, writable ? ", writable" : "");
    return -1;
}

/* the error of the arguments, or NULL; *xt, *t: X's and the parameters' dtypes */
static const char *check(Py_buffer *v, size_t K, int fit, char *xt, char *t)
{
    *xt = kind_of(&v[0]);
    *t = kind_of(&v[2]);
    if ((*xt != 'f' && *xt != 'd') || v[0].ndim != 2) return "X must be a 2-D float32 or float64 array";
    if ((*t != *xt && !(*xt == 'f' && *t == 'd')) || kind_of(&v[3]) != *t)
        return "params and grad must have X's dtype, or float64 with float32 X";
    if (K < 2 || K > MAX_CLASSES) return "the C softmax pass takes 2 to 16 classes";
    size_t n = (size_t)v[0].shape[0], P = (size_t)v[0].shape[1] * K + (fit ? K : 0);
    if ((size_t)(v[2].len / v[2].itemsize) != P || (size_t)(v[3].len / v[3].itemsize) != P)
        return "params and grad must hold d x K (+ K) values";
    if (kind_of(&v[1]) != 'q' || (size_t)(v[1].len / 8) != n) return "y must hold one int64 label per row";
    return NULL;
}

/* W (d x K, then K intercepts) into a d x KP array (zero-padded) and a KP bias */
static void pad(const char *w, size_t d, size_t K, size_t KP, size_t item, int fit, char *Wp, char *bp)
{
    memset(Wp, 0, d * KP * item);
    for (size_t j = 0; j < d; j++) memcpy(Wp + j * KP * item, w + j * K * item, K * item);
    for (size_t k = 0; k < KP; k++) {  /* classes past K: a logit no class falls below */
        double value = k >= K ? -PAD_LOGIT : fit ? (item == 4 ? ((const float *)w)[d * K + k]
                                                              : ((const double *)w)[d * K + k]) : 0.0;
        if (item == 4) ((float *)bp)[k] = (float)value;
        else ((double *)bp)[k] = value;
    }
}

/* sums of the padded block gradient (Gp, gbp) into the total (d x K, then K) */
static void add_block(const char *Gp, const char *gbp, size_t d, size_t K, size_t KP, char t,
                      int fit, double *total)
{
    for (size_t j = 0; j <= d; j++) {
        if (j == d && !fit) break;
        const char *row = j < d ? Gp + j * KP * (t == 'f' ? 4 : 8) : gbp;
        for (size_t k = 0; k < K; k++)
            total[j * K + k] += t == 'f' ? ((const float *)row)[k] : ((const double *)row)[k];
    }
}

static PyObject *py_loss_grad(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *obj[4];
    Py_ssize_t Kin;
    int fit;
    if (!PyArg_ParseTuple(args, "OOOOnp", &obj[0], &obj[1], &obj[2], &obj[3], &Kin, &fit)) return NULL;
    Py_buffer v[4] = {{0}};
    const char *names[4] = {"X", "y", "params", "grad"};
    PyObject *result = NULL;
    for (int i = 0; i < 4; i++)
        if (acquire(obj[i], &v[i], i == 3, names[i]) < 0) goto done;
    char xt, t;
    size_t K = Kin > 0 ? (size_t)Kin : 0;
    const char *err = check(v, K, fit, &xt, &t);
    if (err) {
        PyErr_SetString(PyExc_TypeError, err);
        goto done;
    }
    size_t n = (size_t)v[0].shape[0], d = (size_t)v[0].shape[1], KP, item = (size_t)v[2].itemsize;
    kernel *run = pick(xt, t, K, &KP);
    size_t P = d * K + (fit ? K : 0);
    double *total = PyMem_Calloc(P, sizeof(double));
    char *Wp = PyMem_Malloc((d + 1) * KP * item), *Gp = PyMem_Malloc((d + 1) * KP * item);
    if (!total || !Wp || !Gp) {
        PyErr_NoMemory();
        goto freed;
    }
    char *bp = Wp + d * KP * item, *gbp = Gp + d * KP * item;
    double loss = 0.0;
    size_t bad = 0;
    Py_BEGIN_ALLOW_THREADS
    pad(v[2].buf, d, K, KP, item, fit, Wp, bp);
    for (size_t lo = 0; lo < n; lo += BLOCK) {
        size_t hi = lo + BLOCK < n ? lo + BLOCK : n;
        memset(Gp, 0, (d + 1) * KP * item);
        loss += run(v[0].buf, v[1].buf, Wp, bp, lo, hi, d, K, Gp, gbp, &bad);
        add_block(Gp, gbp, d, K, KP, t, fit, total);
    }
    for (size_t j = 0; j < P; j++) {
        if (t == 'f') ((float *)v[3].buf)[j] = (float)total[j];
        else ((double *)v[3].buf)[j] = total[j];
    }
    Py_END_ALLOW_THREADS
    if (bad)
        PyErr_Format(PyExc_ValueError, "%zu labels are not class numbers in [0, %zu)", bad, K);
    else
        result = PyFloat_FromDouble(loss);
freed:
    PyMem_Free(total);
    PyMem_Free(Wp);
    PyMem_Free(Gp);
done:
    for (int i = 0; i < 4; i++)
        if (v[i].obj) PyBuffer_Release(&v[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"loss_grad", py_loss_grad, METH_VARARGS,
     "loss_grad(X, y, params, grad, n_classes, fit_intercept) -> loss sum\n\n"
     "Sum over rows of logsumexp(z) - z[y], z = x W + b (params: W row-major d x K, then b);\n"
     "writes the sum of its gradients into grad. 2 to 16 classes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_csoftmax", "One-pass softmax loss and gradient sums.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__csoftmax(void) { return PyModule_Create(&module); }
