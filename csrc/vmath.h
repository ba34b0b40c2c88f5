/*
 * What the C gradient kernels share (cgrad.c, csoftmax.c): the AVX2 clones, forced inlining, and
 * vectorisable exp and log1p for the residuals.
 */
#ifndef MPIREG_VMATH_H
#define MPIREG_VMATH_H
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
 * Vectorisable e^x for x <= 0 and log(1 + e) for e in [0, 1]: libm's scalar calls cost more
 * than the memory stream of a 100-feature row, so the logistic residuals of a block of rows
 * are computed in SIMD lanes with these (relative error a few ulp; tests hold them to NumPy).
 *   exp: x = n ln2 + r, |r| <= ln2/2; e^r by its Taylor series; 2^n put straight into the
 *        exponent bits. The "magic" constant 1.5 * 2^MANT rounds x / ln2 to the nearest integer
 *        and leaves that integer in the low bits of the sum, so no float-to-int conversion is
 *        needed (AVX2 has none for doubles).
 *   log1p: log(1 + e) = 2 atanh(t), t = e / (2 + e) in [0, 1/3], by its odd series in t.
 */
/* 1/k, exact to double precision: no division in the SIMD loops (gcc keeps x / k as written) */
static const double inverse[36] = {
    0, 1, 1. / 2, 1. / 3, 1. / 4, 1. / 5, 1. / 6, 1. / 7, 1. / 8, 1. / 9, 1. / 10, 1. / 11, 1. / 12,
    1. / 13, 1. / 14, 1. / 15, 1. / 16, 1. / 17, 1. / 18, 1. / 19, 1. / 20, 1. / 21, 1. / 22, 1. / 23,
    1. / 24, 1. / 25, 1. / 26, 1. / 27, 1. / 28, 1. / 29, 1. / 30, 1. / 31, 1. / 32, 1. / 33, 1. / 34, 1. / 35,
};

#define DEFINE_MATH(T, SUFFIX, U, MANT, BIAS, XMIN, MAGIC, EXP_TERMS, LOG_TERMS)                    \
INLINE T exp_neg_##SUFFIX(T x)                                                               \
{                                                                                                   \
    x = x < (T)XMIN ? (T)XMIN : x;                                                                  \
    T shifted = x * (T)1.4426950408889634 + (T)MAGIC;                                               \
    T n = shifted - (T)MAGIC;                                                                       \
    T r = (x - n * (T)0.693145751953125) - n * (T)1.4286068203094173e-06;                          \
    T p = (T)1;                                                                                     \
    for (int k = EXP_TERMS; k >= 1; k--) p = (T)1 + p * r * (T)inverse[k];                          \
    union { T f; U u; } pun = {shifted};  /* a union, not memcpy: GCC vectorises it for doubles */ \
    pun.u = (pun.u + (U)BIAS) << MANT;                                                              \
    return p * pun.f;                                                                               \
}                                                                                                   \
                                                                                                    \
INLINE T log1p_unit_##SUFFIX(T e)                                                            \
{                                                                                                   \
    T t = e / ((T)2 + e), t2 = t * t, s = (T)0;                                                     \
    for (int k = LOG_TERMS; k >= 0; k--) s = (T)inverse[2 * k + 1] + t2 * s;                       \
    return (T)2 * t * s;                                                                            \
}

DEFINE_MATH(float, f32, uint32_t, 23, 127, -87.0, 12582912.0, 7, 7)
DEFINE_MATH(double, f64, uint64_t, 52, 1023, -708.0, 6755399441055744.0, 13, 17)

#endif
