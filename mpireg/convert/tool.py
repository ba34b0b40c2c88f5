"""The data tool: `python -m mpireg.data {synth,example,convert,ratings,inspect} ...`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import MpiregError
from ..log import run_command_line
from .arrow import TABLE_SUFFIXES, convert_table
from .loaders import convert
from .hashed import convert_hashed, parse_columns
from .libsvm import convert_svmlight
from .examples import EXAMPLES, write_example
from .inspect import inspect
from .ratings import convert_ratings, synth_ratings
from .claims import GLM_TASKS, synthesize_claims
from .synth import synthesize, synthesize_sparse


SVMLIGHT = (".svm", ".libsvm", ".svmlight")


def at_least(minimum: int):
    """An argparse type: an integer >= minimum (argparse then names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mpireg.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="reproducible synthetic data with its true parameters")
    s.add_argument("--task", required=True, choices=["linear", "logistic", "softmax", "ratings", *GLM_TASKS],
                   help="poisson, gamma, tweedie: insurance-like rows for generalized linear models")
    s.add_argument("--rows", type=int, required=True, help="training rows (ratings: ratings drawn)")
    s.add_argument("--features", type=int, default=None, help="required but for ratings")
    s.add_argument("--classes", type=int, default=3, help="softmax only (default 3)")
    s.add_argument("--shards", type=at_least(1), default=1, help="training shards to write (default 1)")
    s.add_argument("--test-rows", type=int, default=None,
                   help="rows written to OUT/test/ (default: a tenth of --rows, at most 100000)")
    s.add_argument("--noise", type=float, default=0.1, help="linear and ratings: target noise s.d.")
    s.add_argument("--users", type=int, default=1000, help="ratings only (--rows: ratings drawn)")
    s.add_argument("--items", type=int, default=500, help="ratings only")
    s.add_argument("--rank", type=int, default=8, help="ratings only: rank of the true factors")
    s.add_argument("--sparse", action="store_true",
                   help="CSR shards of hashed-categorical-like rows (2**--hash-bits columns, --nnz a row)")
    s.add_argument("--hash-bits", type=int, default=20, help="--sparse: log2 of the columns")
    s.add_argument("--nnz", type=int, default=39, help="--sparse: columns drawn per row (a column drawn twice holds 2: fewer entries are stored)")
    s.add_argument("--exposure", action="store_true",
                   help="poisson: an offset log(exposure); tweedie: exposure weights (docs/data-format.md)")
    s.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="X's dtype in the shards (default float32)")
    s.add_argument("--out", required=True, help="the output directory (shards; the test split in OUT/test)")
    s.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")

    e = sub.add_parser("example", help="a data set bundled with scikit-learn (digits, ...) as shards")
    e.add_argument("name", choices=list(EXAMPLES), help="the scikit-learn data set")
    e.add_argument("--out", required=True, help="the output directory (shards; the test split in OUT/test)")
    e.add_argument("--shards", type=at_least(1), default=1, help="training shards to write (default 1)")
    e.add_argument("--test-fraction", type=float, default=0.2, help="the share of rows held out in OUT/test (default 0.2)")
    e.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="X's dtype in the shards (default float32)")
    e.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")

    c = sub.add_parser("convert", help="CSV/TSV/Parquet (streamed), libsvm text (streamed, to CSR), .npy/.npz -> shards")
    c.add_argument("inputs", nargs="+", help="input files (CSV/TSV, Parquet, libsvm text, .npy/.npz)")
    c.add_argument("--out", required=True, help="the output directory (shards; the test split in OUT/test)")
    c.add_argument("--shards", type=at_least(1), default=1, help="training shards to write (default 1)")
    c.add_argument("--label-col", default=None, help="name or index of the label column (default: last)")
    c.add_argument("--weight-col", default=None,
                   help="CSV/Parquet: a column of sample weights, written as dataset w (generalized linear models)")
    c.add_argument("--offset-col", default=None,
                   help="CSV/Parquet: a column of offsets (e.g. log exposure), written as dataset offset")
    c.add_argument("--test-fraction", type=float, default=0.0, help="the share of rows held out in OUT/test (default 0)")
    c.add_argument("--task", choices=["regression", "binary", "multiclass"], default=None,
                   help="default: inferred from the labels")
    c.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="default: the input's (float64 for text, a Parquet file's float32 stays float32)")
    c.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")
    c.add_argument("--dense", action="store_true",
                   help="libsvm input: dense shards, read whole (default: CSR shards, streamed)")
    c.add_argument("--skip-bad-lines", action="store_true",
                   help="text or Parquet input: skip and count malformed lines (rows) instead of stopping")
    c.add_argument("--numeric", default="", help="hashed CSR from delimited text: numeric columns, e.g. 1-13")
    c.add_argument("--categorical", default="", help="hashed CSR: categorical columns, e.g. 14-39")
    c.add_argument("--sep", default=",", help="CSV and hashed CSR: field separator (\\t for tabs; .tsv: tab)")
    c.add_argument("--hash-bits", type=int, default=20, help="hashed CSR: 2**B slots (default 20)")
    c.add_argument("--hash-seed", type=int, default=0, help="hashed CSR: MurmurHash3 seed")

    r = sub.add_parser("ratings", help="CSV of (user, item, rating) rows -> ratings shards")
    r.add_argument("inputs", nargs="+", help="ratings files: CSV/TSV or Parquet of (user, item, rating)")
    r.add_argument("--out", required=True, help="the output directory (shards; the test split in OUT/test)")
    r.add_argument("--shards", type=at_least(1), default=1, help="training shards to write (default 1)")
    r.add_argument("--user-col", default="0", help="name or index of the user column (default 0)")
    r.add_argument("--item-col", default="1", help="name or index of the item column (default 1)")
    r.add_argument("--rating-col", default="2", help="name or index of the rating column (default 2)")
    r.add_argument("--sep", default=",", help="field separator (default ',')")
    r.add_argument("--test-fraction", type=float, default=0.0, help="the share of rows held out in OUT/test (default 0)")
    r.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="X's dtype in the shards (default float32)")
    r.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")

    i = sub.add_parser("inspect", help="schema, rows per shard, and a validation of every row")
    i.add_argument("paths", nargs="+", help="shard directories, files or globs; each directory is a data set of its own")
    i.add_argument("--no-scan", action="store_true", help="headers only, skip the row scan")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command_line("mpireg.data", lambda: COMMANDS[args.command](args))


