/*
 * The blocked softmax pass, for AVX-512 hosts (csoftmax.c picks it at run time for all but
 * three classes in one dtype). With K classes a row costs 2 K d
 * multiply-adds, so from ~5 classes on the softmax pass is bound by arithmetic, not memory:
 * this pass is built for the arithmetic. A step takes NB rows:
 *   1. their logits, four rows at a time by up to six classes (4 x 6 accumulators of AVX-512's
 *      32 registers; the features in the lanes, a shuffle tree for the sums);
 *   2. their residuals p - e_y in lanes, one row a lane, no class padding;
 *   3. G updated in 6-class x 4-vector tiles held in registers over the step's rows (a small
 *      matrix product); each row's loads there ask for the same bytes of the next step's row,
 *      so the prefetches are spread through the update (issued in a burst before each tile,
 *      they measured 0.52-0.54 of a read against 0.58-0.60, 4 classes, 100 features).
 * Measured beside the four-row pass (rows4) on a Sapphire Rapids Xeon, ratio to a streaming
 * read at 100 features, float32: 4 classes 0.40 -> 0.55, 10 classes 0.21 -> 0.34; float32 rows
 * with float64 parameters, 3 classes 0.36 -> 0.42. At 3 classes in one dtype it does not beat
 * rows4 (0.68-0.71 against 0.77-0.79 at 1,000 features, float32), and an AVX2 build of it was
 * slower than rows4 (docs/performance.md section 1). MAX_CLASSES is the wrapper's.
 *
 * Layout (the wrapper's transpose_in): Wt and Gt are K x dp, no class padding, the rows padded
 * with zeros to dp, a multiple of the vector's lanes (16 float32, 8 float64).
 */
#ifndef MPIREG_SOFTMAX_BLOCKED_H
#define MPIREG_SOFTMAX_BLOCKED_H
#include "streams.h"
#include "vmath.h"

#if HAVE_AVX512
/* header-private names, undefined at its end */
#define NB 16        /* rows a step: their residuals fill 16 lanes */
#define MAX_LANES 16 /* the widest vector's lanes: a row's zero-padded tail */
#define MAX_C 6      /* classes a logits or update pass, at most (4 x 6 accumulators) */
#define MAX_JT 4     /* vectors of a row an update tile spans */

/*
 * z[k][r]: the logits of NB rows for the K classes; becomes p - e_y in place (rows r >= m: 0),
 * and gb[k][r] gains it. Returns the rows' loss, top + log sum e^(z - top) - z_y. A label
 * outside [0, K) is counted in *bad (and read as 0), so the wrapper can name it once the pass
 * is over. The rows go through in vectors RV of the kernel's own width (a 16-lane vector of
 * doubles is wider than AVX-512's, and GCC compiled its comparisons scalar).
 */
static const double blocked_row_numbers[NB] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

#define DEFINE_RESIDUALS(T, RV)                                                                     \
INLINE double blocked_residuals_##RV(T (*z)[NB], const int64_t *y, size_t m, size_t K,              \
                                     T (*gb)[NB], size_t *bad)                                      \
{                                                                                                   \
    enum { RL = sizeof(RV) / sizeof(T) };                                                           \
    double loss = 0.0;                                                                              \
    for (size_t r0 = 0; r0 < NB; r0 += RL) {                                                        \
        RV e[MAX_CLASSES], top, sum = {0}, row;                                                     \
        memcpy(&top, &z[0][r0], sizeof top);                                                        \
        for (size_t k = 1; k < K; k++) {                                                            \
            memcpy(&e[k], &z[k][r0], sizeof e[k]);                                                  \
            top = select_##RV(e[k] > top, e[k], top);                                               \
        }                                                                                           \
        memcpy(&e[0], &z[0][r0], sizeof e[0]);                                                      \
        for (size_t k = 0; k < K; k++) {                                                            \
            e[k] = vexp_neg_##RV(e[k] - top);                                                       \
            sum += e[k];                                                                            \
        }                                                                                           \
        RV lse = top + vlog_##RV(sum);                                                              \
        int64_t label[RL] = {0};                                                                    \
        for (size_t r = r0; r < r0 + RL && r < m; r++) {                                            \
            int64_t yi = y[r];                                                                      \
            if ((uint64_t)yi >= K) *bad += 1, yi = 0;                                               \
            label[r - r0] = yi;                                                                     \
            loss += (double)lse[r - r0] - (double)z[yi][r];                                         \
        }                                                                                           \
        for (int l = 0; l < RL; l++) row[l] = (T)blocked_row_numbers[r0 + l];                       \
        RV scale = select_##RV(row < (T)m, (T)1 / sum, (RV){0});                                    \
        for (size_t k = 0; k < K; k++) {                                                            \
            RV p = e[k] * scale;                                                                    \
            memcpy(&z[k][r0], &p, sizeof p);                                                        \
        }                                                                                           \
        for (size_t r = r0; r < r0 + RL && r < m; r++) z[label[r - r0]][r] -= (T)1;                 \
        for (size_t k = 0; k < K; k++)                                                              \
            for (int l = 0; l < RL; l++) gb[k][r0 + l] += z[k][r0 + l];                             \
    }                                                                                               \
    return loss;                                                                                    \
}

