"""Device buffers through an MPI library that cannot read device memory.

A wrapper around any strategy, as compression wraps a bucket's reduction: every buffer the
strategy would hand to MPI is first copied to a pinned host mirror (the copy synchronises the
CuPy stream), the inner strategy works on host memory, and results are copied back. Updates
still run on the device: the wrapped `update` copies the reduced buffer up, steps the device
parameters, and refreshes the host mirror that a parameter server ships to its workers.
"""
from __future__ import annotations

import numpy as np

from ..device import HostStaging, is_device_array, namespace_of
from .codecs import FLOAT


class StagedStrategy:
    def __init__(self, inner, staging: HostStaging | None = None):
        self.inner = inner
        self.staging = staging or HostStaging()
        self.name = inner.name
        self.synchronous = inner.synchronous
        self.serves = inner.serves
        self.settings = inner.settings
        self.packer = inner.packer
        self.size, self.rank = inner.size, inner.rank

    def data_partition(self):
        return self.inner.data_partition()

    def setup(self, params, rows_per_step: float = 1.0, buffer_dtype=None) -> None:
        self.host_params = self.staging.to_host(params, out=np.empty(params.shape, dtype=params.dtype))
        self.inner.setup(self.host_params, rows_per_step, buffer_dtype)

    def step_buffer(self, size: int, dtype, xp=np):
        return xp.zeros(size, dtype=dtype)

    def overlap_step(self, params, buffer, update, compute):
        compute(None)  # the device finishes the gradient before the copy to the host
        return self.step(params, buffer, update)

    def step(self, params, buffer, update):
        host_buffer = self.staging.to_host(buffer)
        updated_here = []

        def host_update(host_params, host_reduced):
            self.staging.to_device(host_reduced, buffer)
            tail = update(params, buffer)
            self.staging.to_host(params, out=host_params)
            updated_here.append(True)
            return tail

        tail = self.inner.step(self.host_params, host_buffer, host_update)
        if not updated_here:  # a parameter-server worker: fresh parameters arrived on the host
            self.staging.to_device(self.host_params, params)
        return tail

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

    def finish_training(self, params) -> None:
        self._through_host(self.inner.finish_training, params)

    def serve(self, params, update_at, on_update) -> dict:
        host_params = self.staging.to_host(params, out=np.empty(params.shape, dtype=params.dtype))
        xp = namespace_of(params)

        def host_update_at(hp, host_grad, t):
            update_at(params, xp.asarray(host_grad), t)
            self.staging.to_host(params, out=hp)

        return self.inner.serve(host_params, host_update_at, on_update)

    def finish(self) -> None:
        self.inner.finish()

    def step_stats(self) -> dict:
        return self.inner.step_stats()

    def bus_factor(self) -> float:
        return self.inner.bus_factor()
