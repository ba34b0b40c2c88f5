/*
 * mpireg._csoftmax: loss and gradient sums of multinomial (softmax) regression, K <= 16 classes,
 * in one pass over dense rows.
 *
 * NumPy's form is two matrix products, Z = X W and then X^T (P - Y): X is read twice and the
 * n x K logits and probabilities stream through memory between them. Here each row's logits,
 * its residuals p - e_y and its share of the gradient G += x (p - e_y) are computed while the
 * row is in L1, so X streams from memory once. W and G are kept K x d (the wrapper transposes
 * them) so that a class's weights are contiguous. Two passes do it:
 *   rows4   (softmax_rows4.h)   four rows, three classes at a time; AVX2 and SSE2 clones.
 *   blocked (softmax_blocked.h) sixteen rows a step in register tiles; AVX-512 only, and
 *           picked on every AVX-512 host (it measured faster there; docs/performance.md
 *           section 1).
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

#define BLOCK 256
#define MAX_CLASSES 16

#include "buffers.h"
#include "softmax_blocked.h"
#include "softmax_rows4.h"
#include "vmath.h"

/* ------------------------------------------------------------------ 2. wrapper */

typedef double kernel(const void *, const int64_t *, const void *, const void *, size_t, size_t,
                      size_t, size_t, void *, void *, size_t *, size_t);

/* a pass and the layout of Wt and Gt it reads: classes padded to a multiple of `classes`,
 * rows to a multiple of `lanes` */
typedef struct {
    kernel *run;
    size_t classes, lanes;
    int shifted;  /* takes the logits less the last class's (shift_in), fills no G of the last */
} pass;

enum isa { AUTO = -1, ROWS4 = 0, BLOCKED = 1 };

static pass rows4(char xt, char t, size_t d)
{
    int long_rows = d * (xt == 'f' ? 4 : 8) >= LONG_ROW_BYTES;
    kernel *run;
    if (t == 'f') run = (kernel *)(long_rows ? softmax_rows4_long_f32 : softmax_rows4_short_f32);
    else if (xt == 'f') run = (kernel *)(long_rows ? softmax_rows4_long_f32x64 : softmax_rows4_short_f32x64);
    else run = (kernel *)(long_rows ? softmax_rows4_long_f64 : softmax_rows4_short_f64);
    return (pass){run, ROWS4_CLASSES, ROWS4_TAIL, 0};
}

/* the pass for the dtypes, the classes and this CPU. AUTO: blocked on AVX-512 hosts (it measured
 * faster there for every class count, docs/performance.md section 1), rows4 elsewhere */
static pass pick(char xt, char t, size_t d, size_t K, enum isa isa)
{
    if (isa == AUTO) isa = cpu_has_avx512() ? BLOCKED : ROWS4;
#if HAVE_AVX512
    if (isa == BLOCKED) {  /* its narrow shape for up to four classes, wide from five */
#define SHAPE(name) (kernel *)(K <= 4 ? name##_narrow : name##_wide)
        if (t == 'f') return (pass){SHAPE(softmax_blocked_avx512_f32), 1, 16, 1};
        if (xt == 'f') return (pass){SHAPE(softmax_blocked_avx512_f32x64), 1, 8, 1};
        return (pass){SHAPE(softmax_blocked_avx512_f64), 1, 8, 1};
#undef SHAPE
    }
#endif
    return rows4(xt, t, d);
}

/*
 * The segments the blocked pass takes a block's rows from (streams.h), measured per CPU: on AMD
 * Zen 4, 16 against 4 took 3 classes at 100 features from 37-38 to 32 ns a row (float32), 89 to
 * 57 (float64), 43 to 40 (float64 parameters), and 10 classes at 1,000 features from 556 to 516
 * (docs/performance.md section 1). Sapphire Rapids keeps the 4 it was measured with.
 */
static size_t blocked_streams(void) { return cpu_is_amd() ? 16 : 4; }

