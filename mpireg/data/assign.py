"""Which rows each rank owns: a pure function of (rows per file, rank, size).

The global rows (files concatenated in order) are cut into `size` contiguous ranges balanced to
within one row; a rank's range is then mapped back onto the files it crosses.

    files:  |---- f0 (5) ----|-- f1 (3) --|------ f2 (6) ------|    14 rows, 3 ranks
    ranks:  |---- r0 (5) ----|---- r1 (5) ----|---- r2 (4) ----|
"""
from __future__ import annotations

from typing import NamedTuple

from ..errors import DataError


class Segment(NamedTuple):
    file_index: int
    start: int  # row within the file
    stop: int


def rank_range(n_rows: int, rank: int, size: int) -> tuple[int, int]:
    """Global [start, stop) of `rank`; the first n_rows % size ranks get one extra row."""
    base, extra = divmod(n_rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def assign_rows(file_rows, rank: int, size: int, allow_empty: bool = False, align: int = 1) -> list[Segment]:
    """The file segments holding `rank`'s rows. Training data must give every rank a row;
    held-out data may leave some ranks empty (`allow_empty`). With `align` > 1 ranks own whole
    blocks of `align` global rows (deterministic mode), balanced to within one block."""
    n_rows = sum(file_rows)
    if n_rows < size and not allow_empty:
        raise DataError(f"data.train: {n_rows} rows for {size} ranks; every rank needs at least "
                        f"one row (run with at most {n_rows} ranks)")
    start, stop = owned_range(n_rows, rank, size, align)
    segments, offset = [], 0
    for index, rows in enumerate(file_rows):
        lo, hi = max(start, offset), min(stop, offset + rows)
        if lo < hi:
            segments.append(Segment(index, lo - offset, hi - offset))
        offset += rows
    return segments


def owned_range(n_rows: int, rank: int, size: int, align: int = 1) -> tuple[int, int]:
    """Global [start, stop) of the rows `rank` owns, in whole blocks of `align` rows."""
    n_blocks = -(-n_rows // align)
    first, last = rank_range(n_blocks, rank, size)
    return min(first * align, n_rows), min(last * align, n_rows)
