/*
 * What the C gradient kernels share (cgrad.c, csoftmax.c): the AVX2 clones, forced inlining, and
 * vectorisable exp and log1p for the residuals.
 */
#ifndef MPIREG_VMATH_H
#define MPIREG_VMATH_H
#include <stddef.h>
#include <stdint.h>

/* An AVX2+FMA clone of each kernel, chosen at load time on CPUs that have it (GCC's ifunc).
 * x86-64-v3 is dispatched on the CPU's features; "arch=haswell" was dispatched on the CPU's
 * model, so AMD machines, this project's among them, ran the baseline SSE2 clone. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define FAST __attribute__((target_clones("arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FAST __attribute__((target_clones("arch=haswell", "default")))
#else
#define FAST
#endif

/* Helpers are inlined into each clone, so they are compiled for its instruction set too (an
 * out-of-line helper would run the baseline SSE2 code under the AVX2 kernel). */
#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/*
 * Rows are prefetched PREFETCH_BYTES ahead into every cache level (prefetcht0). Not
 * prefetchnta: on the Intel Xeon hosts it stalled the kernels, 88 % of their samples on the
 * prefetch (a non-temporal request holds a fill buffer), and the one-pass linear kernel ran at
 * 0.42x of a streaming read against 0.92x with prefetcht0 2 KiB ahead (4 KiB: 0.60x; measured
 * with every variant built side by side, docs/performance.md section 1). The AMD EPYC hosts
 * showed no such stall.
 */
#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 2048
#endif
#ifndef PREFETCH_LOCALITY
#define PREFETCH_LOCALITY 3
#endif

/* ask for [x + PREFETCH_BYTES, + bytes): a prefetch never faults, even past X's end */
INLINE void prefetch_ahead(const void *x, size_t bytes)
{
    for (size_t o = 0; PREFETCH_BYTES && o < bytes; o += 64)
        __builtin_prefetch((const void *)((uintptr_t)x + PREFETCH_BYTES + o), 0, PREFETCH_LOCALITY);
}

/*
 * Where the prefetches go depends on the row length (benchmarks/bench_gradient.py, ratio to a
 * streaming read of the same X):
 *   short rows - the next rows, asked for at once before the dot products: linear at 100
 *                features went from ~0.6 to ~0.9-1.0.
 *   long rows  - four rows outrun the out-of-order window, and memory idles while the update
 *                works from L1; so the update asks, 64 bytes at a time, for the same bytes of
 *                the next four rows: 1,000 features went from ~0.5 to ~0.6-0.8, with no loss
 *                when X sits in cache. (On short rows this form measured slower, hence two.)
 */
#define LONG_ROW_BYTES 2048

/* short rows: ask for the next rows before the dot products of rows x0.. (bytes long) */
INLINE void prefetch_short(const void *x0, size_t bytes) { prefetch_ahead(x0, bytes); }

/* long rows: nothing before the dot products; their update asks instead */
INLINE void prefetch_long(const void *x0, size_t bytes) { (void)x0, (void)bytes; }

/*
 * Vectorisable e^x for x <= 0 and log(1 + e) for e in [0, 1]: libm's scalar calls cost more
 * than the memory stream of a 100-feature row, so the logistic residuals of a block of rows
 * are computed in SIMD lanes with these (relative error a few ulp; tests hold them to NumPy).
 *   exp: x = n ln2 + r, |r| <= ln2/2; e^r by its Taylor series; 2^n put straight into the
 *        exponent bits. The "magic" constant 1.5 * 2^MANT rounds x / ln2 to the nearest integer
 *        and leaves that integer in the low bits of the sum, so no float-to-int conversion is
 *        needed (AVX2 has none for doubles).
 *   log1p: log(1 + e) = 2 atanh(t), t = e / (2 + e) in [0, 1/3], by its odd series in t.
 */
/*
 * e^x below XMIN is 0, exactly. Near the end of the range (e^-87 in float32) the result and
 * what it is scaled by next (a softmax probability: / up to 16 classes; a gradient: x p) are
 * sub-normal, and on Intel cores every operation on a sub-normal takes a microcode assist of
 * ~100+ cycles: the softmax pass over 3 classes, whose 5 padded classes sit at e^-87, ran at
 * 3.3 us a row (0.01x of a read). At e^-64 (1.6e-28) or e^-600 the term is far below the
 * rounding of any sum it joins, and x p stays normal for |x| > 1e-9 (or 1e-40).
 */
