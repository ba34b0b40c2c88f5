"""Device buffers through an MPI library that cannot read device memory.

A wrapper around any reducer, as compression wraps a bucket's sum: every buffer the reducer
would hand to MPI is first copied to a pinned host mirror (the copy synchronises the CuPy
stream), the inner reducer sums host memory, and the result is copied back. Host buffers pass
through untouched. (The parameter servers, which send whole step buffers, have their own
host mirror: fit/topology/host_mirror.py.)
"""
from __future__ import annotations

import numpy as np

from ..device import HostStaging, is_device_array
from .codecs import FLOAT


class StagedReducer:
    nonblocking = False  # the copy to the host needs the whole bucket written first

    def __init__(self, inner, staging: HostStaging | None = None):
        self.inner = inner
        self.staging = staging or HostStaging()
        self.name, self.settings = inner.name, inner.settings
        self.comm, self.size, self.rank = inner.comm, inner.size, inner.rank

    def _through_host(self, method, buf, *args) -> None:
        if not is_device_array(buf):
            method(buf, *args)
            return
        host = self.staging.to_host(buf)
        method(host, *args)
        self.staging.to_device(host, buf)

    def allreduce(self, buf, codec=FLOAT) -> None:
        self._through_host(self.inner.allreduce, buf, codec)

    def allreduce_max(self, buf) -> None:
        self._through_host(self.inner.allreduce_max, buf)

    def broadcast(self, buf, root: int = 0) -> None:
        self._through_host(self.inner.broadcast, buf, root)

    def step_buffer(self, size: int, dtype, xp=np):
        return xp.zeros(size, dtype=dtype)

    def bus_factor(self) -> float:
        return self.inner.bus_factor()

    def finish(self) -> None:
        self.inner.finish()
