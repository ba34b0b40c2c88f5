"""A rank's view of the data: only its own rows, read with hyperslabs, within a memory budget.

Rows that fit the budget form one block, read once and kept by the caller (`resident`); otherwise
the rank streams blocks of at most half the budget (room for the next block while the current
one is used). Rows that lie in one file, stored contiguous and uncompressed in the dtype asked
for, are mapped from the page cache instead of copied (`map_rows`).
The reader knows files, row ranges and bytes; it knows nothing of models.
"""
from __future__ import annotations

import mmap
import threading

import h5py
import numpy as np

from ..errors import DataError
from .assign import assign_rows, owned_range
from .format import RATINGS, Schema, check_rows


class ShardReader:
    def __init__(self, schema: Schema, rank: int, size: int, budget_bytes: float,
                 x_dtype=None, y_dtype=None, allow_empty: bool = False, align: int = 1):
        self.schema = schema
        if schema.task == RATINGS:  # X: (user, item) index pairs; y: ratings in the compute dtype
            self.x_dtype = np.dtype(schema.x_dtype)
            self.y_dtype = np.dtype(y_dtype or x_dtype or schema.dtype)
        else:
            self.x_dtype = np.dtype(x_dtype or schema.dtype)
            self.y_dtype = np.dtype(y_dtype or (schema.dtype if schema.task == "regression" else np.int64))
        if schema.packed:  # [y, w, offset] rows of float64 (models/glm.py's targets)
            self.y_dtype = np.dtype(np.float64)
        # rank None: a rank that holds no rows of this data set (an asynchronous server)
        self.segments = [] if rank is None else assign_rows(schema.rows, rank, size, allow_empty, align)
        self.first_row = 0 if rank is None else owned_range(schema.n_rows, rank, size, align)[0]
        self.n_rows = sum(s.stop - s.start for s in self.segments)
        if schema.sparse:  # a row's share of the non-zeros: value, column, and its indptr entry
            per_row = sum(schema.nnz) / max(schema.n_rows, 1)
            row_bytes = per_row * (self.x_dtype.itemsize + 8) + 8 + self.y_dtype.itemsize * self.y_width
        else:
            row_bytes = schema.n_features * self.x_dtype.itemsize + self.y_dtype.itemsize * self.y_width
        self.nbytes = self.n_rows * row_bytes
        self.resident = self.nbytes <= budget_bytes
        self.block_rows = max(self.n_rows, 1) if self.resident else max(1, int(budget_bytes // (2 * row_bytes)))
        self._files: dict[int, h5py.File] = {}
        self._opening = threading.Lock()  # the read-ahead thread opens files too

    # ------------------------------------------------------------------ blocks
    @property
    def block_sizes(self) -> list[int]:
        full, rest = divmod(self.n_rows, self.block_rows)
        return [self.block_rows] * full + ([rest] if rest else [])

    def block(self, index: int):
        """(X, y) of block `index`, read from disk; callers keep what they want to keep."""
        start = index * self.block_rows
        return self.read(start, min(start + self.block_rows, self.n_rows))

    # ------------------------------------------------------------------ rows
    def read(self, start: int, stop: int):
        """Local rows [start, stop) as (X, y), validated; spans file boundaries."""
        n = stop - start
        if self.schema.sparse:
            return self._read_csr(start, stop)
        mapped = self._map(start, stop)
        if mapped is not None:
            return mapped
        X = np.empty((n, self.schema.n_features), dtype=self.x_dtype)
        y = self.empty_targets(n)
        self.read_into(start, stop, X, y)
        return X, y

    @property
    def y_width(self) -> int:
        return 3 if self.schema.packed else 1

    def empty_targets(self, n: int):
        return np.empty((n, 3) if self.schema.packed else n, dtype=self.y_dtype)

    def _targets(self, f, lo: int, hi: int):
        """Rows [lo, hi) of y, or of [y, w, offset] (weight 1, offset 0 where a set has none)."""
        y = f["y"][lo:hi].astype(self.y_dtype, copy=False)
        if not self.schema.packed:
            return y
        out = np.empty((hi - lo, 3))
        out[:, 0] = y
        out[:, 1] = f["w"][lo:hi] if "w" in self.schema.extras else 1.0
        out[:, 2] = f["offset"][lo:hi] if "offset" in self.schema.extras else 0.0
        return out

    def _map(self, start: int, stop: int):
        """Local rows [start, stop) as (X mapped read-only, y), validated, where they lie in one
        file that map_rows can map; else None."""
        local = 0
        for seg in self.segments:
            if local <= start and stop <= local + seg.stop - seg.start and start < stop:
                lo, hi = seg.start + start - local, seg.start + stop - local
                path, f = self.schema.files[seg.file_index], self._file(seg.file_index)
                X = map_rows(f["X"], lo, hi, self.x_dtype)
                if X is None:
                    return None
                try:
                    y = self._targets(f, lo, hi)
                except (OSError, ValueError, TypeError) as exc:
                    raise read_error(path, lo, hi, exc) from None
                check_rows(path, X, y, self.schema, first_row=lo)
                return X, y
            local += seg.stop - seg.start
        return None

    def read_into(self, start: int, stop: int, X, y) -> None:
        """Local rows [start, stop) into the first stop - start rows of X and y (host arrays,
        pinned ones included: the GPU path stages through a small pinned buffer)."""
        local = 0   # local row index at the start of the current segment
        filled = 0
        for seg in self.segments:
            seg_rows = seg.stop - seg.start
            lo, hi = max(start, local), min(stop, local + seg_rows)
            if lo < hi:
                f_lo = seg.start + lo - local
                self._read_into(seg.file_index, f_lo, f_lo + hi - lo, X, y, filled)
                filled += hi - lo
            local += seg_rows

    def _read_csr(self, start: int, stop: int):
        """Local rows [start, stop) of CSR shards: a SciPy CSR matrix and y."""
        import scipy.sparse as sp

        from .sparse import read_csr

        pieces, targets, local = [], [], 0
        for seg in self.segments:
            seg_rows = seg.stop - seg.start
            lo, hi = max(start, local), min(stop, local + seg_rows)
            if lo < hi:
                f_lo, f_hi = seg.start + lo - local, seg.start + hi - local
                path, f = self.schema.files[seg.file_index], self._file(seg.file_index)
                try:
                    X = read_csr(f, path, f_lo, f_hi, self.schema.n_features, self.x_dtype)
                    y = self._targets(f, f_lo, f_hi)
                except (OSError, ValueError, TypeError) as exc:
                    raise read_error(path, f_lo, f_hi, exc) from None
                check_rows(path, X, y, self.schema, first_row=f_lo)
                pieces.append(X)
                targets.append(y)
            local += seg_rows
        if not pieces:
            return (sp.csr_matrix((0, self.schema.n_features), dtype=self.x_dtype), self.empty_targets(0))
        X = pieces[0] if len(pieces) == 1 else sp.vstack(pieces, format="csr")
        return X, np.concatenate(targets)

    def locate(self, local_row: int) -> tuple[str, int]:
        """(file, row in it) of this rank's row `local_row`."""
        local = 0
        for seg in self.segments:
            if local_row < local + seg.stop - seg.start:
                return self.schema.files[seg.file_index], seg.start + local_row - local
            local += seg.stop - seg.start
        raise IndexError(f"row {local_row} is past this rank's {local} rows")

    def _read_into(self, file_index, lo, hi, X, y, at) -> None:
        path = self.schema.files[file_index]
        f = self._file(file_index)
        dest = np.s_[at:at + hi - lo]
        try:
            f["X"].read_direct(X, source_sel=np.s_[lo:hi], dest_sel=dest)
            if self.schema.packed:
                y[dest] = self._targets(f, lo, hi)
            else:
                f["y"].read_direct(y, source_sel=np.s_[lo:hi], dest_sel=dest)
        except (OSError, ValueError, TypeError) as exc:
            raise read_error(path, lo, hi, exc) from None
        check_rows(path, X[dest], y[dest], self.schema, first_row=lo)

    def _file(self, index: int) -> h5py.File:
        with self._opening:
            return self._open_file(index)

    def _open_file(self, index: int) -> h5py.File:
        if index not in self._files:
            path = self.schema.files[index]
            try:
                self._files[index] = h5py.File(path, "r")
            except OSError as exc:
                raise DataError(f"{path}: cannot open ({str(exc).splitlines()[0]})") from None
        return self._files[index]

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def read_error(path, lo: int, hi: int, exc: Exception) -> DataError:
    return DataError(f"{path}: cannot read rows {lo}..{hi} ({str(exc).splitlines()[0]})")


def map_rows(X: h5py.Dataset, lo: int, hi: int, dtype):
    """Rows [lo, hi) of the 2-D dataset X as a read-only array over the file's pages, or None
    where the dataset cannot be mapped (chunked or filtered, another dtype or byte order, not
    yet written, not an ordinary file, a file system without mmap).

    A copy into fresh memory costs a page fault per 4 KiB of the destination plus the copy:
    reading 200 MB of a shard this way took 55 ms alone and 0.63 s in a 2-rank job whose core
    was shared with SciPy's import, where mapping and validating the same rows took 14 ms
    (docs/performance.md, section 9). The pages are the page cache's, not the process's.
    A shard truncated while mapped would end the rank with SIGBUS; mpiexec then ends the job.
    """
    dtype = np.dtype(dtype)
    if X.chunks is not None or X.dtype != dtype or not X.dtype.isnative or X.file.driver != "sec2":
        return None
    offset = X.id.get_offset()  # None until the dataset's storage is written
    if offset is None or X.ndim != 2:
        return None
    try:
        with open(X.file.filename, "rb") as raw:
            pages = mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError:  # a file system that cannot map (some FUSE and network ones): read it
        return None
    row_bytes = X.shape[1] * dtype.itemsize
    if offset + hi * row_bytes > len(pages):
        raise DataError(f"{X.file.filename}: X's rows end past the end of the file (truncated?)")
    rows = np.frombuffer(pages, dtype=dtype, count=(hi - lo) * X.shape[1], offset=offset + lo * row_bytes)
    return rows.reshape(hi - lo, X.shape[1])
