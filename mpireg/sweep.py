"""`python -m mpireg.sweep SWEEP.toml (--count | --task N)`: expand a grid of --set overrides.

A sweep file names a job and a grid:

    job = "jobs/logistic.toml"
    [grid]
    "optimizer.lr" = [0.01, 0.1, 1.0]
    "model.l2" = [0.0, 1e-4]

Task N (0-based, row-major over the grid in file order) prints the arguments for
`python -m mpireg.train`, one per line: the job file, then `--set key=value` pairs. Every
combination is validated against the job's schema before anything is printed, so a typo fails
the array task at once rather than after it has queued. slurm/sweep.sbatch uses it.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from .config import _toml_value, load_job, tomllib
from .errors import ConfigError
from .log import run_command_line


def load_sweep(path) -> tuple[str, list[tuple[str, list]]]:
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: sweep file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(table) - {"job", "grid"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; a sweep has 'job' and [grid]")
    if "job" not in table or not isinstance(table.get("grid"), dict) or not table["grid"]:
        raise ConfigError(f"{path}: a sweep needs job = \"JOB.toml\" and a non-empty [grid] table")
    grid = []
    for key, values in table["grid"].items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid.{key}: expected a non-empty list of values")
        grid.append((key, values))
    return str(table["job"]), grid


def combinations(grid) -> list[list[str]]:
    keys = [k for k, _ in grid]
    return [[f"{k}={_toml_value(v)}" for k, v in zip(keys, values)]
            for values in itertools.product(*(v for _, v in grid))]


def task_arguments(path, task: int) -> list[str]:
    job, grid = load_sweep(path)
    combos = combinations(grid)
    for overrides in combos:  # validate all: a typo fails every task, at once
        load_job(job, overrides)
    if not 0 <= task < len(combos):
        raise ConfigError(f"--task {task}: the sweep {path} has tasks 0..{len(combos) - 1}")
    return [job] + [arg for item in combos[task] for arg in ("--set", item)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpireg.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--count", action="store_true", help="print the number of tasks")
    group.add_argument("--task", type=int, help="print the train arguments of task N")
    args = parser.parse_args(argv)
    def answer():
        if args.count:
            print(len(combinations(load_sweep(args.sweep)[1])))
        else:
            print("\n".join(task_arguments(args.sweep, args.task)))

    return run_command_line("mpireg.sweep", answer)


if __name__ == "__main__":
    sys.exit(main())
