"""This rank's rows as the model wants them: arrays of one namespace (`xp`), prepared targets.

Resident data is one block, read once and kept. Streamed data keeps the block in use and, on
the CPU, reads the next one on a background thread meanwhile (double buffering: h5py releases
the GIL inside HDF5's reads, and the gradient kernels release it too), so an epoch costs about
the slower of reading and computing, not their sum. The reader's blocks are half the memory
budget, which leaves room for both.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
        self._next = None  # (index, future) of the block being read ahead
        self._slot = 1     # which of the two streaming buffers holds the current block
        self._buffers = [None, None]
        self._reader_thread = None

    @property
    def n_rows(self) -> int:
        return self.reader.n_rows

    @property
    def block_sizes(self) -> list[int]:
        return self.reader.block_sizes

    @property
    def resident(self) -> bool:
        return self.reader.resident

    @property
    def first_row(self) -> int:
        """The global row this rank's rows start at."""
        return self.reader.first_row

    def block(self, index: int, then: int | None = None):
        """(X, y) of block `index`; starts reading block `then` ahead when the data streams.
        A streamed block's arrays are reused two blocks later: use them before asking again."""
        if index != self._index:
            self._arrays = None  # free the old block before reading the next
            ahead = self._take_ahead(index)  # read ahead into the other slot, or None
            self._slot = 1 - self._slot
            self._arrays = ahead if ahead is not None else self._read_block(index, self._slot)
            self._index = index
        if then is not None and then != index:
            self._read_ahead(then)
        return self._arrays

    def blocks(self):
        count = len(self.block_sizes)
        for index in range(count):
            yield self.block(index, then=index + 1 if index + 1 < count else None)

    def _read_block(self, index: int, slot: int):
        start = index * self.reader.block_rows
        stop = min(start + self.reader.block_rows, self.n_rows)
        if self.reader.resident or self.xp is not np or self.reader.schema.sparse:
            return self._read(start, stop)  # (CSR blocks differ in size: no reused buffers)
        # Streamed host blocks land in two reused buffers: a fresh 100 MB array costs a page
        # fault per 4 KiB, about as long as reading it.
        if self._buffers[slot] is None:
            shape = (self.reader.block_rows, self.reader.schema.n_features)
            self._buffers[slot] = (np.empty(shape, self.reader.x_dtype), self.reader.empty_targets(shape[0]))
        X, y = self._buffers[slot]
        self.reader.read_into(start, stop, X, y)
        return X[:stop - start], self.prepare_targets(y[:stop - start])

    def _read_ahead(self, index: int) -> None:
        if self.reader.resident or self.xp is not np or (self._next and self._next[0] == index):
            return  # device reads stay on the thread that owns the CUDA context
        self._take_ahead(None)
        if self._reader_thread is None:
            self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="mpireg-read")
        self._next = (index, self._reader_thread.submit(self._read_block, index, 1 - self._slot))

    def _take_ahead(self, index):
        """The block read ahead if it is `index` (its read error, if any, raised here); else None."""
        pending, self._next = self._next, None
        if pending is None:
            return None
        if pending[0] == index:
            return pending[1].result()
        pending[1].cancel() or pending[1].exception()  # wait: one read at a time
        return None

    def close(self) -> None:
        self._take_ahead(None)
        if self._reader_thread is not None:
            self._reader_thread.shutdown()
            self._reader_thread = None

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
