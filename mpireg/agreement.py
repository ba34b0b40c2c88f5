"""Ranks agree before they part ways.

The classic MPI failure is one rank raising while the others wait in a collective. Every phase
that can fail on some ranks only (opening shards, validating data, loading a checkpoint) runs
inside `agree`, which ends with one small collective that tells every rank whether any failed.
Failures inside the hot loop are not agreed on (that would cost a collective per step); they go to
`abort_on_error`, which prints the message and calls MPI_Abort so no rank is left waiting.
"""
from __future__ import annotations

import os
import subprocess
import sys
import traceback
from typing import Callable, TypeVar

from .errors import CollectiveError, MpiregError

T = TypeVar("T")
ABORT_GRACE = 5  # seconds MPI_Abort gets before the reaper ends the rank and its proxy
PROXIES = ("hydra_pmi_proxy",)  # launchers' per-node processes that a cut link leaves waiting


def agree(comm, fn: Callable[[], T], name_rank: bool = True) -> T:
    """Run `fn` on every rank; if any rank raises, every rank raises the lowest rank's error.

    `name_rank=False` when the failing rank says nothing useful (rank 0 acting for everyone).
    Alone, there is no one to agree with: the error is raised as it is (its own type)."""
    if comm.size == 1:
        return fn()
    result = None
    message = None
    try:
        result = fn()
    except MpiregError as exc:
        message = str(exc)
    except MemoryError as exc:
        message = out_of_memory(exc)
    except Exception as exc:  # noqa: BLE001 - a bug on one rank must still not hang the others
        message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    failed = comm.allreduce(1 if message is not None else 0)
    if failed:
        # Startup only, never the hot loop: a pickled gather of a few strings is fine here.
        messages = comm.allgather(message)
        first = next(r for r, m in enumerate(messages) if m is not None)
        raise CollectiveError(messages[first], rank=first if name_rank else None, n_failed=failed)
    return result  # type: ignore[return-value]


def exit_on_error(comm, main: Callable[[], int]) -> int:
    """Run a rank's main; turn errors into one message and a non-zero exit on every rank.

    - CollectiveError: every rank has it; rank 0 prints it, all exit 1 together.
    - Any other exception: only this rank may have it; print it and abort the whole job.
    """
    from . import log

    try:
        return main()
    except CollectiveError as exc:
        if comm.rank == 0:
            # Name the rank only when the failure is local to some ranks (a shard, not a config).
            where = "" if exc.rank is None or exc.n_failed == comm.size else (
                f" (rank {exc.rank}" + (f" and {exc.n_failed - 1} more)" if exc.n_failed > 1 else ")"))
            log.error(f"{exc}{where}")
        return 1
    except MpiregError as exc:
        log.error(f"rank {comm.rank}: {exc}" if comm.size > 1 else str(exc))
        abort_job(comm)
    except MemoryError as exc:
        log.error(f"rank {comm.rank}: {out_of_memory(exc)}" if comm.size > 1 else out_of_memory(exc))
        abort_job(comm)
    except KeyboardInterrupt:
        abort_job(comm, code=130)
    except Exception:  # noqa: BLE001
        sys.stderr.write(f"mpireg: rank {comm.rank} failed:\n{traceback.format_exc()}")
        sys.stderr.flush()
        abort_job(comm)
    return 1


def out_of_memory(exc: MemoryError) -> str:
    """Not a bug in mpireg: the data or the model outgrew this rank's memory; say what helps."""
    return (f"out of memory ({exc or 'an allocation failed'}): lower data.memory_budget_mb so rows "
            f"stream from disk, use more ranks or nodes, or a smaller model (fewer hashed columns)")


def abort_job(comm, code: int = 1) -> None:
    """End every rank now. MPI_Abort itself can hang (a link to a node cut: hydra's server cannot
    reach that node's proxy and kills nobody; ranks on both sides sat in MPI_Abort, holding the
    GIL, 40 s later with mpiexec still running), so a reaper process ends this rank, and the
    launcher proxy it runs under, ABORT_GRACE seconds later unless MPI did."""
    if comm.size > 1:
        reap_after(ABORT_GRACE)
        comm.Abort(code)
    sys.exit(code)


def reap_after(seconds: float) -> None:
    """Kill this process, and the launcher proxy it runs under, `seconds` from now unless they
    have ended (a process of its own: MPI_Abort holds the GIL while it waits)."""
    targets = [os.getpid()]
    try:
        with open(f"/proc/{os.getppid()}/comm") as f:
            if f.read().strip() in PROXIES:
                targets.append(os.getppid())
    except OSError:
        pass
    try:
        subprocess.Popen(["/bin/sh", "-c", f"sleep {seconds}; kill -9 {' '.join(map(str, targets))} 2>/dev/null"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    except OSError:
        pass  # no reaper: MPI_Abort alone, as before


class StopRequest:
    """Set by SIGTERM or SIGUSR1 (what Slurm sends before a time limit or a preemption).

    The handler only records the signal; the training loop turns it into a vote in the next
    step's reduction, so every rank stops at the same step, checkpoints, and exits 0.
    """

    def __init__(self):
        self.signal = 0

    @property
    def requested(self) -> bool:
        return self.signal != 0

    def install(self) -> "StopRequest":
        import signal

        for signum in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def ignore_from_now(self) -> None:
        """The work is done: a signal from here on (Slurm's at the allocation's end) must not
        turn a finished job into a killed one. Ignored, not reset: Python's finalization puts
        its own handlers back to the default, while MPI_Finalize may still wait for the
        other ranks."""
        import signal

        for signum in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_IGN)


_world = None


def default_comm():
    """A duplicate of COMM_WORLD, made once per process (collective the first time): library
    traffic never meets a user's own messages, as mpi4py and mpi4jax advise."""
    global _world
    if _world is None:
        from .mpi_runtime import require_mpi

        _world = require_mpi().COMM_WORLD.Dup()
    return _world


def on_rank_zero(comm, fn: Callable[[], T]) -> T | None:
    """Run `fn` on rank 0 only (e.g. write a file); every rank learns whether it failed."""
    return agree(comm, fn if comm.rank == 0 else (lambda: None), name_rank=False)


def root_then_bcast(comm, fn: Callable[[], T]) -> T:
    """Rank 0 computes (e.g. reads file headers), all ranks agree it worked, rank 0's answer is
    broadcast: one rank touches the file system's metadata instead of all of them."""
    result = on_rank_zero(comm, fn)
    return comm.bcast(result, root=0)
