"""Checkpoints that survive a kill at any instant.

Written by rank 0 only (every rank holds the same parameters): to a temporary file in the same
directory, fsynced, checksummed (SHA-256 over every array), then renamed over the final name and
the directory fsynced. A reader therefore sees a whole checkpoint or none; one that fails its
checksum (disk trouble, a copy cut short) is skipped with a warning and the next newest is used.
A checkpoint holds no rank-dependent state: parameters, optimizer state, counters.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import h5py
import numpy as np

from . import log
from .atomic import atomic_file

PATTERN = re.compile(r"^ckpt-(\d{9})\.h5$")


def _digest(arrays: dict, meta: dict) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(a.view(np.uint8).tobytes())
    return h.hexdigest()


def save_checkpoint(directory, step: int, arrays: dict, meta: dict, keep: int) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {k: (v.get() if hasattr(v, "get") else np.asarray(v)) for k, v in arrays.items()}
    final = directory / f"ckpt-{step:09d}.h5"
    with atomic_file(final, fsync=True, what="checkpoint",
                     hint=f"free space in {directory} or set run.dir elsewhere") as tmp:
        with h5py.File(tmp, "w") as f:
            for name, value in arrays.items():
                f.create_dataset(name, data=value)
            f.attrs["meta"] = json.dumps(meta)
            f.attrs["sha256"] = _digest(arrays, meta)
            f.flush()
    _fsync_dir(directory)
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def list_checkpoints(directory) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if PATTERN.match(p.name))


def load_checkpoint(path):
    """(arrays, meta); raises ValueError when the file is not a whole, valid checkpoint."""
    try:
        with h5py.File(path, "r") as f:
            arrays = {name: f[name][()] for name in f}
            meta = json.loads(f.attrs["meta"])
            expected = str(f.attrs["sha256"])
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"unreadable ({str(exc).splitlines()[0]})") from None
    if _digest(arrays, meta) != expected:
        raise ValueError("checksum mismatch")
    return arrays, meta


def latest_checkpoint(directory):
    """The newest valid checkpoint as (path, arrays, meta), or None where there is none; corrupt
    ones are skipped, and when every one is corrupt that is an error naming them (starting
    afresh would silently redo, or lose, everything they held)."""
    found = list_checkpoints(directory)
    for path in reversed(found):
        try:
            arrays, meta = load_checkpoint(path)
        except ValueError as exc:
            log.warn(f"skipping checkpoint {path}: {exc}")
            continue
        return path, arrays, meta
    if found:
        from .errors import DataError

        raise DataError(f"--resume: every checkpoint in {directory} is corrupt ({', '.join(p.name for p in found)}); "
                        f"nothing to continue from: move them aside and run without --resume to start afresh")
    return None


def clear_checkpoints(directory) -> int:
    removed = 0
    for path in list_checkpoints(directory):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
