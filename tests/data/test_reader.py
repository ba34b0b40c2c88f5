import numpy as np
import pytest

from mpireg.data import ShardReader, epoch_plan, read_schema, resolve_paths
from mpireg.errors import DataError
from tests.helpers import write_dataset


@pytest.fixture
def table(tmp_path):
    X = np.arange(37 * 4, dtype=np.float64).reshape(37, 4)  # row i holds distinct values
    y = np.arange(37, dtype=np.float64)
    write_dataset(tmp_path, X, y, "regression", shards=5)
    return read_schema(resolve_paths([tmp_path])), X, y


@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_ranks_read_their_own_rows_only(table, size):
    schema, X, y = table
    got = []
    for rank in range(size):
        reader = ShardReader(schema, rank, size, budget_bytes=1e9)
        Xr, yr = reader.block(0)
        got.append(yr)
        assert np.array_equal(Xr, X[yr.astype(int)])
        reader.close()
    assert np.array_equal(np.concatenate(got), y)


def test_streaming_within_a_budget_equals_resident(table):
    schema, X, y = table
    row_bytes = 4 * 8 + 8
    reader = ShardReader(schema, 1, 2, budget_bytes=6 * row_bytes)  # 3 rows per block
    assert not reader.resident and reader.block_rows == 3
    assert sum(reader.block_sizes) == reader.n_rows == 18
    streamed = np.concatenate([reader.block(i)[1] for i in range(len(reader.block_sizes))])
    assert np.array_equal(streamed, y[19:])


def test_dtype_conversion_on_read(table):
    schema, X, _ = table
    Xr, _ = ShardReader(schema, 0, 1, 1e9, x_dtype=np.float32).block(0)
    assert Xr.dtype == np.float32 and np.array_equal(Xr, X.astype(np.float32))


def test_nan_is_reported_with_file_and_row(tmp_path):
    X = np.ones((10, 2))
    X[7, 1] = np.nan
    write_dataset(tmp_path, X, np.zeros(10), "regression", shards=2)
    schema = read_schema(resolve_paths([tmp_path]))
    with pytest.raises(DataError, match=r"part-00001.h5: X has a NaN or Inf value at row 2"):
        ShardReader(schema, 0, 1, 1e9).block(0)


def test_epoch_plan_is_a_permutation_and_differs_by_rank_and_epoch():
    sizes = [10, 7, 3]
    plan = epoch_plan(sizes, 4, seed=1, epoch=0, rank=0)
    for block, size in enumerate(sizes):
        rows = np.concatenate([r for b, r in plan if b == block])
        assert sorted(rows) == list(range(size))
    assert all(len(r) <= 4 for _, r in plan)
    assert len(plan) == sum(-(-s // 4) for s in sizes)
    flat = lambda p: np.concatenate([r + 100 * b for b, r in p]).tolist()  # noqa: E731
    assert flat(plan) == flat(epoch_plan(sizes, 4, seed=1, epoch=0, rank=0))
    assert flat(plan) != flat(epoch_plan(sizes, 4, seed=1, epoch=1, rank=0))
    assert flat(plan) != flat(epoch_plan(sizes, 4, seed=1, epoch=0, rank=1))


def _streamed(schema, rows_per_block=3):
    from mpireg.data.local import LocalData

    reader = ShardReader(schema, 0, 1, budget_bytes=2 * rows_per_block * (schema.n_features * 8 + 8))
    return LocalData(reader, lambda y: y, np)


def test_read_ahead_hands_out_the_same_blocks_in_any_order(table):
    schema, X, y = table
    data = _streamed(schema)
    order = [4, 0, 7, 7, 2, 12, 1]  # with repeats, and a read-ahead that is never used
    for index, then in zip(order, order[1:] + [None]):
        Xb, yb = data.block(index, then=then)
        lo = index * 3
        assert np.array_equal(yb, y[lo:lo + 3]) and np.array_equal(Xb, X[lo:lo + 3])
        if then not in (None, index):
            assert data._next[0] == then  # being read while this block is used
    data.close()
    assert data._next is None and data._reader_thread is None


def test_a_bad_block_read_ahead_fails_when_it_is_used(tmp_path):
    X = np.ones((12, 2))
    X[10, 0] = np.inf
    write_dataset(tmp_path, X, np.zeros(12), "regression", shards=1)
    data = _streamed(read_schema(resolve_paths([tmp_path])), rows_per_block=2)
    data.block(4, then=5)  # block 5 holds row 10
    with pytest.raises(DataError, match=r"part-00000.h5: X has a NaN or Inf value at row 10"):
        data.block(5)
    data.close()



def test_rows_in_one_file_are_mapped_not_copied(table):
    schema, X, y = table
    reader = ShardReader(schema, 0, 1, budget_bytes=1e9)
    Xr, yr = reader.read(9, 14)  # rows 9..13 lie in one shard of 37 / 5
    assert not Xr.flags.owndata and not Xr.flags.writeable  # the file's pages, read-only
    assert np.array_equal(Xr, X[9:14]) and np.array_equal(yr, y[9:14])
    Xs, ys = reader.read(5, 20)  # across shards: copied, and equal
    assert Xs.flags.owndata and np.array_equal(Xs, X[5:20]) and np.array_equal(ys, y[5:20])
    reader.close()


def test_only_contiguous_native_datasets_are_mapped(tmp_path):
    import h5py

    from mpireg.data.reader import map_rows

    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("contiguous", data=X)
        f.create_dataset("chunked", data=X, chunks=(5, 4))
        f.create_dataset("compressed", data=X, compression="gzip")
        f.create_dataset("big_endian", data=X.astype(">f4"))
        f.create_dataset("unwritten", shape=(10, 4), dtype=np.float32)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert np.array_equal(map_rows(f["contiguous"], 3, 7, np.float32), X[3:7])
        assert map_rows(f["contiguous"], 3, 7, np.float64) is None  # another dtype: read, converted
        for name in ("chunked", "compressed", "big_endian", "unwritten"):
            assert map_rows(f[name], 0, 10, np.float32) is None, name
    with h5py.File(tmp_path / "a.h5", "r", driver="core") as f:  # in memory: nothing to map
        assert map_rows(f["contiguous"], 0, 10, np.float32) is None


def test_a_mapped_shard_with_nan_is_still_named(tmp_path):
    X = np.ones((12, 3), dtype=np.float32)
    X[7, 1] = np.nan
    write_dataset(tmp_path, X, np.zeros(12, dtype=np.float32), "regression")
    schema = read_schema(resolve_paths([tmp_path]))
    with pytest.raises(DataError, match=r"part-00000\.h5.*row 7"):
        ShardReader(schema, 0, 1, budget_bytes=1e9).read(0, 12)


def test_a_file_system_that_cannot_map_is_read(table, monkeypatch):
    import mmap

    def refuse(*args, **kwargs):
        raise OSError(19, "No such device")  # ENODEV, as from a file system without mmap

    schema, X, y = table
    monkeypatch.setattr(mmap, "mmap", refuse)
    Xr, yr = ShardReader(schema, 0, 1, budget_bytes=1e9).read(9, 14)
    assert Xr.flags.owndata and np.array_equal(Xr, X[9:14]) and np.array_equal(yr, y[9:14])
