"""What the estimators share: their parameters are job keys, and `fit` is the CLI's engine.

An estimator's parameters are a job file's keys under the names scikit-learn users know
(`PARAMETER_KEYS`); `job` holds any other key, as a TOML table would. `fit` builds the
`JobConfig` the CLI would build, validated by the same code, and runs the same engine
(mpireg.fit) on this rank's rows: shard paths (each rank reads only its own rows) or arrays
(each rank passes its own). Under mpiexec, `fit` and `score` are collective: every rank calls
them, in the same order; `predict` is local.

Errors: what fails on every rank (a bad key, a bad shard, a mismatch between ranks) is raised on
every rank, as one ValueError naming the key, file or rank. What fails on one rank only while
the others wait would hang them, so under mpiexec it ends the job (MPI_Abort), with the message.
"""
from __future__ import annotations

import copy
import os
import sys
import traceback

import numpy as np
from sklearn.base import BaseEstimator

from .. import log
from ..config import JobConfig, config_from_dict, load_job
from ..data import read_schema, resolve_paths
from ..data.arrays import SOURCE
from ..device import is_device_array, to_host
from ..errors import CollectiveError, ConfigError, DataError
from ..fit import Arrays, Run
from ..fit.parts import ensure_synthetic
from ..parallel import agree, default_comm, on_rank_zero, root_then_bcast

# parameter -> job key; every estimator has these (and its own penalty alias, alpha or C)
PARAMETER_KEYS = {
    "l2": "model.l2", "l1": "model.l1", "fit_intercept": "model.fit_intercept",
    "solver": "optimizer.kind", "lr": "optimizer.lr", "momentum": "optimizer.momentum",
    "batch_size": "optimizer.batch_size", "epochs": "optimizer.epochs",
    "max_iter": "optimizer.max_iter", "tol": "optimizer.tol",
    "strategy": "comm.strategy", "deterministic": "comm.deterministic",
    "compression": "comm.compression", "dtype": "data.dtype", "device": "device", "seed": "seed",
}
# keys the estimator itself sets: not the user's to give in `job`
OWN_KEYS = ("model.kind", "data.train", "name")
SOLVERS = ("auto", "lbfgs", "normal", "sgd", "adam")


class MpiregEstimator(BaseEstimator):
    """Base of the estimators; subclasses say which model kind a fit uses and how the
    scikit-learn penalty alias (alpha, C) becomes `l2`."""

    _penalty_alias = ""  # "alpha" or "C"
    _own_parameters = {}  # parameter -> job key, beyond PARAMETER_KEYS (the MLP's hidden_layer_sizes)

    @classmethod
    def _parameter_keys(cls) -> dict:
        return {**PARAMETER_KEYS, **cls._own_parameters}

    # ------------------------------------------------------------------ job <-> parameters
    @classmethod
    def from_job(cls, job, overrides=()):
        """An estimator whose parameters are a job file's (a path, or a table as a dict)."""
        cfg = load_job(job, list(overrides)) if not isinstance(job, dict) else config_from_dict(job)
        return cls.from_config(cfg.to_dict())

    @classmethod
    def from_config(cls, table: dict):
        """An estimator whose parameters are a resolved job's (`JobConfig.to_dict()`, or a model
        file's config); keys left at their defaults stay out of `job`."""
        rest = _without_defaults(copy.deepcopy(table), JobConfig().to_dict())
        params = {name: _pop(rest, key) for name, key in cls._parameter_keys().items()}
        _pop(rest, "model.kind")
        _pop(rest, "name")
        if _get(rest, "data.train") == [SOURCE]:  # fitted on arrays: nothing to fit again from
            _pop(rest, "data.train")
        return cls(**{k: v for k, v in params.items() if v is not _MISSING}, job=_prune(rest) or None)

    def job_table(self, model_kind: str, train, l2: float) -> dict:
        """The job this fit runs, as the TOML table a job file would hold."""
        table = copy.deepcopy(self.job) if self.job else {}
        if not isinstance(table, dict):
            raise ConfigError(f"job: expected a table of job keys (a dict), got {type(table).__name__}")
        for name, key in self._parameter_keys().items():
            if _get(table, key) is not _MISSING:
                raise ConfigError(f"job: {key} is the parameter {name}= of {type(self).__name__}; set it there")
        for key in OWN_KEYS:
            if key != "data.train" and _get(table, key) is not _MISSING:
                raise ConfigError(f"job: {key} is chosen by {type(self).__name__} itself")
        for name, key in self._parameter_keys().items():
            _set(table, key, _as_job_value(getattr(self, name)))
        _set(table, "model.l2", l2)
        _set(table, "optimizer.kind", self._solver())
        _set(table, "model.kind", model_kind)
        if train is not None:
            _set(table, "data.train", list(train))
        table.setdefault("name", type(self).__name__)
        return table

    def _solver(self) -> str:
        if self.solver not in SOLVERS:
            raise ConfigError(f"solver: expected one of {', '.join(map(repr, SOLVERS))}, got {self.solver!r}")
        if self.solver != "auto":
            return self.solver
        if self.l1:
            return "adam"  # an L1 penalty needs a proximal step
        return self._exact_solver

    _exact_solver = "lbfgs"  # what "auto" means without l1

    def _l2(self, n_rows: int) -> float:
        alias = getattr(self, self._penalty_alias, None) if self._penalty_alias else None
        if alias is None:
            return float(self.l2)
        if self.l2:
            raise ConfigError(f"{self._penalty_alias}: give either {self._penalty_alias}= "
                              f"(scikit-learn's scale) or l2= (mpireg's), not both")
        return self._alias_to_l2(float(alias), n_rows)

    # ------------------------------------------------------------------ the fit
    def _comm(self):
        return self.comm if self.comm is not None else default_comm()

    def _fit(self, X, y, encode):
        """Run the engine; `encode(comm, y)` -> (codes, task, n_classes, classes) for arrays."""
        comm = self._comm()

        def body():
            with log.quiet(not self.verbose):
                if X is None or _is_paths(X):
                    self._fit_shards(comm, X, y)
                else:
                    self._fit_arrays(comm, X, y, encode)
            return self

        return collective(comm, body)

    def _fit_shards(self, comm, X, y):
        if y is not None:
            raise ConfigError("y: shards hold their own targets; call fit(paths) without y")
        train = None if X is None else [os.fspath(p) for p in ([X] if isinstance(X, (str, os.PathLike)) else X)]
        specs = train if train is not None else _get(self.job or {}, "data.train")
        if specs is _MISSING or not specs:
            raise ConfigError("fit: give shard paths or arrays (or a job with data.train)")
        if train is None and _get(self.job or {}, "data.synth") is not _MISSING:  # the quickstart's data
            cfg = agree(comm, lambda: config_from_dict(self.job_table(self._model_kind("binary", 2), None, 0.0)))
            on_rank_zero(comm, lambda: ensure_synthetic(cfg))
        schema = root_then_bcast(comm, lambda: read_schema(resolve_paths(specs, "data.train"), "data.train"))
        kind = self._model_kind(schema.task, schema.n_classes)
        classes = np.arange(schema.n_classes) if schema.n_classes else None
        self._run(comm, kind, train, self._l2(schema.n_rows), None, classes)

    def _fit_arrays(self, comm, X, y, encode):
        X, y = local_phase(comm, lambda: self._validate_fit(_check_device(X, self.device), y))
        codes, task, n_classes, classes = encode(comm, y)
        n_rows = comm.allreduce(int(X.shape[0]))
        kind = self._model_kind(task, n_classes)
        self._run(comm, kind, [SOURCE], self._l2(n_rows), Arrays(X, codes, task, n_classes), classes)

    def _run(self, comm, kind, train, l2, arrays, classes):
        table = agree(comm, lambda: self.job_table(kind, train, l2))
        cfg = agree(comm, lambda: config_from_dict(table))
        cfg.run.progress = cfg.run.progress and bool(self.verbose)  # a bar only when asked to talk
        run = Run(cfg, comm, self.run_dir, arrays=arrays)
        self.summary_ = run.run()
        parts = run.parts
        self._set_fitted(cfg.to_dict(), parts.model, to_host(parts.params), parts.schema.describe(), classes)
        self.n_iter_ = self._iterations(cfg, run.progress)

    @staticmethod
    def _iterations(cfg: JobConfig, progress) -> int:
        """L-BFGS: iterations; the normal equations: 1; SGD/Adam: epochs (as SGDClassifier)."""
        return progress.epoch if cfg.optimizer.kind in ("sgd", "adam") else max(progress.step, 1)


