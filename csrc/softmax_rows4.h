/*
 * The four-row softmax pass (csoftmax.c's kernel for AVX2 and SSE2 hosts, and for up to three
 * classes everywhere): four rows at a time through three classes a pass, the features in the
 * SIMD lanes (as in cgrad.c's linear kernels). The four rows' dot products with the classes'
 * weights, then, for every class at once, their softmax residuals p - e_y in SIMD lanes, then
 * G[k] += sum_r (p_rk - [y_r = k]) x_r while the rows are in L1.
 *
 * Why not the classes in the lanes: that layout (W's row j, K classes padded to 8 or 16 lanes,
 * broadcast x[r][j]) pays for the padding: 2 x 8 x d multiply-adds a row for 3 classes against
 * 2 x 3 x d / 8 here. It ran at 0.36-0.42x of a streaming read where this runs at 0.52-0.61x
 * (100 features, float32, 3 classes, both built side by side; docs/performance.md section 1).
 *
 * Layout (the wrapper's transpose_in): Wt and Gt are KC x dp, the classes padded to KC, a
 * multiple of ROWS4_CLASSES, with zero weights and a bias no logit falls below, the rows of Wt
 * and Gt padded with zeros to dp, a multiple of ROWS4_TAIL.
 */
#ifndef MPIREG_SOFTMAX_ROWS4_H
#define MPIREG_SOFTMAX_ROWS4_H
#include "vmath.h"

#define ROWS4_MAX_PADDED 18  /* up to 16 classes padded to a multiple of three */

/*
 * z[k][r]: the logits of four rows (lanes) for each class k < KC (K real ones, then padding);
 * becomes p - e_y in place (rows r >= m: 0). Returns the rows' loss, top + log sum e^(z - top)
 * - z_y. A label outside [0, K) is counted in *bad (and read as 0), so the wrapper can name it
 * once the pass is over.
 */
#define DEFINE_RESIDUALS(T, V, SUFFIX)                                                              \
INLINE double rows4_residuals_##SUFFIX(T (*z)[4], const int64_t *y, size_t m, size_t K, size_t KC,  \
                                       size_t *bad)                                                 \
{                                                                                                   \
    /* loads and maximum in one loop: as two loops, 3 classes ran at 0.49x of a read, not 0.59x */  \
    V e[ROWS4_MAX_PADDED], top, sum = {0};                                                          \
    memcpy(&top, z[0], sizeof top);                                                                 \
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
#define ROWS4_CLASSES 3  /* a pass */
#define ROWS4_TAIL 8     /* Wt's and Gt's rows: padded to a multiple of 8, any vector's lanes */

#define DEFINE_PASSES(TX, T, V, SUFFIX, LOAD_X)                                                     \
INLINE T rows4_hsum_##SUFFIX(V v)                                                                   \
{                                                                                                   \
    T s = v[0];                                                                                     \
    for (size_t l = 1; l < sizeof(V) / sizeof(T); l++) s += v[l];                                   \
    return s;                                                                                       \
}                                                                                                   \
                                                                                                    \
/* the L values of row r from column j: the row's own, or past its last whole ROWS4_TAIL values */  \
/* the zero-padded copy in tail (a scalar tail ran 10 classes at 0.18x of a read, this 0.25x) */    \
INLINE V rows4_chunk_##SUFFIX(const TX *x[4], const TX (*tail)[ROWS4_TAIL], int r, size_t j,        \
                              size_t d)                                                             \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T) };                                                             \
    return LOAD_X(j + L <= d ? x[r] + j : tail[r] + (j - d / ROWS4_TAIL * ROWS4_TAIL));             \
}                                                                                                   \
                                                                                                    \
/* z[c][r] += x_r . w_c for three classes (rows of w, dp apart) */                                  \
INLINE void rows4_dots3_##SUFFIX(const TX *x[4], const TX (*tail)[ROWS4_TAIL], const T *w,          \
                                 size_t d, size_t dp, T (*z)[4])                                    \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T), C = ROWS4_CLASSES };                                          \
    V acc[C][4] = {{{0}}};                                                                          \
    for (size_t j = 0; j < dp; j += L) {                                                            \
        V xv[4];                                                                                    \
        for (int r = 0; r < 4; r++) xv[r] = rows4_chunk_##SUFFIX(x, tail, r, j, d);                 \
        for (int c = 0; c < C; c++) {                                                               \
            V wc;                                                                                   \
            memcpy(&wc, w + c * dp + j, sizeof wc);                                                 \
            for (int r = 0; r < 4; r++) acc[c][r] += xv[r] * wc;                                    \
        }                                                                                           \
    }                                                                                               \
    for (int c = 0; c < C; c++)                                                                     \
        for (int r = 0; r < 4; r++) z[c][r] += rows4_hsum_##SUFFIX(acc[c][r]);                      \
}                                                                                                   \
                                                                                                    \
