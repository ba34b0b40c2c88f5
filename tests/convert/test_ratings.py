"""Ratings shards: synthetic low-rank ratings, CSV conversion with id maps, and the checks a
corrupt or mismatched ratings shard meets."""
import h5py
import numpy as np
import pytest

from mpireg.data import ShardReader, read_schema, resolve_paths, write_shard
from mpireg.convert.tool import main as data_main
from mpireg.convert.ratings import convert_ratings, synth_ratings
from mpireg.errors import DataError


def _read(directory):
    schema = read_schema(resolve_paths([directory]))
    return schema, ShardReader(schema, 0, 1, 2**30, x_dtype=np.float64).read(0, schema.n_rows)


def test_synthetic_ratings_are_low_rank_plus_noise_and_reproducible(tmp_path):
    for name in ("a", "b"):
        assert data_main(["synth", "--task", "ratings", "--rows", "3000", "--users", "80", "--items", "60",
                          "--rank", "3", "--noise", "0.2", "--shards", "2", "--seed", "4",
                          "--out", str(tmp_path / name)]) == 0
    schema, (X, y) = _read(tmp_path / "a")
    _, (X_b, y_b) = _read(tmp_path / "b")
    assert np.array_equal(X, X_b) and np.array_equal(y, y_b)
    assert (schema.task, schema.n_users, schema.n_items, schema.n_rows) == ("ratings", 80, 60, 3000)
    assert X.dtype == np.int64 and y.dtype == np.float64  # pairs stay indices; ratings in the compute dtype
    assert len({(u, i) for u, i in X}) == len(X)  # distinct cells
    with h5py.File(schema.files[0]) as f:
        U, V, mean = f["synth/user_factors"][()], f["synth/item_factors"][()], f["synth/mean"][()]
    residual = y - (mean + np.einsum("ij,ij->i", U[X[:, 0]], V[X[:, 1]]))
    assert np.std(residual) == pytest.approx(0.2, rel=0.1)
    test_schema, _ = _read(tmp_path / "a" / "test")
    assert test_schema.n_rows == 300 and test_schema.n_users == 80


def test_too_many_ratings_for_the_grid_is_an_error(tmp_path):
    with pytest.raises(DataError, match="do not fit 5 users x 4 items"):
        synth_ratings(5, 4, 2, 21, tmp_path / "r")


def test_csv_ids_become_indices_with_their_maps_and_a_test_split(tmp_path):
    path = tmp_path / "ratings.csv"
    lines = ["userId,movieId,rating,timestamp"]
    rng = np.random.default_rng(0)
    for k in range(200):
        lines.append(f"user{k % 17},{1000 + k % 11},{rng.integers(1, 6)},{k}")
    path.write_text("\n".join(lines) + "\n")
    summary = convert_ratings([path], tmp_path / "out", shards=2, user_col="userId", item_col="movieId",
                              rating_col="rating", test_fraction=0.25, seed=1)
    assert summary["rows"] == 150 and summary["test_rows"] == 50
    assert (summary["users"], summary["items"]) == (17, 11)
    schema, (X, y) = _read(tmp_path / "out")
    _, (X_test, y_test) = _read(tmp_path / "out" / "test")
    assert schema.n_rows == 150 and len(schema.files) == 2  # ids/ids.h5 is not a shard
    with h5py.File(tmp_path / "out" / "ids" / "ids.h5") as f:
        users, items = f["users"].asstr()[()], f["items"].asstr()[()]
    original = {(f"user{k % 17}", str(1000 + k % 11)) for k in range(200)}
    pairs = np.concatenate([X, X_test])
    assert {(users[u], items[i]) for u, i in pairs} == original
    assert set(np.concatenate([y, y_test])) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_the_cli_converts_a_headerless_tab_separated_file(tmp_path, capsys):
    path = tmp_path / "r.tsv"
    path.write_text("1\t10\t4.0\n2\t10\t3.5\n1\t11\t1.0\n")
    assert data_main(["ratings", str(path), "--sep", "\\t", "--out", str(tmp_path / "o")]) == 0
    assert "3 ratings" in capsys.readouterr().out
    schema, (X, y) = _read(tmp_path / "o")
    assert (schema.n_users, schema.n_items) == (2, 2)
    assert X.tolist() == [[0, 0], [1, 0], [0, 1]] and y.tolist() == [4.0, 3.5, 1.0]


@pytest.mark.parametrize("text,message", [
    ("u,i,r\na,b,4\nc,d,five\n", "line 3: rating 'five' is not a number"),
    ("u,i,r\na,b,4\nc,d\n", "line 3: expected at least 3 columns"),
    ("u,i,r\na,b,nan\n", "line 2: the rating is NaN or Inf"),
])
def test_bad_csv_rows_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        convert_ratings([path], tmp_path / "o", user_col="u", item_col="i", rating_col="r")
    assert str(path) in str(info.value)


def test_an_unknown_column_name_lists_the_header(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,stars\na,b,4\n")
    with pytest.raises(DataError, match=r"--rating-col 'rating' is not a column name \(user, item, stars\)"):
        convert_ratings([path], tmp_path / "o", rating_col="rating")


def _ratings_shard(path, X, y, n_users=3, n_items=2):
    write_shard(path, X, y, "ratings", attrs=dict(n_users=n_users, n_items=n_items))


def test_an_index_outside_the_shards_range_names_file_and_row(tmp_path):
    _ratings_shard(tmp_path / "part-00000.h5", np.array([[0, 1], [3, 0]]), np.array([1.0, 2.0]))
    schema = read_schema([str(tmp_path / "part-00000.h5")])
    with pytest.raises(DataError, match=r"part-00000.h5: X has user index 3 at row 1, outside 0..2"):
        ShardReader(schema, 0, 1, 2**30).read(0, 2)


def test_ratings_shards_must_agree_on_users_and_items(tmp_path):
    _ratings_shard(tmp_path / "part-00000.h5", np.array([[0, 1]]), np.array([1.0]))
    _ratings_shard(tmp_path / "part-00001.h5", np.array([[0, 1]]), np.array([1.0]), n_items=5)
    with pytest.raises(DataError, match="part-00001.h5: n_items is 5, but .*part-00000.h5 has 2"):
        read_schema(resolve_paths([tmp_path]))


def test_a_ratings_shard_with_float_pairs_is_refused(tmp_path):
    _ratings_shard(tmp_path / "part-00000.h5", np.array([[0.0, 1.0]]), np.array([1.0]))
    with pytest.raises(DataError, match="integer pairs"):
        read_schema([str(tmp_path / "part-00000.h5")])
