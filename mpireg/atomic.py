"""Files written whole or not at all: the writer fills a temporary name beside the target,
which is renamed over it only once complete. On any failure (a full disk, a quota, a signal)
the temporary file is removed, so nothing half-written stays behind; where the caller names
what it writes, an OSError becomes one error naming the file and the way out."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .errors import DataError


@contextmanager
def atomic_file(path, fsync: bool = False, what: str | None = None, hint: str = ""):
    """Yields the temporary path to write; renames it into `path` (after an fsync, with
    `fsync`) when the block ends without an error."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if what is not None and isinstance(exc, OSError):
            raise DataError(f"{path}: the {what} could not be written ({exc.strerror or exc})"
                            + (f"; {hint}" if hint else "")) from None
        raise