def collective(comm, body):
    """Run a collective API call. An error every rank raised together is raised here; one that
    only this rank has would leave the others waiting, so it ends the job (MPI_Abort)."""
    try:
        return body()
    except CollectiveError:
        raise
    except BaseException as exc:
        if comm.size == 1:
            raise
        text = str(exc) if isinstance(exc, ValueError) else traceback.format_exc()
        sys.stderr.write(f"mpireg: error (rank {comm.rank}): {text}\n")
        sys.stderr.flush()
        comm.Abort(1)
        raise


def local_phase(comm, fn):
    """Checks of this rank's own input: raised as they are in one process (scikit-learn's own
    errors and messages), agreed on by every rank under mpiexec."""
    if comm.size == 1:
        return fn()

    def checked():
        try:
            return fn()
        except (TypeError, ValueError) as exc:  # scikit-learn's input errors: their message only
            raise DataError(str(exc)) from None

    return agree(comm, checked)


def _check_device(X, device: str):
    if is_device_array(X) != (device == "gpu"):
        raise ConfigError(f"device: {device!r}, but X is a {type(X).__module__.split('.')[0]} array; "
                          f"pass CuPy arrays with device='gpu' and NumPy arrays with device='cpu'")
    return X


def _is_paths(X) -> bool:
    if isinstance(X, (str, os.PathLike)):
        return True
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(isinstance(x, (str, os.PathLike)) for x in X)


def _as_job_value(value):
    """A parameter as a TOML value would hold it (a tuple of widths becomes a list)."""
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------------- dotted keys in tables
_MISSING = object()


def _get(table: dict, key: str):
    node = table
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(table: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    node = table
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _pop(table: dict, key: str):
    *parents, last = key.split(".")
    node = table
    for part in parents:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node.pop(last, _MISSING) if isinstance(node, dict) else _MISSING


def _without_defaults(table: dict, defaults: dict) -> dict:
    out = {}
    for key, value in table.items():
        default = defaults.get(key, _MISSING)
        if isinstance(value, dict):
            out[key] = _without_defaults(value, default if isinstance(default, dict) else {})
        elif value != default or key in ("kind", "train", "name"):
            out[key] = value
    return out


def _prune(table: dict) -> dict:
    """Drop tables left empty."""
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            value = _prune(value)
            if not value:
                continue
        out[key] = value
    return out
