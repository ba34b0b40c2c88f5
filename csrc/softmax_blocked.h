/*
 * The blocked softmax pass, for AVX-512 hosts (csoftmax.c picks it there for every class
 * count). With K classes a row costs 2 (K - 1) d multiply-adds (the wrapper shifts the logits
 * so that the last class's is 0, and derives its gradient from the others': csoftmax.c), so
 * from ~4 classes on the pass is bound by arithmetic as much as by memory. A step takes NB
 * rows from the block's `streams` segments (streams.h; the wrapper picks the count per CPU):
 *   1. their logits for classes 0..K-2, RG rows at a time by up to CF classes (RG x CF
 *      accumulators of AVX-512's 32 registers; the features in the lanes, a shuffle tree for
 *      the sums);
 *   2. their residuals p - e_y in lanes, one row a lane, no class padding;
 *   3. G (classes 0..K-2) updated in CU-class x JT-vector tiles held in registers over the
 *      step's rows (a small matrix product); each row's loads there ask for the same bytes of
 *      its stream's next row, so the prefetches are spread through the update.
 * A row's last, partial vector is read in place with a masked load (no copy of the tail), so
 * a tile spans the whole row: at 100 float32 features, one 7-vector tile, where 4-vector and
 * 1-vector tiles (16-deep chains of 1 to 6 accumulators) and a copied tail took a third more
 * time in cache. Two shapes, measured (docs/performance.md section 1):
 *   narrow (K <= 4): 8 rows x 3 classes, 4 classes x 7 vectors;
 *   wide   (K >= 5): 4 rows x 6 classes, 6 classes x 4 vectors (narrow: 10 classes 0.39 -> 0.38
 *                    of a read at 100 features, 0.44 -> 0.36 at 1,000; wide 0.42 and 0.43).
 * MAX_CLASSES is the wrapper's.
 *
 * Layout (the wrapper's transpose_in): Wt and Gt are K x dp, no class padding, the rows padded
 * with zeros to dp, a multiple of the vector's lanes (16 float32, 8 float64).
 */
#ifndef MPIREG_SOFTMAX_BLOCKED_H
#define MPIREG_SOFTMAX_BLOCKED_H
#include "streams.h"
#include "vmath.h"
#if HAVE_AVX512
#include <immintrin.h>
#endif

/*
 * Where the update's prefetches go (vmath.h's prefetch_to_l2: AMD hosts): rows of this many
 * bytes and more into L2 only, shorter ones into L1. On the Zen 4 EPYC, side by side at 3
 * classes (ns a row from a 400 MB X): 1,000 float64 features 583 -> 451, 1,000 float32 273 ->
 * 229, 128 float32 (512 bytes) 50 -> 46; but 100 float32 (400 bytes) 34 -> 38, 50 float64 38 ->
 * 42. A step's 16 rows of 512 bytes and more are a quarter of L1 and more.
 */
#define SOFTMAX_L2_ROW_BYTES 512

#if HAVE_AVX512
/* header-private names, undefined at its end */
#define NB 16   /* rows a step: their residuals fill 16 lanes */
#define MAX_C 6 /* classes a logits or update pass, at most */

/*
 * z[k][r]: the logits of NB rows for the K classes; becomes p - e_y in place (rows r >= m: 0),
 * and gb[k][r] gains it. Returns the rows' loss, top + log sum e^(z - top) - z_y. A label
 * outside [0, K) is counted in *bad (and read as 0), so the wrapper can name it once the pass
 * is over. The rows go through in vectors RV of the kernel's own width (a 16-lane vector of
 * doubles is wider than AVX-512's, and GCC compiled its comparisons scalar).
 */
