"""CSV and Parquet -> dense shards, streamed through pyarrow's readers: memory is one block of
rows, not the file, so files larger than memory convert.

    pass 1  read every batch once: count the rows, collect the distinct labels (the task and
            the class codes), and find the malformed lines before anything is written
    pass 2  read again, each batch into its place in the preallocated shard datasets

A CSV is first read with every column typed float64 (pyarrow's multithreaded parser). Where
that fails - a field that is empty or not a number, a line with too many or too few fields - the
file is read again as text so that the bad line can be named by its number, or, with
skip_bad_lines, skipped and counted; the rows already delivered are not delivered twice.
Shards keep the input's float dtype (a CSV's numbers are float64; a Parquet file whose feature
columns are all float32 gives float32) unless `dtype` says otherwise.
"""
from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .loaders import MAX_INFERRED_CLASSES, column_index
from ..data.format import atomic_shard
from .libsvm import task_of_values

CSV_BLOCK_BYTES = 1 << 22
PARQUET_BATCH_ROWS = 1 << 16
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def _pyarrow():
    """One clear error, not an ImportError deep in the read."""
    if importlib.util.find_spec("pyarrow") is None:  # pragma: no cover - pyarrow is a dependency
        raise DataError("CSV and Parquet conversion needs pyarrow: python -m pip install pyarrow") from None


@dataclass
class Skipped:
    """Malformed lines (or rows) skipped so far."""
    count: int = 0


class CsvTable:
    """A delimited text file, read in blocks."""

    def __init__(self, path: Path, sep: str):
        self.path, self.sep = path, sep
        try:
            with open(path, newline="", encoding="utf-8") as f:
                first = next(csv.reader(f, delimiter=sep), None)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte {exc.start} of the first line); a binary "
                            f"file, or text in another encoding") from None
        if first is None:
            raise DataError(f"{path}: empty CSV file")
        self.header = None if _all_numeric(first) else [c.strip() for c in first]
        self.columns = self.header or [str(j) for j in range(len(first))]

    def float32_features(self, label: str) -> bool:
        return False  # text holds decimal numbers: float64

    def batches(self, skip_bad: bool, skipped: Skipped, columns=None):
        """X (float64) of the good rows, a block at a time: every column, or only `columns`
        (pyarrow then converts only those: the survey reads labels at several times the speed;
        the other fields are checked when they are read)."""
        delivered = 0
        try:
            for table in self._reader(typed=True, columns=columns):
                X = _float_matrix(table)
                if not np.isfinite(X).all():
                    raise _NeedsText
                delivered += len(X)
                yield X
        except _NeedsText:
            for X in self._text_batches(delivered, skip_bad, skipped):
                yield X if columns is None else X[:, columns]

    def _text_batches(self, already: int, skip_bad: bool, skipped: Skipped):
        """Every field as text: name (or skip) the first line that is not all finite numbers."""
        import pyarrow.compute as pc

        row = 0  # delivered rows, blank lines included: they are lines too
        invalid: list[int] = []  # the lines the reader skipped: they shift the numbering
        for table in self._reader(typed=False, skipped=skipped, skip_bad=skip_bad, invalid=invalid):
            fields = [table.column(j) for j in range(table.num_columns)]
            blank = np.logical_and.reduce([_text(c) == "" for c in fields])
            good = np.logical_and.reduce([pc.match_substring_regex(c, NUMBER).fill_null(False)
                                          .to_numpy(zero_copy_only=False) for c in fields])
            for k in np.flatnonzero(~good & ~blank):
                if not skip_bad:
                    self._bad_value(fields, int(k), self._line_of(row + int(k), invalid))
                skipped.count += 1
            keep = good & ~blank
            X = np.column_stack([_text(c)[keep].astype(np.float64) for c in fields]) if keep.any() else \
                np.zeros((0, len(fields)))
            bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
            if len(bad) and not skip_bad:  # a number beyond the float64 range
                self._bad_value(fields, int(np.flatnonzero(keep)[bad[0]]), None)
            skipped.count += len(bad)
            X = np.delete(X, bad, axis=0)
            row += table.num_rows
            drop = min(already, len(X))
            already -= drop
            yield X[drop:]

    def _reader(self, typed: bool, skipped: Skipped | None = None, skip_bad: bool = False, invalid=None,
                columns=None):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        problem = []

        def invalid_row(bad):  # what it raises pyarrow ignores: "error" stops the read instead
            if typed or not skip_bad:
                problem.append(f"{self.path}: line {bad.number}: expected {bad.expected_columns} fields, "
                               f"found {bad.actual_columns} (--skip-bad-lines skips such lines)")
                return "error"
            skipped.count += 1
            invalid.append(bad.number)
            return "skip"

        kind = pa.float64() if typed else pa.string()
        names = [f"c{j}" for j in range(len(self.columns))]
        read = pcsv.ReadOptions(column_names=names, skip_rows=1 if self.header else 0,
                                block_size=CSV_BLOCK_BYTES, use_threads=typed)
        parse = pcsv.ParseOptions(delimiter=self.sep, invalid_row_handler=invalid_row,
                                  ignore_empty_lines=typed)
        convert = pcsv.ConvertOptions(column_types={n: kind for n in names}, strings_can_be_null=typed,
                                      include_columns=None if columns is None else [names[j] for j in columns],
                                      quoted_strings_can_be_null=typed)
        try:
            reader = pcsv.open_csv(self.path, read_options=read, parse_options=parse, convert_options=convert)
            for batch in reader:
                yield pa.Table.from_batches([batch])
        except pa.ArrowInvalid as exc:
            if typed:
                raise _NeedsText from None
            if problem:
                raise DataError(problem[0]) from None
            raise DataError(f"{self.path}: not a delimited table ({exc})") from None

    def _line_of(self, row: int, skipped_lines) -> int:
        line = row + 1 + (self.header is not None)
        for bad in sorted(skipped_lines):
            line += bad <= line
        return line

    def _bad_value(self, fields, k: int, line):
        for name, column in zip(self.columns, fields):
            value = column[k].as_py()
            try:
                if np.isfinite(float(value)) and value.strip():
                    continue
            except (TypeError, ValueError):
                pass
            where = f"line {line}" if line else "a row"
            raise DataError(f"{self.path}: {where}: column {name!r}: {value!r} is not a finite number "
                            f"(--skip-bad-lines skips such lines)")
        raise DataError(f"{self.path}: line {line}: not a row of numbers")


