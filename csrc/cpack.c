/*
 * mpireg._cpack: fused gradient packing for the hot loop.
 *
 * Layers (after scikit-learn's _loss):
 *   1. kernels   - plain C over one chunk of n elements: copy with a scale, float32 <-> fp16/bf16
 *                  with round-to-nearest-even, and the fp16/bf16 "sum into" used as a reduction.
 *                  They never allocate, never validate, never touch Python.
 *   2. wrappers  - pack()/unpack()/sum_into(): take Python buffers, validate every dtype, size and
 *                  contiguity once, then release the GIL and run the kernels array by array.
 *   3. Python    - mpireg/comm/packing.py chooses this module or its NumPy twin (identical bits).
 *
 * Units: `count` is always elements, `nbytes` always bytes; they are never passed for each other.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "buffers.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_F16C_DISPATCH 1
#endif

enum codec { CODEC_NONE = 0, CODEC_FP16 = 1, CODEC_BF16 = 2 };

/* ------------------------------------------------------------------ 1. kernels */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* float32 -> IEEE binary16, round to nearest even (NumPy's npy_floatbits_to_halfbits). */
static inline uint16_t f32_to_f16_bits(uint32_t f)
{
    uint16_t h_sgn = (uint16_t)((f & 0x80000000u) >> 16);
    uint32_t f_exp = f & 0x7f800000u, f_sig;
    if (f_exp >= 0x47800000u) {                       /* overflow, inf or NaN */
        if (f_exp == 0x7f800000u && (f & 0x007fffffu)) {
            uint16_t ret = (uint16_t)(0x7c00u + ((f & 0x007fffffu) >> 13));
            if (ret == 0x7c00u) ret++;                /* keep it a NaN */
            return (uint16_t)(h_sgn + ret);
        }
        return (uint16_t)(h_sgn + 0x7c00u);
    }
    if (f_exp <= 0x38000000u) {                       /* half subnormal or zero */
        if (f_exp < 0x33000000u) return h_sgn;
        f_exp >>= 23;
        f_sig = 0x00800000u + (f & 0x007fffffu);
        /* the shift may drop up to 11 bits: consult them before deciding a tie */
        int tie_even = ((f_sig >> (113 - f_exp)) & 0x00003fffu) == 0x00001000u && !(f & 0x000007ffu);
        f_sig >>= (113 - f_exp);
        if (!tie_even) f_sig += 0x00001000u;
        return (uint16_t)(h_sgn + (uint16_t)(f_sig >> 13));
    }
    uint16_t h_exp = (uint16_t)((f_exp - 0x38000000u) >> 13);
    f_sig = f & 0x007fffffu;
    if ((f_sig & 0x00003fffu) != 0x00001000u) f_sig += 0x00001000u;
    return (uint16_t)(h_sgn + (uint16_t)((f_sig >> 13) + h_exp)); /* a carry into the exponent is right */
}

static inline uint32_t f16_to_f32_bits(uint16_t h)
{
    uint32_t f_sgn = ((uint32_t)h & 0x8000u) << 16;
    uint16_t h_exp = h & 0x7c00u;
    if (h_exp == 0) {                                 /* zero or subnormal */
        uint16_t h_sig = h & 0x03ffu;
        if (!h_sig) return f_sgn;
        h_sig <<= 1;
        while (!(h_sig & 0x0400u)) { h_sig <<= 1; h_exp++; }
        return f_sgn + (((uint32_t)(127 - 15 - h_exp)) << 23) + (((uint32_t)(h_sig & 0x03ffu)) << 13);
    }
    if (h_exp == 0x7c00u) return f_sgn + 0x7f800000u + (((uint32_t)(h & 0x03ffu)) << 13);
    return f_sgn + (((uint32_t)(h & 0x7fffu) + 0x1c000u) << 13);
}

/* bfloat16 is the top half of a float32: round to nearest even on the dropped half. */
static inline uint16_t f32_to_bf16_bits(uint32_t u)
{
    /* both results computed, one selected: no branch, so the loop vectorises */
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t quiet_nan = (u >> 16) | 0x0040u;
    return (uint16_t)(((u & 0x7fffffffu) > 0x7f800000u) ? quiet_nan : rounded);
}

static void copy_scale_f32(const float *restrict src, float *restrict dst, size_t n, float s)
{
    if (s == 1.0f) { memcpy(dst, src, n * sizeof(float)); return; }
    for (size_t i = 0; i < n; i++) dst[i] = src[i] * s;
}

static void copy_scale_f64(const double *restrict src, double *restrict dst, size_t n, double s)
{
    if (s == 1.0) { memcpy(dst, src, n * sizeof(double)); return; }
    for (size_t i = 0; i < n; i++) dst[i] = src[i] * s;
}

static int have_f16c = 0;

#ifdef HAVE_F16C_DISPATCH
__attribute__((target("avx,f16c")))
static size_t f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n, float s)
{
    size_t i = 0;
    __m256 scale = _mm256_set1_ps(s);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(src + i), scale);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
    return i;
}

