"""Alternating least squares for matrix factorisation (model.kind = "mf", optimizer.kind = "als").

Users and items are sharded: rank r owns a contiguous range of users and one of items, and
the ratings are moved once, at the start, to the owners (MPI Alltoallv): each rank holds the
ratings of its users (grouped by user) and, a second copy, those of its items. A sweep is

    item rows its users rated  --exchange-->  solve its users' factors (k x k systems)
    user rows its items got    --exchange-->  solve its items' factors
    -> objective and held-out RMSE: one small allreduce each

where the exchange (fit/factor_rows.py) is an allgather of the whole factor matrix when it is small,
or a pull of exactly the rows needed from the ranks that own them. No rank ever holds another
rank's ratings or solves another rank's rows; the whole model is assembled only for checkpoints
and the model file. Each row's solve sums its ratings in a fixed order, so the factors do not
depend on the number of ranks (to the last bits of LAPACK's solve). The intercept stays at the
global mean rating (models/mf.py).
"""
from __future__ import annotations


import numpy as np
from mpi4py import MPI

from .. import log
from .topology.factor_rows import RowExchange, assemble_rows, choose_exchange, displacements
from ..data.assign import rank_range
from ..device import to_host
from ..models.mf import solve_factors, squared_error
from .loop import record_epoch


def fit(parts, run) -> None:
    cfg, progress, model = parts.cfg, run.progress, parts.model
    with run.clock("comm"):  # the ratings move to the ranks that own their users and items
        users, items, test, n_ratings = _start(parts)
    log.info(f"als: rank {model.rank}, l2 {model.l2}, {n_ratings} ratings; factor rows by "
             f"{users.exchange.mode} (items) / {items.exchange.mode} (users)")
    while progress.epoch < cfg.optimizer.epochs and not progress.stopped_early:
        objective = _sweep(parts, run, users, items, n_ratings)
        progress.epoch += 1
        progress.step += 1
        progress.samples += n_ratings
        record_epoch(parts, run, objective,
                     None if test is None else lambda: test.rmse(parts.comm, users, items))
        if run.stop_requested_everywhere():
            run.stopped_by_signal = True
            _assemble(parts, users, items)
            run.checkpoint()
            return
        if run.run_dir is not None:
            _assemble(parts, users, items)
            run.checkpoint()
    _assemble(parts, users, items)


def _start(parts):
    """Each side's owned rows with their ratings, the held-out ratings, the global count."""
    model, mode = parts.model, parts.cfg.comm.factor_exchange
    pairs, ratings = _local_ratings(parts.train)
    views = model.layout.views(parts.params)
    intercept = float(to_host(views["intercept"]))
    users = Side(parts.comm, pairs, ratings, 0, model.n_users, model.n_items, model.rank, mode, intercept)
    items = Side(parts.comm, pairs, ratings, 1, model.n_items, model.n_users, model.rank, mode, intercept)
    lo, hi = items.owned
    items.factors[...] = to_host(views["item_factors"])[lo:hi]  # drawn from the seed, or resumed
    test = HeldOut(parts, intercept, mode) if parts.test is not None else None
    return users, items, test, parts.comm.allreduce(len(ratings))


def _sweep(parts, run, users: "Side", items: "Side", n_ratings: int) -> float:
    """Users from items, then items from users; the objective (mean loss per rating) after."""
    l2 = parts.model.l2
    with run.clock("compute"):  # the factor exchanges inside are timed as communication
        users.solve(items.factors, l2, run.clock)
        user_rows = items.solve(users.factors, l2, run.clock)
        loss = np.array([items.loss(user_rows, l2) + users.penalty(l2)])
    with run.clock("comm"):
        run.allreduce(loss)
    return float(loss[0]) / n_ratings