class ParquetTable:
    """A Parquet file, read in row batches."""

    def __init__(self, path: Path, sep: str = ","):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        try:
            self.file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a Parquet file ({exc})") from None
        schema = self.file.schema_arrow
        self.columns = self.header = list(schema.names)
        for name, kind in zip(schema.names, schema.types):
            if not (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
                raise DataError(f"{path}: column {name!r} is {kind}, not a number")
        self.types = dict(zip(schema.names, schema.types))

    def float32_features(self, label: str) -> bool:
        import pyarrow as pa

        return all(kind == pa.float32() for name, kind in self.types.items() if name != label)

    def batches(self, skip_bad: bool, skipped: Skipped, columns=None):
        import pyarrow as pa

        row = 0
        names = self.columns if columns is None else [self.columns[j] for j in columns]
        for batch in self.file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=names):
            X = _float_matrix(pa.Table.from_batches([batch]))
            bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
            if len(bad) and not skip_bad:
                k = int(bad[0])
                column = names[int(np.flatnonzero(~np.isfinite(X[k]))[0])]
                raise DataError(f"{self.path}: row {row + k}: column {column!r} is missing, NaN or Inf "
                                f"(--skip-bad-lines skips such rows)")
            skipped.count += len(bad)
            row += len(X)
            yield np.delete(X, bad, axis=0)


class _NeedsText(Exception):
    """The typed CSV read met something only the text pass can name."""


def _float_matrix(table) -> np.ndarray:
    X = np.empty((table.num_rows, table.num_columns))
    for j in range(table.num_columns):
        X[:, j] = table.column(j).to_numpy(zero_copy_only=False)  # nulls become NaN
    return X


def _text(column) -> np.ndarray:
    return column.fill_null("").to_numpy(zero_copy_only=False).astype(str)


def _all_numeric(cells) -> bool:
    try:
        [float(c) for c in cells]
        return True
    except ValueError:
        return False


def open_table(path, sep: str = ","):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such input file")
    _pyarrow()
    if path.suffix.lower() in (".parquet", ".pq"):
        return ParquetTable(path)
    return CsvTable(path, "\t" if path.suffix.lower() == ".tsv" and sep == "," else sep)


