"""The MPI library, or one clear error: mpi4py imports libmpi when it is first used, and without
one (no `mpi` extra, no site MPI loaded) the import ends in a traceback about a shared object."""
from __future__ import annotations

import sys

HINT = ("install an MPI library: python -m pip install 'mpireg[mpi]' (MPICH from PyPI), or load "
        "your site's MPI (e.g. `module load mpich`) before running")


def load_mpi():
    """mpi4py's MPI module; None (after one line on stderr) when no MPI library loads."""
    from .errors import MpiregError

    try:
        return require_mpi()
    except MpiregError as exc:
        sys.stderr.write(f"mpireg: error: {exc}\n")
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def require_mpi():
    """mpi4py's MPI module, or the same words as one MpiregError (the Python API's door)."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:
        from .errors import MpiregError

        raise MpiregError(f"no MPI library could be loaded ({_first_line(exc)}); {HINT}") from None
    return MPI
