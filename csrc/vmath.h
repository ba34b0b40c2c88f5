/*
 * What the C gradient kernels share (cgrad.c, csoftmax.c): the AVX2 clones, forced inlining, and
 * vectorisable exp and log1p for the residuals.
 */
#ifndef MPIREG_VMATH_H
#define MPIREG_VMATH_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* An AVX-512 kernel (x86-64-v4) beside the clones, for the arithmetic-bound softmax pass: twice
 * the lanes and 32 vector registers. Picked at run time (cpu_has_avx512), never by a clone: the
 * linear and logistic passes are bound by memory, and their v4 clones measured slower. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define HAVE_AVX512 1
#define AVX512 __attribute__((target("arch=x86-64-v4")))
static inline int cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
           && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}
#else
#define HAVE_AVX512 0
static inline int cpu_has_avx512(void) { return 0; }
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

/*
 * The linear and logistic kernels prefetch into L2 only (prefetcht1) on AMD hosts. On the Zen 4
 * EPYC, every variant built side by side (docs/performance.md section 1), prefetcht0 made float64
 * rows of 100 features slower than no software prefetch at all (48-54 against 31-35 ns a row);
 * prefetcht1 took 34-38 there, 21-22 ns a float32 row of 100 features (t0 24-26, none 23-24),
 * and 3-6 % less than t0 at 1,000 features. Set by _cgrad's and _csoftmax's inits (for softmax,
 * on rows of SOFTMAX_L2_ROW_BYTES and more: softmax_blocked.h).
 */
static int prefetch_to_l2;

/* a line into L2 only (l2), or into every level */
INLINE void prefetch_to(const void *p, int l2)
{
    if (l2) __builtin_prefetch(p, 0, 2);
    else __builtin_prefetch(p, 0, PREFETCH_LOCALITY);
}

INLINE void prefetch_line(const void *p) { prefetch_to(p, prefetch_to_l2); }

/*
 * Whether the long-row update asks for the row `next` bytes on. On AMD hosts rows of 6 KiB and
 * more go without: there the Zen 4's own streamers kept up, and the prefetches only took load
 * slots. Side by side: float64 rows of 2,000 features 1.17-1.20x, float32 1.01-1.04x; float64
 * rows of 900 and 1,000 features 1.05-1.08x, float32 rows of 2,000 (8,000 bytes) 1.05-1.07x;
 * float32 rows of 1,000 (4,000 bytes) ran 0.91-0.93x without, and rows of 4.5-6 KiB within 3 %
 * either way.
 */
#define AMD_UNPREFETCHED_ROW_BYTES 6144
INLINE int prefetch_next_row(size_t next)
{
    return !prefetch_to_l2 || next < AMD_UNPREFETCHED_ROW_BYTES;
}

/* the hosts whose kernels are tuned apart: L2 prefetches (above), 16 softmax segments */
static inline int cpu_is_amd(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

/* ask for [x + PREFETCH_BYTES, + bytes): a prefetch never faults, even past X's end */
INLINE void prefetch_ahead(const void *x, size_t bytes)
{
    for (size_t o = 0; PREFETCH_BYTES && o < bytes; o += 64)
        prefetch_line((const void *)((uintptr_t)x + PREFETCH_BYTES + o));
}

/*
 * Where the prefetches go depends on the row length (benchmarks/bench_gradient.py, ratio to a
 * streaming read of the same X):
 *   short rows - each stream's next rows (streams.h), asked for at once before the dot
 *                products: linear at 100 features went from ~0.6 to ~0.9-1.0.
 *   long rows  - four rows outrun the out-of-order window, and memory idles while the update
 *                works from L1; so the update asks, 64 bytes at a time, for the same bytes of
 *                each stream's next row: 1,000 features went from ~0.5 to ~0.6-0.8, with no loss
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

/* 1/k!, the Taylor coefficients of e^r */
static const double inverse_factorial[19] = {
    1. / 1, 1. / 1, 1. / 2, 1. / 6, 1. / 24, 1. / 120, 1. / 720, 1. / 5040, 1. / 40320, 1. / 362880,
    1. / 3628800, 1. / 39916800, 1. / 479001600, 1. / 6227020800, 1. / 87178291200,
    1. / 1307674368000, 1. / 20922789888000, 1. / 355687428096000, 1. / 6402373705728000,
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
DEFINE_VECTOR(v16f32, float, int32_t, uint32_t, 16)
DEFINE_VECTOR(v8f64, double, int64_t, uint64_t, 8)

/* unaligned loads of a vector from any row or parameter; the _as_ ones widen float32 to double */
INLINE v8f32 load_v8f32(const float *x) { v8f32 v; memcpy(&v, x, sizeof v); return v; }
INLINE v16f32 load_v16f32(const float *x) { v16f32 v; memcpy(&v, x, sizeof v); return v; }
INLINE v4f64 load_v4f64(const double *x) { v4f64 v; memcpy(&v, x, sizeof v); return v; }
INLINE v8f64 load_v8f64(const double *x) { v8f64 v; memcpy(&v, x, sizeof v); return v; }
INLINE v4f64 load_v4f32_as_v4f64(const float *x)
{
    v4f32 v;
    memcpy(&v, x, sizeof v);
    return __builtin_convertvector(v, v4f64);
}
INLINE v8f64 load_v8f32_as_v8f64(const float *x) { return __builtin_convertvector(load_v8f32(x), v8f64); }

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
    V p = zero + (T)inverse_factorial[EXP_TERMS];  /* Horner: one multiply-add a term */           \
    for (int k = EXP_TERMS - 1; k >= 0; k--) p = (T)inverse_factorial[k] + p * r;                    \
    V##_bits bits = ((V##_bits)shifted + (TU)BIAS) << MANT;                                         \
    return select_##V(below, zero, p * (V)bits);                                                    \
}                                                                                                   \
                                                                                                    \
INLINE V vlog1p_unit_##V(V e)                                                                       \
{                                                                                                   \
    V t = e / ((T)2 + e), t2 = t * t, s = {0};                                                      \
    for (int k = LOG_TERMS; k >= 0; k--) s = (T)inverse[2 * k + 1] + t2 * s;                       \
    return (T)2 * t * s;                                                                            \
}                                                                                                   \
                                                                                                    \
/* log x for finite x >= 1: x = 2^n m, m in [1, 2); n read from the exponent bits, and turned */   \
/* into a float by the same "magic" trick as exp's (2^MANT + n has n in its low bits) */           \
INLINE V vlog_##V(V x)                                                                              \
{                                                                                                   \
    const V zero = {0}, magic = zero + (T)MAGIC / (T)1.5;                                           \
    V##_bits bits = (V##_bits)x, low = (((V##_bits){0} + (TU)1) << MANT) - (TU)1;                  \
    V n = (V)((bits >> MANT) | (V##_bits)magic) - magic - (T)BIAS;                                  \
    V m = (V)((bits & low) | ((V##_bits){0} + ((TU)BIAS << MANT)));                                  \
    return n * (T)0.6931471805599453 + vlog1p_unit_##V(m - (T)1);                                   \
}

DEFINE_VMATH(v4f32, float, uint32_t, 23, 127, XMIN_f32, 12582912.0, 7, 7)
DEFINE_VMATH(v4f64, double, uint64_t, 52, 1023, XMIN_f64, 6755399441055744.0, 13, 17)
DEFINE_VMATH(v16f32, float, uint32_t, 23, 127, XMIN_f32, 12582912.0, 7, 7)
DEFINE_VMATH(v8f64, double, uint64_t, 52, 1023, XMIN_f64, 6755399441055744.0, 13, 17)

#endif
