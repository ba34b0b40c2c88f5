"""The job file: TOML validated into typed, frozen-at-start settings.

Every key is declared once, here, with its type, default and allowed range. Unknown keys, wrong
types and out-of-range values are errors that name the key (`optimizer.lr: expected a number
> 0, got -1`). `--set key=value` overrides are parsed as TOML values, so `--set model.l2=1e-3`
and `--set data.train='["a.h5","b.h5"]'` both work.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .capabilities import ASYNC_KEY_SHARDS, AUTO, KEY_SHARDS, MF_OPTIMIZERS, OPTIMIZERS, STRATEGIES as TRAITS
from .errors import ConfigError

MODEL_KINDS = ("linear", "logistic", "softmax", "mlp", "mf", "glm")
GLM_FAMILIES = ("gaussian", "binomial", "poisson", "gamma", "inverse_gaussian", "tweedie", "negative_binomial")
GLM_LINKS = ("auto", "identity", "log", "logit", "inverse")
SYNTH_TASKS = ("linear", "logistic", "softmax", "ratings", "poisson", "gamma", "tweedie")
OPTIMIZER_KINDS = tuple(OPTIMIZERS)
FACTOR_EXCHANGES = ("auto", "allgather", "pull")
STRATEGIES = (*TRAITS, AUTO)
COMPRESSIONS = ("none", "fp16", "bf16", "auto")
SCHEDULES = ("constant", "step", "cosine", "invscaling")


def _opt(default, *, choices=None, min=None, max=None, min_open=False, max_open=False, doc=""):
    """A field with its validation rules in metadata."""
    meta = dict(choices=choices, min=min, max=max, min_open=min_open, max_open=max_open, doc=doc)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class SynthConfig:
    """Synthetic data the job makes for itself when `data.train` is absent (the quickstart)."""

    task: str = _opt("logistic", choices=SYNTH_TASKS)
    rows: int = _opt(20000, min=1)
    features: int = _opt(20, min=1)
    classes: int = _opt(3, min=2)
    shards: int = _opt(2, min=1)
    test_rows: int = _opt(4000, min=0)
    noise: float = _opt(0.1, min=0.0)
    seed: int = _opt(0)
    users: int = _opt(1000, min=1, doc="ratings: users (rows = ratings drawn)")
    items: int = _opt(500, min=1, doc="ratings: items")
    rank: int = _opt(8, min=1, doc="ratings: rank of the true factors")
    sparse: bool = _opt(False, doc="CSR shards of hashed-categorical-like rows")
    hash_bits: int = _opt(20, min=1, max=30, doc="sparse: log2 of the columns")
    nnz: int = _opt(39, min=1, doc="sparse: entries drawn per row")
    exposure: bool = _opt(False, doc="poisson: an offset log(exposure); tweedie: exposure weights")


@dataclass
class DataConfig:
    train: list = _opt([], doc="directories, files or globs of .h5 shards")
    test: list = _opt([], doc="held-out shards, evaluated every eval_every epochs")
    memory_budget_mb: float = _opt(1024.0, min=0.0, min_open=True,
                                   doc="a rank keeps its rows resident when they fit, else streams")
    dtype: str = _opt("auto", choices=("auto", "float32", "float64"))
    synth: Optional[SynthConfig] = None
    example: str = _opt("", choices=("", "digits", "breast_cancer", "iris", "wine", "diabetes"),
                        doc="a scikit-learn data set written into data.train when that is absent")


@dataclass
class ModelConfig:
    kind: str = _opt("linear", choices=MODEL_KINDS)
    l2: float = _opt(0.0, min=0.0)
    l1: float = _opt(0.0, min=0.0)
    l2_sum: float = _opt(0.0, min=0.0, doc="an L2 penalty on the summed loss (scikit-learn's Ridge alpha, "
                                           "1/C of LogisticRegression): the fit's l2 is this over the rows of all ranks")
    multiclass: str = _opt("error", choices=("error", "softmax"),
                           doc="logistic: on data of more than two classes, fail or fit softmax")
    fit_intercept: bool = _opt(True)
    hidden: list[int] = _opt([128], doc="mlp: widths of the ReLU hidden layers")
    family: str = _opt("gaussian", choices=GLM_FAMILIES, doc="glm: the response's distribution")
    link: str = _opt("auto", choices=GLM_LINKS, doc="glm: the link; auto: the family's default")
    power: float = _opt(1.5, min=0.0, doc="glm, tweedie: the variance power (0, or 1 and above)")
    theta: float = _opt(1.0, min=0.0, min_open=True, doc="glm, negative_binomial: the fixed theta")
    cov_type: str = _opt("nonrobust", choices=("nonrobust", "HC0"),
                         doc="glm: standard errors from the expected information, or the sandwich (HC0)")
    rank: int = _opt(10, min=1, doc="mf: factors per user and per item")


@dataclass
class PathConfig:
    """A regularisation path of the GLM (fit/path.py): penalties alpha * (l1_ratio |coef|_1 +
    (1 - l1_ratio) / 2 |coef|^2), largest first."""
    n_alphas: int = _opt(100, min=1, doc="penalties on the path")
    min_ratio: float = _opt(1e-3, min=0.0, min_open=True, max=1.0,
                            doc="the smallest penalty as a fraction of alpha_max (where every coefficient is 0)")
    alphas: list[float] = _opt([], doc="the penalties themselves (instead of n_alphas and min_ratio)")
    l1_ratio: list[float] = _opt([1.0], doc="the L1 share(s) of the penalty; one path each (0: ridge)")
    select: str = _opt("min", choices=("min", "1se"), doc="with optimizer.cv: the penalty of least held-out "
                       "deviance, or the largest within one standard error of it")
    strong_rules: bool = _opt(True, doc="skip features the sequential strong rule sets aside (KKT-checked)")


@dataclass
class OptimizerConfig:
    kind: str = _opt("sgd", choices=OPTIMIZER_KINDS)
    lr: float = _opt(0.1, min=0.0, min_open=True)
    momentum: float = _opt(0.0, min=0.0, max=1.0, max_open=True)
    nesterov: bool = _opt(False)
    beta1: float = _opt(0.9, min=0.0, max=1.0, max_open=True)
    beta2: float = _opt(0.999, min=0.0, max=1.0, max_open=True)
    eps: float = _opt(1e-8, min=0.0, min_open=True)
    schedule: str = _opt("constant", choices=SCHEDULES)
    decay_rate: float = _opt(0.1, min=0.0, min_open=True, max=1.0)
    decay_epochs: int = _opt(10, min=1)
    power_t: float = _opt(0.5, min=0.0)
    warmup_steps: int = _opt(0, min=0)
    epochs: int = _opt(10, min=1)
    batch_size: int = _opt(256, min=1, doc="rows per rank per step; global batch = this x ranks")
    tol: float = _opt(1e-4, min=0.0, doc="early stop / convergence tolerance")
    patience: int = _opt(3, min=1, doc="epochs without tol improvement before stopping")
    max_iter: int = _opt(500, min=1, doc="lbfgs iterations")
    history: int = _opt(0, min=0, doc="lbfgs memory (0: 10 pairs; 40 on a first-order path)")
    polish: int = _opt(0, min=0, doc="adagrad: L-BFGS iterations from the averaged model after the passes")
    path: Optional[PathConfig] = _opt(None, doc="irls or lbfgs: fit a regularisation path ({n_alphas = 100, ...})")
    cv: int = _opt(0, min=0, doc="with a path: folds of cross-validation (0: none; 2 or more)")

    def memory(self, path: bool = False) -> int:
        """The L-BFGS pairs: `history`, else 10, or 40 on a first-order path (a pass there costs
        more than a step's pairs: a 1M x 2^20 hashed path took 1,342 passes and 91.6 s with 10,
        645 and 54.9 s with 30, 553 and 55.1 s with 50)."""
        return self.history or (40 if path else 10)


@dataclass
class CommConfig:
    # what the user tunes
    strategy: str = _opt("allreduce", choices=STRATEGIES)
    fusion_bytes: int = _opt(64 * 2**20, min=1, doc="gradient buckets on the wire are at most this big")
    compression: str = _opt("none", choices=COMPRESSIONS, doc="what travels on the wire (float32 jobs); auto: the plan's choice")
    max_staleness: int = _opt(4, min=0, doc="ps-async, sharded-async: how many steps the fastest worker may lead")
    servers: int = _opt(0, min=0, doc="sharded: ranks that hold a key range of the parameters (0: every rank; "
                                        "sharded-async: the serving ranks, 0 meaning 1)")
    deterministic: bool = _opt(False, doc="the same model bit for bit on any number of ranks")
    cuda_aware: str = _opt("auto", choices=("auto", "on", "off"),
                           doc="device = gpu: hand device buffers to MPI directly (auto: ask MPI)")
    verify_every: int = _opt(0, min=0, doc="steps between parameter checksums across ranks; 0 = off")
    # rarely changed
    max_message_bytes: int = _opt(2**30, min=1, doc="larger reductions are split (MPI counts are C ints)")
    ring_chunk_bytes: int = _opt(4 * 2**20, min=1, doc="ring: bytes per segment processed at a time")
    block_rows: int = _opt(64, min=1, doc="deterministic mode: rows per fixed summation block")
    ranks_per_node: int = _opt(0, min=0, doc="hierarchical: group ranks in nodes of N (0: the real nodes)")
    factor_exchange: str = _opt("auto", choices=FACTOR_EXCHANGES,
                                doc="als: how a rank gets the factor rows it needs from their owners "
                                    "(auto: allgather when the matrix is small, else pull)")


@dataclass
class RunConfig:
    dir: str = _opt("", doc="run directory; default runs/<job name>")
    log_every: int = _opt(50, min=1, doc="steps between metrics.jsonl step records")
    eval_every: int = _opt(1, min=1, doc="epochs between held-out evaluations")
    progress: bool = _opt(True, doc="rank-0 progress bar (only on a terminal)")
    checkpoint_keep: int = _opt(3, min=1)
    checkpoint_every_steps: int = _opt(0, min=0, doc="also checkpoint every N steps; 0 = epoch ends only")
    checkpoint_every_seconds: float = _opt(0.0, min=0.0, doc="also checkpoint every T seconds; 0 = off")
    watchdog_seconds: float = _opt(600.0, min=0.0, doc="abort when a collective waits this long; 0 = off")
    profile: bool = _opt(False, doc="write trace.json, a Chrome-trace timeline of every rank")


@dataclass
class JobConfig:
    seed: int = _opt(0)
    device: str = _opt("cpu", choices=("cpu", "gpu"))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    comm: CommConfig = field(default_factory=CommConfig)
    run: RunConfig = field(default_factory=RunConfig)
    name: str = _opt("job")

    def to_dict(self) -> dict:
        return _strip_none(dataclasses.asdict(self))


# --------------------------------------------------------------------------- loading

def load_job(path: str | Path | None, overrides: list[str] = ()) -> JobConfig:
    """Read a job file (or none: all defaults), apply `key=value` overrides, validate."""
    table: dict = {}
    name = "job"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: job file not found")
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        name = path.stem
    table.setdefault("name", name)
    for item in overrides:
        _apply_override(table, item)
    config = _build(JobConfig, table, "")
    _check_combinations(config)
    return config


def config_from_dict(table: dict) -> JobConfig:
    config = _build(JobConfig, dict(table), "")
    _check_combinations(config)
    return config


def dumps_toml(table: dict, prefix: str = "") -> str:
    """A small TOML writer for the resolved config (strings, numbers, bools, lists, tables)."""
    scalars, tables = [], []
    for key, value in table.items():
        (tables if isinstance(value, dict) else scalars).append((key, value))
    lines = []
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars]
    for key, sub in tables:
        text = dumps_toml(sub, f"{prefix}.{key}" if prefix else key)
        lines.append(("\n" if lines else "") + text)
    return "\n".join(lines) + ("\n" if not prefix else "")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _strip_none(table: dict) -> dict:
    return {k: _strip_none(v) if isinstance(v, dict) else v for k, v in table.items() if v is not None}


def _apply_override(table: dict, item: str) -> None:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set optimizer.lr=0.05")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: treat it as a string (strategy=ring)
    node = table
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a table")
    node[parts[-1]] = value


def _build(cls, table: dict, prefix: str):
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a table, got {_describe(table)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys: {', '.join(fields)}"
            raise ConfigError(f"{prefix}{key}: unknown key{hint}")
    values = {}
    for name, f in fields.items():
        if name not in table:
            continue
        values[name] = _convert(hints[name], table[name], f"{prefix}{name}", f.metadata)
    return cls(**values)


def _convert(hint, value, key: str, meta) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[Sub]
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    if hint == list[float]:
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in value):
            raise ConfigError(f"{key}: expected a list of numbers, got {_describe(value)}")
        return [float(v) for v in value]
    if hint == list[int]:
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                   for v in value):
            raise ConfigError(f"{key}: expected a list of positive integers, got {_describe(value)}")
        return list(value)
    if hint is list:
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a path or a list of paths, got {_describe(value)}")
        return list(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_describe(value)}")
        if abs(value) >= 2**63:  # counts meet C and NumPy's int64
            raise ConfigError(f"{key}: expected an integer below 2^63, got {value}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_describe(value)}")
        value = float(value)
        if not math.isfinite(value):  # nan passes every comparison of a range check
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_describe(value)}")
    _check_range(key, value, meta)
    return value


def _check_range(key, value, meta) -> None:
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (value < lo or (meta.get("min_open") and value == lo)):
        raise ConfigError(f"{key}: expected a value {'>' if meta.get('min_open') else '>='} {lo}, got {value!r}")
    if hi is not None and (value > hi or (meta.get("max_open") and value == hi)):
        raise ConfigError(f"{key}: expected a value {'<' if meta.get('max_open') else '<='} {hi}, got {value!r}")


def _describe(value) -> str:
    return f"{type(value).__name__} {value!r}"


def _check_combinations(config: JobConfig) -> None:
    """Rules that span keys, read from the capability table (capabilities.py) that the plan
    reads too; each message names the keys and the way out."""
    opt, model, comm = config.optimizer, config.model, config.comm
    optimizer = OPTIMIZERS[opt.kind]
    if not config.name or "/" in config.name or "\\" in config.name or config.name in (".", ".."):
        raise ConfigError(f"name: {config.name!r} names the run directory runs/<name>; use a plain name "
                          f"(no '/' and not '..'), or set run.dir for a directory elsewhere")
    if opt.kind == "normal" and model.kind not in optimizer.models:
        raise ConfigError(f"optimizer.kind: 'normal' solves linear/ridge regression only, "
                          f"not model.kind = {model.kind!r}; use 'lbfgs'")
    if model.l1 > 0 and opt.kind in ("normal", "lbfgs"):
        raise ConfigError(f"model.l1: an L1 penalty needs a proximal step (optimizer.kind = 'sgd' "
                          f"or 'adam'); {opt.kind!r} handles L2 only")
    _check_mf(config)
    _check_path(config)
    _check_glm(config)
    if opt.kind == "adagrad":
        _check_adagrad(config)
    strategy = TRAITS.get(comm.strategy)
    if optimizer.strategies is not None and comm.strategy not in optimizer.strategies:
        raise ConfigError(f"comm.strategy: optimizer.kind = {opt.kind!r} sums every pass with one collective; "
                          f"use {', '.join(map(repr, optimizer.strategies))}, not {comm.strategy!r}")
    if comm.strategy == "ps-async" and comm.deterministic:
        raise ConfigError("comm.deterministic: 'ps-async' applies gradients in arrival order, which no "
                          "seed fixes; use 'allreduce', 'ring' or 'ps'")
    if comm.deterministic and (comm.compression not in ("none", "auto") or not optimizer.deterministic):
        raise ConfigError("comm.deterministic: works with comm.compression = 'none' and the sgd, adam "
                          "and lbfgs optimizers")
    if strategy is not None and not strategy.full_batch and opt.kind in ("lbfgs", "normal"):
        raise ConfigError(f"comm.strategy: {comm.strategy!r} {strategy.why_not_full_batch}; "
                          f"optimizer.kind = {opt.kind!r} is full-batch (use 'allreduce' or 'ring')")
    if strategy is not None and config.device not in strategy.device:
        raise ConfigError(f"comm.strategy: {comm.strategy!r} reduces GPU buffers; set device = 'gpu' "
                          f"(or use 'allreduce')")
    if strategy is not None and strategy.topology in (KEY_SHARDS, ASYNC_KEY_SHARDS):
        _check_sharded(config)
    if config.data.synth is not None and config.data.example:
        raise ConfigError("data.example: give data.synth or data.example, not both")
    if not config.data.train and config.data.synth is None:
        raise ConfigError("data.train: no training data given (a path, a glob or a list of them)")
    if model.l2 and model.l2_sum:
        raise ConfigError("model.l2_sum: give model.l2 (on the mean loss) or model.l2_sum (on the summed "
                          "loss, scikit-learn's scale), not both")


def _check_mf(config: JobConfig) -> None:
    opt, model = config.optimizer, config.model
    if opt.kind == "als" and model.kind not in OPTIMIZERS["als"].models:
        raise ConfigError(f"optimizer.kind: 'als' (alternating least squares) trains model.kind = "
                          f"'mf', not {model.kind!r}")
    if model.kind != "mf":
        return
    if opt.kind not in MF_OPTIMIZERS:
        raise ConfigError(f"optimizer.kind: model.kind = 'mf' trains with 'als', 'sgd' or 'adam', "
                          f"not {opt.kind!r}")
    if model.l1 > 0:
        raise ConfigError("model.l1: matrix factorisation takes an L2 penalty only (model.l2)")
    if opt.kind == "als" and config.comm.strategy not in OPTIMIZERS["als"].strategies:
        raise ConfigError(f"comm.strategy: ALS moves factor rows between the ranks that own them "
                          f"(comm.factor_exchange), not through {config.comm.strategy!r}; use "
                          f"'allreduce', or optimizer.kind = 'sgd'/'adam' for SGD-MF through a "
                          f"parameter server")


def _check_glm(config: JobConfig) -> None:
    opt, model = config.optimizer, config.model
    irls = OPTIMIZERS["irls"]
    if opt.kind == "irls" and model.kind not in irls.models:
        raise ConfigError(f"optimizer.kind: 'irls' (Newton / iteratively reweighted least squares) trains "
                          f"model.kind = 'glm', not {model.kind!r}")
    if model.kind != "glm":
        return
    if opt.kind == "normal" and (model.family, model.link) not in (("gaussian", "auto"), ("gaussian", "identity")):
        raise ConfigError("optimizer.kind: 'normal' solves weighted least squares, a glm of family 'gaussian' "
                          "with the identity link; use 'irls'")
    if opt.kind in ("als", "adagrad"):
        raise ConfigError(f"optimizer.kind: model.kind = 'glm' trains with 'irls', 'normal', 'lbfgs', 'sgd' "
                          f"or 'adam', not {opt.kind!r}")
    if config.comm.deterministic:
        raise ConfigError("comm.deterministic: model.kind = 'glm' sums weighted rows, which the exact "
                          "integer sums do not take yet; use optimizer.kind = 'irls' (its sums are the "
                          "same on every rank count to rounding)")
    if model.family == "tweedie" and 0 < model.power < 1:
        raise ConfigError(f"model.power: a Tweedie power must be 0, or 1 and above, got {model.power!r}")
    if model.family == "binomial" and model.link in ("log", "inverse") or \
            model.family in ("poisson", "gamma", "inverse_gaussian", "negative_binomial") and model.link == "logit":
        raise ConfigError(f"model.link: {model.link!r} does not map the {model.family} family's mean "
                          f"(use 'auto')")
    if config.device != "cpu":
        raise ConfigError("device: model.kind = 'glm' trains on the CPU for now; set device = 'cpu'")


FIRST_ORDER_FOLDS = 31  # csrc/cpath.c's MAX_S lanes less the full model


def _check_path(config: JobConfig) -> None:
    opt, model = config.optimizer, config.model
    if opt.cv and opt.path is None:
        raise ConfigError("optimizer.cv: cross-validation chooses a penalty from a path; add optimizer.path "
                          "(e.g. optimizer.path = {n_alphas = 100})")
    if opt.path is None:
        return
    if model.kind != "glm":
        raise ConfigError(f"optimizer.path: paths are fitted for model.kind = 'glm' (family 'gaussian' is "
                          f"least squares, 'binomial' logistic regression), not {model.kind!r}")
    if opt.kind not in ("irls", "lbfgs"):
        raise ConfigError(f"optimizer.path: paths are fitted by 'irls' (Newton steps) or 'lbfgs' (orthant-wise "
                          f"L-BFGS, for many columns), not {opt.kind!r}")
    if opt.cv == 1:
        raise ConfigError("optimizer.cv: 1 fold leaves nothing to hold out; use 0 (no cross-validation) or >= 2")
    if opt.kind == "lbfgs" and opt.cv > FIRST_ORDER_FOLDS:
        raise ConfigError(f"optimizer.cv: the first-order path takes up to {FIRST_ORDER_FOLDS} folds (its pass keeps "
                          f"every model's coefficients of a column in 4 cache lines), got {opt.cv}")
    if model.l1 or model.l2:
        raise ConfigError("model.l1, model.l2: a path sets the penalty itself (optimizer.path.l1_ratio and "
                          "its alphas); leave them 0")
    path = opt.path
    if not path.l1_ratio or any(not 0.0 <= r <= 1.0 for r in path.l1_ratio):
        raise ConfigError(f"optimizer.path.l1_ratio: expected values in [0, 1], got {path.l1_ratio!r}")
    if any(not a > 0 for a in path.alphas):
        raise ConfigError(f"optimizer.path.alphas: expected values > 0, got {path.alphas!r}")


def _check_sharded(config: JobConfig) -> None:
    opt, model, comm = config.optimizer, config.model, config.comm
    traits = TRAITS[comm.strategy]
    if model.kind not in traits.models:
        raise ConfigError(f"comm.strategy: 'sharded' keys the parameters by feature: linear, logistic "
                          f"and softmax models, not model.kind = {model.kind!r}")
    if opt.kind != "sgd" or opt.momentum:
        raise ConfigError(f"optimizer.kind: the sharded server steps only the keys a batch touches "
                          f"(plain SGD, the penalty applied lazily); not "
                          f"{opt.kind!r}{' with momentum' if opt.kind == 'sgd' else ''}")
    if (comm.deterministic and not traits.deterministic) or (comm.compression not in ("none", "auto") and not traits.compression):
        raise ConfigError("comm.strategy: 'sharded' moves (key, value) pairs; comm.deterministic and "
                          "comm.compression do not apply")


def _check_adagrad(config: JobConfig) -> None:
    model, comm = config.model, config.comm
    adagrad = OPTIMIZERS["adagrad"]
    if model.kind not in adagrad.models:
        raise ConfigError(f"optimizer.kind: 'adagrad' (online adaptive passes) trains linear and "
                          f"logistic models, not model.kind = {model.kind!r}")
    if model.l1 > 0:
        raise ConfigError("model.l1: 'adagrad' takes an L2 penalty only (model.l2)")
    if comm.strategy in ("ps", "ps-async", "nccl") or comm.deterministic:
        raise ConfigError(f"comm.strategy: 'adagrad' passes run on every rank and average once a "
                          f"pass (one allreduce); use 'allreduce', 'ring' or 'hierarchical', not "
                          f"{'deterministic mode' if comm.deterministic else repr(comm.strategy)}")
