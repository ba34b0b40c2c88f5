"""libsvm/svmlight text -> CSR shards, streamed: memory is bounded by a chunk of lines, not by
the file, so files larger than memory convert.

    pass 1  count the lines, collect the distinct labels (to infer the task and encode classes)
    pass 2  parse CHUNK_LINES lines at a time, append them to the current shard's resizable
            CSR datasets; a shard is renamed into place when the last one is whole

Indices are kept as written; a file with no index 0 is taken as one-based (svmlight's
convention) and every index is shifted down once the file is read, in place, chunk by chunk.
A fraction of the lines (a seeded draw per line, the same in both passes) goes to OUT/test/.
A malformed line is an error naming the file and line, or, with skip_bad_lines, skipped and
counted.
"""
from __future__ import annotations

import math

import os
import warnings
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from .loaders import MAX_INFERRED_CLASSES

try:  # the C line parser (csrc/cparse.c); the NumPy code stays the reference
    from .. import _cparse
except ImportError:
    _cparse = None
from ..data.format import FORMAT_VERSION

CHUNK_LINES = 1 << 14


def convert_svmlight(inputs, out, shards: int = 1, test_fraction: float = 0.0, seed: int = 0,
                     task: str | None = None, dtype: str | None = None, skip_bad_lines: bool = False) -> dict:
    """Write OUT/part-NNNNN.h5 (and OUT/test/part-00000.h5) as CSR shards; return a summary."""
    return convert_lines(SVMLIGHT_FORMAT, inputs, out, shards, test_fraction, seed, task, dtype, skip_bad_lines)


class TextFormat:
    """What the streamed conversion needs of a line format."""

    comments = True       # a '#' starts a comment
    n_features = None     # fixed (hashed), or None: the largest index + 1

    def label(self, line: str) -> str:
        return line.split(None, 1)[0]

    def parse(self, path, lines, numbers, skip_bad: bool):
        """((labels, entries per row, indices, values), lines skipped) of a chunk."""
        raise NotImplementedError


def convert_lines(fmt: TextFormat, inputs, out, shards: int, test_fraction: float, seed: int,
                  task: str | None, dtype: str | None, skip_bad_lines: bool) -> dict:
    """The two passes over text lines in `fmt`, into CSR shards; a summary. Text holds decimal
    numbers: they are kept as float64 unless `dtype` says otherwise."""
    dtype = dtype or "float64"
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"--test-fraction: expected 0 <= F < 1, got {test_fraction}")
    paths = [Path(p) for p in inputs]
    n_train, n_test, labels = _survey(fmt, paths, test_fraction, seed)
    task, classes = _task_of(labels, task)
    if n_train + n_test == 0:
        raise DataError(f"{', '.join(map(str, paths))}: no data lines to convert")
    if n_train < shards:
        raise DataError(f"--shards: {n_train} rows cannot fill {shards} shards")
    out = Path(out)
    train = ShardSeries(out, shards, n_train, dtype, classes)
    test = ShardSeries(out / "test", 1, n_test, dtype, classes) if n_test else None
    draws = Draws(test_fraction, seed)
    bad = 0
    for path in paths:
        for first_line, lines in chunks(path, fmt.comments):
            to_test = draws.next(len(lines))
            for target, pick in ((train, ~to_test), (test, to_test)):
                chosen = [line for line, keep in zip(lines, pick) if keep]
                numbers = [n for n, keep in zip(first_line, pick) if keep]
                if target is not None and chosen:
                    parsed, skipped = fmt.parse(path, chosen, numbers, skip_bad_lines)
                    _check_range(path, parsed, numbers if not skipped else None, target)
                    bad += skipped
                    target.append(*parsed)
    series = [s for s in (train, test) if s is not None]
    if fmt.n_features is not None:
        n_features, one_based = fmt.n_features, False
    else:  # indices as written; none is 0: svmlight's one-based convention
        one_based = min(s.min_index for s in series) >= 1
        n_features = max(s.max_index for s in series) + 1 - one_based
    n_classes = 0 if classes is None else len(classes)
    for s in series:
        s.finish(task, n_features, n_classes, one_based)
    return dict(rows=train.rows, test_rows=test.rows if test else 0, features=n_features,
                task=task, n_classes=n_classes, bad_lines=bad, sparse=True,
                classes=None if classes is None else classes.tolist())