def _shards(paths) -> str:
    """"8 training shard(s) and 1 test shard(s)": the test split counted apart."""
    test = sum(1 for p in paths if Path(p).parent.name == "test")
    return f"{len(paths) - test} training shard(s)" + (f" and {test} test shard(s)" if test else "")


def _synth(args) -> None:
    if args.features is None:
        if args.task != "ratings" and not args.sparse:
            raise MpiregError(f"--features: required for --task {args.task}")
        args.features = 2 ** args.hash_bits if args.sparse else 2
    if args.sparse:
        if not 1 <= args.hash_bits <= 30 or args.nnz < 1:
            raise MpiregError("--hash-bits: expected 1..30, and --nnz a positive count")
        paths = synthesize_sparse(args.task, args.rows, args.hash_bits, args.nnz, args.out, args.shards,
                                  args.classes, test_rows_of(args), args.noise, args.seed, args.dtype)
        print(f"wrote {_shards(paths)} under {args.out} ({args.rows} rows x 2^{args.hash_bits} "
              f"columns; {args.nnz} draws a row, {_stored_per_row(paths):.1f} distinct columns a row on "
              f"average: a column drawn twice holds 2)")
        return
    for name in ("rows", "features", "shards", "classes", "users", "items", "rank"):
        if getattr(args, name) < (2 if name == "classes" else 1):
            raise MpiregError(f"--{name}: expected a positive count, got {getattr(args, name)}")
    test_rows = test_rows_of(args)
    if args.task == "ratings":
        paths = synth_ratings(args.users, args.items, args.rank, args.rows, args.out, args.shards,
                              test_rows, args.noise, args.seed, args.dtype)
        print(f"wrote {_shards(paths)} under {args.out} ({args.rows} ratings of {args.users} "
              f"users x {args.items} items, {test_rows} test ratings in {args.out}/test)")
        return
    if args.task in GLM_TASKS:
        paths = synthesize_claims(args.task, args.rows, args.features, args.out, args.shards, test_rows,
                                  args.exposure, args.seed, args.dtype)
    else:
        paths = synthesize(args.task, args.rows, args.features, args.out, args.shards,
                           args.classes, test_rows, args.noise, args.seed, args.dtype)
    print(f"wrote {_shards(paths)} under {args.out} ({args.rows} train rows, "
          f"{test_rows} test rows in {args.out}/test)")


def _stored_per_row(paths) -> float:
    """The non-zeros a row of the training shards holds on average (what was written, not drawn)."""
    import h5py

    entries = rows = 0
    for path in (p for p in paths if Path(p).parent.name != "test"):
        with h5py.File(path, "r") as f:
            entries += int(f["indptr"][-1])
            rows += f["indptr"].shape[0] - 1
    return entries / max(rows, 1)


