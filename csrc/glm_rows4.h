/*
 * The one-pass kernels of the linear and logistic models (cgrad.c's layer 1): plain C over rows
 * [lo, hi) for one dtype, generated for float, double and float32 rows with double parameters
 * (f32x64) by macros; they never allocate or validate. Rows go four at a time, one from each of
 * the block's four streams (streams.h), and the chain dot products -> residuals -> update runs
 * while they sit in L1.
 */
#ifndef MPIREG_GLM_ROWS4_H
#define MPIREG_GLM_ROWS4_H
#include "streams.h"
#include "vmath.h"

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
/* log(1 + e^z) - y z without overflow; the sigmoid from the same exponential */                    \
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
INLINE void dots_##SUFFIX(const TX *x[4], const T *w, size_t d, T z[4])                             \
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
INLINE void update_##SUFFIX(const TX *x[4], const T r[4], size_t lo, size_t hi, T *g)               \
{                                                                                                   \
    const TX *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];                                        \
    T r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];                                                   \
    _Pragma("omp simd")                                                                             \
    for (size_t j = lo; j < hi; j++) g[j] += (r0 * x0[j] + r1 * x1[j]) + (r2 * x2[j] + r3 * x3[j]); \
}                                                                                                   \
                                                                                                    \
INLINE void update_short_##SUFFIX(const TX *x[4], const T r[4], size_t d, size_t next, T *g)        \
{                                                                                                   \
    (void)next;                                                                                     \
    update_##SUFFIX(x, r, 0, d, g);                                                                 \
}                                                                                                   \
                                                                                                    \
/* each 64 bytes of the update asks for the same bytes of the rows `next` bytes on */               \
INLINE void update_long_##SUFFIX(const TX *x[4], const T r[4], size_t d, size_t next, T *g)         \
{                                                                                                   \
    const size_t line = 64 / sizeof(TX);                                                            \
    const int ask = prefetch_next_row(next);                                                        \
    for (size_t j = 0; j < d; j += line) {                                                          \
        for (int k = 0; ask && k < 4; k++)                                                          \
            prefetch_line((const void *)((uintptr_t)(x[k] + j) + next));                            \
        update_##SUFFIX(x, r, j, j + line < d ? j + line : d, g);                                   \
    }                                                                                               \
}

/* step t's four rows: their pointers and labels; the same stream's next rows asked for */
#define DEFINE_ROWS(TX, T, SUFFIX, SHAPE)                                                           \
INLINE size_t rows_##SHAPE##_##SUFFIX(row_order o, size_t t, const TX *X, const T *Y, size_t d,     \
                                      const TX *x[4], T y[4])                                       \
{                                                                                                   \
    size_t row[4], m = row_order_rows(o, t, row);                                                   \
    for (int k = 0; k < 4; k++) x[k] = X + row[k] * d, y[k] = Y[row[k]];                            \
    for (size_t k = 0; k < 4; k += o.per) prefetch_##SHAPE(x[k], o.per * d * sizeof(TX));           \
    return m;                                                                                       \
}

#define DEFINE_KERNEL(TX, T, SUFFIX, MODEL, SHAPE)                                                  \
FAST static double MODEL##_##SHAPE##_##SUFFIX(const TX *X, const T *Y, const T *w, size_t lo,       \
                                              size_t hi, size_t d, int fit, T *g)                   \
{                                                                                                   \
    double loss = 0.0;                                                                              \
    T b = fit ? w[d] : (T)0;                                                                        \
    row_order o = row_order_of(lo, hi, 4, GLM_STREAMS);                                             \
    for (size_t t = 0; t < row_order_steps(o); t++) {                                               \
        const TX *x[4];                                                                             \
        T y[4], r[4] = {b, b, b, b};                                                                \
        size_t m = rows_##SHAPE##_##SUFFIX(o, t, X, Y, d, x, y);                                    \
        dots_##SUFFIX(x, w, d, r);                                                                  \
        if (m == 4) {  /* a constant count: the residuals of four rows vectorise */                 \
            loss += MODEL##_r_##SUFFIX(r, y, 4);                                                    \
        } else {  /* rows past hi repeat a row, and get a zero residual */                          \
            loss += MODEL##_r_##SUFFIX(r, y, m);                                                    \
            for (size_t k = m; k < 4; k++) r[k] = (T)0;                                             \
        }                                                                                           \
        update_##SHAPE##_##SUFFIX(x, r, d, o.per * d * sizeof(TX), g);                              \
        if (fit) g[d] += (r[0] + r[1]) + (r[2] + r[3]);                                             \
    }                                                                                               \
    return loss;                                                                                    \
}

