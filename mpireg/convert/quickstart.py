"""The quickstart's data: a job with `data.synth` or `data.example` makes its training data when
`data.train` is absent. The doors (the CLI, the API) call this before the engine, which only
ever reads shards.
"""
from __future__ import annotations

from pathlib import Path

from .. import log
from ..agreement import on_rank_zero
from ..errors import ConfigError
from .claims import GLM_TASKS, synthesize_claims
from .examples import write_example
from .ratings import synth_ratings
from .synth import synthesize, synthesize_sparse


def prepare_job_data(cfg, comm) -> None:
    """Collective: rank 0 makes the job's data if the job asks for it and it is not there yet."""
    if cfg.data.synth is not None or cfg.data.example:
        on_rank_zero(comm, lambda: ensure_synthetic(cfg))


def ensure_synthetic(cfg) -> None:
    """The quickstart: make the job's synthetic (or example) data when its training directory
    is absent."""
    synth, target = cfg.data.synth, Path(cfg.data.train[0]) if cfg.data.train else None
    key = "data.synth" if synth is not None else "data.example"
    if len(cfg.data.train) != 1:
        raise ConfigError(f"{key}: data.train must be one directory to generate into")
    if target.exists():
        return
    if synth is None:
        log.info(f"writing scikit-learn's {cfg.data.example} data set into {target}")
        write_example(cfg.data.example, target, shards=2, seed=cfg.seed)
        return
    if synth.task in GLM_TASKS:
        log.info(f"making synthetic {synth.task} claims data in {target} ({synth.rows} rows, "
                 f"{synth.features} columns{', with exposure' if synth.exposure else ''})")
        synthesize_claims(synth.task, synth.rows, synth.features, target, synth.shards, synth.test_rows,
                          synth.exposure, synth.seed)
        return
    if synth.task == "ratings":
        log.info(f"making synthetic ratings in {target} ({synth.rows} ratings, {synth.users} users x "
                 f"{synth.items} items, rank {synth.rank})")
        synth_ratings(synth.users, synth.items, synth.rank, synth.rows, target, synth.shards,
                      synth.test_rows, synth.noise, synth.seed)
        return
    if synth.sparse:
        log.info(f"making synthetic sparse {synth.task} data in {target} ({synth.rows} rows x "
                 f"2^{synth.hash_bits} columns, {synth.nnz} entries a row)")
        synthesize_sparse(synth.task, synth.rows, synth.hash_bits, synth.nnz, target, synth.shards,
                          synth.classes, synth.test_rows, synth.noise, synth.seed)
        return
    log.info(f"making synthetic {synth.task} data in {target} ({synth.rows} rows, {synth.features} features)")
    synthesize(synth.task, synth.rows, synth.features, target, synth.shards, synth.classes,
               synth.test_rows, synth.noise, synth.seed, dtype="float32")
