/*
 * The Newton pass of the canonical families four rows at a time (cglm.c's layer 1, beside the
 * row-at-a-time NEWTON_BLOCK): binomial with the logit link, Poisson with the log link and the
 * Gaussian with the identity link, which a path or a plain fit takes most.
 *
 * Why: the row-at-a-time pass spends most of a row on its family's arithmetic, one scalar exp,
 * log, division and square root after another, each waiting on the last (at 100,000 x 40
 * float32: 5.6 ms for the binomial's gradient-only pass, 4.6 for the Poisson's, against 2.4 for
 * the Gaussian's, which has none). Here the four rows' dot products share each load of beta,
 * their terms are computed together in SIMD lanes with vmath.h's exp and log, and the update
 * g += r0 x0 + .. + r3 x3 loads and stores g once per four rows.
 *
 * Four rows with a mu outside the family's range go through NEWTON_BLOCK (which counts them,
 * as the line search needs); so do the last n mod 4 rows, and every pass with a
 * log-likelihood (once a fit) or the observed information (a non-canonical link).
 */
#ifndef MPIREG_GLM_NEWTON4_H
#define MPIREG_GLM_NEWTON4_H
#include "vmath.h"

/* whether (family, link) has the four-row kernel */
INLINE int canonical_pass(const struct glm *g)
{
    return !g->observed && ((g->family == BINOMIAL && g->link == LOGIT) || (g->family == POISSON && g->link == LOG) ||
                            (g->family == GAUSSIAN && g->link == IDENTITY));
}

INLINE v4f64_mask finite_v4f64(v4f64 x)
{
    const v4f64 inf = (v4f64){0} + __builtin_inf();
    return (x == x) & (x < inf) & (x > -inf);
}

/* y log y, 0 where y = 0 (y >= 0) */
INLINE v4f64 ylogy_v4f64(v4f64 y)
{
    const v4f64 zero = {0}, one = zero + 1.0;
    return y * vlog_v4f64(select_v4f64(y > zero, y, one));
}

/* Four rows' terms at eta: r = w (mu - y) (the gradient's weight: mu' / V = 1 for a canonical
 * link), info = w V(mu), half = w d(y, mu) / 2 and pear = w (y - mu)^2 / V(mu); returns the
 * lanes whose mu lies inside the family's range (families.py's valid_mu). */
INLINE v4f64_mask canonical_terms(int family, v4f64 eta, v4f64 y, v4f64 w, v4f64 *r, v4f64 *info, v4f64 *half,
                                  v4f64 *pear)
{
    const v4f64 zero = {0}, one = zero + 1.0;
    if (family == BINOMIAL) {
        /* mu = expit(eta) from e = e^-|eta| as the scalar pass takes it; -log mu and -log(1 - mu)
         * from log1p(e), so no log of a rounded mu */
        v4f64_mask positive = eta >= zero;
        v4f64 e = vexp_neg_v4f64(select_v4f64(positive, -eta, eta));
        v4f64 inv = one / (one + e), small = e * inv;
        v4f64 mu = select_v4f64(positive, inv, small), rest = select_v4f64(positive, small, inv);
        v4f64 softplus = vlog1p_unit_v4f64(e);
        v4f64 nlog_mu = select_v4f64(positive, zero, -eta) + softplus;
        v4f64 nlog_rest = select_v4f64(positive, eta, zero) + softplus;
        v4f64 h = y * nlog_mu + (one - y) * nlog_rest;
        v4f64_mask fraction = (y > zero) & (y < one);
        if (fraction[0] | fraction[1] | fraction[2] | fraction[3])  /* proportions: y log y + (1-y) log(1-y) */
            h += select_v4f64(fraction, ylogy_v4f64(y) + ylogy_v4f64(one - y), zero);
        v4f64 v = mu * rest, diff = y - mu;
        *r = w * (mu - y), *info = w * v, *half = w * h, *pear = w * diff * diff / v;
        return (mu > zero) & (mu < one) & finite_v4f64(eta);
    }
    if (family == POISSON) {
        /* e^eta for eta <= 709 (vexp_neg's range reaches it); beyond, inf: a mu the line search
         * steps back from, as the scalar pass's overflow */
        const v4f64 top = zero + 710.0;
        v4f64 mu = vexp_neg_v4f64(select_v4f64(eta > top, top, eta));
        v4f64 h = ylogy_v4f64(y) - y * eta - y + mu, diff = y - mu;
        *r = w * (mu - y), *info = w * mu, *half = w * h, *pear = w * diff * diff / mu;
        return (mu > zero) & finite_v4f64(mu);
    }
    v4f64 diff = y - eta;  /* the Gaussian with the identity link: mu = eta */
    *r = -w * diff, *info = w, *half = 0.5 * w * diff * diff, *pear = w * diff * diff;
    return finite_v4f64(eta);
}

