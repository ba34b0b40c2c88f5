"""What the estimators share: one signature, their parameters are job keys, and `fit` is the
CLI's engine.

An estimator's parameters are a job file's keys under the names scikit-learn users know
(`PARAMETER_KEYS`); `job` holds any other key, as a TOML table would. `fit` builds the
`JobConfig` the CLI would build, validated by the same code, and runs the same engine
(mpireg.fit) on this rank's rows: shard paths (each rank reads only its own rows) or arrays
(each rank passes its own). The API never reads the data itself: the penalty alias (alpha, C)
becomes `model.l2_sum`, which the engine divides by the rows it finds, and the estimator sees the
data's schema only through the check it hands the engine. It reads what the fit ended with from
the engine's `FitResult`. Under mpiexec, `fit` and `score` are collective: every rank calls them,
in the same order; `predict` is local.

Errors: what fails on every rank (a bad key, a bad shard, a mismatch between ranks) is raised on
every rank, as one ValueError naming the key, file or rank. What fails on one rank only while
the others wait would hang them, so under mpiexec it ends the job (MPI_Abort), with the message.
"""
from __future__ import annotations

import copy
import inspect
import os
import sys
import traceback

import numpy as np
from sklearn.base import BaseEstimator

from .. import log
from ..config import JobConfig, config_from_dict, load_job
from ..convert.quickstart import prepare_job_data
from ..data.arrays import SOURCE
from ..device import is_device_array
from ..errors import CollectiveError, ConfigError, DataError
from ..fit import Arrays, Run
from ..agreement import agree, default_comm
from . import job_keys as keys
from .inputs import pack_rows

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
RESOLVED_KEYS = ("model.l2_sum", "model.multiclass")  # the estimator's own choices, not parameters
SOLVERS = ("auto", "lbfgs", "normal", "sgd", "adam", "irls")

# The parameters every estimator takes, in signature order after its own, with their defaults
# (the job file's; solver "auto" lets each estimator pick). An estimator overrides a default
# with `estimator_init(..., lr=0.001)`; scikit-learn reads the result with inspect.signature.
SHARED_PARAMETERS = {
    "l2": 0.0, "l1": 0.0, "fit_intercept": True, "solver": "auto", "lr": 0.1, "momentum": 0.0,
    "batch_size": 256, "epochs": 10, "max_iter": 500, "tol": 1e-4, "strategy": "allreduce",
    "deterministic": False, "compression": "none", "dtype": "auto", "device": "cpu", "seed": 0,
    "job": None, "run_dir": None, "comm": None, "verbose": False,
}