__attribute__((target("avx,f16c")))
static size_t f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n, float s)
{
    size_t i = 0;
    __m256 scale = _mm256_set1_ps(s);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(v, scale));
    }
    return i;
}
#endif

static void f32_to_f16(const float *src, uint16_t *dst, size_t n, float s)
{
    size_t i = 0;
#ifdef HAVE_F16C_DISPATCH
    if (have_f16c) i = f32_to_f16_f16c(src, dst, n, s);
#endif
    for (; i < n; i++) dst[i] = f32_to_f16_bits(f32_bits(src[i] * s));
}

static void f16_to_f32(const uint16_t *src, float *dst, size_t n, float s)
{
    size_t i = 0;
#ifdef HAVE_F16C_DISPATCH
    if (have_f16c) i = f16_to_f32_f16c(src, dst, n, s);
#endif
    for (; i < n; i++) dst[i] = bits_f32(f16_to_f32_bits(src[i])) * s;
}

static int have_avx2 = 0;

#ifdef HAVE_F16C_DISPATCH
/* The same rounding as f32_to_bf16_bits, eight at a time. */
__attribute__((target("avx2")))
static size_t f32_to_bf16_avx2(const float *src, uint16_t *dst, size_t n, float s)
{
    const __m256 scale = _mm256_set1_ps(s);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i magnitude = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i quiet = _mm256_set1_epi32(0x0040);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(src + i), scale));
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), odd), 16);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, magnitude), inf);
        __m256i result = _mm256_blendv_epi8(rounded, _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet), nan);
        /* eight 32-bit values below 2^16 -> eight 16-bit words (packus works per 128-bit lane) */
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(result, result), 0xD8);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_castsi256_si128(packed));
    }
    return i;
}
#endif

static void f32_to_bf16(const float *restrict src, uint16_t *restrict dst, size_t n, float s)
{
    size_t i = 0;
#ifdef HAVE_F16C_DISPATCH
    if (have_avx2) i = f32_to_bf16_avx2(src, dst, n, s);
#endif
    for (; i < n; i++) dst[i] = f32_to_bf16_bits(f32_bits(src[i] * s));
}

static void bf16_to_f32(const uint16_t *restrict src, float *restrict dst, size_t n, float s)
{
    for (size_t i = 0; i < n; i++) dst[i] = bits_f32((uint32_t)src[i] << 16) * s;
}

/* dst[i] = round(float(dst[i]) + float(src[i])): a reduction on the wire format. */
static void sum_f16(const uint16_t *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = f32_to_f16_bits(f32_bits(bits_f32(f16_to_f32_bits(dst[i])) + bits_f32(f16_to_f32_bits(src[i]))));
}

static void sum_bf16(const uint16_t *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = f32_to_bf16_bits(f32_bits(bits_f32((uint32_t)dst[i] << 16) + bits_f32((uint32_t)src[i] << 16)));
}

/* ------------------------------------------------------------------ 2. wrappers */

static int parse_codec(const char *name, int *codec)
{
    if (!strcmp(name, "none")) *codec = CODEC_NONE;
    else if (!strcmp(name, "fp16")) *codec = CODEC_FP16;
    else if (!strcmp(name, "bf16")) *codec = CODEC_BF16;
    else {
        PyErr_Format(PyExc_ValueError, "compression must be 'none', 'fp16' or 'bf16', got '%s'", name);
        return -1;
    }
    return 0;
}