#define XMIN_f32 -64.0
#define XMIN_f64 -600.0

/* 1/k, exact to double precision: no division in the SIMD loops (gcc keeps x / k as written) */
static const double inverse[36] = {
    0, 1, 1. / 2, 1. / 3, 1. / 4, 1. / 5, 1. / 6, 1. / 7, 1. / 8, 1. / 9, 1. / 10, 1. / 11, 1. / 12,
    1. / 13, 1. / 14, 1. / 15, 1. / 16, 1. / 17, 1. / 18, 1. / 19, 1. / 20, 1. / 21, 1. / 22, 1. / 23,
    1. / 24, 1. / 25, 1. / 26, 1. / 27, 1. / 28, 1. / 29, 1. / 30, 1. / 31, 1. / 32, 1. / 33, 1. / 34, 1. / 35,
};

/*
 * Both are written on GCC's vector types: as scalar functions called in a loop over rows, GCC
 * (12) vectorised none of those loops, and the one-pass logistic kernel ran at 0.47-0.75x of a
 * read. A vector also works in the baseline clone (two SSE2 halves for four doubles). C has no
 * ?: on vectors: a comparison gives a lane mask (-1 or 0), and select() blends.
 */
/* element-aligned, so that a vector may be loaded from any row or parameter (unaligned loads) */
#define DEFINE_VECTOR(V, T, TI, TU, LANES)                                                          \
typedef T V __attribute__((vector_size(LANES * sizeof(T)), aligned(sizeof(T))));                    \
typedef TI V##_mask __attribute__((vector_size(LANES * sizeof(T)), aligned(sizeof(T))));            \
typedef TU V##_bits __attribute__((vector_size(LANES * sizeof(T)), aligned(sizeof(T))));

DEFINE_VECTOR(v4f32, float, int32_t, uint32_t, 4)
DEFINE_VECTOR(v8f32, float, int32_t, uint32_t, 8)
DEFINE_VECTOR(v4f64, double, int64_t, uint64_t, 4)

#define DEFINE_VMATH(V, T, TU, MANT, BIAS, XMIN, MAGIC, EXP_TERMS, LOG_TERMS)                       \
INLINE V select_##V(V##_mask mask, V a, V b)                                                        \
{                                                                                                   \
    return (V)((mask & (V##_mask)a) | (~mask & (V##_mask)b));                                       \
}                                                                                                   \
                                                                                                    \
INLINE V vexp_neg_##V(V x)                                                                          \
{                                                                                                   \
    const V zero = {0}, xmin = zero + (T)XMIN, magic = zero + (T)MAGIC;                             \
    V##_mask below = x < xmin;                                                                      \
    x = select_##V(below, xmin, x);                                                                 \
    V shifted = x * (T)1.4426950408889634 + magic;                                                  \
    V n = shifted - magic;                                                                          \
    V r = (x - n * (T)0.693145751953125) - n * (T)1.4286068203094173e-06;                          \
    V p = zero + (T)1;                                                                              \
    for (int k = EXP_TERMS; k >= 1; k--) p = (T)1 + p * r * (T)inverse[k];                          \
    V##_bits bits = ((V##_bits)shifted + (TU)BIAS) << MANT;                                         \
    return select_##V(below, zero, p * (V)bits);                                                    \
}                                                                                                   \
                                                                                                    \
INLINE V vlog1p_unit_##V(V e)                                                                       \
{                                                                                                   \
    V t = e / ((T)2 + e), t2 = t * t, s = {0};                                                      \
    for (int k = LOG_TERMS; k >= 0; k--) s = (T)inverse[2 * k + 1] + t2 * s;                       \
    return (T)2 * t * s;                                                                            \
}

DEFINE_VMATH(v4f32, float, uint32_t, 23, 127, XMIN_f32, 12582912.0, 7, 7)
DEFINE_VMATH(v4f64, double, uint64_t, 52, 1023, XMIN_f64, 6755399441055744.0, 13, 17)

#endif
