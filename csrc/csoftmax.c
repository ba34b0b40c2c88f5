/*
 * mpireg._csoftmax: loss and gradient sums of multinomial (softmax) regression, K <= 16 classes,
 * in one pass over dense rows.
 *
 * NumPy's form is two matrix products, Z = X W and then X^T (P - Y): X is read twice and the
 * n x K logits and probabilities stream through memory between them. Here four rows at a time
 * are taken through three classes a pass (the features in the SIMD lanes, as in cgrad.c's
 * linear kernels): the four rows' dot products with the classes' weights, then, for every
 * class at once, their softmax residuals p - e_y in SIMD lanes, then G[k] += sum_r (p_rk -
 * [y_r = k]) x_r while the rows are in L1. X streams from memory once. W and G are kept K x d
 * (the wrapper transposes them) so that a class's weights are contiguous.
 *
 * Why not the classes in the lanes: that layout (W's row j, K classes padded to 8 or 16 lanes,
 * broadcast x[r][j]) pays for the padding: 2 x 8 x d multiply-adds a row for 3 classes against
 * 2 x 3 x d / 8 here. It ran at 0.36-0.42x of a streaming read where this runs at 0.52-0.61x
 * (100 features, float32, 3 classes, both built side by side; docs/performance.md section 1).
 * With K classes a row costs 2 K d multiply-adds, so from ~5 classes on the pass is bound by
 * arithmetic rather than by memory.
 *
 * Layers and numerics as in cgrad.c: kernels over rows [lo, hi) for one dtype; the wrapper
 * validates once, transposes W, releases the GIL and adds the gradient sums of each BLOCK of
 * rows into a float64 total. f32x64: float32 rows, double parameters, products and sums (the
 * full-batch solvers' objective).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vmath.h"

#define BLOCK 256
#define MAX_CLASSES 16
#define MAX_PADDED 18  /* classes padded to a multiple of three */

/* ------------------------------------------------------------------ 1. kernels */

/*
 * z[k][r]: the logits of four rows (lanes) for each class k < KC (K real ones, then padding);
 * becomes p - e_y in place (rows r >= m: 0). Returns the rows' loss, top + log sum e^(z - top)
 * - z_y. A label outside [0, K) is counted in *bad (and read as 0), so the wrapper can name it
 * once the pass is over.
 */
#define DEFINE_RESIDUALS(T, V, SUFFIX)                                                              \
INLINE double residuals_##SUFFIX(T (*z)[4], const int64_t *y, size_t m, size_t K, size_t KC,      \
                                  size_t *bad)                                                      \
{                                                                                                   \
    V e[MAX_PADDED], top, sum = {0};  /* loads and maximum in one loop: as two loops, 3 classes */ \
    memcpy(&top, z[0], sizeof top);    /* ran at 0.49x of a read against 0.59x (side by side) */    \
    for (size_t k = 1; k < KC; k++) {                                                               \
        memcpy(&e[k], z[k], sizeof e[k]);                                                           \
        top = select_##V(e[k] > top, e[k], top);                                                    \
    }                                                                                               \
    memcpy(&e[0], z[0], sizeof e[0]);                                                               \
    for (size_t k = 0; k < KC; k++) {                                                               \
        e[k] = vexp_neg_##V(e[k] - top);                                                            \
        sum += e[k];                                                                                \
    }                                                                                               \
    double loss = 0.0;                                                                              \
    int64_t label[4];                                                                               \
    for (size_t r = 0; r < 4; r++) {                                                                \
        int64_t yi = r < m ? y[r] : 0;                                                              \
        if ((uint64_t)yi >= K) *bad += 1, yi = 0;                                                   \
        label[r] = yi;                                                                              \
        if (r < m) loss += (double)top[r] + log((double)sum[r]) - (double)z[yi][r];                 \
    }                                                                                               \
    V scale = (T)1 / sum;                                                                           \
    for (size_t k = 0; k < KC; k++) {                                                               \
        V p = e[k] * scale;                                                                         \
        memcpy(z[k], &p, sizeof p);                                                                 \
    }                                                                                               \
    for (size_t r = 0; r < 4; r++) {                                                                \
        if (r < m) z[label[r]][r] -= (T)1;                                                          \
        else for (size_t k = 0; k < KC; k++) z[k][r] = (T)0;                                        \
    }                                                                                               \
    return loss;                                                                                    \
}