DEFINE_RESIDUALS(float, v16f32)
DEFINE_RESIDUALS(double, v8f64)

/* The sums of four vectors' lanes, as one vector of four: fold to four lanes, then transpose. */
#define SHUF __builtin_shufflevector
#define DEFINE_SUM4(V4)                                                                             \
INLINE V4 sum4_##V4(V4 a, V4 b, V4 c, V4 d)                                                         \
{                                                                                                   \
    V4 ab = SHUF(a, b, 0, 4, 2, 6) + SHUF(a, b, 1, 5, 3, 7);  /* a01 b01 a23 b23 */                 \
    V4 cd = SHUF(c, d, 0, 4, 2, 6) + SHUF(c, d, 1, 5, 3, 7);                                        \
    return SHUF(ab, cd, 0, 1, 4, 5) + SHUF(ab, cd, 2, 3, 6, 7);                                     \
}
DEFINE_SUM4(v4f64)

INLINE v4f32 fold_v8f32(v8f32 a) { return SHUF(a, a, 0, 1, 2, 3) + SHUF(a, a, 4, 5, 6, 7); }
INLINE v4f64 fold_v8f64(v8f64 a) { return SHUF(a, a, 0, 1, 2, 3) + SHUF(a, a, 4, 5, 6, 7); }
INLINE v4f64 reduce4_v8f64(v8f64 a, v8f64 b, v8f64 c, v8f64 d)
{
    return sum4_v4f64(fold_v8f64(a), fold_v8f64(b), fold_v8f64(c), fold_v8f64(d));
}
/* sixteen lanes: pairs first, at full width (14 shuffles and adds for four sums, not 22) */
INLINE v4f32 reduce4_v16f32(v16f32 a, v16f32 b, v16f32 c, v16f32 d)
{
    v16f32 ab = SHUF(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
              + SHUF(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    v16f32 cd = SHUF(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
              + SHUF(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    v16f32 q = SHUF(ab, cd, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27)
             + SHUF(ab, cd, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    v16f32 t = SHUF(q, q, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    v8f32 h = SHUF(t, t, 0, 1, 2, 3, 4, 5, 6, 7) + SHUF(t, t, 8, 9, 10, 11, 12, 13, 14, 15);
    return fold_v8f32(h);
}

/*
 * The two halves of a step over NB rows, for one vector width (V: L lanes of T; LOAD_X converts
 * L values of a row's TX into it). Rows are read in whole vectors: nfull from each row, then
 * its tail from a zero-padded copy; Wt and Gt are K x dp, dp the row padded to whole vectors.
 *   dots:   z[k][r] += x_r . w_k for four rows and C classes: 4 x C accumulators, so each load
 *           of a row serves C classes.
 *   update: G[k][v..v+JT) += sum_r p[k][r] x_r[v..v+JT) for C classes: the C x JT tile of G
 *           stays in registers over the NB rows (a small matrix product), and the rows' p[k][r]
 *           are broadcast to it.
 */
#define DEFINE_STEPS(TX, T, V, V4, SUFFIX, LOAD_X)                                                  \
INLINE void blocked_dots_##SUFFIX(const TX *const *x, const TX *const *tail, const T *w,            \
                                  size_t dp, size_t nfull, int C, T (*z)[NB])                       \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T) };                                                             \
    V acc[MAX_C][4] = {{{0}}};                                                                      \
    for (int s = 0; s < 2; s++) {  /* the whole vectors of the rows, then their tails */            \
        const TX *const *rows = s ? tail : x;                                                       \
        size_t n = s ? tail != NULL : nfull;                                                        \
        for (size_t v = 0; v < n; v++) {                                                            \
            size_t j = (s ? nfull : v) * L, at = s ? 0 : j;                                         \
            V xv[4];                                                                                \
            for (int r = 0; r < 4; r++) xv[r] = LOAD_X(rows[r] + at);                               \
            for (int c = 0; c < C; c++) {                                                           \
                V wc;                                                                               \
                memcpy(&wc, w + c * dp + j, sizeof wc);                                             \
                for (int r = 0; r < 4; r++) acc[c][r] += xv[r] * wc;                                \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    for (int c = 0; c < C; c++) {                                                                   \
        V4 s = reduce4_##V(acc[c][0], acc[c][1], acc[c][2], acc[c][3]), old;                        \
        memcpy(&old, z[c], sizeof old);                                                             \
        old += s;                                                                                   \
        memcpy(z[c], &old, sizeof old);                                                             \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
INLINE void blocked_update_##SUFFIX(const TX *const *x, size_t off, T (*p)[NB], int C, int JT,      \
                                    T *g, size_t dp, size_t ahead)                                  \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T) };                                                             \
    V acc[MAX_C][MAX_JT] = {{{0}}};                                                                 \
    for (int r = 0; r < NB; r++) {                                                                  \
        V xv[MAX_JT];                                                                               \
        for (int t = 0; t < JT; t++) xv[t] = LOAD_X(x[r] + off + t * L);                            \
        for (int t = 0; t < JT && ahead; t++)                                                       \
            __builtin_prefetch(x[r] + ahead + off + t * L, 0, PREFETCH_LOCALITY);                   \
        for (int c = 0; c < C; c++)                                                                 \
            for (int t = 0; t < JT; t++) acc[c][t] += xv[t] * p[c][r];                              \
    }                                                                                               \
    for (int c = 0; c < C; c++)                                                                     \
        for (int t = 0; t < JT; t++) {                                                              \
            V gt;                                                                                   \
            memcpy(&gt, g + c * dp + t * L, sizeof gt);                                             \
            gt += acc[c][t];                                                                        \
            memcpy(g + c * dp + t * L, &gt, sizeof gt);                                             \
        }                                                                                           \
}                                                                                                   \
                                                                                                    \
/* the same with C (and JT) known to the compiler, so that the tile stays in registers */           \
INLINE void blocked_dots_by_##SUFFIX(const TX *const *x, const TX *const *tail, const T *w,         \
                                     size_t dp, size_t nfull, int C, T (*z)[NB])                    \
{                                                                                                   \
    switch (C) {                                                                                    \
    case 1: blocked_dots_##SUFFIX(x, tail, w, dp, nfull, 1, z); break;                              \
    case 2: blocked_dots_##SUFFIX(x, tail, w, dp, nfull, 2, z); break;                              \
    case 3: blocked_dots_##SUFFIX(x, tail, w, dp, nfull, 3, z); break;                              \
    case 4: blocked_dots_##SUFFIX(x, tail, w, dp, nfull, 4, z); break;                              \
    case 5: blocked_dots_##SUFFIX(x, tail, w, dp, nfull, 5, z); break;                              \
    default: blocked_dots_##SUFFIX(x, tail, w, dp, nfull, 6, z); break;                             \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
INLINE void blocked_update_by_##SUFFIX(const TX *const *x, size_t off, T (*p)[NB], int C, int JT,   \
                                       T *g, size_t dp, size_t ahead)                               \
{                                                                                                   \
    switch (C) {                                                                                    \
    case 1: blocked_update_##SUFFIX(x, off, p, 1, JT, g, dp, ahead); break;                         \
    case 2: blocked_update_##SUFFIX(x, off, p, 2, JT, g, dp, ahead); break;                         \
    case 3: blocked_update_##SUFFIX(x, off, p, 3, JT, g, dp, ahead); break;                         \
    case 4: blocked_update_##SUFFIX(x, off, p, 4, JT, g, dp, ahead); break;                         \
    case 5: blocked_update_##SUFFIX(x, off, p, 5, JT, g, dp, ahead); break;                         \
    default: blocked_update_##SUFFIX(x, off, p, 6, JT, g, dp, ahead); break;                        \
    }                                                                                               \
}

DEFINE_STEPS(float, float, v16f32, v4f32, avx512_f32, load_v16f32)
DEFINE_STEPS(double, double, v8f64, v4f64, avx512_f64, load_v8f64)
DEFINE_STEPS(float, double, v8f64, v4f64, avx512_f32x64, load_v8f32_as_v8f64)

/* the next step's rows' tails (past the whole vectors the update asks for): [off, off + bytes) */
INLINE void blocked_prefetch_next(const void *const *x, size_t step_bytes, size_t off, size_t bytes)
{
    for (int r = 0; r < NB; r++)
        for (size_t o = 0; o < bytes; o += 64)
            __builtin_prefetch((const char *)x[r] + step_bytes + off + o, 0, PREFETCH_LOCALITY);
}

/*
 * Rows [lo, hi) in steps of NB: the logits of four rows at a time (CF classes a pass), the NB
 * rows' residuals in lanes, then the update of G in CU x JT tiles. Rows past hi repeat row lo
 * and get zero residuals. Wt, Gt: K x dp; b, gb: K.
 */
#define DEFINE_KERNEL(TX, T, V, RV, SUFFIX, ATTR, CF, CU, JT)                                       \
ATTR static double softmax_blocked_##SUFFIX(const TX *X, const int64_t *y, const T *Wt,             \
                                            const T *b, size_t lo, size_t hi, size_t d, size_t K,   \
                                            T *Gt, T *gb, size_t *bad)                              \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T) };                                                             \
    size_t nfull = d / L, rest = d - nfull * L, dp = (nfull + (rest > 0)) * L;                      \
    TX tail[NB][MAX_LANES];                                                                         \
    const TX *tails[NB];                                                                            \
    memset(tail, 0, sizeof tail);                                                                   \
    for (int r = 0; r < NB; r++) tails[r] = tail[r];                                                \
    T gbv[MAX_CLASSES][NB];                                                                         \
    memset(gbv, 0, sizeof gbv);                                                                     \
    double loss = 0.0;                                                                              \
    K = K > MAX_CLASSES ? MAX_CLASSES : K;  /* the wrapper's bound, told to gcc */                  \
    row_order o = row_order_of(lo, hi, NB);                                                         \
    size_t ahead = o.per * d;  /* a row's next in its stream */                                     \
    for (size_t t = 0; t < row_order_steps(o); t++) {                                               \
        size_t row[NB], m = row_order_rows(o, t, row);                                              \
        const TX *x[NB];                                                                            \
        int64_t yr[NB];                                                                             \
        for (int r = 0; r < NB; r++) x[r] = X + row[r] * d, yr[r] = y[row[r]];                      \
        for (int r = 0; r < NB && rest; r++)  /* (a memcpy call a row: ~5 % at 100 features) */     \
            for (size_t e = 0; e < rest; e++) tail[r][e] = x[r][nfull * L + e];                     \
        T z[MAX_CLASSES][NB];                                                                       \
        for (size_t k = 0; k < K; k++)                                                              \
            for (int r = 0; r < NB; r++) z[k][r] = b[k];                                            \
        for (int r = 0; r < NB; r += 4)                                                             \
            for (size_t k = 0; k < K; k += CF)                                                      \
                blocked_dots_by_##SUFFIX(x + r, rest ? tails + r : NULL, Wt + k * dp, dp, nfull,    \
                                 K - k < CF ? (int)(K - k) : CF, (T (*)[NB])&z[k][r]);              \
        loss += blocked_residuals_##RV(z, yr, m, K, gbv, bad);                                      \
        for (size_t k = 0; k < K; k += CU) {                                                        \
            int C = K - k < CU ? (int)(K - k) : CU;                                                 \
            T *g = Gt + k * dp;                                                                     \
            size_t v = 0;                                                                           \
            for (; v + JT <= nfull; v += JT)                                                        \
                blocked_update_by_##SUFFIX(x, v * L, z + k, C, JT, g + v * L, dp, k ? 0 : ahead);   \
            for (; v < nfull; v++)                                                                  \
                blocked_update_by_##SUFFIX(x, v * L, z + k, C, 1, g + v * L, dp, k ? 0 : ahead);    \
            if (rest) blocked_update_by_##SUFFIX(tails, 0, z + k, C, 1, g + nfull * L, dp, 0);      \
        }                                                                                           \
        if (rest) blocked_prefetch_next((const void *const *)x, ahead * sizeof(TX),                 \
                                nfull * L * sizeof(TX), rest * sizeof(TX));                         \
    }                                                                                               \
    for (size_t k = 0; k < K; k++)                                                                  \
        for (int r = 0; r < NB; r++) gb[k] += gbv[k][r];                                            \
    return loss;                                                                                    \
}

DEFINE_KERNEL(float, float, v16f32, v16f32, avx512_f32, AVX512, 6, 6, 4)
DEFINE_KERNEL(double, double, v8f64, v8f64, avx512_f64, AVX512, 6, 6, 4)
DEFINE_KERNEL(float, double, v8f64, v8f64, avx512_f32x64, AVX512, 6, 6, 4)

#undef DEFINE_RESIDUALS
#undef DEFINE_SUM4
#undef DEFINE_STEPS
#undef DEFINE_KERNEL
#undef SHUF
#undef NB
#undef MAX_LANES
#undef MAX_C
#undef MAX_JT
#endif
#endif
