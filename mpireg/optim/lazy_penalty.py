"""The penalty of sparse SGD, applied lazily: a step costs its batch's keys, not the dimension.

The penalty makes every coefficient move every step, touched or not: SGD's step with L2 and L1
(the dense optimizers' order: gradient step with l2 * w, then the soft threshold) is, for a
key the batch does not touch, w <- sign(w) max(0, c_t |w| - a_t) with c_t = 1 - lr_t l2 and
a_t = lr_t l1. Such maps compose in closed form, so `LazyPenalty` keeps two running numbers,
P_t = prod c and Q_t = sum a_tau / P_tau, and a (P, Q) snapshot per key; a key catches up on
the steps it missed when it is next read: |w| <- max(0, (P_t / P_s) |w| - P_t (Q_t - Q_s)).
The parameters are then exactly those of the dense update. The sharded parameter server
(fit/topology/key_shards.py) keeps one per key range.
"""
from __future__ import annotations

import numpy as np

FLUSH_BELOW = 1e-150  # P_t this small: bring every key up to date and restart the products


class LazyPenalty:
    """The penalty maps of the steps each key missed, applied when it is next read."""

    def __init__(self, n_keys: int, l2: float, l1: float, penalized):
        self.l2, self.l1 = l2, l1
        self.penalized = np.asarray(penalized, dtype=bool)
        self.P, self.Q = 1.0, 0.0
        self.seen_P = np.ones(n_keys)
        self.seen_Q = np.zeros(n_keys)

    @property
    def active(self) -> bool:
        return bool(self.l2 or self.l1)

    def catch_up(self, values, keys) -> None:
        """values[keys] as of now (rows: keys; columns: a key's values)."""
        if not self.active or not len(keys):
            return
        keys = keys[self.penalized[keys]]
        scale = (self.P / self.seen_P[keys])[:, None]
        shift = (self.P * (self.Q - self.seen_Q[keys]))[:, None]
        v = values[keys]
        values[keys] = np.sign(v) * np.maximum(scale * np.abs(v) - shift, 0.0)
        self.seen_P[keys], self.seen_Q[keys] = self.P, self.Q

    def step(self, values, keys, mean_grad, lr: float) -> None:
        """The step of the keys a batch touched (`mean_grad` rows) and, lazily, of all others."""
        self.catch_up(values, keys)
        c, a = 1.0 - lr * self.l2, lr * self.l1
        v = values[keys]
        pen = self.penalized[keys][:, None]
        v = np.where(pen, c * v, v) - lr * mean_grad
        if self.l1:
            v = np.where(pen, np.sign(v) * np.maximum(np.abs(v) - a, 0.0), v)
        values[keys] = v
        if self.active:
            self.P *= c
            self.Q += a / self.P
            self.seen_P[keys], self.seen_Q[keys] = self.P, self.Q
            if self.P < FLUSH_BELOW:
                self.flush(values)

    def flush(self, values) -> None:
        """Every key up to date; the running products start again."""
        self.catch_up(values, np.arange(len(self.seen_P)))
        self.P, self.Q = 1.0, 0.0
        self.seen_P[:], self.seen_Q[:] = 1.0, 0.0
