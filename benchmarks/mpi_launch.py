"""What the benchmarks that run ranks share: how they start them, and how a worker rank ends.

    from mpi_launch import mpiexec, run_worker   (the scripts' own folder is on sys.path)
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mpiexec(ranks: int) -> list[str]:
    """`mpiexec -n ranks`, preferring the one installed beside this Python (the mpich wheel's in
    a virtual environment that is not on PATH)."""
    beside = Path(sys.executable).with_name("mpiexec")
    return [str(beside) if beside.exists() else "mpiexec", "-n", str(ranks)]


def run_worker(main) -> None:
    """Run a worker rank's `main()` and exit: an error on one rank ends every rank with its
    message (mpireg's exit_on_error), instead of leaving the others waiting in a collective."""
    from mpi4py import MPI

    sys.path.insert(0, str(ROOT))
    from mpireg.agreement import exit_on_error

    sys.exit(exit_on_error(MPI.COMM_WORLD, lambda: main() or 0))