class Side:
    """The rows this rank owns on one side (users or items) and the ratings they got."""

    def __init__(self, comm, pairs, ratings, column: int, n_rows: int, n_other: int, rank: int,
                 mode: str, intercept: float):
        self.n_rows, self.owned = n_rows, rank_range(n_rows, comm.rank, comm.size)
        key, other, values = _to_owners(comm, pairs[:, column], pairs[:, 1 - column], ratings, n_rows)
        # by row, then by the other index: a fixed order for each row's sums (stable: repeated
        # ratings of one pair keep the order they were read in)
        order = np.argsort(key * n_other + other, kind="stable")
        key, other = key[order] - self.owned[0], other[order]
        self.targets = np.ascontiguousarray(values[order] - intercept)
        self.starts = np.searchsorted(key, np.arange(self.owned[1] - self.owned[0] + 1)).astype(np.int64)
        self.counts = np.diff(self.starts)
        needed, self.where = _distinct(other, n_other)
        self.exchange = RowExchange(comm, n_other, needed, choose_exchange(mode, n_other, rank))
        self.factors = np.zeros((self.owned[1] - self.owned[0], rank))

    def solve(self, other_factors, l2: float, clock):
        """This side's factors from the other side's owned rows; returns the other side's
        rows this side's ratings name (for the objective)."""
        with clock("comm"):
            rows = self.exchange.gather(other_factors)
        solve_factors(rows, self.where, self.targets, self.starts, l2, self.factors)
        return rows

    def loss(self, other_rows, l2: float) -> float:
        """Sum over this side's ratings of the squared error / 2, plus its rows' penalty."""
        return 0.5 * squared_error(other_rows, self.where, self.factors, self.starts, self.targets) + self.penalty(l2)

    def penalty(self, l2: float) -> float:
        return 0.5 * l2 * float(self.counts @ np.einsum("ij,ij->i", self.factors, self.factors))


class HeldOut:
    """The held-out ratings this rank reads, with the factor rows they need fetched each epoch."""

    def __init__(self, parts, intercept: float, mode: str):
        model, comm = parts.model, parts.comm
        self.pairs, self.ratings = _local_ratings(parts.test)
        self.intercept = intercept
        self.sides = []
        for column, n_rows in ((0, model.n_users), (1, model.n_items)):
            needed, where = _distinct(self.pairs[:, column], n_rows)
            self.sides.append((RowExchange(comm, n_rows, needed, choose_exchange(mode, n_rows, model.rank)),
                               where))
        self.n = comm.allreduce(len(self.ratings))

    def rmse(self, comm, users: Side, items: Side) -> dict:
        (user_x, user_at), (item_x, item_at) = self.sides
        U = user_x.gather(users.factors)[user_at]
        V = item_x.gather(items.factors)[item_at]
        err = self.intercept + np.einsum("ij,ij->i", U, V) - self.ratings
        sse = np.array([float(err @ err)])
        comm.Allreduce(MPI.IN_PLACE, sse)
        return dict(rows=self.n, rmse=float(np.sqrt(sse[0] / max(self.n, 1))))


def _assemble(parts, users: Side, items: Side) -> None:
    """The whole model into parts.params on every rank. Collective."""
    views = parts.model.layout.views(parts.params)
    for name, side in (("user_factors", users), ("item_factors", items)):
        views[name][...] = parts.xp.asarray(assemble_rows(parts.comm, side.n_rows, side.factors))


def _local_ratings(data):
    """This rank's (pairs, ratings) from its blocks, ratings in float64."""
    blocks = list(data.blocks())
    if not blocks:
        return np.empty((0, 2), dtype=np.int64), np.empty(0)
    return (np.concatenate([to_host(X) for X, _ in blocks]),
            np.concatenate([to_host(y) for _, y in blocks]).astype(np.float64))


def _distinct(indices, n: int):
    """(the distinct indices in order, the position of each index among them): np.unique's
    answer by a bitmap of n entries, twenty times faster for indices below n."""
    seen = np.zeros(n, dtype=bool)
    seen[indices] = True
    position = np.cumsum(seen, dtype=np.int64) - 1
    return np.flatnonzero(seen), position[indices]


def _to_owners(comm, key, other, values, n_rows: int):
    """Every rating to the rank that owns its `key` row (MPI Alltoallv). Collective."""
    starts = np.array([rank_range(n_rows, r, comm.size)[0] for r in range(comm.size)])
    owner = np.searchsorted(starts, key, side="right") - 1
    order = np.argsort(owner, kind="stable")
    send_counts = np.bincount(owner, minlength=comm.size).astype(np.int64)
    recv_counts = np.empty_like(send_counts)
    comm.Alltoall(send_counts, recv_counts)
    out = []
    for array, dtype, mpi_type in ((key, np.int64, MPI.INT64_T), (other, np.int64, MPI.INT64_T),
                                   (values, np.float64, MPI.DOUBLE)):
        send = np.ascontiguousarray(array[order], dtype=dtype)  # the dtype its MPI type names
        recv = np.empty(int(recv_counts.sum()), dtype=send.dtype)
        comm.Alltoallv([send, (send_counts, displacements(send_counts)), mpi_type],
                       [recv, (recv_counts, displacements(recv_counts)), mpi_type])
        out.append(recv)
    return out

