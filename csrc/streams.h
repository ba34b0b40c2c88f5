/*
 * The order in which the one-pass kernels (glm_rows4.h, softmax_blocked.h) take a block's rows:
 * from several segments of the block at once, not front to back.
 *
 * Why: one core streaming one region of memory is bound by how many cache lines are in flight
 * for it, not by the memory's bandwidth. The L2 streamer runs a bounded distance ahead of each
 * stream it tracks, so a kernel that computes between its loads falls behind a plain read. Four
 * streams give the streamer four regions to run ahead in: on the Sapphire Rapids hosts (side by
 * side, ratio to a one-stream read of the same X) the logistic pass went 0.83-0.85 -> 1.00-1.13
 * at 100 features and 0.86 -> 0.99 at 1,000 (float64), linear 0.91 -> 0.99-1.07
 * (docs/performance.md section 1). Two streams measured better for float32 rows of 100
 * features (1.04 against 1.00) and worse everywhere else (GLM_STREAMS). The blocked softmax pass
 * takes its count from the wrapper, per CPU (csoftmax.c: 16 on AMD Zen 4, where the linear and
 * logistic kernels measured the same with 2 or 4 and slower with 8 or 16).
 *
 * A step takes `step` rows: `per` consecutive rows from each of step / per segments; a stream's
 * next rows are `per` rows on. A block whose length is not a multiple of the step and of the
 * segment count goes front to back, the order the kernels had before.
 */
#ifndef MPIREG_STREAMS_H
#define MPIREG_STREAMS_H
#include "vmath.h"

#define GLM_STREAMS 4  /* the linear and logistic kernels' segments */

typedef struct {
    size_t lo, n, step, per, seg;  /* rows [lo, lo + n): per at once from each seg-row segment */
    unsigned lg_per, lg_streams;   /* log2 of per and of the segment count (0: front to back) */
} row_order;

static inline unsigned lg2(size_t v) { return (unsigned)__builtin_ctzl(v); }

/* step and streams are powers of two; a block whose length is not a multiple of both goes front
 * to back */
INLINE row_order row_order_of(size_t lo, size_t hi, size_t step, size_t streams)
{
    size_t n = hi - lo;
    if (n == 0 || n % streams || n % step) return (row_order){lo, n, step, step, n, lg2(step), 0};
    size_t per = step > streams ? step / streams : 1;
    return (row_order){lo, n, step, per, n / streams, lg2(per), lg2(streams)};
}

INLINE size_t row_order_steps(row_order o) { return (o.n + o.step - 1) / o.step; }

/* the rows of step t into row[0, step): returns m, how many are real; the rest (only in the
 * last step of a front-to-back block) repeat the step's first row. Position p of the order is
 * row j of segment s, s = (p / per) % streams, j = p / (per streams) per + p % per. */
INLINE size_t row_order_rows(row_order o, size_t t, size_t *row)
{
    size_t first = t * o.step, m = o.n - first < o.step ? o.n - first : o.step;
    size_t streams_1 = ((size_t)1 << o.lg_streams) - 1, per_1 = o.per - 1;
    for (size_t k = 0, p = first; k < o.step; k++, p++) {
        size_t s = (p >> o.lg_per) & streams_1;
        size_t j = (p >> (o.lg_per + o.lg_streams) << o.lg_per) | (p & per_1);
        row[k] = o.lo + (k < m ? s * o.seg + j : first);
    }
    return m;
}
#endif
