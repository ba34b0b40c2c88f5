/*
 * The order in which the one-pass kernels (glm_rows4.h, softmax_blocked.h) take a block's rows:
 * from STREAMS segments of the block at once, not front to back.
 *
 * Why: one core streaming one region of memory is bound by how many cache lines are in flight
 * for it, not by the memory's bandwidth. The L2 streamer runs a bounded distance ahead of each
 * stream it tracks, so a kernel that computes between its loads falls behind a plain read. Four
 * streams give the streamer four regions to run ahead in: on the Sapphire Rapids hosts (side by
 * side, ratio to a one-stream read of the same X) the logistic pass went 0.83-0.85 -> 1.00-1.13
 * at 100 features and 0.86 -> 0.99 at 1,000 (float64), linear 0.91 -> 0.99-1.07
 * (docs/performance.md section 1). Two streams measured better for float32 rows of 100
 * features (1.04 against 1.00) and worse everywhere else.
 *
 * A step takes `step` rows: `per` consecutive rows from each segment. A block whose length is
 * not a multiple of step * STREAMS goes front to back, the order the kernels had before.
 */
#ifndef MPIREG_STREAMS_H
#define MPIREG_STREAMS_H
#include "vmath.h"

#define STREAMS 4

typedef struct {
    size_t lo, hi, step, per, seg;  /* rows [lo, hi); per rows a step from each seg-long segment */
} row_order;

INLINE row_order row_order_of(size_t lo, size_t hi, size_t step)
{
    size_t n = hi - lo;
    int split = step % STREAMS == 0 && n % (step * STREAMS) == 0;
    return (row_order){lo, hi, step, split ? step / STREAMS : step, split ? n / STREAMS : n};
}

INLINE size_t row_order_steps(row_order o) { return (o.hi - o.lo + o.step - 1) / o.step; }

/* the rows of step t into row[0, step): returns m, how many are real; the rest (only in the
 * last step of a front-to-back block) repeat the step's first row */
INLINE size_t row_order_rows(row_order o, size_t t, size_t *row)
{
    size_t first = o.lo + t * o.per;
    size_t m = o.per < o.step || o.hi - first >= o.step ? o.step : o.hi - first;
    for (size_t s = 0, k = 0; k < o.step; s++)  /* (k / per and k % per: a division a row) */
        for (size_t j = 0; j < o.per; j++, k++) row[k] = k < m ? first + s * o.seg + j : first;
    return m;
}
#endif