def test_rows_of(args) -> int:
    return min(args.rows // 10, 100_000) if args.test_rows is None else args.test_rows


def _example(args) -> None:
    summary = write_example(args.name, args.out, args.shards, args.test_fraction, args.seed, args.dtype)
    print(f"wrote {args.out}: {summary['rows']} rows, {summary['test_rows']} test rows, "
          f"{summary['features']} features, task {summary['task']}")


def _convert(args) -> None:
    if args.numeric or args.categorical:
        return _convert_hashed(args)
    suffixes = {Path(p).suffix.lower() for p in args.inputs}
    if suffixes <= set(TABLE_SUFFIXES):
        return _convert_table(args)
    if suffixes & set(TABLE_SUFFIXES):
        raise MpiregError(f"inputs: CSV/Parquet cannot be mixed with other formats ({sorted(suffixes)})")
    if args.weight_col is not None or args.offset_col is not None:
        raise MpiregError("--weight-col, --offset-col: read from CSV/TSV/Parquet tables; "
                          f"these inputs are {sorted(suffixes)}")
    svmlight = suffixes <= set(SVMLIGHT)
    if svmlight and not args.dense:
        summary = convert_svmlight(args.inputs, args.out, args.shards, args.test_fraction, args.seed,
                                   args.task, args.dtype, args.skip_bad_lines)
        print(f"wrote {args.out}: {summary['rows']} rows, {summary['test_rows']} test rows, "
              f"{summary['features']} features (CSR), task {summary['task']}"
              + (f", skipped {summary['bad_lines']} malformed lines" if summary["bad_lines"] else ""))
        return
    summary = convert(args.inputs, args.out, args.shards, args.label_col,
                      args.test_fraction, args.seed, args.task, args.dtype)
    print(f"wrote {args.out}: {summary['rows']} rows, {summary['test_rows']} test rows, "
          f"{summary['features']} features, task {summary['task']}"
          + (f", classes {summary['classes']}" if summary["classes"] else ""))


def _convert_table(args) -> None:
    summary = convert_table(args.inputs, args.out, args.shards, args.label_col, args.test_fraction, args.seed,
                            args.task, args.dtype, _separator(args.sep), args.skip_bad_lines,
                            args.weight_col, args.offset_col)
    print(f"wrote {args.out}: {summary['rows']} rows, {summary['test_rows']} test rows, "
          f"{summary['features']} features ({summary['dtype']}), task {summary['task']}"
          + (f", classes {summary['classes']}" if summary["classes"] else "")
          + (f", skipped {summary['bad_lines']} malformed lines" if summary["bad_lines"] else ""))


def _separator(sep: str) -> str:
    return "\t" if sep == "\\t" else sep


def _convert_hashed(args) -> None:
    label = args.label_col if args.label_col is not None else "0"
    if not str(label).isdigit():
        raise MpiregError(f"--label-col: hashed conversion takes a column index, got {label!r}")
    summary = convert_hashed(args.inputs, args.out, _separator(args.sep), int(label),
                             parse_columns(args.numeric, "--numeric"),
                             parse_columns(args.categorical, "--categorical"), args.hash_bits,
                             args.shards, args.test_fraction, args.seed, args.hash_seed, args.task,
                             args.dtype, args.skip_bad_lines)
    print(f"wrote {args.out}: {summary['rows']} rows, {summary['test_rows']} test rows, "
          f"2^{args.hash_bits} hashed features (CSR), task {summary['task']}"
          + (f", skipped {summary['bad_lines']} malformed lines" if summary["bad_lines"] else ""))


def _ratings(args) -> None:
    summary = convert_ratings(args.inputs, args.out, args.shards, args.user_col, args.item_col,
                              args.rating_col, args.test_fraction, args.seed, args.dtype,
                              _separator(args.sep))
    print(f"wrote {args.out}: {summary['rows']} ratings, {summary['test_rows']} test ratings, "
          f"{summary['users']} users, {summary['items']} items (ids in {args.out}/ids/ids.h5)")


def _inspect(args) -> None:
    """Each directory given is a data set of its own (two unrelated ones are not merged); files
    and globs given together are one. Every set is reported, a failing one too."""
    sets = [[p] for p in args.paths if Path(p).is_dir()]
    loose = [p for p in args.paths if not Path(p).is_dir()]
    sets += [loose] if loose else []
    if len(sets) == 1:  # one data set: its report, or its error, as it is
        print("\n".join(inspect(sets[0], scan=not args.no_scan)))
        return
    failed = []
    for specs in sets:
        name = " ".join(specs)
        try:
            lines = inspect(specs, scan=not args.no_scan)
        except MpiregError as exc:
            lines, failed = [f"error: {exc}"], failed + [name]
        print("\n".join([f"{name}:"] + [f"  {line}" for line in lines]), flush=True)
    if failed:
        raise MpiregError(f"inspect: {len(failed)} of {len(sets)} data set(s) failed the check: {', '.join(failed)}")


COMMANDS = {"synth": _synth, "example": _example, "convert": _convert, "ratings": _ratings,
            "inspect": _inspect}

if __name__ == "__main__":
    sys.exit(main())
