"""This rank's rows as the model wants them: arrays of one namespace (`xp`), prepared targets.

Resident data is one block, read once and kept; streamed data keeps only the block in use.
"""
from __future__ import annotations

from .reader import ShardReader


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
            X, y = self.reader.block(index)
            self._arrays = (self.xp.asarray(X), self.prepare_targets(self.xp.asarray(y)))
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
        X, y = self.reader.read(lo, hi)
        return self.xp.asarray(X), self.prepare_targets(self.xp.asarray(y))

    def load(self) -> "LocalData":
        """Read and validate resident rows now, while every rank can still agree on errors."""
        if self.reader.resident and self.n_rows:
            self.block(0)
        return self