typedef double v2f64 __attribute__((vector_size(16)));
static const double blocked_row_numbers[NB] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* z's lanes, as the dots wrote them (four at a time): read so, they come from the stores */
INLINE v16f32 load_z_v16f32(const float *z)
{
    v4f32 q[4];
    memcpy(q, z, sizeof q);
    v8f32 lo = __builtin_shufflevector(q[0], q[1], 0, 1, 2, 3, 4, 5, 6, 7);
    v8f32 hi = __builtin_shufflevector(q[2], q[3], 0, 1, 2, 3, 4, 5, 6, 7);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
INLINE v8f64 load_z_v8f64(const double *z)
{
    v4f64 q[2];
    memcpy(q, z, sizeof q);
    return __builtin_shufflevector(q[0], q[1], 0, 1, 2, 3, 4, 5, 6, 7);
}

#define DEFINE_RESIDUALS(T, RV)                                                                     \
INLINE double blocked_residuals_##RV(T (*z)[NB], const int64_t *y, size_t m, size_t K,              \
                                     T (*gb)[NB], size_t *bad)                                      \
{                                                                                                   \
    enum { RL = sizeof(RV) / sizeof(T) };                                                           \
    double loss = 0.0;                                                                              \
    for (size_t r0 = 0; r0 < NB; r0 += RL) {                                                        \
        RV e[MAX_CLASSES], top, sum = {0}, row;                                                     \
        top = load_z_##RV(&z[0][r0]);                                                               \
        for (size_t k = 1; k < K; k++) {                                                            \
            e[k] = load_z_##RV(&z[k][r0]);                                                          \
            top = select_##RV(e[k] > top, e[k], top);                                               \
        }                                                                                           \
        e[0] = load_z_##RV(&z[0][r0]);                                                              \
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

/* x[0, n) as a vector, its lanes from n on zero: a row's last, partial vector read in place */
AVX512 INLINE v16f32 loadm_v16f32(const float *x, unsigned mask)
{
    return (v16f32)_mm512_maskz_loadu_ps((__mmask16)mask, x);
}
AVX512 INLINE v8f64 loadm_v8f64(const double *x, unsigned mask)
{
    return (v8f64)_mm512_maskz_loadu_pd((__mmask8)mask, x);
}
AVX512 INLINE v8f64 loadm_v8f32_as_v8f64(const float *x, unsigned mask)
{
    return (v8f64)_mm512_cvtps_pd(_mm256_maskz_loadu_ps((__mmask8)mask, x));
}

/*
 * The two halves of a step over NB rows, for one vector width (V: L lanes of T; LOADM reads L
 * values of a row's TX, the lanes outside a mask zero). A row is nv vectors, its last one
 * partial (tailmask); Wt and Gt are K x dp, dp = nv L, zero-padded.
 *   dots:   z[k][r] = b_k + x_r . w_k for RG rows and C classes: RG x C accumulators, so each
 *           load of a row serves C classes and each load of w serves RG rows.
 *   update: G[k][v..v+JT) += sum_r p[k][r] x_r[v..v+JT) for C classes: the C x JT tile of G
 *           stays in registers over the NB rows (a small matrix product), each row's p[k][r]
 *           broadcast to it; tiles past the row's end load nothing (mask 0).
 */
#define DEFINE_STEPS(TX, T, V, V4, SUFFIX, LOADM, RG, JT)                                           \
AVX512 INLINE void blocked_dots_##SUFFIX(const TX *const *x, const T *w, size_t dp, size_t nv,      \
                                         unsigned tailmask, int C, const T *bias, T (*z)[NB])       \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T) };                                                             \
    V acc[MAX_C][RG] = {{{0}}};                                                                     \
    for (size_t v = 0; v < nv; v++) {                                                               \
        unsigned mask = v + 1 < nv ? ~0u : tailmask;                                                \
        V xv[RG];                                                                                   \
        for (int r = 0; r < RG; r++) xv[r] = LOADM(x[r] + v * L, mask);                             \
        for (int c = 0; c < C; c++) {                                                               \
            V wc;                                                                                   \
            memcpy(&wc, w + c * dp + v * L, sizeof wc);                                             \
            for (int r = 0; r < RG; r++) acc[c][r] += xv[r] * wc;                                   \
        }                                                                                           \
    }                                                                                               \
    for (int c = 0; c < C; c++)                                                                     \
        for (int r = 0; r < RG; r += 4) {                                                           \
            V4 s = reduce4_##V(acc[c][r], acc[c][r + 1], acc[c][r + 2], acc[c][r + 3]) + bias[c];   \
            memcpy(&z[c][r], &s, sizeof s);                                                         \
        }                                                                                           \
}                                                                                                   \
                                                                                                    \
