"""The one place that writes human-facing output: rank 0 only, unless asked otherwise."""
import sys
from contextlib import contextmanager

_rank = 0
_quiet = False


def set_rank(rank: int) -> None:
    global _rank
    _rank = rank


@contextmanager
def quiet(enabled: bool = True):
    """Within: no progress messages (the Python API's default); warnings and errors still print."""
    global _quiet
    before, _quiet = _quiet, enabled
    try:
        yield
    finally:
        _quiet = before


def info(message: str) -> None:
    if _rank == 0 and not _quiet:
        print(message, flush=True)


def warn(message: str, all_ranks: bool = False) -> None:
    if _rank == 0 or all_ranks:
        prefix = "mpireg: warning: " if not all_ranks else f"mpireg: warning (rank {_rank}): "
        print(prefix + message, file=sys.stderr, flush=True)


def error(message: str) -> None:
    """Errors are printed by whichever rank holds them; callers decide which rank that is."""
    print(f"mpireg: error: {message}", file=sys.stderr, flush=True)


class JsonlLog:
    """metrics.jsonl: one JSON object per line, flushed as written; rank 0 writes, others don't."""

    def __init__(self, path, append: bool = False):
        # path None: records go nowhere (a fit without a run directory)
        self._file = (open(path, "a" if append else "w", encoding="utf-8")
                      if _rank == 0 and path is not None else None)

    def write(self, record: dict) -> None:
        if self._file is not None:
            import json

            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def interactive() -> bool:
    """Is a person watching rank 0's output?

    Under mpiexec a rank writes into a pipe even when the launcher writes to a terminal, so
    sys.stderr.isatty() is always false there; look at the stderr of the launcher (a parent or
    grandparent process: hydra_pmi_proxy, then mpiexec) as well. Never under CI.
    """
    import os

    if os.environ.get("CI"):
        return False
    if sys.stderr.isatty():
        return True
    pid = os.getppid()
    for _ in range(3):
        try:
            target = os.readlink(f"/proc/{pid}/fd/2")
            if target.startswith(("/dev/pts/", "/dev/tty")):
                return True
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])  # field 4: parent pid
        except (OSError, ValueError, IndexError):
            return False
        if pid <= 1:
            return False
    return False


def run_command_line(prog: str, body) -> int:
    """The single-process commands' shared ending: a user error is one line and exit code 1."""
    from .errors import MpiregError

    try:
        body()
        sys.stdout.flush()
    except MpiregError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        from .agreement import out_of_memory

        print(f"{prog}: error: {out_of_memory(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... | head` closed the pipe: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's documented way out)
        return 0
    return 0
