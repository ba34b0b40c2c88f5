"""The first-order path's passes (fit/path_first_order.py): every model's loss, gradient, the
information's diagonal and held-out deviance at once, one read of the rank's rows and one
allreduce, over every column (`GradientEvaluator.evaluate`) or over a working set of them
(`evaluate_working`).

A full pass feeds the KKT check and the strong rule, which need the gradient of every column;
the steps between need it on the working set only. There the rows' entries outside the set are
dropped once (csrc/cpath.c's keep_columns; kept again only when the set outgrows the kept
columns, which take in the columns likely to join soon) and the models' coefficients, gradients
and diagonals are |kept| + 1 rows instead of 2^20 + 1: they stay in cache, the allreduce is
small, and the step reads no 2^20-wide vector. The sums are the full pass's bit for bit (a
dropped entry's coefficient is 0 in every model, and the kept ones are added in the same order).

A pass evaluates the models it is asked for, packed into the first lanes in the order of their
ids, and sums the information's diagonal only when asked (`informed`).
"""
from __future__ import annotations

import numpy as np

from ..models.glm import OFFSET, W, Y
from .folds import block_folds
from .path_sums import State

try:
    from .. import _cpath
except ImportError:
    _cpath = None

KERNEL_FAMILIES = {("gaussian", "identity"): 0, ("binomial", "logit"): 1, ("poisson", "log"): 2}
LANES = 8          # csrc/cpath.c's models per cache line of coefficients