typedef struct {
    Py_buffer *views;
    Py_ssize_t n;
} BufferList;

static void release_list(BufferList *list)
{
    for (Py_ssize_t i = 0; i < list->n; i++) PyBuffer_Release(&list->views[i]);
    PyMem_Free(list->views);
    list->views = NULL;
    list->n = 0;
}

/* Acquire every array as a C-contiguous buffer of float32 (or float64 when allowed). */
static int acquire_list(PyObject *seq_obj, int writable, int allow_f64, BufferList *list, char *kind,
                        Py_ssize_t *total_count)
{
    PyObject *seq = PySequence_Fast(seq_obj, "arrays must be a sequence of buffers");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    list->views = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Py_buffer));
    list->n = 0;
    *total_count = 0;
    *kind = 0;
    if (!list->views) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        char name[40];
        snprintf(name, sizeof name, "arrays[%zd]", i);
        if (buffer_acquire(PySequence_Fast_GET_ITEM(seq, i), &list->views[i], writable, name) < 0)
            goto fail;
        list->n = i + 1;
        char k = buffer_kind(&list->views[i]);
        if (k != 'f' && !(k == 'd' && allow_f64)) {
            PyErr_Format(PyExc_TypeError, "arrays[%zd] must be float32%s, got format '%s'", i,
                         allow_f64 ? " or float64" : " (fp16/bf16 compress float32 only)",
                         list->views[i].format ? list->views[i].format : "B");
            goto fail;
        }
        if (*kind && k != *kind) {
            PyErr_Format(PyExc_TypeError, "arrays[%zd] is %s but arrays[0] is %s: pack one dtype at a time",
                         i, k == 'f' ? "float32" : "float64", *kind == 'f' ? "float32" : "float64");
            goto fail;
        }
        *kind = k;
        *total_count += list->views[i].len / list->views[i].itemsize;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    release_list(list);
    return -1;
}

/* Check the flat buffer holds `count` elements of the wire type for `codec` and `kind`. */
static int check_flat(const Py_buffer *flat, int codec, char kind, Py_ssize_t count, const char *name)
{
    char want = codec == CODEC_NONE ? kind : 'H';
    char got = buffer_kind(flat);
    if (got != want) {
        PyErr_Format(PyExc_TypeError, "%s must hold %s elements for compression '%s', got format '%s'",
                     name, want == 'f' ? "float32" : want == 'd' ? "float64" : "16-bit",
                     codec == CODEC_NONE ? "none" : codec == CODEC_FP16 ? "fp16" : "bf16",
                     flat->format ? flat->format : "B");
        return -1;
    }
    Py_ssize_t have = flat->len / flat->itemsize;
    if (have < count) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd elements, the arrays need %zd", name, have, count);
        return -1;
    }
    return 0;
}

static void pack_one(const void *src, void *dst, size_t n, int codec, char kind, double scale)
{
    if (codec == CODEC_FP16) f32_to_f16(src, dst, n, (float)scale);
    else if (codec == CODEC_BF16) f32_to_bf16(src, dst, n, (float)scale);
    else if (kind == 'f') copy_scale_f32(src, dst, n, (float)scale);
    else copy_scale_f64(src, dst, n, scale);
}

static void unpack_one(const void *src, void *dst, size_t n, int codec, char kind, double scale)
{
    if (codec == CODEC_FP16) f16_to_f32(src, dst, n, (float)scale);
    else if (codec == CODEC_BF16) bf16_to_f32(src, dst, n, (float)scale);
    else if (kind == 'f') copy_scale_f32(src, dst, n, (float)scale);
    else copy_scale_f64(src, dst, n, scale);
}

