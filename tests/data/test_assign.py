import itertools

import numpy as np
import pytest

from mpireg.data import assign_rows, rank_range
from mpireg.errors import DataError

AWKWARD = [
    ([10], 8),               # one file, eight ranks
    ([5, 3, 6, 1, 9, 2, 7], 3),  # seven files, three ranks
    ([13], 4),               # rows not divisible by ranks
    ([1, 1, 1, 1], 4),       # one row each
    ([100, 0, 7], 5),        # an empty file in the middle
    ([2, 3], 5),             # as many ranks as rows
]


@pytest.mark.parametrize("file_rows,size", AWKWARD)
def test_every_row_read_exactly_once(file_rows, size):
    seen = []
    for rank in range(size):
        for seg in assign_rows(file_rows, rank, size):
            seen += [(seg.file_index, r) for r in range(seg.start, seg.stop)]
    expected = [(f, r) for f, rows in enumerate(file_rows) for r in range(rows)]
    assert seen == expected  # each row once, in global order


@pytest.mark.parametrize("file_rows,size", AWKWARD)
def test_balanced_within_one_row(file_rows, size):
    counts = [sum(s.stop - s.start for s in assign_rows(file_rows, r, size)) for r in range(size)]
    assert max(counts) - min(counts) <= 1
    assert sum(counts) == sum(file_rows)


def test_exhaustive_small_cases():
    for n_files, size in itertools.product(range(1, 5), range(1, 9)):
        for file_rows in itertools.product(range(0, 4), repeat=n_files):
            if sum(file_rows) < size:
                continue
            covered = np.zeros(sum(file_rows), dtype=int)
            offsets = np.cumsum([0, *file_rows])
            for rank in range(size):
                lo, hi = rank_range(sum(file_rows), rank, size)
                for seg in assign_rows(list(file_rows), rank, size):
                    g = offsets[seg.file_index]
                    assert lo <= g + seg.start and g + seg.stop <= hi  # contiguous in the rank's range
                    covered[g + seg.start:g + seg.stop] += 1
            assert (covered == 1).all()


def test_more_ranks_than_rows_is_an_error():
    with pytest.raises(DataError, match="3 rows for 4 ranks"):
        assign_rows([1, 2], 0, 4)


def test_held_out_data_may_leave_ranks_empty():
    assert assign_rows([2], 3, 4, allow_empty=True) == []