def estimator_init(positional: dict | None = None, keywords: dict | None = None, **defaults):
    """An __init__ taking `positional` (name: default, may be passed by position), then keyword
    only `keywords` and the shared parameters (`defaults` overriding theirs), storing each as
    an attribute of the same name, as scikit-learn requires."""
    P = inspect.Parameter
    unknown = set(defaults) - set(SHARED_PARAMETERS)
    if unknown:
        raise TypeError(f"estimator_init: not shared parameters: {sorted(unknown)}")
    shared = {**SHARED_PARAMETERS, **defaults}
    signature = inspect.Signature(
        [P("self", P.POSITIONAL_OR_KEYWORD)]
        + [P(name, P.POSITIONAL_OR_KEYWORD, default=v) for name, v in (positional or {}).items()]
        + [P(name, P.KEYWORD_ONLY, default=v) for name, v in {**(keywords or {}), **shared}.items()])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    return __init__


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
        rest = keys.without_defaults(copy.deepcopy(table), JobConfig().to_dict())
        params = {name: keys.pop(rest, key) for name, key in cls._parameter_keys().items()}
        keys.pop(rest, "model.kind")
        keys.pop(rest, "name")
        for key in RESOLVED_KEYS:
            keys.pop(rest, key)
        if keys.get(rest, "data.train") == [SOURCE]:  # fitted on arrays: nothing to fit again from
            keys.pop(rest, "data.train")
        return cls(**{k: v for k, v in params.items() if v is not keys.MISSING}, job=keys.prune(rest) or None)

    def job_table(self, model_kind: str, train, penalty: dict | None = None) -> dict:
        """The job this fit runs, as the TOML table a job file would hold."""
        table = copy.deepcopy(self.job) if self.job else {}
        if not isinstance(table, dict):
            raise ConfigError(f"job: expected a table of job keys (a dict), got {type(table).__name__}")
        for name, key in self._parameter_keys().items():
            if keys.get(table, key) is not keys.MISSING:
                raise ConfigError(f"job: {key} is the parameter {name}= of {type(self).__name__}; set it there")
        for key in OWN_KEYS:
            if key != "data.train" and keys.get(table, key) is not keys.MISSING:
                raise ConfigError(f"job: {key} is chosen by {type(self).__name__} itself")
        for name, key in self._parameter_keys().items():
            keys.set_key(table, key, _as_job_value(getattr(self, name)))
        for key, value in (penalty if penalty is not None else self._penalty()).items():
            keys.set_key(table, key, value)
        keys.set_key(table, "optimizer.kind", self._solver())
        keys.set_key(table, "model.kind", model_kind)
        if train is not None:
            keys.set_key(table, "data.train", list(train))
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

    def _penalty(self) -> dict:
        """The job keys of the penalty: l2 as given, or the alias on the summed loss's scale
        (model.l2_sum: the engine divides it by the rows of all ranks)."""
        alias = getattr(self, self._penalty_alias, None) if self._penalty_alias else None
        if alias is None:
            return {"model.l2": float(self.l2)}
        if self.l2:
            raise ConfigError(f"{self._penalty_alias}: give either {self._penalty_alias}= "
                              f"(scikit-learn's scale) or l2= (mpireg's), not both")
        return {"model.l2": 0.0, "model.l2_sum": self._alias_to_l2_sum(float(alias))}

    # the model kind a job names before the data is seen (LogisticRegression: "logistic", with
    # model.multiclass = "softmax" for more than two classes); _model_kind checks the data
    _job_kind = "linear"
    _job_keys: dict = {}

    # ------------------------------------------------------------------ the fit
    def _comm(self):
        return self.comm if self.comm is not None else default_comm()

    def _fit(self, X, y, encode, sample_weight=None, offset=None):
        """Run the engine; `encode(comm, y)` -> (codes, task, n_classes, classes) for arrays, whose
        rows may come with their weights and offsets."""
        comm = self._comm()

        def body():
            with log.quiet(not self.verbose):
                if X is None or _is_paths(X):
                    if sample_weight is not None or offset is not None:
                        raise ConfigError("sample_weight, offset: shards carry their own (datasets 'w' and "
                                          "'offset', docs/data-format.md); pass arrays to give them here")
                    self._fit_shards(comm, X, y)
                else:
                    self._fit_arrays(comm, X, y, encode, sample_weight, offset)
            return self

        return collective(comm, body)

    def _fit_shards(self, comm, X, y):
        if y is not None:
            raise ConfigError("y: shards hold their own targets; call fit(paths) without y")
        train = None if X is None else [os.fspath(p) for p in ([X] if isinstance(X, (str, os.PathLike)) else X)]
        specs = train if train is not None else keys.get(self.job or {}, "data.train")
        if specs is keys.MISSING or not specs:
            raise ConfigError("fit: give shard paths or arrays (or a job with data.train)")
        everyone = comm.allgather(specs) if comm.size > 1 else [specs]
        differ = [r for r, theirs in enumerate(everyone) if theirs != everyone[0]]
        if differ:  # rank 0 reads the schema for all: another rank's own paths would be ignored
            raise CollectiveError(f"X: rank {differ[0]} passed {everyone[differ[0]]!r} but rank 0 {everyone[0]!r}; every "
                                  f"rank passes the same shard paths (each then reads only its own rows)", None,
                                  comm.size)
        table = agree(comm, lambda: self._job(self._job_kind, train, self._job_keys))
        if train is None:  # the job's own data; the quickstart's made first where it asks for it
            prepare_job_data(agree(comm, lambda: config_from_dict(table)), comm)
        result = self._run(comm, table, None, lambda schema: self._model_kind(schema.task, schema.n_classes))
        n_classes = result.schema.n_classes
        self._fitted(result, np.arange(n_classes) if n_classes else None)

    def _fit_arrays(self, comm, X, y, encode, sample_weight=None, offset=None):
        X, y = local_phase(comm, lambda: self._validate_fit(_check_device(X, self.device), y))
        codes, task, n_classes, classes = encode(comm, y)
        kind = self._model_kind(task, n_classes)
        penalty = None
        if sample_weight is not None or offset is not None:  # packed rows [y, w, offset...]
            outputs = n_classes if task == "multiclass" else 1
            codes = local_phase(comm, lambda: pack_rows(X, codes, sample_weight, offset, outputs))
            penalty = self._weighted_penalty(comm.allreduce(float(codes[:, 1].sum())))
        table = agree(comm, lambda: self._job(kind, [SOURCE], penalty=penalty))
        self._fitted(self._run(comm, table, Arrays(X, codes, task, n_classes)), classes)

    def _weighted_penalty(self, weight_sum: float) -> dict:
        """The penalty of a weighted fit: the alias on the weighted loss sum's scale (l2 = alpha /
        Σw, 1 / (C Σw), as scikit-learn's), where the unweighted fit divides by the rows."""
        penalty = dict(self._penalty())
        l2_sum = penalty.pop("model.l2_sum", None)
        if l2_sum is not None:
            penalty["model.l2"] = l2_sum / max(weight_sum, 1e-300)
        return penalty

    def _job(self, kind: str, train, extra: dict | None = None, penalty: dict | None = None) -> dict:
        table = self.job_table(kind, train, penalty)
        for key, value in (extra or {}).items():
            keys.set_key(table, key, value)
        return table

    def _run(self, comm, table: dict, arrays, check_schema=None):
        cfg = agree(comm, lambda: config_from_dict(table))
        cfg.run.progress = cfg.run.progress and bool(self.verbose)  # a bar only when asked to talk
        return Run(cfg, comm, self.run_dir, arrays=arrays, check_schema=check_schema).run()

    def _fitted(self, result, classes) -> None:
        self.summary_ = result.summary
        self._set_fitted(result.config.to_dict(), result.model, result.params, result.schema.describe(), classes)
        self.n_iter_ = self._iterations(result.config, result.progress)

    @staticmethod
    def _iterations(cfg: JobConfig, progress) -> int:
        """L-BFGS: iterations; the normal equations: 1; SGD/Adam: epochs (as SGDClassifier)."""
        return progress.epoch if cfg.optimizer.kind in ("sgd", "adam") else max(progress.step, 1)


def collective(comm, body):
    """Run a collective API call. An error every rank raised together is raised here; one that
    only this rank has would leave the others waiting, so it ends the job (MPI_Abort)."""
    try:
        return body()
    except CollectiveError as exc:
        raise _named_by_rank(exc, comm.size) from None
    except BaseException as exc:
        if comm.size == 1:
            raise
        text = str(exc) if isinstance(exc, ValueError) else traceback.format_exc()
        sys.stderr.write(f"mpireg: error (rank {comm.rank}): {text}\n")
        sys.stderr.flush()
        comm.Abort(1)
        raise


def _named_by_rank(exc: CollectiveError, size: int) -> CollectiveError:
    """The error every rank raises, naming the rank whose input it is where only some failed
    (one rank's NaN, one rank's missing file), as the CLI's last line does."""
    if exc.rank is None or exc.n_failed >= size or str(exc).startswith("rank "):
        return exc
    more = f" and {exc.n_failed - 1} more" if exc.n_failed > 1 else ""
    named = CollectiveError(f"rank {exc.rank}{more}: {exc}", exc.rank, exc.n_failed)
    return named


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
