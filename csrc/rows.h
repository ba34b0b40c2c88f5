/*
 * The steps of a one-pass gradient over dense rows, four rows at a time (cgrad.c's linear and
 * logistic kernels; csoftmax.c's, once per class): the four rows' dot products with one weight
 * vector, and the update g += r0 x0 + r1 x1 + r2 x2 + r3 x3, with the prefetches that keep
 * memory busy while they run. TX is the rows' type, T the parameters' and sums'.
 */
#ifndef MPIREG_ROWS_H
#define MPIREG_ROWS_H
#include "vmath.h"

/*
 * Rows go four at a time: their four dot products share each load of w; their residuals are
 * computed together in SIMD lanes; and the update g += r0 x0 + r1 x1 + r2 x2 + r3 x3 reuses the
 * four rows while they are still in L1 and loads and stores g once per four rows instead of
 * once per row. X comes from memory once.
 *
 * The chain dot -> residual -> update keeps the core from running ahead to the next rows'
 * loads, so software prefetches keep memory requests in flight. Where depends on the row length
 * (benchmarks/bench_gradient.py, ratio to a streaming read of the same X):
 *   short rows - the next PREFETCH_BYTES, asked for at once before the dot products: linear
 *                at 100 features went from ~0.6 to ~0.9-1.0.
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

DEFINE_STEPS(float, float, f32)
DEFINE_STEPS(double, double, f64)
DEFINE_STEPS(float, double, f32x64)

#endif
