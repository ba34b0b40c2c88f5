"""CSV and Parquet conversion through pyarrow, streamed: the rows as written, the input's dtype,
malformed lines named by number or skipped and counted, and memory bounded by a block."""
import os
import tracemalloc

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from mpireg.data import ShardReader, read_schema, resolve_paths  # noqa: E402
from mpireg.convert import arrow  # noqa: E402
from mpireg.convert.tool import main as data_main  # noqa: E402
from mpireg.convert.arrow import convert_table  # noqa: E402
from mpireg.errors import DataError  # noqa: E402


def _table(rows=600, d=4, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, d)), rng.integers(0, classes, rows)


def _csv(path, X, y, header=True, sep=","):
    with open(path, "w") as f:
        if header:
            f.write(sep.join([f"x{j}" for j in range(X.shape[1])] + ["label"]) + "\n")
        for row, label in zip(X, y):
            f.write(sep.join(f"{v:.17g}" for v in row) + f"{sep}{label}\n")


def _read(directory):
    schema = read_schema(resolve_paths([directory]))
    X, y = ShardReader(schema, 0, 1, 2**30, x_dtype=None).read(0, schema.n_rows)
    return schema, X, y


def test_csv_rows_land_in_order_across_shards_and_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(arrow, "CSV_BLOCK_BYTES", 4096)  # many blocks, shard edges inside them
    X, y = _table()
    _csv(tmp_path / "in.csv", X, y)
    assert data_main(["convert", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o"), "--shards", "3",
                      "--label-col", "label"]) == 0
    schema, Xs, ys = _read(tmp_path / "o")
    assert schema.task == "multiclass" and schema.n_classes == 3 and schema.dtype == "float64"
    assert schema.rows == [200, 200, 200]
    np.testing.assert_array_equal(Xs, X)  # float64 text round-trips exactly
    np.testing.assert_array_equal(ys, y)


def test_headerless_tsv_and_float32_on_request(tmp_path):
    X, y = _table(rows=50, classes=2)
    _csv(tmp_path / "in.tsv", X, y, header=False, sep="\t")
    summary = convert_table([tmp_path / "in.tsv"], tmp_path / "o", label_col="-1", dtype="float32")
    schema, Xs, ys = _read(tmp_path / "o")
    assert summary["task"] == "binary" and schema.dtype == "float32"
    np.testing.assert_array_equal(Xs, X.astype(np.float32))
    np.testing.assert_array_equal(ys, y)


def test_parquet_keeps_float32_and_splits_an_exact_seeded_test_set(tmp_path, monkeypatch):
    monkeypatch.setattr(arrow, "PARQUET_BATCH_ROWS", 64)
    X, _ = _table(rows=1000)
    target = X @ np.arange(1.0, 5.0)
    for part in range(2):  # two files, as Spark writes part-*.parquet
        rows = slice(part * 500, (part + 1) * 500)
        pq.write_table(pa.table({**{f"x{j}": X[rows, j].astype(np.float32) for j in range(4)},
                                 "y": target[rows]}), tmp_path / f"part-{part}.parquet", row_group_size=100)
    inputs = [str(tmp_path / f"part-{p}.parquet") for p in range(2)]
    for out in ("a", "b"):
        assert data_main(["convert", *inputs, "--out", str(tmp_path / out), "--shards", "2",
                          "--label-col", "y", "--test-fraction", "0.25", "--seed", "4"]) == 0
    schema, Xs, ys = _read(tmp_path / "a")
    test_schema, Xt, yt = _read(tmp_path / "a" / "test")
    assert schema.task == "regression" and schema.dtype == "float32"
    assert schema.n_rows == 750 and test_schema.n_rows == 250
    np.testing.assert_array_equal(_read(tmp_path / "b")[1], Xs)  # the split is seeded
    together = np.vstack([Xs, Xt]).astype(np.float64)
    order = np.lexsort(together.T)
    expected = X.astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(together[order], expected[np.lexsort(expected.T)])
    np.testing.assert_allclose(np.concatenate([ys, yt])[order], target[np.lexsort(expected.T)], rtol=1e-6)


def _bad_csv(path, X, y):
    _csv(path, X, y)
    lines = path.read_text().splitlines()
    lines.insert(100, "")                         # a blank line: skipped, but it counts as a line
    lines[300] = "1,2,3"                          # line 301: too few fields
    lines[400] = lines[400].replace(",", ",oops", 1)  # line 401: not a number
    fields = lines[500].split(",")
    fields[2] = ""                                # line 501: an empty field
    lines[500] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("block", [1 << 22, 2048])
def test_a_malformed_line_is_named_or_skipped_and_counted(tmp_path, monkeypatch, block):
    monkeypatch.setattr(arrow, "CSV_BLOCK_BYTES", block)
    X, y = _table()
    _bad_csv(tmp_path / "bad.csv", X, y)
    with pytest.raises(DataError, match=r"bad\.csv: line 301: expected 5 fields, found 3"):
        convert_table([tmp_path / "bad.csv"], tmp_path / "o")
    lines = (tmp_path / "bad.csv").read_text().splitlines()
    lines[300] = lines[299]
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad\.csv: line 401: column 'x1': 'oops.*' is not a finite number"):
        convert_table([tmp_path / "bad.csv"], tmp_path / "o", shards=4)  # found in pass 2 ...
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")  # ... whose shards, whole or not (.tmp files), are removed
    _bad_csv(tmp_path / "bad.csv", X, y)
    summary = convert_table([tmp_path / "bad.csv"], tmp_path / "o", skip_bad_lines=True)
    assert summary["bad_lines"] == 3 and summary["rows"] == 597
    _, Xs, _ = _read(tmp_path / "o")
    kept = np.delete(X, [298, 398, 498], axis=0)  # the rows of lines 301, 401, 501 (header, blank line)
    np.testing.assert_array_equal(Xs, kept)