AVX512 INLINE void blocked_update_##SUFFIX(const TX *const *x, size_t v0, size_t nv,                \
                                           unsigned tailmask, int masked, T (*p)[NB], int C, T *g,  \
                                           size_t dp, size_t ahead, int l2)                         \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T) };                                                             \
    V acc[MAX_C][JT] = {{{0}}};                                                                     \
    unsigned mask[JT];                                                                              \
    for (int t = 0; t < JT; t++)                                                                    \
        mask[t] = v0 + t + 1 < nv ? ~0u : v0 + t + 1 == nv ? tailmask : 0;                          \
    for (int r = 0; r < NB; r++) {                                                                  \
        for (int t = 0; t < JT; t++) {                                                              \
            const TX *at = x[r] + (v0 + t) * L;                                                     \
            V xv = masked ? LOADM(at, mask[t]) : LOADM(at, ~0u);                                    \
            if (ahead) prefetch_to(at + ahead, l2);                                                 \
            for (int c = 0; c < C; c++) acc[c][t] += xv * p[c][r];                                  \
        }                                                                                           \
    }                                                                                               \
    for (int c = 0; c < C; c++)                                                                     \
        for (int t = 0; t < JT && v0 + t < nv; t++) {                                               \
            V gt;                                                                                   \
            memcpy(&gt, g + c * dp + (v0 + t) * L, sizeof gt);                                      \
            gt += acc[c][t];                                                                        \
            memcpy(g + c * dp + (v0 + t) * L, &gt, sizeof gt);                                      \
        }                                                                                           \
}                                                                                                   \
                                                                                                    \
/* the same with C known to the compiler, so that the tile stays in registers */                    \
AVX512 INLINE void blocked_dots_by_##SUFFIX(const TX *const *x, const T *w, size_t dp, size_t nv,   \
                                            unsigned tailmask, int C, const T *bias, T (*z)[NB])    \
{                                                                                                   \
    switch (C) {                                                                                    \
    case 1: blocked_dots_##SUFFIX(x, w, dp, nv, tailmask, 1, bias, z); break;                       \
    case 2: blocked_dots_##SUFFIX(x, w, dp, nv, tailmask, 2, bias, z); break;                       \
    case 3: blocked_dots_##SUFFIX(x, w, dp, nv, tailmask, 3, bias, z); break;                       \
    case 4: blocked_dots_##SUFFIX(x, w, dp, nv, tailmask, 4, bias, z); break;                       \
    case 5: blocked_dots_##SUFFIX(x, w, dp, nv, tailmask, 5, bias, z); break;                       \
    default: blocked_dots_##SUFFIX(x, w, dp, nv, tailmask, 6, bias, z); break;                      \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
AVX512 INLINE void blocked_update_by_##SUFFIX(const TX *const *x, size_t v0, size_t nv,             \
                                              unsigned tailmask, T (*p)[NB], int C, T *g,           \
                                              size_t dp, size_t ahead, int l2)                      \
{                                                                                                   \
    int masked = v0 + JT >= nv;                                                                     \
    switch (C * 2 + masked) {                                                                       \
    case 2: blocked_update_##SUFFIX(x, v0, nv, tailmask, 0, p, 1, g, dp, ahead, l2); break;         \
    case 3: blocked_update_##SUFFIX(x, v0, nv, tailmask, 1, p, 1, g, dp, ahead, l2); break;         \
    case 4: blocked_update_##SUFFIX(x, v0, nv, tailmask, 0, p, 2, g, dp, ahead, l2); break;         \
    case 5: blocked_update_##SUFFIX(x, v0, nv, tailmask, 1, p, 2, g, dp, ahead, l2); break;         \
    case 6: blocked_update_##SUFFIX(x, v0, nv, tailmask, 0, p, 3, g, dp, ahead, l2); break;         \
    case 7: blocked_update_##SUFFIX(x, v0, nv, tailmask, 1, p, 3, g, dp, ahead, l2); break;         \
    case 8: blocked_update_##SUFFIX(x, v0, nv, tailmask, 0, p, 4, g, dp, ahead, l2); break;         \
    case 9: blocked_update_##SUFFIX(x, v0, nv, tailmask, 1, p, 4, g, dp, ahead, l2); break;         \
    case 10: blocked_update_##SUFFIX(x, v0, nv, tailmask, 0, p, 5, g, dp, ahead, l2); break;        \
    case 11: blocked_update_##SUFFIX(x, v0, nv, tailmask, 1, p, 5, g, dp, ahead, l2); break;        \
    case 12: blocked_update_##SUFFIX(x, v0, nv, tailmask, 0, p, 6, g, dp, ahead, l2); break;        \
    default: blocked_update_##SUFFIX(x, v0, nv, tailmask, 1, p, 6, g, dp, ahead, l2); break;        \
    }                                                                                               \
}

/*
 * Rows [lo, hi) in steps of NB (streams.h's order): the logits of RG rows at a time (CF classes
 * a pass), the NB rows' residuals in lanes, then the update of G in CU x JT tiles. Rows past hi
 * repeat a row and get zero residuals. Wt, Gt: K x dp; b, gb: K.
 */
#define DEFINE_KERNEL(TX, T, V, RV, SUFFIX, ATTR, RG, CF, CU, JT)                                   \
ATTR static double softmax_blocked_##SUFFIX(const TX *X, const int64_t *y, const T *Wt,             \
                                            const T *b, size_t lo, size_t hi, size_t d, size_t K,   \
                                            T *Gt, T *gb, size_t *bad, size_t streams)              \
{                                                                                                   \
    enum { L = sizeof(V) / sizeof(T) };                                                             \
    size_t nv = (d + L - 1) / L, dp = nv * L, rest = d - (nv - 1) * L;                              \
    unsigned tailmask = rest == L ? ~0u : (1u << rest) - 1;                                         \
    T gbv[MAX_CLASSES][NB];                                                                         \
    memset(gbv, 0, sizeof gbv);                                                                     \
    double loss = 0.0;                                                                              \
    K = K > MAX_CLASSES ? MAX_CLASSES : K;  /* the wrapper's bound, told to gcc */                  \
    row_order o = row_order_of(lo, hi, NB, streams);                                                \
    size_t ahead = o.per * d;  /* a row's next in its stream */                                     \
    int l2 = prefetch_to_l2 && d * sizeof(TX) >= SOFTMAX_L2_ROW_BYTES;                              \
    for (size_t t = 0; t < row_order_steps(o); t++) {                                               \
        size_t row[NB], m = row_order_rows(o, t, row);                                              \
        const TX *x[NB];                                                                            \
        int64_t yr[NB];                                                                             \
        for (int r = 0; r < NB; r++) x[r] = X + row[r] * d, yr[r] = y[row[r]];                      \
        T z[MAX_CLASSES][NB];  /* the last class's logits stay 0 (csoftmax.c's shift_in) */         \
        memset(z, 0, K * sizeof z[0]);                                                              \
        for (int r = 0; r < NB; r += RG)                                                            \
            for (size_t k = 0; k + 1 < K; k += CF)                                                  \
                blocked_dots_by_##SUFFIX(x + r, Wt + k * dp, dp, nv, tailmask,                      \
                                         K - 1 - k < CF ? (int)(K - 1 - k) : CF, b + k,             \
                                         (T (*)[NB])&z[k][r]);                                      \
        loss += blocked_residuals_##RV(z, yr, m, K, gbv, bad);                                      \
        for (size_t k = 0; k + 1 < K; k += CU)                                                      \
            for (size_t v = 0; v < nv; v += JT)                                                     \
                blocked_update_by_##SUFFIX(x, v, nv, tailmask, z + k,                               \
                                           K - 1 - k < CU ? (int)(K - 1 - k) : CU,                  \
                                           Gt + k * dp, dp, k ? 0 : ahead, l2);                     \
    }                                                                                               \
    for (size_t k = 0; k < K; k++)                                                                  \
        for (int r = 0; r < NB; r++) gb[k] += gbv[k][r];                                            \
    return loss;                                                                                    \
}