class DenseSeries:
    """`shards` dense shards of `rows` rows in all, each preallocated, filled in order."""

    def __init__(self, directory: Path, shards: int, rows: int, width: int, dtype, task: str, classes,
                 extras: tuple = ()):
        self.directory, self.width, self.dtype = Path(directory), width, np.dtype(dtype)
        self.task, self.classes, self.extras = task, classes, extras  # extras: ("w", "offset") names
        self.sizes = [rows // shards + (k < rows % shards) for k in range(shards)]  # np.array_split's
        self.rows, self.shard, self.filled = 0, -1, 0
        self.context = self.file = None
        self.written: list[Path] = []

    def append(self, X: np.ndarray, labels: np.ndarray, extra: dict | None = None) -> None:
        y = _targets(labels, self.classes, self.dtype)
        lo = 0
        while lo < len(X):
            if self.file is None or self.filled == self.sizes[self.shard]:
                self._open_next()
            hi = min(len(X), lo + self.sizes[self.shard] - self.filled)
            self.file["X"][self.filled:self.filled + hi - lo] = X[lo:hi]
            self.file["y"][self.filled:self.filled + hi - lo] = y[lo:hi]
            for name in self.extras:
                self.file[name][self.filled:self.filled + hi - lo] = extra[name][lo:hi]
            self.filled += hi - lo
            self.rows += hi - lo
            lo = hi

    def _open_next(self) -> None:
        self.finish()
        self.shard += 1
        n = self.sizes[self.shard]
        n_classes = 0 if self.classes is None else len(self.classes)
        self.written.append(self.directory / f"part-{self.shard:05d}.h5")
        self.context = atomic_shard(self.written[-1], self.task, self.width, n_classes)
        self.file = self.context.__enter__()
        self.file.create_dataset("X", shape=(n, self.width), dtype=self.dtype)
        self.file.create_dataset("y", shape=(n,), dtype=self.dtype if self.classes is None else np.int64)
        for name in self.extras:
            self.file.create_dataset(name, shape=(n,), dtype=np.float64)
        self.filled = 0

    def finish(self) -> None:
        if self.context is not None:
            self.context.__exit__(None, None, None)  # renamed into place: the shard is whole
            self.context = self.file = None

    def abort(self) -> None:
        """The conversion failed: no shard of it stays, whole or not."""
        if self.context is not None:
            failed = DataError("conversion stopped")
            self.context.__exit__(DataError, failed, None)  # the temporary file is removed
            self.context = self.file = None
        for path in self.written:
            path.unlink(missing_ok=True)


def _targets(labels, classes, dtype):
    if classes is None:
        return labels.astype(dtype)
    return np.searchsorted(classes, labels).astype(np.int64)


def convert_table(inputs, out, shards: int = 1, label_col=None, test_fraction: float = 0.0, seed: int = 0,
                  task: str | None = None, dtype: str | None = None, sep: str = ",",
                  skip_bad_lines: bool = False, weight_col=None, offset_col=None) -> dict:
    """CSV/TSV/Parquet files with one label column (and, for generalized linear models, a weight
    and an offset column) -> OUT/part-NNNNN.h5 (and OUT/test/); a summary."""
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"--test-fraction: expected 0 <= F < 1, got {test_fraction}")
    tables = [open_table(p, sep) for p in inputs]
    first = tables[0]
    for other in tables[1:]:
        if other.columns != first.columns:
            raise DataError(f"{other.path}: columns {other.columns} differ from {first.path}'s {first.columns}")
    label = _label_column(first, label_col)
    extras = {name: column_index(first.path, spec, first.header, len(first.columns), option)
              for name, spec, option in (("w", weight_col, "--weight-col"), ("offset", offset_col, "--offset-col"))
              if spec is not None}
    taken = [label, *extras.values()]
    if len(set(taken)) != len(taken):
        raise DataError(f"{first.path}: --label-col, --weight-col and --offset-col must name different columns")
    if extras and task is None:  # weights and offsets are for GLMs, whose counts are not classes
        task = "regression"
    n_rows, labels = _survey(tables, label, skip_bad_lines)
    to_test = _test_rows(n_rows, test_fraction, seed)
    n_test = int(to_test.sum())
    n_train = n_rows - n_test
    task, classes = task_of_values(labels, task)
    if n_rows == 0:
        raise DataError(f"{', '.join(str(t.path) for t in tables)}: no data rows to convert")
    if n_train < shards:
        raise DataError(f"--shards: {n_train} rows cannot fill {shards} shards")
    if dtype is None:
        dtype = "float32" if all(t.float32_features(first.columns[label]) for t in tables) else "float64"
    width = len(first.columns) - len(taken)
    names = tuple(extras)
    train = DenseSeries(Path(out), shards, n_train, width, dtype, task, classes, names)
    test = DenseSeries(Path(out) / "test", 1, n_test, width, dtype, task, classes, names) if n_test else None
    series = [s for s in (train, test) if s is not None]
    skipped = Skipped()
    try:
        _fill(tables, label, to_test, train, test, skip_bad_lines, skipped, extras)
    except BaseException:
        for s in series:
            s.abort()
        raise
    for s in series:
        s.finish()
    return dict(rows=n_train, test_rows=n_test, features=width, task=task, dtype=str(np.dtype(dtype)),
                n_classes=0 if classes is None else len(classes), bad_lines=skipped.count,
                classes=None if classes is None else classes.tolist())


