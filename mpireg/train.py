"""`python -m mpireg.train JOB.toml [--set key=value]... [--run-dir DIR] [--resume]`

Run it under `mpiexec -n N` (or `mpirun`, or `srun --mpi=pmi2`); every rank runs this same
command. JOB is a path, or the name of a job the package ships (`mpireg-train quickstart`); with
no job it runs the quickstart, which makes its own small data set first.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mpireg.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", nargs="?", default="quickstart",
                        help="job file (TOML), or the name of a packaged job (quickstart, linear, "
                             "poisson_claims, ...); default: quickstart")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a job key, e.g. --set optimizer.lr=0.05 (repeatable)")
    parser.add_argument("--run-dir", default=None, help="default: run.dir, else runs/<job name>")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest valid checkpoint in the run directory")
    parser.add_argument("--profile", action="store_true",
                        help="write trace.json, a timeline of every rank (same as --set run.profile=true)")
    return parser


def check_launch(size: int) -> None:
    """`srun --mpi=none` starts N separate one-rank programs, each training its own copy."""
    import os

    from .errors import MpiregError

    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1)
    if size == 1 and tasks > 1:
        raise MpiregError(f"Slurm started {tasks} tasks but MPI sees a world of 1 rank: srun is not "
                          f"talking to MPI's process manager. Use srun --mpi=pmi2 (MPICH, Intel MPI) "
                          f"or --mpi=pmix (Open MPI), or mpiexec inside the allocation")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .mpi_runtime import load_mpi

    MPI = load_mpi()
    if MPI is None:
        return 1

    from . import log
    from .config import load_job
    from .convert.quickstart import prepare_job_data
    from .jobfiles import find_job
    from .fit import train
    from .agreement import StopRequest, agree, exit_on_error

    comm = MPI.COMM_WORLD.Dup()  # library traffic never meets a user's messages
    log.set_rank(comm.rank)
    stop = StopRequest().install()  # SIGTERM/SIGUSR1: checkpoint at the next step, exit 0
    overrides = args.overrides + (["run.profile=true"] if args.profile else [])

    def run() -> int:
        agree(comm, lambda: check_launch(comm.size))
        cfg = agree(comm, lambda: load_job(find_job(args.job), overrides))
        run_dir = Path(args.run_dir or cfg.run.dir or Path("runs") / cfg.name)
        prepare_job_data(cfg, comm)
        train(cfg, comm, run_dir, resume=args.resume, stop=stop)
        return 0

    code = exit_on_error(comm, run)
    stop.ignore_from_now()
    comm.Free()
    return code


if __name__ == "__main__":
    sys.exit(main())