INLINE double hsum_v4f64(v4f64 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

/* NEWTON_BLOCK's sums and scaled rows (same layout), four rows at a time; SCALAR is the
 * row-at-a-time kernel of the same row type, for rows out of range and the tail */
#define NEWTON_BLOCK4(NAME, SCALAR, T)                                                                  \
static FAST size_t NAME(const T *X, const double *beta, const double *targets, size_t n, size_t d, int fit,  \
                        const struct glm *g, double *sums, double *scaled, const int64_t *cols, size_t m)    \
{                                                                                                       \
    size_t k = d + (fit ? 1 : 0), invalid = 0, i = 0;                                                   \
    double *grad = sums + 4, *infox = sums + 4 + k;                                                     \
    double b = fit ? beta[d] : 0.0;                                                                     \
    v4f64 loss = {0}, weight = {0}, pearson = {0}, rsum = {0}, isum = {0};                              \
    for (; i + 4 <= n; i += 4) {                                                                        \
        const T *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;                              \
        const double *t = targets + 3 * i;                                                              \
        double z0 = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;                                                  \
        _Pragma("omp simd reduction(+:z0, z1, z2, z3)")                                                 \
        for (size_t j = 0; j < d; j++) {                                                                \
            double bj = beta[j];                                                                        \
            z0 += (double)x0[j] * bj, z1 += (double)x1[j] * bj;                                         \
            z2 += (double)x2[j] * bj, z3 += (double)x3[j] * bj;                                         \
        }                                                                                               \
        v4f64 y = {t[0], t[3], t[6], t[9]}, w = {t[1], t[4], t[7], t[10]};                              \
        v4f64 eta = (v4f64){b + t[2] + z0, b + t[5] + z1, b + t[8] + z2, b + t[11] + z3};               \
        v4f64 r, info, half, pear;                                                                      \
        v4f64_mask ok = canonical_terms(g->family, eta, y, w, &r, &info, &half, &pear);                 \
        if (!(ok[0] & ok[1] & ok[2] & ok[3])) {                                                         \
            invalid += SCALAR(x0, beta, t, 4, d, fit, g, NAN, sums, scaled + i * m, cols, m);           \
            continue;                                                                                   \
        }                                                                                               \
        loss += half, weight += w, pearson += pear, rsum += r, isum += info;                            \
        double r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];                                              \
        double i0 = info[0], i1 = info[1], i2 = info[2], i3 = info[3];                                  \
        double *o0 = scaled + i * m, *o1 = o0 + m, *o2 = o1 + m, *o3 = o2 + m;                          \
        if (!cols) {                                                                                    \
            double s0 = sqrt(i0), s1 = sqrt(i1), s2 = sqrt(i2), s3 = sqrt(i3);                          \
            _Pragma("omp simd")                                                                         \
            for (size_t j = 0; j < d; j++) {                                                            \
                double a0 = (double)x0[j], a1 = (double)x1[j], a2 = (double)x2[j], a3 = (double)x3[j];  \
                grad[j] += r0 * a0 + r1 * a1 + r2 * a2 + r3 * a3;                                       \
                infox[j] += i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3;                                      \
                o0[j] = s0 * a0, o1[j] = s1 * a1, o2[j] = s2 * a2, o3[j] = s3 * a3;                     \
            }                                                                                           \
            continue;                                                                                   \
        }                                                                                               \
        _Pragma("omp simd")                                                                             \
        for (size_t j = 0; j < d; j++) {                                                                \
            double a0 = (double)x0[j], a1 = (double)x1[j], a2 = (double)x2[j], a3 = (double)x3[j];      \
            grad[j] += r0 * a0 + r1 * a1 + r2 * a2 + r3 * a3;                                           \
            infox[j] += i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3;                                          \
        }                                                                                               \
        if (m) {                                                                                        \
            double s0 = sqrt(i0), s1 = sqrt(i1), s2 = sqrt(i2), s3 = sqrt(i3);                          \
            for (size_t c = 0; c < m; c++) {                                                            \
                size_t j = (size_t)cols[c];                                                             \
                o0[c] = s0 * (double)x0[j], o1[c] = s1 * (double)x1[j];                                 \
                o2[c] = s2 * (double)x2[j], o3[c] = s3 * (double)x3[j];                                 \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
    sums[0] += hsum_v4f64(loss), sums[1] += hsum_v4f64(weight), sums[2] += hsum_v4f64(pearson);         \
    if (fit) grad[d] += hsum_v4f64(rsum);                                                               \
    sums[4 + k + d] += hsum_v4f64(isum);                                                                \
    if (i < n)                                                                                          \
        invalid += SCALAR(X + i * d, beta, targets + 3 * i, n - i, d, fit, g, NAN, sums, scaled + i * m, cols, m); \
    return invalid;                                                                                     \
}

#endif
