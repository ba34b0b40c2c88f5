"""Delimited text with numeric and categorical columns (Criteo-style) -> hashed CSR shards.

Every feature goes to one of 2**hash_bits slots by MurmurHash3 (x86, 32-bit; the hash of
scikit-learn's FeatureHasher and Vowpal Wabbit's family) of the UTF-8 bytes of a name, with a
seed, so a value lands in the same slot on every machine, run and Python version:

    numeric column j, value x     slot h("j"),      value x      (an empty field: no entry)
    categorical column j, text v  slot h("j=v"),    value 1      (an empty field: no entry)

where j is the column's index in the line and slot = h mod 2**hash_bits. Colliding features in
a row add up. Streamed like libsvm (stream.py): memory is a chunk of lines.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataError
from .libsvm import TextFormat, convert_lines


def feature_slot(name: str, hash_bits: int, seed: int = 0) -> int:
    """The slot of a feature name: MurmurHash3_x86_32(UTF-8 bytes, seed) mod 2**hash_bits."""
    from sklearn.utils import murmurhash3_32

    return murmurhash3_32(name, seed=seed, positive=True) & ((1 << hash_bits) - 1)


def parse_columns(spec: str, option: str) -> list[int]:
    """'1-13' or '1,4,7-9' -> column indices."""
    columns = []
    try:
        for part in filter(None, spec.split(",")):
            lo, _, hi = part.partition("-")
            columns += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise DataError(f"{option}: expected column indices like '1-13' or '1,4,7-9', got {spec!r}") from None
    return columns


class Hashed(TextFormat):
    comments = False

    def __init__(self, sep: str, label_col: int, numeric, categorical, hash_bits: int, seed: int = 0):
        if not 1 <= hash_bits <= 30:
            raise DataError(f"--hash-bits: expected 1..30, got {hash_bits}")
        overlap = set(numeric) & set(categorical) | {label_col} & (set(numeric) | set(categorical))
        if overlap:
            raise DataError(f"--numeric/--categorical/--label-col: column(s) {sorted(overlap)} given twice")
        self.sep, self.label_col, self.seed = sep, label_col, seed
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.hash_bits, self.n_features = hash_bits, 1 << hash_bits
        self.numeric_slots = [feature_slot(str(j), hash_bits, seed) for j in self.numeric]
        self.width = max([label_col, *self.numeric, *self.categorical]) + 1

    def label(self, line: str) -> str:
        return line.split(self.sep)[self.label_col]

    def parse(self, path, lines, numbers, skip_bad: bool):
        from sklearn.utils import murmurhash3_32

        mask = self.n_features - 1
        labels, counts, indices, values, skipped = [], [], [], [], 0
        for line, number in zip(lines, numbers):
            fields = line.split(self.sep)
            try:
                if len(fields) < self.width:
                    raise ValueError(f"{len(fields)} fields, expected at least {self.width}")
                label = float(fields[self.label_col])
                row_i, row_v = [], []
                for j, slot in zip(self.numeric, self.numeric_slots):
                    if fields[j]:
                        row_i.append(slot)
                        row_v.append(float(fields[j]))
                if not all(map(math.isfinite, row_v)) or not math.isfinite(label):
                    raise ValueError("a NaN or Inf value")
                for j in self.categorical:
                    if fields[j]:
                        row_i.append(murmurhash3_32(f"{j}={fields[j]}", seed=self.seed, positive=True) & mask)
                        row_v.append(1.0)
            except ValueError as exc:
                if not skip_bad:
                    raise DataError(f"{path}: line {number}: {exc} (--skip-bad-lines skips such lines)") from None
                skipped += 1
                continue
            labels.append(label)
            counts.append(len(row_i))
            indices += row_i
            values += row_v
        return (np.array(labels, dtype=np.float64), np.array(counts, dtype=np.int64),
                np.array(indices, dtype=np.int64), np.array(values, dtype=np.float64)), skipped


def convert_hashed(inputs, out, sep: str, label_col: int, numeric, categorical, hash_bits: int,
                   shards: int = 1, test_fraction: float = 0.0, seed: int = 0, hash_seed: int = 0,
                   task: str | None = None, dtype: str | None = None, skip_bad_lines: bool = False) -> dict:
    fmt = Hashed(sep, label_col, numeric, categorical, hash_bits, hash_seed)
    return convert_lines(fmt, inputs, out, shards, test_fraction, seed, task, dtype, skip_bad_lines)