def huge_zeros(n: int) -> np.ndarray:
    """n float64 zeros in memory the kernel asks to back with 2 MiB pages: B and G are read at
    random (a hashed column a CSR entry), and with 4 KiB pages each access also missed the TLB:
    the pass over 100,000 rows of 2^20 hashed columns took 35 ns an entry, 13 with huge pages
    (this host's transparent huge pages are "always", defrag "madvise": NumPy's zeros got none)."""
    try:
        import mmap

        area = mmap.mmap(-1, max(n, 1) * 8, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        area.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(area, dtype=np.float64, count=n)
    except (AttributeError, OSError, ValueError):  # no madvise here (not Linux): 4 KiB pages
        return np.zeros(n)


class Lanes:
    """Coefficients B and the pass's sums G (gradients), D (the information's diagonal) as
    (rows, S) float64, feature-major (a CSR entry's coefficients in every lane are one cache
    line; the last row is the intercept), and the (S, 4) [loss, weight, held deviance, held
    weight] of each lane."""

    def __init__(self, rows: int, S: int):
        self.B, self.G, self.D = (huge_zeros(rows * S).reshape(rows, S) for _ in range(3))
        self.sums = np.zeros((S, 4))


class GradientEvaluator:
    """Every requested model's loss, gradient, diagonal and held-out deviance from one pass and
    one allreduce, over every column or (`narrow`, `evaluate_working`) a working set of them."""

    def __init__(self, parts, run, folds: int, seed: int):
        self.parts, self.run, self.folds, self.seed = parts, run, folds, seed
        model = parts.model
        self.d, self.k = model.n_features, model.layout.size
        self.models = folds + 1
        self.S = -(-self.models // LANES) * LANES
        self.full = Lanes(self.d + 1, self.S)
        pair = (model.family.name, model.link.name)
        self.family = KERNEL_FAMILIES.get(pair) if _cpath is not None else None
        self._blocks = None  # resident rows with their folds, gathered once
        self._written = {}  # per lane: the coefficients it was last given in B (None: all)
        self.working = None  # the working set's columns, rows and lanes (`narrow`)
        self._squares = None  # column_squares, once
        self.rows = 0  # every rank's rows (known after the first pass)
        self.evaluations = [0, 0]  # (with the information, gradient-only), as path_sums' evaluators
        self.passes = {"full": 0, "working": 0}

    def _row_blocks(self):
        """(X, indptr or None, targets, folds as int8; -1: held out of no model) of this rank's rows."""
        if self._blocks is not None:
            return self._blocks
        blocks = self._read()
        if self.parts.train.resident:
            self._blocks = list(blocks)
            return self._blocks
        return blocks

    def _read(self):
        blocks = (block_folds(self.parts.train, self.folds, self.seed) if self.folds else
                  ((X, t, np.full(X.shape[0], -1)) for X, t in self.parts.train.blocks()))
        for X, targets, folds in blocks:
            indptr = None
            if hasattr(X, "tocsr") and self.family is not None:  # columns checked when the rows were read
                X = X.tocsr()
                indptr = X.indptr.astype(np.int64)  # once: SciPy's is int32 (a copy a pass otherwise)
            yield X, indptr, np.ascontiguousarray(targets, dtype=np.float64), folds.astype(np.int8)

    def evaluate(self, betas: dict, covered=None, informed=True) -> dict:
        """{model: State} at each model's beta over every column (no information matrix:
        `State.information` is None). `covered`: per model, the coefficients that may be non-zero
        (the others are 0), so that only they are written into the interleaved coefficients.
        `informed`: whether the pass sums the information's diagonal (`State.curvature`; else
        None): the KKT check's passes need the gradients only, half the scatters and the bytes."""
        order = sorted(betas)
        self._write([betas[m] for m in order], [(covered or {}).get(m) for m in order])
        self.passes["full"] += 1
        return self._pass(self.full, self._row_blocks(), betas, order, informed is not False)

    def narrow(self, at: np.ndarray, ahead=None) -> None:
        """Take the coefficients `at` (sorted; the intercept's among them where it is fitted) as
        the working set of the passes to come (`evaluate_working`). Where the kernel runs on
        resident rows their columns' entries are kept, with those of the columns `ahead` (likely
        to join soon) and of those kept already: the rows are kept again only when `at` leaves
        them (a keep reads every entry: along a 100-penalty path, every penalty had kept again)."""
        at = np.asarray(at, dtype=np.int64)
        ws = self.working
        if ws is not None and ws.covers(at):
            ws.focus(at)
            return
        columns = at[at < self.d]
        for more in (ahead, None if ws is None else ws.columns):
            if more is not None and len(more):
                columns = np.union1d(columns, more)
        self.working = WorkingSet(at, columns, self)

    def evaluate_working(self, betas: dict, informed: bool = True) -> dict:
        """{model: State} over the working set's coefficients: each beta, gradient and diagonal is
        [the working set's columns..., the intercept if fitted], as `restrict` makes them."""
        ws = self.working
        if ws.blocks is None:  # no kept rows (streamed, dense or another family): a full pass
            full = {m: self.expand(beta) for m, beta in betas.items()}
            states = self.evaluate(full, {m: ws.columns for m in betas}, informed)
            return {m: self.restrict(state, whole=True) for m, state in states.items()}
        lanes, order = ws.lanes, sorted(betas)
        for lane, m in enumerate(order):
            lanes.B[ws.rows, lane] = betas[m]  # (kept columns outside `at` stay 0: `at` only grows)
        self.passes["working"] += 1
        return self._pass(lanes, ws.blocks, betas, order, informed, ws.rows)

    def restrict(self, state: State, whole: bool = False) -> State:
        """A full state over the working set's coefficients (as `evaluate_working` gives them);
        `whole`: keeping the full one (State.whole) for the KKT check."""
        at = self.working.at
        curvature = None if state.curvature is None else state.curvature[at]
        return State(state.beta[at], state.loss, state.weight, state.gradient[at], None, state.held,
                     curvature=curvature, whole=state if whole else None)

    def expand(self, beta: np.ndarray) -> np.ndarray:
        """A working-set beta as every coefficient (0 outside the set)."""
        full = np.zeros(self.k)
        full[self.working.at] = beta
        return full

    def _pass(self, lanes: Lanes, blocks, betas: dict, order: list, informed: bool, rows=None) -> dict:
        """The models `order` in lanes 0, 1, ... (a round of few models computes few lanes); the
        states over the lanes' `rows` (all where None)."""
        lanes.sums[:] = 0.0  # (G and D are zero: take_lanes left them so, or they are new)
        self.evaluations[1] += len(betas)
        invalid = 0
        fit = self.k > self.d
        D = lanes.D if informed else None
        ids = np.full(self.S, -1.0)
        ids[:len(order)] = order
        rows_here = 0
        with self.run.clock("compute"):
            for X, indptr, targets, folds in blocks:
                rows_here += len(targets)
                if indptr is not None:
                    invalid += _cpath.fold_gradients(indptr, X.indices, X.data, targets, folds, lanes.B, lanes.G,
                                                     D, lanes.sums, self.family, ids, fit)
                else:
                    invalid += self._numpy_pass(X, targets, folds, ids[:len(order)], informed)
        if invalid:
            lanes.sums[:, 0] = np.inf  # a mean outside the family's range: the line search steps back
        n, R = len(order), lanes.G.shape[0]
        packed = np.empty((2 if informed else 1) * n * R + 4 * n + 1)  # the used lanes only, model-major:
        gradients = packed[:n * R].reshape(n, R)                   # 6 of 8 lanes' bytes on the wire
        diagonals = packed[n * R:2 * n * R].reshape(n, R) if informed else None
        self._lanes(lanes.G, gradients)
        if informed:
            self._lanes(lanes.D, diagonals)
        packed[-4 * n - 1:-1] = lanes.sums[:n].ravel()
        packed[-1] = rows_here
        with self.run.clock("comm"):
            self.run.allreduce(packed)
        self.run.progress.epoch += 1
        rows = slice(0, R - 1 + self.k - self.d) if rows is None else rows
        sums = packed[-4 * n - 1:-1].reshape(n, 4)
        self.rows = int(packed[-1])
        out = {}
        for lane, m in enumerate(order):
            loss, weight, held, held_weight = sums[lane]
            out[m] = State(betas[m], float(loss), float(weight), gradients[lane, rows], None,
                           np.array([held, held_weight]),
                           curvature=None if diagonals is None else diagonals[lane, rows])
        return out

    def column_squares(self) -> np.ndarray:
        """sum_i x_ij^2 over every rank's rows (and the intercept's: the rows), once: with a
        model's last diagonal, an estimate of a column's curvature before a pass sums it."""
        if self._squares is None:
            squares = np.zeros(self.d + 1)
            for X, _, _, _ in self._row_blocks():
                squares[:self.d] += np.asarray(_squared(X).sum(axis=0)).ravel()
                squares[self.d] += X.shape[0]
            with self.run.clock("comm"):
                self.run.allreduce(squares)
            self._squares = squares if self.k > self.d else squares[:self.d]
        return self._squares

    @staticmethod
    def _lanes(interleaved, out) -> None:
        """out (n, rows) from the first n of the (rows, S) lanes, which are left zero for the next pass."""
        if _cpath is not None:
            _cpath.take_lanes(interleaved, out, out.shape[0])
        else:
            out[:] = interleaved[:, :out.shape[0]].T
            interleaved[:] = 0.0

    def _write(self, betas: list, covered: list) -> None:
        """Lane l's coefficients betas[l] into B: where covered[l] names the coefficients that
        may be non-zero, only there (and 0 where the lane's last write put values outside them)."""
        d, B = self.d, self.full.B
        for lane, (beta, at) in enumerate(zip(betas, covered)):
            written = self._written.get(lane)
            if at is None or written is None:
                B[:d, lane] = beta[:d]
            else:
                B[written, lane] = 0.0
                B[at[at < d], lane] = beta[at[at < d]]
            self._written[lane] = None if at is None else at[at < d]
            B[d, lane] = beta[d] if self.k > d else 0.0

    def _numpy_pass(self, X, targets, folds, ids, informed: bool = True) -> int:
        """The same sums with SciPy's products and the family's own functions (any family and
        link, dense rows; csrc/cpath.c's reference), lane l for the model ids[l]."""
        model, M, lanes = self.parts.model, len(ids), self.full
        eta = np.asarray(X @ lanes.B[:self.d, :M]) + targets[:, OFFSET, None]
        if self.k > self.d:
            eta += lanes.B[self.d, :M]
        mu = model.link.inverse(eta)
        y, w = targets[:, Y, None], targets[:, W, None]
        with np.errstate(all="ignore"):
            deviance = model.family.unit_deviance(y, mu)
            r = w * (mu - y) * model.link.derivative(eta, mu) / model.family.variance(mu)
        invalid = int((~np.isfinite(deviance)).any() or (~model.family.valid_mu(mu)).any())
        held = folds[:, None] == ids[None, :]
        wd = w * np.where(np.isfinite(deviance), deviance, np.inf)
        lanes.sums[:M, 0] += 0.5 * np.where(held, 0.0, wd).sum(axis=0)
        lanes.sums[:M, 1] += np.where(held, 0.0, w).sum(axis=0)
        lanes.sums[:M, 2] += np.where(held, wd, 0.0).sum(axis=0)
        lanes.sums[:M, 3] += np.where(held, w, 0.0).sum(axis=0)
        r = np.where(held | ~np.isfinite(r), 0.0, r)
        lanes.G[:self.d, :M] += np.asarray(X.T @ r)
        lanes.G[self.d, :M] += r.sum(axis=0)
        if not informed:
            return invalid
        with np.errstate(all="ignore"):
            v = w * model.link.derivative(eta, mu) ** 2 / model.family.variance(mu)
        v = np.where(held | ~np.isfinite(v), 0.0, v)
        lanes.D[:self.d, :M] += np.asarray(_squared(X).T @ v)
        lanes.D[self.d, :M] += v.sum(axis=0)
        return invalid


def _squared(X):
    """X's entries squared, in float64 (squared in float32 the diagonal would carry its rounding)."""
    X64 = X.astype(np.float64)
    return X64.multiply(X64) if hasattr(X64, "multiply") else X64 * X64


class WorkingSet:
    """The working set's coefficients `at` (its columns and the intercept), the columns whose
    entries each resident block keeps (`columns`, at's and more; csrc/cpath.c's keep_columns;
    `blocks` None where the kernel does not run on kept rows), their lanes, and the lanes' rows
    of at's coefficients (`rows`)."""

    def __init__(self, at: np.ndarray, columns: np.ndarray, evaluator: GradientEvaluator):
        d = self.d = evaluator.d
        self.lanes = self.blocks = None
        blocks = evaluator._row_blocks() if evaluator.parts.train.resident else None
        if not blocks or any(indptr is None for _, indptr, _, _ in blocks) or len(columns) == d:
            self.columns = at[at < d]  # streamed or dense rows, another family, or every column:
            self.at = at               # passes over every column
            return
        self.columns = np.asarray(columns, dtype=np.int64)
        position = np.full(d, -1, dtype=np.int32)
        position[self.columns] = np.arange(len(self.columns), dtype=np.int32)
        self.blocks = []
        for X, indptr, targets, folds in blocks:
            kept = _kept(X, indptr, position)
            self.blocks.append((kept, kept.indptr, targets, folds))
        self.lanes = Lanes(len(self.columns) + 1, evaluator.S)
        self.focus(at)

    def covers(self, at: np.ndarray) -> bool:
        """Whether at's columns are all kept (a working set that grew within them)."""
        wanted = at[at < self.d]
        if self.blocks is None:
            return np.array_equal(wanted, self.columns)
        return bool(np.isin(wanted, self.columns, assume_unique=True).all())

    def focus(self, at: np.ndarray) -> None:
        """Take `at` (within the kept columns) and the lanes' rows of its coefficients."""
        self.at = at
        if self.blocks is not None:
            place = np.searchsorted(self.columns, at[at < self.d])
            self.rows = np.append(place, len(self.columns)) if len(place) < len(at) else place


class _Kept:
    """A CSR block's kept entries, as the kernel reads them (indptr int64, indices int32)."""

    def __init__(self, indptr, indices, data):
        self.indptr, self.indices, self.data = indptr, indices, data


def _kept(X, indptr, position) -> _Kept:
    out_indptr = np.empty(len(indptr), dtype=np.int64)
    out_indices = np.empty(len(X.indices), dtype=np.int32)
    out_data = np.empty(len(X.data), dtype=X.data.dtype)
    n = _cpath.keep_columns(indptr, X.indices, X.data, position, out_indptr, out_indices, out_data)
    return _Kept(out_indptr, out_indices[:n], out_data[:n])