/* g_c += sum_r p[c][r] x_r for three classes; ahead: also ask for the next four rows */            \
INLINE void rows4_update3_##SUFFIX(const TX *x[4], const TX (*tail)[ROWS4_TAIL], T (*p)[4],         \
                                   size_t d, size_t dp, T *g, int ahead)                            \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T), C = ROWS4_CLASSES };                                          \
    for (size_t j = 0; j < dp; j += L) {                                                            \
        if (ahead)                                                                                  \
            for (int r = 0; r < 4; r++) __builtin_prefetch(x[r] + j + 4 * d, 0, PREFETCH_LOCALITY); \
        V xv[4];                                                                                    \
        for (int r = 0; r < 4; r++) xv[r] = rows4_chunk_##SUFFIX(x, tail, r, j, d);                 \
        for (int c = 0; c < C; c++) {                                                               \
            V gc;                                                                                   \
            memcpy(&gc, g + c * dp + j, sizeof gc);                                                 \
            gc += (xv[0] * p[c][0] + xv[1] * p[c][1]) + (xv[2] * p[c][2] + xv[3] * p[c][3]);        \
            memcpy(g + c * dp + j, &gc, sizeof gc);                                                 \
        }                                                                                           \
    }                                                                                               \
}

DEFINE_PASSES(float, float, v8f32, f32, load_v8f32)
DEFINE_PASSES(double, double, v4f64, f64, load_v4f64)
DEFINE_PASSES(float, double, v4f64, f32x64, load_v4f32_as_v4f64)

/* Wt, Gt: KC x dp (d padded with zeros to a multiple of ROWS4_TAIL); b, gb: KC; the K classes padded
 * to KC, a multiple of three. Rows past hi repeat row i and get zero residuals. Long rows: the
 * first pass's update asks for the next four rows (vmath.h). */
#define DEFINE_KERNEL(TX, T, SUFFIX, SHAPE, AHEAD)                                                  \
FAST static double softmax_rows4_##SHAPE##_##SUFFIX(const TX *X, const int64_t *y, const T *Wt,     \
                                              const T *b, size_t lo, size_t hi, size_t d, size_t K, \
                                              T *Gt, T *gb, size_t *bad, size_t streams)            \
{                                                                                                   \
    enum { C = ROWS4_CLASSES };                                                                     \
    (void)streams;  /* front to back */                                                             \
    double loss = 0.0;                                                                              \
    size_t KC = (K + C - 1) / C * C;  /* padded; the bounds are the wrapper's, told to gcc */       \
    KC = KC < C ? C : KC > ROWS4_MAX_PADDED ? ROWS4_MAX_PADDED : KC;                                \
    size_t dp = (d + ROWS4_TAIL - 1) / ROWS4_TAIL * ROWS4_TAIL, full = d / ROWS4_TAIL * ROWS4_TAIL; \
    for (size_t i = lo; i < hi; i += 4) {                                                           \
        size_t m = hi - i < 4 ? hi - i : 4;                                                         \
        const TX *x0 = X + i * d;                                                                   \
        const TX *x[4] = {x0, m > 1 ? x0 + d : x0, m > 2 ? x0 + 2 * d : x0,                         \
                          m > 3 ? x0 + 3 * d : x0};                                                 \
        prefetch_##SHAPE(x0, 4 * d * sizeof(TX));                                                   \
        TX tail[4][ROWS4_TAIL] = {{0}};                                                             \
        for (int r = 0; r < 4 && full < d; r++)                                                     \
            memcpy(tail[r], x[r] + full, (d - full) * sizeof(TX));                                  \
        T z[ROWS4_MAX_PADDED][4];                                                                   \
        for (size_t k = 0; k < KC; k += C) {                                                        \
            for (int c = 0; c < C; c++)                                                             \
                for (int r = 0; r < 4; r++) z[k + c][r] = b[k + c];                                 \
            rows4_dots3_##SUFFIX(x, (const TX (*)[ROWS4_TAIL])tail, Wt + k * dp, d, dp, z + k);     \
        }                                                                                           \
        loss += rows4_residuals_##SUFFIX(z, y + i, m, K, KC, bad);                                  \
        for (size_t k = 0; k < KC; k += C) {                                                        \
            rows4_update3_##SUFFIX(x, (const TX (*)[ROWS4_TAIL])tail, z + k, d, dp, Gt + k * dp,    \
                             AHEAD && k == 0);                                                      \
            for (int c = 0; c < C; c++)                                                             \
                gb[k + c] += (z[k + c][0] + z[k + c][1]) + (z[k + c][2] + z[k + c][3]);             \
        }                                                                                           \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_RESIDUALS(float, v4f32, f32)
DEFINE_RESIDUALS(double, v4f64, f64)
#define rows4_residuals_f32x64 rows4_residuals_f64
DEFINE_KERNEL(float, float, f32, short, 0)
DEFINE_KERNEL(float, float, f32, long, 1)
DEFINE_KERNEL(double, double, f64, short, 0)
DEFINE_KERNEL(double, double, f64, long, 1)
DEFINE_KERNEL(float, double, f32x64, short, 0)
DEFINE_KERNEL(float, double, f32x64, long, 1)

#undef DEFINE_RESIDUALS
#undef DEFINE_PASSES
#undef DEFINE_KERNEL
#endif
