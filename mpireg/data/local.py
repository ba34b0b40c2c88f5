"""This rank's rows as the model wants them: arrays of one namespace (`xp`), prepared targets.

Resident data is one block, read once and kept; streamed data keeps only the block in use.
"""
from __future__ import annotations

import numpy as np

from .reader import ShardReader

STAGING_BYTES = 64 * 2**20  # the pinned host buffer a GPU rank reads through


class LocalData:
    def __init__(self, reader: ShardReader, prepare_targets, xp):
        self.reader = reader
        self.prepare_targets = prepare_targets
        self.xp = xp
        self._index = None
        self._arrays = None

    @property
    def n_rows(self) -> int:
        return self.reader.n_rows

    @property
    def block_sizes(self) -> list[int]:
        return self.reader.block_sizes

    def block(self, index: int):
        if index != self._index:
            self._arrays = None  # free the old block before reading the next
            start = index * self.reader.block_rows
            self._arrays = self._read(start, min(start + self.reader.block_rows, self.n_rows))
            self._index = index
        return self._arrays

    def blocks(self):
        for index in range(len(self.block_sizes)):
            yield self.block(index)

    def rows(self, lo: int, hi: int):
        """Local rows [lo, hi): a slice of resident data, or a read from disk."""
        if self.reader.resident:
            X, y = self.block(0)
            return X[lo:hi], y[lo:hi]
        return self._read(lo, hi)

    def _read(self, start: int, stop: int):
        if self.xp is np:
            X, y = self.reader.read(start, stop)
            return X, self.prepare_targets(y)
        return self._read_to_device(start, stop)

    def _read_to_device(self, start: int, stop: int):
        """HDF5 -> pinned host chunk -> device, chunk by chunk: the block never sits whole in
        host memory."""
        import cupyx

        reader, xp = self.reader, self.xp
        X = xp.empty((stop - start, reader.schema.n_features), dtype=reader.x_dtype)
        y = xp.empty(stop - start, dtype=reader.y_dtype)
        row_bytes = reader.schema.n_features * reader.x_dtype.itemsize + reader.y_dtype.itemsize
        chunk = max(1, min(stop - start, STAGING_BYTES // row_bytes))
        host_X = cupyx.empty_pinned((chunk, reader.schema.n_features), dtype=reader.x_dtype)
        host_y = cupyx.empty_pinned(chunk, dtype=reader.y_dtype)
        for lo in range(start, stop, chunk):
            k = min(chunk, stop - lo)
            reader.read_into(lo, lo + k, host_X, host_y)
            X[lo - start:lo - start + k].set(host_X[:k])
            y[lo - start:lo - start + k].set(host_y[:k])
        return X, self.prepare_targets(y)

    def load(self) -> "LocalData":
        """Read and validate resident rows now, while every rank can still agree on errors."""
        if self.reader.resident and self.n_rows:
            self.block(0)
        return self
