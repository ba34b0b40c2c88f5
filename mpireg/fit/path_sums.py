"""Every model's sums along a regularisation path (fit/path.py), at the points a round of Newton
steps asks for, with one allreduce: from the rows (`DataEvaluator`, one pass a round), or, for
the Gaussian family with the identity link, from each fold's moments summed once
(`GramEvaluator`, no pass at all)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..device import to_host
from ..models.glm import OFFSET, W, Y, NewtonSums
from ..optim.gram import gram_sums
from .folds import block_folds


@dataclass
class State:
    """One model at beta: its sums over the rows it trains on, and over the rows it holds out."""

    beta: np.ndarray
    loss: float           # sum w d / 2
    weight: float         # sum w
    gradient: np.ndarray  # sum (k)
    information: np.ndarray  # sum (k x k)
    held: np.ndarray      # [sum w d, sum w] over the held-out fold (zeros for the full model)
    covered: np.ndarray | None = None  # where the information was summed (None: everywhere)
    informed: bool = True  # False: a gradient-only pass; `information` is an earlier point's
    curvature: np.ndarray | None = None  # the information's diagonal (sums), the first-order path's
    whole: State | None = field(default=None, repr=False, compare=False)  # a working-set state's, over
    # every coefficient, where the pass had it (fit/path_gradients.py's restrict)
    _per_weight: np.ndarray | None = field(default=None, repr=False, compare=False)

    def objective(self, l1, l2, penalized) -> tuple[float, np.ndarray, np.ndarray]:
        """(penalised objective, its smooth part's gradient, information) per weight."""
        w = max(self.weight, 1e-300)
        l2v = l2 * penalized
        value = self.loss / w + 0.5 * float(l2v @ (self.beta ** 2)) + l1 * float(penalized @ np.abs(self.beta))
        return value, self.gradient / w + l2v * self.beta, self.information / w + np.diag(l2v)

    def loss_gradient(self) -> np.ndarray:
        """The unpenalised loss's gradient per weight (the strong rule's), without the k x k
        information objective() also scales."""
        if self._per_weight is None:  # asked for several times a round along a first-order path
            self._per_weight = self.gradient / max(self.weight, 1e-300)
        return self._per_weight


# ------------------------------------------------------------------------------ evaluators
class DataEvaluator:
    """Every requested model's sums from one pass over the rows and one allreduce."""

    def __init__(self, parts, run, folds: int, seed: int):
        self.parts, self.run, self.folds, self.seed = parts, run, folds, seed
        self.k = parts.model.layout.size
        self._grouped = None  # resident rows, copied once into contiguous per-fold blocks
        self.evaluations = [0, 0]  # a model at a point: with its information, gradient-only

    def _fold_blocks(self):
        """(fold, X, targets) of this rank's rows, fold by fold within each block. Resident rows
        are grouped by fold once (a copy of them; gathering every pass cost 13% of a path's
        time at 100,000 x 40); streamed rows are gathered as they come."""
        if self._grouped is not None:
            return self._grouped
        if self.parts.train.resident:
            self._grouped = list(self._gather())
            return self._grouped
        return self._gather()

    def _gather(self):
        for X, targets, folds in block_folds(self.parts.train, self.folds, self.seed):
            for f in range(self.folds):
                rows = np.flatnonzero(folds == f)
                if rows.size:
                    yield f, X[rows], targets[rows]

    def evaluate(self, betas: dict, covered: dict | None = None, informed=None) -> dict:
        """`covered`: per model, the coefficients whose block of the information it needs (its
        strong set: the Gram's cost falls with its square); the gradient is always whole.
        `informed`: the models that need the information at all (None: every one); the others
        get a gradient-only pass (no scaled rows, no syrk: 0.40x of a full pass, 5.1 against
        12.8 ms at 100,000 x 40) and carry no information (State.informed False)."""
        model, k = self.parts.model, self.k
        d = model.n_features
        covered = covered or {}
        informed = set(betas) if informed is None else set(informed)
        columns = {m: (np.flatnonzero(covered[m][:d]) if m in covered else None) for m in betas}
        for m in set(betas) - informed:
            columns[m] = np.empty(0, dtype=np.int64)
        self.evaluations[0] += len(set(betas) & informed)
        self.evaluations[1] += len(set(betas) - informed)
        sums = {m: NewtonSums(k) for m in betas}
        held = {m: np.zeros(2) for m in betas}
        with self.run.clock("compute"):
            if not self.folds:
                for X, targets in self.parts.train.blocks():
                    for m, beta in betas.items():
                        model.newton_sums(beta, X, targets, sums[m], columns=columns[m])
            else:
                for f, X, targets in self._fold_blocks():
                    self._fold_sums(betas, f, X, targets, sums, held, columns)
        buffer = np.concatenate([np.r_[sums[m].buffer, held[m]] for m in betas])
        with self.run.clock("comm"):
            self.run.allreduce(buffer)
        self.run.progress.epoch += 1
        out, size = {}, len(NewtonSums(k).buffer) + 2
        for i, (m, beta) in enumerate(betas.items()):
            part = NewtonSums(k)
            part.buffer[:] = buffer[i * size:i * size + size - 2]
            out[m] = State(beta, part.values[part.LOSS], part.values[part.WEIGHT], part.gradient.copy(),
                           part.information(), buffer[(i + 1) * size - 2:(i + 1) * size].copy(),
                           covered.get(m), m in informed)
        return out

    def _fold_sums(self, betas, f, X, targets, sums, held, columns) -> None:
        """Fold f's rows: the Newton sums of the models that train on them, and the held-out
        deviance of fold f's own model."""
        model = self.parts.model
        for m, beta in betas.items():
            if m != f:
                model.newton_sums(beta, X, targets, sums[m], columns=columns[m])
                continue
            held[m] += model.deviance_sums(beta, X, targets)


class GramEvaluator:
    """The Gaussian family with the identity link: every model's sums at any beta from each
    fold's moments, summed in one pass (the only one the path takes)."""

    def __init__(self, parts, run, folds: int, seed: int):
        model = parts.model
        self.k, self.folds, self.run = model.layout.size, folds, run
        parts_count = max(folds, 1)
        k = self.k
        moments = np.zeros((parts_count, k * k + k + 2))  # per fold: A, b, sum w r^2, sum w
        with run.clock("compute"):
            blocks = (block_folds(parts.train, folds, seed) if folds else
                      ((X, t, np.zeros(X.shape[0], dtype=np.int64)) for X, t in parts.train.blocks()))
            for X, targets, fold in blocks:
                for f in range(parts_count):
                    rows = np.flatnonzero(fold == f) if folds else slice(None)
                    t = targets[rows]
                    if not t.shape[0]:
                        continue
                    r, w = t[:, Y] - t[:, OFFSET], t[:, W]
                    A, b = moments[f, :k * k].reshape(k, k), moments[f, k * k:k * k + k]
                    block = X[rows]
                    gram_sums(block if hasattr(block, "tocsr") else to_host(block), r, model.fit_intercept, A, b, w)
                    moments[f, -2:] += (float(w @ (r * r)), float(w.sum()))
        with run.clock("comm"):
            run.allreduce(moments)
        run.progress.epoch += 1
        self.parts_moments = moments
        self.total = moments.sum(axis=0)
        self.evaluations = [0, 0]  # as DataEvaluator's: here from the moments, no pass
    def _moments(self, m: int, held: bool):
        k = self.k
        source = (self.parts_moments[m] if held else
                  self.total - self.parts_moments[m] if m < self.folds else self.total)
        return source[:k * k].reshape(k, k), source[k * k:k * k + k], source[-2], source[-1]

    def evaluate(self, betas: dict, covered: dict | None = None, informed=None) -> dict:
        out = {}  # the information is the Gram itself here: always whole, at no cost
        self.evaluations[0] += len(betas)
        for m, beta in betas.items():
            A, b, rr, w = self._moments(m, held=False)
            Ab = A @ beta
            loss = 0.5 * (float(beta @ Ab) - 2 * float(b @ beta) + rr)
            held = np.zeros(2)
            if m < self.folds:
                Af, bf, rrf, wf = self._moments(m, held=True)
                held[:] = (float(beta @ Af @ beta) - 2 * float(bf @ beta) + rrf, wf)
            out[m] = State(beta, loss, w, Ab - b, A, held)
        return out