def test_parquet_nulls_and_text_columns_are_named(tmp_path):
    values = pa.array([1.0, None, 3.0])
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "b": values, "y": [0, 1, 0]}), tmp_path / "n.parquet")
    with pytest.raises(DataError, match=r"n\.parquet: row 1: column 'b' is missing, NaN or Inf"):
        convert_table([tmp_path / "n.parquet"], tmp_path / "o")
    assert convert_table([tmp_path / "n.parquet"], tmp_path / "o", skip_bad_lines=True)["rows"] == 2
    pq.write_table(pa.table({"a": ["u", "v"], "y": [0, 1]}), tmp_path / "s.parquet")
    with pytest.raises(DataError, match=r"s\.parquet: column 'a' is string, not a number"):
        convert_table([tmp_path / "s.parquet"], tmp_path / "o")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"junk\.parquet: not a Parquet file"):
        convert_table([tmp_path / "junk.parquet"], tmp_path / "o")


def test_inputs_with_other_columns_are_one_error_naming_the_file(tmp_path):
    X, y = _table(rows=20)
    _csv(tmp_path / "a.csv", X, y)
    _csv(tmp_path / "b.csv", X[:, :3], y)
    with pytest.raises(DataError, match=r"b\.csv: columns .* differ from .*a\.csv"):
        convert_table([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "o")
    assert data_main(["convert", str(tmp_path / "a.csv"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "o")]) == 1


def _peak_bytes(run) -> int:
    """Python/NumPy allocations (tracemalloc) plus pyarrow's own pool, at their peaks."""
    pool = pa.default_memory_pool()
    before = pool.max_memory() or 0
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak + max(0, (pool.max_memory() or 0) - before)


def test_memory_stays_bounded_by_a_block_not_the_file(tmp_path, monkeypatch):
    """A file 8x larger converts within about the same memory: a budget of a small fraction
    of the larger file's size holds for both."""
    monkeypatch.setattr(arrow, "CSV_BLOCK_BYTES", 1 << 16)
    peaks, sizes = {}, {}
    for rows in (5_000, 40_000):
        X, y = _table(rows=rows, d=8)
        path = tmp_path / f"in{rows}.csv"
        _csv(path, X, y)
        sizes[rows] = path.stat().st_size
        peaks[rows] = _peak_bytes(lambda: convert_table([path], tmp_path / f"o{rows}", shards=2))
    budget = sizes[40_000] // 8
    assert peaks[40_000] < budget, (peaks, sizes)
    assert peaks[40_000] < 2 * peaks[5_000], (peaks, sizes)


def test_weight_and_offset_columns_become_the_shards_w_and_offset(tmp_path):
    """--weight-col and --offset-col take their columns out of X into datasets w and offset (a
    count label then stays a regression target), and a GLM reads them back as [y, w, offset]."""
    rng = np.random.default_rng(4)
    X, counts = rng.normal(size=(300, 3)), rng.poisson(1.0, 300)
    w, offset = rng.uniform(0.5, 2.0, 300), np.log(rng.uniform(0.1, 1.0, 300))
    table = pa.table({"a": X[:, 0], "w": w, "b": X[:, 1], "log_exposure": offset, "c": X[:, 2],
                      "claims": counts.astype(float)})
    pq.write_table(table, tmp_path / "claims.parquet")
    assert data_main(["convert", str(tmp_path / "claims.parquet"), "--label-col", "claims", "--weight-col", "w",
                      "--offset-col", "log_exposure", "--out", str(tmp_path / "out")]) == 0
    schema, X_read, targets = _read(tmp_path / "out")
    assert schema.task == "regression" and schema.extras == ("w", "offset") and schema.n_features == 3
    np.testing.assert_array_equal(X_read, X)
    np.testing.assert_array_equal(targets, np.column_stack([counts, w, offset]))
    assert data_main(["convert", str(tmp_path / "claims.parquet"), "--label-col", "claims", "--weight-col",
                      "claims", "--out", str(tmp_path / "bad")]) != 0  # one column cannot be both


def test_synth_claims_with_exposure_writes_offsets(tmp_path):
    assert data_main(["synth", "--task", "poisson", "--rows", "500", "--features", "12", "--exposure",
                      "--out", str(tmp_path / "freq")]) == 0
    schema, X, targets = _read(tmp_path / "freq")
    assert schema.extras == ("offset",) and targets.shape == (500, 3)
    assert np.all(targets[:, 2] <= 0) and np.all(targets[:, 1] == 1) and np.all(targets[:, 0] >= 0)
    assert np.all(X[:, 2:].sum(axis=1) <= 2)  # one-hot groups (level 0 the reference: no column)