def _check_range(path, parsed, numbers, target) -> None:
    """A value or a regression label that the shards' float32 cannot hold (1e300 would be
    written as inf): an error naming the line (`numbers`: each parsed row's line, when no line
    was skipped)."""
    if target.dtype != np.float32:
        return
    labels, counts, _, values = parsed
    limit = np.finfo(np.float32).max
    rows = []
    if len(values) and (np.abs(values) > limit).any():
        rows.append(int(np.searchsorted(np.cumsum(counts), int(np.argmax(np.abs(values) > limit)), side="right")))
    if target.classes is None and len(labels) and (np.abs(labels.astype(np.float64)) > limit).any():
        rows.append(int(np.argmax(np.abs(labels.astype(np.float64)) > limit)))
    if rows:
        where = f"line {numbers[min(rows)]}" if numbers is not None else "a line"
        raise DataError(f"{path}: {where}: a value beyond the range of float32; use --dtype float64, "
                        f"or rescale it")


# --------------------------------------------------------------------------- pass 1

def _survey(fmt: TextFormat, paths, test_fraction: float, seed: int):
    """(train rows, test rows, distinct labels or None when there are too many to be classes)."""
    draws = Draws(test_fraction, seed)
    n_train = n_test = 0
    labels: set | None = set()
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: no such input file")
        for numbers, lines in chunks(path, fmt.comments):
            to_test = int(draws.next(len(lines)).sum())
            n_test += to_test
            n_train += len(lines) - to_test
            if labels is not None:
                labels.update(_label_texts(fmt, path, lines, numbers))
                if len(labels) > MAX_INFERRED_CLASSES:
                    labels = None
    return n_train, n_test, labels


def _label_texts(fmt, path, lines, numbers):
    for line, number in zip(lines, numbers):
        try:
            text = fmt.label(line)
        except (IndexError, ValueError):
            raise DataError(f"{path}: line {number}: no label column") from None
        if not _is_float(text):
            raise DataError(f"{path}: line {number}: the label {text.strip()!r} is not a number")
        if not math.isfinite(float(text)):
            raise DataError(f"{path}: line {number}: the label {text.strip()!r} is not a finite number")
        yield text


def _task_of(labels, task: str | None):
    """(task, class values) from the distinct label texts."""
    values = None
    if labels is not None:
        try:
            values = {float(text) for text in labels}
        except ValueError:
            bad = next(t for t in labels if not _is_float(t))
            raise DataError(f"label {bad!r} is not a number") from None
    return task_of_values(values, task)


def task_of_values(values, task: str | None):
    """(task, the sorted class values: code k stands for classes[k]) from the distinct label
    values (None: more than MAX_INFERRED_CLASSES of them)."""
    whole = values and all(v == round(v) for v in values)
    inferred = ("binary" if len(values) == 2 else "multiclass") if whole and len(values) >= 2 else "regression"
    task = task or inferred
    if task == "regression":
        return task, None
    if not values:
        raise DataError(f"--task {task}: the labels take more than {MAX_INFERRED_CLASSES} values")
    classes = np.unique(np.array(sorted(values)))
    if task == "binary" and len(classes) != 2:
        raise DataError(f"y: task 'binary' needs exactly 2 distinct labels, found {len(classes)}")
    return task, classes


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


class Draws:
    """The seeded per-line test draws, identical in both passes."""

    def __init__(self, fraction: float, seed: int):
        self.fraction = fraction
        self.rng = np.random.default_rng([seed, 0x5E7])

    def next(self, n: int) -> np.ndarray:
        if not self.fraction:
            return np.zeros(n, dtype=bool)
        return self.rng.random(n) < self.fraction


