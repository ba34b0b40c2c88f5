"""Hashed CSR from delimited text: the documented hash (MurmurHash3_x86_32, fixed slots on
every machine and run), numeric and categorical columns, empty fields, errors by line."""
import os
import subprocess
import sys

import numpy as np
import pytest

from mpireg.data import ShardReader, read_schema, resolve_paths
from mpireg.convert.tool import main as data_main
from mpireg.convert.hashed import convert_hashed, feature_slot, parse_columns
from mpireg.errors import DataError

# name, bits, seed -> slot; the first two rows are MurmurHash3_x86_32's published test vectors
SLOTS = [("hello", 32 - 1, 0, 0x248BFA47 & (2**31 - 1)),
         ("The quick brown fox jumps over the lazy dog", 31, 0, 0x2E4FF723 & (2**31 - 1)),
         ("1", 22, 0, 1485971), ("14=68fd1e64", 22, 0, 835028), ("26=e5ba7672", 22, 0, 1154301),
         ("14=68fd1e64", 22, 7, 1059323)]


@pytest.mark.parametrize("name,bits,seed,slot", SLOTS)
def test_the_hash_gives_fixed_slots(name, bits, seed, slot):
    assert feature_slot(name, bits, seed) == slot


def test_slots_do_not_depend_on_the_process():
    code = "from mpireg.convert.hashed import feature_slot; print(feature_slot('14=68fd1e64', 22))"
    for hash_seed in ("0", "123"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONHASHSEED=hash_seed)).stdout
        assert int(out) == 835028


def test_numeric_and_categorical_columns_hash_into_csr(tmp_path):
    path = tmp_path / "clicks.tsv"
    path.write_text("1\t3\t\tab\tcd\n0\t\t2.5\tab\t\n1\t1\t1\txy\tcd\n")
    assert data_main(["convert", str(path), "--sep", "\\t", "--label-col", "0", "--numeric", "1-2",
                      "--categorical", "3-4", "--hash-bits", "8", "--out", str(tmp_path / "o"),
                      "--dtype", "float64"]) == 0
    schema = read_schema(resolve_paths([tmp_path / "o"]))
    X, y = ShardReader(schema, 0, 1, 2**30).read(0, 3)
    assert schema.sparse and schema.n_features == 256 and schema.task == "binary"
    expected = np.zeros((3, 256))
    for row, entries in enumerate([{"1": 3.0, "3=ab": 1, "4=cd": 1}, {"2": 2.5, "3=ab": 1},
                                   {"1": 1.0, "2": 1.0, "3=xy": 1, "4=cd": 1}]):
        for name, value in entries.items():
            expected[row, feature_slot(name, 8)] += value
    np.testing.assert_array_equal(X.toarray(), expected)
    assert y.tolist() == [1, 0, 1]


def test_short_and_bad_lines_are_named_or_skipped(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2,a\n0,x,b\n1,3\n0,1,c\n")
    with pytest.raises(DataError, match=r"bad.csv: line 2: could not convert string to float: 'x'"):
        convert_hashed([path], tmp_path / "o", ",", 0, [1], [2], 10)
    summary = convert_hashed([path], tmp_path / "o", ",", 0, [1], [2], 10, skip_bad_lines=True)
    assert summary["bad_lines"] == 2 and summary["rows"] == 2


def test_column_lists_and_their_errors():
    assert parse_columns("1-3,7,9-10", "--numeric") == [1, 2, 3, 7, 9, 10]
    with pytest.raises(DataError, match="--numeric: expected column indices"):
        parse_columns("a-b", "--numeric")
    with pytest.raises(DataError, match=r"column\(s\) \[2\] given twice"):
        convert_hashed([], "o", ",", 0, [1, 2], [2], 10)