/*
 * Three classes a pass over the four rows: 4 x 3 vector accumulators (of 16 registers), so each
 * load of a row chunk serves three classes (one class a pass re-loaded the rows K times and ran
 * at 0.21x of a read with 10 classes). The wrapper pads the classes to a multiple of three with
 * zero weights and a bias far below any logit, whose p is exactly 0.
 * V holds L lanes of T; LOAD_X converts a chunk of the rows' TX into it.
 */
#define CLASSES_A_PASS 3
#define TAIL 8  /* Wt's and Gt's rows are padded to a multiple of 8 values, any vector's lanes */

#define DEFINE_PASSES(TX, T, V, SUFFIX, LOAD_X)                                                     \
INLINE T hsum_##SUFFIX(V v)                                                                         \
{                                                                                                   \
    T s = v[0];                                                                                     \
    for (size_t l = 1; l < sizeof(V) / sizeof(T); l++) s += v[l];                                   \
    return s;                                                                                       \
}                                                                                                   \
                                                                                                    \
/* the L values of row r from column j: the row's own, or past its last whole TAIL values the */ \
/* zero-padded copy in tail (a scalar tail ran 10 classes at 0.18x of a read, this at 0.25x) */     \
INLINE V chunk_##SUFFIX(const TX *x[4], const TX (*tail)[TAIL], int r, size_t j, size_t d)         \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T) };                                                             \
    return LOAD_X(j + L <= d ? x[r] + j : tail[r] + (j - d / TAIL * TAIL));                         \
}                                                                                                   \
                                                                                                    \
/* z[c][r] += x_r . w_c for three classes (rows of w, dp apart) */                                  \
INLINE void dots3_##SUFFIX(const TX *x[4], const TX (*tail)[TAIL], const T *w, size_t d, size_t dp, \
                           T (*z)[4])                                                               \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T), C = CLASSES_A_PASS };                                         \
    V acc[C][4] = {{{0}}};                                                                          \
    for (size_t j = 0; j < dp; j += L) {                                                            \
        V xv[4];                                                                                    \
        for (int r = 0; r < 4; r++) xv[r] = chunk_##SUFFIX(x, tail, r, j, d);                       \
        for (int c = 0; c < C; c++) {                                                               \
            V wc;                                                                                   \
            memcpy(&wc, w + c * dp + j, sizeof wc);                                                 \
            for (int r = 0; r < 4; r++) acc[c][r] += xv[r] * wc;                                    \
        }                                                                                           \
    }                                                                                               \
    for (int c = 0; c < C; c++)                                                                     \
        for (int r = 0; r < 4; r++) z[c][r] += hsum_##SUFFIX(acc[c][r]);                            \
}                                                                                                   \
                                                                                                    \
/* g_c += sum_r p[c][r] x_r for three classes; ahead: also ask for the next four rows */           \
INLINE void update3_##SUFFIX(const TX *x[4], const TX (*tail)[TAIL], T (*p)[4], size_t d,          \
                             size_t dp, T *g, int ahead)                                            \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T), C = CLASSES_A_PASS };                                         \
    for (size_t j = 0; j < dp; j += L) {                                                            \
        if (ahead)                                                                                  \
            for (int r = 0; r < 4; r++) __builtin_prefetch(x[r] + j + 4 * d, 0, PREFETCH_LOCALITY);  \
        V xv[4];                                                                                    \
        for (int r = 0; r < 4; r++) xv[r] = chunk_##SUFFIX(x, tail, r, j, d);                       \
        for (int c = 0; c < C; c++) {                                                               \
            V gc;                                                                                   \
            memcpy(&gc, g + c * dp + j, sizeof gc);                                                 \
            gc += (xv[0] * p[c][0] + xv[1] * p[c][1]) + (xv[2] * p[c][2] + xv[3] * p[c][3]);        \
            memcpy(g + c * dp + j, &gc, sizeof gc);                                                 \
        }                                                                                           \
    }                                                                                               \
}