def chunks(path: Path, comments: bool = True):
    """(line numbers, lines) of up to CHUNK_LINES data lines (blanks and, with `comments`,
    everything after a '#' dropped)."""
    numbers, lines = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if comments:
                text = line.split("#", 1)[0].strip()
            else:  # delimited fields: an empty first or last field is still a field
                text = line.rstrip("\r\n")
            if not text.strip():
                continue
            numbers.append(number)
            lines.append(text)
            if len(lines) == CHUNK_LINES:
                yield numbers, lines
                numbers, lines = [], []
    if lines:
        yield numbers, lines


# --------------------------------------------------------------------------- pass 2

class SvmLight(TextFormat):
    """label index:value ... per line (qid: tokens ignored)."""

    def parse(self, path, lines, numbers, skip_bad: bool):
        return _parse(path, lines, numbers, skip_bad)


SVMLIGHT_FORMAT = SvmLight()


def _parse(path, lines, numbers, skip_bad: bool):
    """((labels, counts per row, indices, values), skipped lines) of a chunk. Fast path: all the
    chunk's numbers in one split and one float conversion; a failure re-parses line by line to
    name the bad one."""
    try:
        parsed = _parse_fast(lines)
        if np.isfinite(parsed[0]).all() and np.isfinite(parsed[3]).all() and not _repeats_an_index(*parsed[1:3]):
            return parsed, 0
    except ValueError:
        pass  # the line-by-line parse below names the line (a NaN or Inf value too)
    rows, skipped = [], 0
    for line, number in zip(lines, numbers):
        try:
            rows.append(_parse_line(line))
        except ValueError:
            if not skip_bad:
                raise DataError(f"{path}: line {number}: expected 'label index:value ...' with finite "
                                f"numbers and each index once, got {line[:80]!r} (--skip-bad-lines skips such "
                                f"lines)") from None
            skipped += 1
    if not rows:
        return (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)), skipped
    labels = np.array([r[0] for r in rows], dtype=np.float64)
    counts = np.array([len(r[1]) for r in rows], dtype=np.int64)
    indices = np.concatenate([r[1] for r in rows]).astype(np.int64)
    values = np.concatenate([r[2] for r in rows])
    return (labels, counts, indices, values), skipped


def _repeats_an_index(counts, indices) -> bool:
    """Whether some row names an index twice. Rows in ascending order (libsvm's own) pass with
    one diff; others are checked exactly."""
    if indices.size < 2:
        return False
    ascending = np.diff(indices) > 0
    boundaries = np.cumsum(counts)[:-1] - 1  # the diff that crosses from one row into the next
    ascending[boundaries[(boundaries >= 0) & (boundaries < ascending.size)]] = True
    if ascending.all():
        return False
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    keys = rows * (int(indices.max()) + 1) + indices
    return np.unique(keys).size != keys.size


def _parse_fast(lines):
    if _cparse is not None:
        return _parse_c(lines)
    if any("qid:" in line for line in lines):
        raise ValueError("qid")
    counts = np.fromiter((line.count(":") for line in lines), dtype=np.int64, count=len(lines))
    # One C parse of the whole chunk, labels included (no Python string per token: a tenth of
    # the memory); row k's label is number starts[k], its pairs follow.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy warns, or raises, where the text stops parsing
        numbers = np.fromstring(" ".join(lines).replace(":", " "), dtype=np.float64, sep=" ")
    widths = 1 + 2 * counts
    if numbers.size != widths.sum():
        raise ValueError("tokens")
    starts = np.cumsum(widths) - widths
    is_label = np.zeros(numbers.size, dtype=bool)
    is_label[starts] = True
    pairs = numbers[~is_label].reshape(-1, 2)
    indices = pairs[:, 0].astype(np.int64)
    if not np.array_equal(indices, pairs[:, 0]) or (indices < 0).any():
        raise ValueError("index")
    return numbers[starts], counts, indices, pairs[:, 1]


def _parse_c(lines):
    """The C parser (csrc/cparse.c): several times NumPy's text parser; ValueError on a bad line."""
    text = ("\n".join(lines) + "\n").encode()
    most = text.count(b":")
    labels, counts = np.empty(len(lines)), np.empty(len(lines), dtype=np.int64)
    indices, values = np.empty(most, dtype=np.int64), np.empty(most)
    rows, entries = _cparse.svmlight(text, len(lines), most, labels, counts, indices, values)
    if rows is None or rows != len(lines):
        raise ValueError("a line does not parse")
    return labels, counts, indices[:entries], values[:entries]