/* "auto", "avx2" (rows4: its AVX2 clone, or SSE2) or "avx512" (blocked), or -2 and an error */
static int parse_isa(const char *name)
{
    if (!name || !strcmp(name, "auto")) return AUTO;
    if (!strcmp(name, "avx2")) return ROWS4;
    if (!strcmp(name, "avx512") && cpu_has_avx512()) return BLOCKED;
    PyErr_Format(PyExc_ValueError, "isa must be 'auto', 'avx2'%s, not '%s'",
                 cpu_has_avx512() ? " or 'avx512'" : "", name);
    return -2;
}

/* the error of the arguments, or NULL; *xt, *t: X's and the parameters' dtypes */
static const char *check(Py_buffer *v, size_t K, int fit, char *xt, char *t)
{
    *xt = buffer_kind(&v[0]);
    *t = buffer_kind(&v[2]);
    if ((*xt != 'f' && *xt != 'd') || v[0].ndim != 2) return "X must be a 2-D float32 or float64 array";
    if ((*t != *xt && !(*xt == 'f' && *t == 'd')) || buffer_kind(&v[3]) != *t)
        return "params and grad must have X's dtype, or float64 with float32 X";
    if (K < 2 || K > MAX_CLASSES) return "the C softmax pass takes 2 to 16 classes";
    size_t n = (size_t)v[0].shape[0], P = (size_t)v[0].shape[1] * K + (fit ? K : 0);
    if ((size_t)(v[2].len / v[2].itemsize) != P || (size_t)(v[3].len / v[3].itemsize) != P)
        return "params and grad must hold d x K (+ K) values";
    if (buffer_kind(&v[1]) != 'q' || (size_t)(v[1].len / 8) != n) return "y must hold one int64 label per row";
    return NULL;
}

/* W (d x K row-major, then K intercepts) into Wt (KC x dp) and b (KC): classes K..KC-1 get zero
 * weights and a bias no logit falls below, so their p is exactly 0 (vmath.h's exp_neg) */
#define PAD_LOGIT 1e30  /* finite in float32 */