/* the residuals of m <= 4 rows in place (rows past m: 0); returns their loss */
#define DEFINE_FINISH(T, SUFFIX, MODEL)                                                             \
INLINE double finish_##MODEL##_##SUFFIX(T z[4], const T *y, size_t m)                               \
{                                                                                                   \
    if (m == 4) return MODEL##_r_##SUFFIX(z, y, 4);  /* a constant count: they vectorise */         \
    double loss = MODEL##_r_##SUFFIX(z, y, m);                                                      \
    for (size_t k = m; k < 4; k++) z[k] = (T)0;                                                     \
    return loss;                                                                                    \
}

/*
 * The same, pipelined: each step takes the next four rows' dot products before this step's
 * update and their residuals after it, so the out-of-order core overlaps the residuals'
 * dependent chain (exp, log1p, two divisions) with the update and memory stays busy. For the
 * logistic model on short rows: 0.74-0.82 -> 0.82-0.87 of a read in float64, 0.55-0.62 ->
 * 0.60-0.67 with float32 rows and float64 parameters, float32 within noise (100 features,
 * built side by side). Not for the linear model, which has no chain to hide (0.83-0.90 against
 * 0.86-0.91), nor for long rows, whose update asks for the next rows, which this order has
 * already read (logistic 0.96-1.01 -> 0.80-0.82 at 1,000 features).
 */
#define DEFINE_PIPELINED_KERNEL(TX, T, SUFFIX, MODEL, SHAPE)                                        \
FAST static double MODEL##_##SHAPE##_##SUFFIX(const TX *X, const T *Y, const T *w, size_t lo,       \
                                              size_t hi, size_t d, int fit, T *g)                   \
{                                                                                                   \
    if (lo >= hi) return 0.0;                                                                       \
    T b = fit ? w[d] : (T)0;                                                                        \
    row_order o = row_order_of(lo, hi, 4, GLM_STREAMS);                                             \
    size_t steps = row_order_steps(o), next_bytes = o.per * d * sizeof(TX);                         \
    const TX *x[4], *next[4];                                                                       \
    T y[4], r[4] = {b, b, b, b};                                                                    \
    size_t m = rows_##SHAPE##_##SUFFIX(o, 0, X, Y, d, x, y);                                        \
    dots_##SUFFIX(x, w, d, r);                                                                      \
    double loss = finish_##MODEL##_##SUFFIX(r, y, m);                                               \
    for (size_t t = 0; t < steps; t++) {                                                            \
        int ahead = t + 1 < steps;                                                                  \
        T z[4] = {b, b, b, b};                                                                      \
        if (ahead) {                                                                                \
            m = rows_##SHAPE##_##SUFFIX(o, t + 1, X, Y, d, next, y);                                \
            dots_##SUFFIX(next, w, d, z);                                                           \
        }                                                                                           \
        update_##SHAPE##_##SUFFIX(x, r, d, next_bytes, g);                                          \
        if (fit) g[d] += (r[0] + r[1]) + (r[2] + r[3]);                                             \
        if (!ahead) break;                                                                          \
        loss += finish_##MODEL##_##SUFFIX(z, y, m);                                                 \
        memcpy(x, next, sizeof x);                                                                  \
        memcpy(r, z, sizeof r);                                                                     \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_RESIDUALS(float, v4f32, f32)
DEFINE_RESIDUALS(double, v4f64, f64)
DEFINE_STEPS(float, float, f32)
DEFINE_STEPS(double, double, f64)
DEFINE_STEPS(float, double, f32x64)
/* float32 rows, double parameters and sums: the full-batch solvers' objective, whose line
 * searches need more than float32's seven digits (fit/fullbatch.py) */
#define linear_r_f32x64 linear_r_f64
#define logistic_r_f32x64 logistic_r_f64
#define DEFINE_KERNELS(TX, T, SUFFIX)                                                               \
DEFINE_ROWS(TX, T, SUFFIX, short)                                                                   \
DEFINE_ROWS(TX, T, SUFFIX, long)                                                                    \
DEFINE_KERNEL(TX, T, SUFFIX, linear, short)                                                         \
DEFINE_KERNEL(TX, T, SUFFIX, linear, long)                                                          \
DEFINE_FINISH(T, SUFFIX, logistic)                                                                  \
DEFINE_PIPELINED_KERNEL(TX, T, SUFFIX, logistic, short)                                             \
DEFINE_KERNEL(TX, T, SUFFIX, logistic, long)
DEFINE_KERNELS(float, float, f32)
DEFINE_KERNELS(double, double, f64)
DEFINE_KERNELS(float, double, f32x64)

#undef DEFINE_RESIDUALS
#undef DEFINE_STEPS
#undef DEFINE_KERNEL
#undef DEFINE_ROWS
#undef DEFINE_FINISH
#undef DEFINE_PIPELINED_KERNEL
#undef DEFINE_KERNELS
#endif