/* the two shapes, RG rows x CF classes a logits pass and CU classes x JT vectors an update tile:
 * narrow for up to 4 classes, wide from 5 */
#define DEFINE_SHAPES(TX, T, V, V4, RV, SUFFIX, LOADM)                                              \
DEFINE_STEPS(TX, T, V, V4, SUFFIX##_narrow, LOADM, 8, 7)                                            \
DEFINE_STEPS(TX, T, V, V4, SUFFIX##_wide, LOADM, 4, 4)                                              \
DEFINE_KERNEL(TX, T, V, RV, SUFFIX##_narrow, AVX512, 8, 3, 4, 7)                                    \
DEFINE_KERNEL(TX, T, V, RV, SUFFIX##_wide, AVX512, 4, 6, 6, 4)

DEFINE_SHAPES(float, float, v16f32, v4f32, v16f32, avx512_f32, loadm_v16f32)
DEFINE_SHAPES(double, double, v8f64, v4f64, v8f64, avx512_f64, loadm_v8f64)
DEFINE_SHAPES(float, double, v8f64, v4f64, v8f64, avx512_f32x64, loadm_v8f32_as_v8f64)

#undef DEFINE_RESIDUALS
#undef DEFINE_SUM4
#undef DEFINE_STEPS
#undef DEFINE_KERNEL
#undef DEFINE_SHAPES
#undef SHUF
#undef NB
#undef MAX_C
#endif
#endif