def _fill(tables, label: int, to_test, train, test, skip_bad: bool, skipped: Skipped, extras=None) -> None:
    extras = extras or {}
    row = 0
    for table in tables:
        in_table = 0
        for X in table.batches(skip_bad, skipped):
            check_range(table.path, X, train.dtype, in_table)
            in_table += len(X)
            pick = to_test[row:row + len(X)]
            row += len(X)
            y, extra = X[:, label], {name: X[:, column].astype(np.float64) for name, column in extras.items()}
            X = np.delete(X, [label, *extras.values()], axis=1)
            train.append(X[~pick], y[~pick], {k: v[~pick] for k, v in extra.items()})
            if test is not None:
                test.append(X[pick], y[pick], {k: v[pick] for k, v in extra.items()})


def check_range(path, values: np.ndarray, dtype, first_row: int) -> None:
    """Finite float64 values that a float32 shard cannot hold (1e300 would become inf): an
    error naming the file and the data row, not an inf in the shards."""
    if np.dtype(dtype) != np.float32 or not values.size:
        return
    over = np.abs(values) > np.finfo(np.float32).max
    if over.any():
        row = int(np.argwhere(over)[0][0])
        raise DataError(f"{path}: data row {first_row + row + 1}: a value beyond the range of float32 "
                        f"({values.reshape(len(values), -1)[row][over.reshape(len(values), -1)[row]][0]:g}); "
                        f"use --dtype float64, or rescale it")


def _label_column(table, spec) -> int:
    n = len(table.columns)
    return n - 1 if spec is None else column_index(table.path, spec, table.header, n, "--label-col")


def _survey(tables, label: int, skip_bad: bool):
    """(rows, distinct label values or None when they are too many to be classes). Skipping
    bad lines, both passes must see the same good rows: every field is read; else the labels
    only, and a bad field stops pass 2 (which then removes what it wrote)."""
    n_rows, labels = 0, set()
    columns = None if skip_bad else [label]
    for table in tables:
        for X in table.batches(skip_bad, Skipped(), columns):
            n_rows += len(X)
            if labels is not None:
                labels.update(np.unique(X[:, 0 if columns else label]).tolist())
                if len(labels) > MAX_INFERRED_CLASSES:
                    labels = None
    return n_rows, labels


def _test_rows(n_rows: int, fraction: float, seed: int, block: int = 1 << 20) -> np.ndarray:
    """Which rows go to the test set: exactly round(fraction * rows) of them, seeded, drawn a
    block of rows at a time (the count per block hypergeometric) so that the draw needs a byte a
    row, not a permutation of all of them."""
    mask = np.zeros(n_rows, dtype=bool)
    n_test = int(round(fraction * n_rows))
    if not n_test:
        return mask
    rng = np.random.default_rng(seed)
    sizes = [min(block, n_rows - lo) for lo in range(0, n_rows, block)]
    for lo, size, k in zip(range(0, n_rows, block), sizes, rng.multivariate_hypergeometric(sizes, n_test)):
        mask[lo + rng.choice(size, int(k), replace=False)] = True
    return mask
