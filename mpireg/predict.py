"""`python -m mpireg.predict MODEL.h5 DATA --out FILE [--proba | --top K [--exclude-seen]]`

Predictions for every row of DATA (a directory, file or glob of shards), in order. The output
format follows FILE's extension: `.h5` (dataset `pred`), `.npy` or `.csv`.
A matrix factorisation model with `--top K` recommends instead: one row per distinct user of
the ratings DATA, `user, item_1, ..., item_K` (best first); `--exclude-seen` leaves out the items
DATA says the user rated.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import h5py
import numpy as np

from .data import ShardReader, read_schema, resolve_paths
from .errors import DataError, MpiregError
from .log import run_command_line
from .model_io import load_model
from .models.model import unpack

BUDGET_BYTES = 256 * 2**20
RECOMMEND_USERS = 1024  # users scored at a time by --top


def predict_file(model_path, data_specs, out, proba: bool = False) -> int:
    model, params, meta = load_model(model_path)
    schema = read_schema(resolve_paths(data_specs, "DATA"), "DATA")
    if schema.n_features != model.n_features:
        raise DataError(f"{schema.files[0]}: {schema.n_features} features, but the model "
                        f"{model_path} was trained on {model.n_features}")
    if proba and model.output in ("regression", "glm"):
        raise MpiregError("--proba: a regression model predicts values, not probabilities (a GLM's "
                          "prediction is its mean response, for the binomial family the probability)")
    reader = ShardReader(schema, 0, 1, BUDGET_BYTES, x_dtype=params.dtype, allow_empty=True)
    parts = []
    for index in range(len(reader.block_sizes)):
        X, targets = reader.block(index)
        offset = unpack(targets)[2]  # shards with an offset dataset: each row's prediction moves by it
        extra = () if offset is None else (offset,)
        if proba:
            p = model.predict_proba(params, X, *extra)
            parts.append(np.column_stack([1 - p, p]) if p.ndim == 1 else p)  # binary: both columns, as the API
        else:
            parts.append(model.predict(params, X, *extra))
    reader.close()
    _write(Path(out), np.concatenate(parts))
    return schema.n_rows


def recommend_file(model_path, data_specs, out, k: int, exclude_seen: bool = False) -> int:
    """Top-k items of every distinct user in the ratings shards DATA; returns the user count."""
    model, params, _ = load_model(model_path)
    if model.kind != "mf":
        raise MpiregError(f"--top: recommends with a matrix factorisation model; {model_path} "
                          f"holds a {model.kind!r} model")
    if k < 1:
        raise MpiregError(f"--top: expected a positive count, got {k}")
    schema = read_schema(resolve_paths(data_specs, "DATA"), "DATA")
    reader = ShardReader(schema, 0, 1, BUDGET_BYTES, allow_empty=True)
    pairs = np.concatenate([reader.block(i)[0] for i in range(len(reader.block_sizes))] or [np.empty((0, 2), np.int64)])
    reader.close()
    users = np.unique(pairs[:, 0])
    rows = []
    for lo in range(0, len(users), RECOMMEND_USERS):  # bounded memory: users x items scores
        chunk = users[lo:lo + RECOMMEND_USERS]
        seen = pairs[np.isin(pairs[:, 0], chunk)] if exclude_seen else None
        items, _ = model.recommend(params, chunk, k, exclude=seen)
        rows.append(np.column_stack([chunk, items]))
    _write(Path(out), np.concatenate(rows) if rows else np.empty((0, k + 1), np.int64))
    return len(users)


def _write(out: Path, pred: np.ndarray) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    suffix = out.suffix.lower()
    if suffix == ".h5":
        with h5py.File(tmp, "w") as f:
            f.create_dataset("pred", data=pred)
    elif suffix == ".npy":
        with open(tmp, "wb") as f:
            np.save(f, pred)
    elif suffix == ".csv":
        fmt = "%d" if pred.dtype.kind in "iu" else "%.9g"
        np.savetxt(tmp, pred.reshape(len(pred), -1), fmt=fmt, delimiter=",")
    else:
        raise MpiregError(f"--out: unknown format {suffix!r}; use .h5, .npy or .csv")
    os.replace(tmp, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpireg.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("data", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--proba", action="store_true", help="class probabilities (classifiers)")
    parser.add_argument("--top", type=int, default=None, metavar="K",
                        help="matrix factorisation: the K best items of each user in DATA")
    parser.add_argument("--exclude-seen", action="store_true", help="--top: leave out the items DATA rates")
    args = parser.parse_args(argv)

    def predict():
        if args.top is not None:
            users = recommend_file(args.model, args.data, args.out, args.top, args.exclude_seen)
            print(f"wrote the top {args.top} items of {users} users to {args.out}")
            return
        rows = predict_file(args.model, args.data, args.out, args.proba)
        print(f"wrote {rows} predictions to {args.out}")

    return run_command_line("mpireg.predict", predict)


if __name__ == "__main__":
    sys.exit(main())