static void transpose_in(const char *w, size_t d, size_t dp, size_t K, size_t KC, size_t item,
                         int fit, char *Wt, char *b)
{
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

/*
 * Softmax is unchanged when every logit loses the same number, and a row's residuals p - e_y sum
 * to 0. So a pass can take K - 1 dot products a row, with weights w_k - w_last (whose logit is
 * then 0), and update K - 1 classes of G: the last is minus the sum of the others
 * (last_from_rest). A pass's multiply-adds fall from 2 K d a row to 2 (K - 1) d: a third fewer
 * at 3 classes.
 */
#define DEFINE_SHIFT_IN(T)                                                                          \
static void shift_in_##T(T *Wt, T *b, size_t dp, size_t K)                                         \
{                                                                                                   \
    const T *last = Wt + (K - 1) * dp;                                                              \
    for (size_t k = 0; k + 1 < K; k++) {                                                            \
        for (size_t j = 0; j < dp; j++) Wt[k * dp + j] -= last[j];                                  \
        b[k] -= b[K - 1];                                                                           \
    }                                                                                               \
}
DEFINE_SHIFT_IN(float)
DEFINE_SHIFT_IN(double)

/* the last class's weight gradient (total: d x K row-major) from the others' */
static void last_from_rest(double *total, size_t d, size_t K)
{
    for (size_t j = 0; j < d; j++) {
        double rest = 0.0;
        for (size_t k = 0; k + 1 < K; k++) rest += total[j * K + k];
        total[j * K + K - 1] = -rest;
    }
}

/* a block's sums (Gt: rows dp apart, gb: K) into the total (d x K, then K) */
static void add_block(const char *Gt, const char *gb, size_t d, size_t dp, size_t K, char t, int fit,
                      double *total)
{
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
    const char *isa_name = NULL;
    Py_ssize_t streams = 0;
    if (!PyArg_ParseTuple(args, "OOOOnp|sn", &obj[0], &obj[1], &obj[2], &obj[3], &Kin, &fit, &isa_name,
                          &streams))
        return NULL;
    int isa = parse_isa(isa_name);
    if (isa < AUTO) return NULL;
    if (streams < 0 || streams > 64 || (streams & (streams - 1))) {
        PyErr_Format(PyExc_ValueError, "streams must be 0 (this CPU's) or a power of two up to 64, not %zd",
                     streams);
        return NULL;
    }
    if (!streams) streams = (Py_ssize_t)blocked_streams();
    Py_buffer v[4] = {{0}};
    const char *names[4] = {"X", "y", "params", "grad"};
    PyObject *result = NULL;
    for (int i = 0; i < 4; i++)
        if (buffer_acquire(obj[i], &v[i], i == 3, names[i]) < 0) goto done;
    char xt, t;
    size_t K = Kin > 0 ? (size_t)Kin : 0;
    const char *err = check(v, K, fit, &xt, &t);
    if (err) {
        PyErr_SetString(PyExc_TypeError, err);
        goto done;
    }
    size_t n = (size_t)v[0].shape[0], d = (size_t)v[0].shape[1], item = (size_t)v[2].itemsize;
    pass chosen = pick(xt, t, d, K, (enum isa)isa);
    size_t P = d * K + (fit ? K : 0);
    double *total = PyMem_Calloc(P, sizeof(double));
    size_t KC = (K + chosen.classes - 1) / chosen.classes * chosen.classes;
    size_t dp = (d + chosen.lanes - 1) / chosen.lanes * chosen.lanes;
    char *Wt = PyMem_Malloc((dp + 1) * KC * item), *Gt = PyMem_Malloc((dp + 1) * KC * item);
    if (!total || !Wt || !Gt) {
        PyErr_NoMemory();
        goto freed;
    }
    char *b = Wt + dp * KC * item, *gb = Gt + dp * KC * item;
    double loss = 0.0;
    size_t bad = 0;
    Py_BEGIN_ALLOW_THREADS
    transpose_in(v[2].buf, d, dp, K, KC, item, fit, Wt, b);
    if (chosen.shifted && item == 4) shift_in_float((float *)Wt, (float *)b, dp, K);
    if (chosen.shifted && item == 8) shift_in_double((double *)Wt, (double *)b, dp, K);
    for (size_t lo = 0; lo < n; lo += BLOCK) {
        size_t hi = lo + BLOCK < n ? lo + BLOCK : n;
        memset(Gt, 0, (dp + 1) * KC * item);
        loss += chosen.run(v[0].buf, v[1].buf, Wt, b, lo, hi, d, K, Gt, gb, &bad, (size_t)streams);
        add_block(Gt, gb, d, dp, K, t, fit, total);
    }
    if (chosen.shifted) last_from_rest(total, d, K);
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
    buffer_release(v, 4);
    return result;
}

static PyObject *py_isas(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return cpu_has_avx512() ? Py_BuildValue("(ss)", "avx2", "avx512") : Py_BuildValue("(s)", "avx2");
}

static PyMethodDef methods[] = {
    {"loss_grad", py_loss_grad, METH_VARARGS,
     "loss_grad(X, y, params, grad, n_classes, fit_intercept, isa='auto', streams=0) -> loss sum\n\n"
     "Sum over rows of logsumexp(z) - z[y], z = x W + b (params: W row-major d x K, then b);\n"
     "writes the sum of its gradients into grad. 2 to 16 classes. isa: 'auto' (the pass that\n"
     "measured faster on this CPU for these classes and dtypes), or one of isas(). streams: the\n"
     "segments the blocked pass reads a block from at once, a power of two (0: this CPU's)."},
    {"isas", py_isas, METH_NOARGS,
     "isas() -> the passes this CPU runs: 'avx2' (four rows at a time; its AVX2 or SSE2 clone),\n"
     "'avx512' (blocked, sixteen rows a step)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_csoftmax", "One-pass softmax loss and gradient sums.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__csoftmax(void)
{
    prefetch_to_l2 = cpu_is_amd();
    return PyModule_Create(&module);
}
