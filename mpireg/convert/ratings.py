"""Ratings data for matrix factorisation: synthetic low-rank ratings, and CSV -> ratings shards.

A ratings shard is a shard of task "ratings" (format.py): X holds (user, item) index pairs,
y the ratings. Converting a CSV maps its user and item ids, whatever they are (numbers or
text), to indices 0..n-1 in the order they first appear, and writes the maps to OUT/ids/ids.h5
(the original id of index k is entry k), outside the directory's shards.
"""
from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_file
from ..errors import DataError
from .loaders import column_index
from ..data.format import RATINGS, write_shard

CHUNK_ROWS = 1 << 16
SYNTH_MEAN = 3.5  # the synthetic ratings' global mean (a five-star scale's middle)


# --------------------------------------------------------------------------- synthetic

def synth_ratings(n_users: int, n_items: int, rank: int, rows: int, out, shards: int = 1,
                  test_rows: int = 0, noise: float = 0.5, seed: int = 0, dtype="float32") -> list[Path]:
    """Ratings mean + u . v + noise on `rows + test_rows` distinct (user, item) cells drawn at
    random; the true factors are stored in each shard's `synth` group. The noise s.d. is the
    RMSE floor a held-out evaluation can reach."""
    cells = n_users * n_items
    if rows + test_rows > cells:
        raise DataError(f"--rows: {rows + test_rows} ratings do not fit {n_users} users x "
                        f"{n_items} items ({cells} cells)")
    if rows < shards:
        raise DataError(f"--rows: {rows} ratings cannot fill {shards} shards")
    rng = np.random.default_rng([seed, 0xFAC7])
    scale = rank ** -0.25  # each factor entry; u . v then has unit variance
    truth = dict(user_factors=rng.normal(0.0, scale, (n_users, rank)),
                 item_factors=rng.normal(0.0, scale, (n_items, rank)),
                 mean=np.asarray(SYNTH_MEAN), noise=np.asarray(noise))
    flat = rng.choice(cells, size=rows + test_rows, replace=False)
    pairs = np.stack([flat // n_items, flat % n_items], axis=1).astype(np.int64)
    signal = np.einsum("ij,ij->i", truth["user_factors"][pairs[:, 0]], truth["item_factors"][pairs[:, 1]])
    ratings = (SYNTH_MEAN + signal + noise * rng.standard_normal(len(pairs))).astype(dtype)
    out = Path(out)
    written = _write_split(out, pairs[:rows], ratings[:rows], shards, n_users, n_items, truth)
    if test_rows:
        written += _write_split(out / "test", pairs[rows:], ratings[rows:], 1, n_users, n_items, truth)
    return written


def _write_split(directory: Path, pairs, ratings, shards: int, n_users: int, n_items: int,
                 synth: dict | None = None) -> list[Path]:
    paths = []
    for shard, part in enumerate(np.array_split(np.arange(len(pairs)), shards)):
        path = directory / f"part-{shard:05d}.h5"
        write_shard(path, pairs[part], ratings[part], RATINGS, 0, synth=synth,
                    attrs=dict(n_users=n_users, n_items=n_items))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- CSV

def convert_ratings(inputs, out, shards: int = 1, user_col="0", item_col="1", rating_col="2",
                    test_fraction: float = 0.0, seed: int = 0, dtype: str = "float32",
                    sep: str = ",") -> dict:
    """CSV files of (user, item, rating) rows -> OUT/part-NNNNN.h5 (and OUT/test/), ids mapped
    to indices; returns a summary. Columns by header name or index."""
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"--test-fraction: expected 0 <= F < 1, got {test_fraction}")
    users, items = IdMap(), IdMap()
    pairs, ratings = [], []
    for path in inputs:
        for chunk_pairs, chunk_ratings in _read_csv(Path(path), (user_col, item_col, rating_col),
                                                    users, items, sep):
            pairs.append(chunk_pairs)
            ratings.append(chunk_ratings)
    if not pairs:
        raise DataError(f"{inputs[0]}: no ratings found")
    pairs, ratings = np.concatenate(pairs), np.concatenate(ratings).astype(dtype)
    n_test = int(round(test_fraction * len(ratings)))
    if len(ratings) - n_test < shards:
        raise DataError(f"--shards: {len(ratings) - n_test} ratings cannot fill {shards} shards")
    order = np.random.default_rng(seed).permutation(len(ratings)) if n_test else np.arange(len(ratings))
    train, test = np.sort(order[n_test:]), np.sort(order[:n_test])
    out = Path(out)
    _write_split(out, pairs[train], ratings[train], shards, len(users), len(items))
    if n_test:
        _write_split(out / "test", pairs[test], ratings[test], 1, len(users), len(items))
    write_ids(out / "ids" / "ids.h5", users, items)
    return dict(rows=len(train), test_rows=n_test, users=len(users), items=len(items),
                mean=float(ratings[train].mean()))


class IdMap:
    """Original ids (as text) -> dense indices, in order of first appearance."""

    def __init__(self):
        self.index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.index)

    def map(self, ids) -> np.ndarray:
        index = self.index
        return np.fromiter((index.setdefault(i, len(index)) for i in ids), dtype=np.int64, count=len(ids))


def write_ids(path: Path, users: IdMap, items: IdMap) -> None:
    """The original ids, atomically: entry k of `users` is the id of user index k."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as f:
        for key, ids in (("users", users), ("items", items)):
            f.create_dataset(key, data=np.array(list(ids.index), dtype=object), dtype=h5py.string_dtype())


def _read_csv(path: Path, columns, users: IdMap, items: IdMap, sep: str):
    """(pairs, ratings) chunks of one CSV; messages name the file and the line."""
    if not path.is_file():
        raise DataError(f"{path}: no such input file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=sep)
        first = next(reader, None)
        if first is None:
            raise DataError(f"{path}: empty CSV file")
        header = None if _is_number(first[min(len(first) - 1, 2)]) else [c.strip() for c in first]
        where = [column_index(path, str(c), header, len(first), option)
                 for c, option in zip(columns, ("--user-col", "--item-col", "--rating-col"))]
        rows = [] if header else [first]
        line = 1 if header else 0
        for row in reader:
            rows.append(row)
            if len(rows) == CHUNK_ROWS:
                yield _parse(path, rows, where, line, users, items)
                line += len(rows)
                rows = []
        if rows:
            yield _parse(path, rows, where, line, users, items)


def _parse(path, rows, where, first_line, users: IdMap, items: IdMap):
    u, i, r = where
    short = [k for k, row in enumerate(rows) if len(row) <= max(where)]
    if short:
        raise DataError(f"{path}: line {first_line + 1 + short[0]}: expected at least "
                        f"{max(where) + 1} columns, got {len(rows[short[0]])}")
    user_ids = [row[u].strip() for row in rows]
    item_ids = [row[i].strip() for row in rows]
    try:
        ratings = np.array([row[r] for row in rows], dtype=np.float64)
    except ValueError:
        bad = next(k for k, row in enumerate(rows) if not _is_number(row[r]))
        raise DataError(f"{path}: line {first_line + 1 + bad}: rating {rows[bad][r]!r} is not "
                        f"a number") from None
    if not np.all(np.isfinite(ratings)):
        bad = int(np.argmax(~np.isfinite(ratings)))
        raise DataError(f"{path}: line {first_line + 1 + bad}: the rating is NaN or Inf")
    pairs = np.stack([users.map(user_ids), items.map(item_ids)], axis=1)
    return pairs, ratings


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