def _parse_line(line: str):
    parts = line.split()
    label = float(parts[0])
    pairs = [p.split(":") for p in parts[1:] if not p.startswith("qid:")]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(line)
    indices = np.array([int(i) for i, _ in pairs], dtype=np.int64)
    values = np.array([float(v) for _, v in pairs])
    if (indices < 0).any() or not (np.isfinite(values).all() and np.isfinite(label)) or \
            len(np.unique(indices)) != len(indices):  # a repeated index: CSR would add the two, --dense keep one
        raise ValueError(line)  # (a NaN or Inf would reach the shards, which refuse it only when read)
    return label, indices, values


class ShardSeries:
    """`shards` CSR shards of `rows` rows in all, filled in order, chunk by chunk."""

    def __init__(self, directory: Path, shards: int, rows: int, dtype: str, classes):
        self.directory, self.dtype, self.classes = directory, np.dtype(dtype), classes
        self.per_shard = -(-rows // shards) if rows else 0
        self.files: list[tuple[Path, Path]] = []
        self.current = None
        self.in_current = 0
        self.rows = 0
        self.max_index, self.min_index = -1, 2**62

    def append(self, labels, counts, indices, values) -> None:
        if not len(labels):
            return
        if len(indices):
            self.max_index = max(self.max_index, int(indices.max()))
            self.min_index = min(self.min_index, int(indices.min()))
        y = self._targets(labels)
        ends = np.cumsum(counts)
        lo = 0
        while lo < len(labels):
            if self.current is None or self.in_current == self.per_shard:
                self._open_next()
            hi = min(len(labels), lo + self.per_shard - self.in_current)
            first, last = (ends[lo - 1] if lo else 0), ends[hi - 1]
            self._write(counts[lo:hi], indices[first:last], values[first:last], y[lo:hi])
            self.in_current += hi - lo
            self.rows += hi - lo
            lo = hi

    def _targets(self, labels):
        y = labels.astype(np.float64)
        if self.classes is None:
            return y.astype(self.dtype)
        return np.searchsorted(self.classes, y).astype(np.int64)

    def _open_next(self) -> None:
        if self.current is not None:
            self.current.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"part-{len(self.files):05d}.h5"
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        self.files.append((tmp, path))
        f = h5py.File(tmp, "w")
        f.create_dataset("indptr", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(CHUNK_LINES,))
        f.create_dataset("indices", shape=(0,), dtype=np.int64, maxshape=(None,), chunks=(CHUNK_LINES,))
        f.create_dataset("data", shape=(0,), dtype=self.dtype, maxshape=(None,), chunks=(CHUNK_LINES,))
        f.create_dataset("y", shape=(0,), dtype=self.dtype if self.classes is None else np.int64,
                         maxshape=(None,), chunks=(CHUNK_LINES,))
        self.current, self.in_current = f, 0

    def _write(self, counts, indices, values, y) -> None:
        f = self.current
        base = int(f["indptr"][-1])
        _extend(f["indptr"], base + np.cumsum(counts))
        _extend(f["indices"], indices)
        _extend(f["data"], values.astype(self.dtype))
        _extend(f["y"], y)

    def finish(self, task: str, n_features: int, n_classes: int, one_based: bool) -> None:
        """Attributes (now that the dimension is known), the one-based shift, the renames."""
        if self.current is not None:
            self.current.close()
            self.current = None
        for tmp, path in self.files:
            with h5py.File(tmp, "a") as f:
                if one_based:
                    indices = f["indices"]
                    for lo in range(0, indices.shape[0], 1 << 20):
                        indices[lo:lo + (1 << 20)] = indices[lo:lo + (1 << 20)] - 1
                f.attrs.update(mpireg_format=FORMAT_VERSION, task=task, n_features=n_features,
                               n_classes=n_classes)
            os.replace(tmp, path)


def _extend(dataset, values) -> None:
    n = dataset.shape[0]
    dataset.resize((n + len(values),))
    dataset[n:] = values