INLINE v8f32 load_v8f32(const float *x) { v8f32 v; memcpy(&v, x, sizeof v); return v; }
INLINE v4f64 load_v4f64(const double *x) { v4f64 v; memcpy(&v, x, sizeof v); return v; }
INLINE v4f64 load_v4f32_as_v4f64(const float *x)
{
    v4f32 v;
    memcpy(&v, x, sizeof v);
    return __builtin_convertvector(v, v4f64);
}

DEFINE_PASSES(float, float, v8f32, f32, load_v8f32)
DEFINE_PASSES(double, double, v4f64, f64, load_v4f64)
DEFINE_PASSES(float, double, v4f64, f32x64, load_v4f32_as_v4f64)

/* Wt, Gt: KC x dp (d padded with zeros to a multiple of TAIL); b, gb: KC; the K classes padded
 * to KC, a multiple of three. Rows past hi repeat row i and get zero residuals. Long rows: the
 * first pass's update asks for the next four rows (vmath.h). */
#define DEFINE_KERNEL(TX, T, SUFFIX, SHAPE, AHEAD)                                                  \
FAST static double softmax_##SHAPE##_##SUFFIX(const TX *X, const int64_t *y, const T *Wt,          \
                                              const T *b, size_t lo, size_t hi, size_t d, size_t K, \
                                              T *Gt, T *gb, size_t *bad)                            \
{                                                                                                   \
    enum { C = CLASSES_A_PASS };                                                                    \
    double loss = 0.0;                                                                              \
    size_t KC = (K + C - 1) / C * C;  /* padded; the bounds are the wrapper's, told to gcc */      \
    KC = KC < C ? C : KC > MAX_PADDED ? MAX_PADDED : KC;                                            \
    size_t dp = (d + TAIL - 1) / TAIL * TAIL, full = d / TAIL * TAIL;                               \
    for (size_t i = lo; i < hi; i += 4) {                                                           \
        size_t m = hi - i < 4 ? hi - i : 4;                                                         \
        const TX *x0 = X + i * d;                                                                   \
        const TX *x[4] = {x0, m > 1 ? x0 + d : x0, m > 2 ? x0 + 2 * d : x0, m > 3 ? x0 + 3 * d : x0}; \
        prefetch_##SHAPE(x0, 4 * d * sizeof(TX));                                                   \
        TX tail[4][TAIL] = {{0}};                                                                   \
        for (int r = 0; r < 4 && full < d; r++)                                                     \
            memcpy(tail[r], x[r] + full, (d - full) * sizeof(TX));                                  \
        T z[MAX_PADDED][4];                                                                         \
        for (size_t k = 0; k < KC; k += C) {                                                        \
            for (int c = 0; c < C; c++)                                                             \
                for (int r = 0; r < 4; r++) z[k + c][r] = b[k + c];                                 \
            dots3_##SUFFIX(x, (const TX (*)[TAIL])tail, Wt + k * dp, d, dp, z + k);                 \
        }                                                                                           \
        loss += residuals_##SUFFIX(z, y + i, m, K, KC, bad);                                        \
        for (size_t k = 0; k < KC; k += C) {                                                        \
            update3_##SUFFIX(x, (const TX (*)[TAIL])tail, z + k, d, dp, Gt + k * dp,                \
                             AHEAD && k == 0);                                                      \
            for (int c = 0; c < C; c++)                                                             \
                gb[k + c] += (z[k + c][0] + z[k + c][1]) + (z[k + c][2] + z[k + c][3]);             \
        }                                                                                           \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_RESIDUALS(float, v4f32, f32)
DEFINE_RESIDUALS(double, v4f64, f64)
#define residuals_f32x64 residuals_f64
DEFINE_KERNEL(float, float, f32, short, 0)
DEFINE_KERNEL(float, float, f32, long, 1)
DEFINE_KERNEL(double, double, f64, short, 0)
DEFINE_KERNEL(double, double, f64, long, 1)
DEFINE_KERNEL(float, double, f32x64, short, 0)
DEFINE_KERNEL(float, double, f32x64, long, 1)

/* ------------------------------------------------------------------ 2. wrapper */

typedef double kernel(const void *, const int64_t *, const void *, const void *, size_t, size_t,
                      size_t, size_t, void *, void *, size_t *);

/* the kernel for the data's and parameters' dtypes and the row length */
static kernel *pick(char xt, char t, size_t d)
{
    int long_rows = d * (xt == 'f' ? 4 : 8) >= LONG_ROW_BYTES;
    if (t == 'f') return (kernel *)(long_rows ? softmax_long_f32 : softmax_short_f32);
    if (xt == 'f') return (kernel *)(long_rows ? softmax_long_f32x64 : softmax_short_f32x64);
    return (kernel *)(long_rows ? softmax_long_f64 : softmax_short_f64);
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

/* W (d x K row-major, then K intercepts) into Wt (KC x d) and b (KC): classes K..KC-1 get zero
 * weights and a bias no logit falls below, so their p is exactly 0 (vmath.h's exp_neg) */
#define PAD_LOGIT 1e30  /* finite in float32 */

static void transpose_in(const char *w, size_t d, size_t K, size_t KC, size_t item, int fit, char *Wt,
                         char *b)
{
    size_t dp = (d + TAIL - 1) / TAIL * TAIL;
    memset(Wt, 0, KC * dp * item);
    for (size_t j = 0; j < d; j++)
        for (size_t k = 0; k < K; k++)
            memcpy(Wt + (k * dp + j) * item, w + (j * K + k) * item, item);
    for (size_t k = 0; k < KC; k++) {
        double value = k >= K ? -PAD_LOGIT : !fit ? 0.0 : item == 4 ? ((const float *)w)[d * K + k]
                                                                    : ((const double *)w)[d * K + k];
        if (item == 4) ((float *)b)[k] = (float)value;
        else ((double *)b)[k] = value;
    }
}

/* a block's sums (Gt: rows dp apart, gb: K) into the total (d x K, then K) */
static void add_block(const char *Gt, const char *gb, size_t d, size_t K, char t, int fit, double *total)
{
    size_t dp = (d + TAIL - 1) / TAIL * TAIL;
    for (size_t k = 0; k < K; k++) {
        for (size_t j = 0; j < d; j++)
            total[j * K + k] += t == 'f' ? ((const float *)Gt)[k * dp + j]
                                         : ((const double *)Gt)[k * dp + j];
        if (fit) total[d * K + k] += t == 'f' ? ((const float *)gb)[k] : ((const double *)gb)[k];
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
    size_t n = (size_t)v[0].shape[0], d = (size_t)v[0].shape[1], item = (size_t)v[2].itemsize;
    kernel *run = pick(xt, t, d);
    size_t P = d * K + (fit ? K : 0);
    double *total = PyMem_Calloc(P, sizeof(double));
    size_t KC = (K + CLASSES_A_PASS - 1) / CLASSES_A_PASS * CLASSES_A_PASS;
    size_t dp = (d + TAIL - 1) / TAIL * TAIL;
    char *Wt = PyMem_Malloc((dp + 1) * KC * item), *Gt = PyMem_Malloc((dp + 1) * KC * item);
    if (!total || !Wt || !Gt) {
        PyErr_NoMemory();
        goto freed;
    }
    char *b = Wt + dp * KC * item, *gb = Gt + dp * KC * item;
    double loss = 0.0;
    size_t bad = 0;
    Py_BEGIN_ALLOW_THREADS
    transpose_in(v[2].buf, d, K, KC, item, fit, Wt, b);
    for (size_t lo = 0; lo < n; lo += BLOCK) {
        size_t hi = lo + BLOCK < n ? lo + BLOCK : n;
        memset(Gt, 0, (dp + 1) * KC * item);
        loss += run(v[0].buf, v[1].buf, Wt, b, lo, hi, d, K, Gt, gb, &bad);
        add_block(Gt, gb, d, K, t, fit, total);
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
    PyMem_Free(Wt);
    PyMem_Free(Gt);
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