static PyObject *run_packing(PyObject *arrays, PyObject *flat_obj, double scale, const char *codec_name,
                             int packing)
{
    int codec;
    if (parse_codec(codec_name, &codec) < 0) return NULL;
    BufferList list;
    char kind;
    Py_ssize_t count;
    if (acquire_list(arrays, !packing, codec == CODEC_NONE, &list, &kind, &count) < 0) return NULL;
    Py_buffer flat;
    if (buffer_acquire(flat_obj, &flat, packing, packing ? "out" : "buffer") < 0) {
        release_list(&list);
        return NULL;
    }
    if (list.n && check_flat(&flat, codec, kind, count, packing ? "out" : "buffer") < 0) {
        PyBuffer_Release(&flat);
        release_list(&list);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    char *cursor = flat.buf;
    for (Py_ssize_t i = 0; i < list.n; i++) {
        size_t n = (size_t)(list.views[i].len / list.views[i].itemsize);
        if (packing) pack_one(list.views[i].buf, cursor, n, codec, kind, scale);
        else unpack_one(cursor, list.views[i].buf, n, codec, kind, scale);
        cursor += n * (size_t)flat.itemsize;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&flat);
    release_list(&list);
    return PyLong_FromSsize_t(count);
}

static PyObject *py_pack(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *kwlist[] = {"arrays", "out", "scale", "compression", NULL};
    PyObject *arrays, *out;
    double scale = 1.0;
    const char *codec = "none";
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|ds", kwlist, &arrays, &out, &scale, &codec))
        return NULL;
    return run_packing(arrays, out, scale, codec, 1);
}

static PyObject *py_unpack(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *kwlist[] = {"buffer", "arrays", "scale", "compression", NULL};
    PyObject *arrays, *buffer;
    double scale = 1.0;
    const char *codec = "none";
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|ds", kwlist, &buffer, &arrays, &scale, &codec))
        return NULL;
    return run_packing(arrays, buffer, scale, codec, 0);
}

static PyObject *py_sum_into(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *kwlist[] = {"src", "dst", "compression", NULL};
    PyObject *src_obj, *dst_obj;
    const char *codec_name;
    int codec;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOs", kwlist, &src_obj, &dst_obj, &codec_name))
        return NULL;
    if (parse_codec(codec_name, &codec) < 0) return NULL;
    if (codec == CODEC_NONE) {
        PyErr_SetString(PyExc_ValueError, "sum_into reduces fp16/bf16 wire buffers; add floats with NumPy");
        return NULL;
    }
    Py_buffer views[2] = {{0}}, *src = &views[0], *dst = &views[1];
    if (buffer_acquire(src_obj, src, 0, "src") < 0 || buffer_acquire(dst_obj, dst, 1, "dst") < 0) {
        buffer_release(views, 2);
        return NULL;
    }
    if (buffer_kind(src) != 'H' || buffer_kind(dst) != 'H' || src->len != dst->len) {
        PyErr_Format(PyExc_ValueError, "src and dst must be 16-bit buffers of one length, got %zd and %zd bytes",
                     src->len, dst->len);
        buffer_release(views, 2);
        return NULL;
    }
    size_t n = (size_t)(src->len / 2);
    Py_BEGIN_ALLOW_THREADS
    if (codec == CODEC_FP16) sum_f16(src->buf, dst->buf, n);
    else sum_bf16(src->buf, dst->buf, n);
    Py_END_ALLOW_THREADS
    buffer_release(views, 2);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"pack", (PyCFunction)(void (*)(void))py_pack, METH_VARARGS | METH_KEYWORDS,
     "pack(arrays, out, scale=1.0, compression='none') -> count\n\n"
     "Copy float32/float64 arrays, each times `scale`, one after another into `out`;\n"
     "with 'fp16'/'bf16' convert float32 to 16 bits (round to nearest even)."},
    {"unpack", (PyCFunction)(void (*)(void))py_unpack, METH_VARARGS | METH_KEYWORDS,
     "unpack(buffer, arrays, scale=1.0, compression='none') -> count\n\nThe inverse of pack."},
    {"sum_into", (PyCFunction)(void (*)(void))py_sum_into, METH_VARARGS | METH_KEYWORDS,
     "sum_into(src, dst, compression): dst += src on fp16/bf16 wire buffers (float32 arithmetic)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cpack", "Fused gradient packing.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cpack(void)
{
#ifdef HAVE_F16C_DISPATCH
    __builtin_cpu_init();
    have_f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
    have_avx2 = __builtin_cpu_supports("avx2");
#endif
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "HAVE_F16C", have_f16c) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
