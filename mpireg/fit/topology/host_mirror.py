"""A parameter server's steps on device buffers, through an MPI that cannot read device memory.

The servers send whole step buffers and parameter vectors, so they work on host mirrors: the
step buffer is copied to the host (the copy synchronises the CuPy stream), the inner topology
runs on host memory, and updates still run on the device: the wrapped `update` copies the
reduced buffer up, steps the device parameters and refreshes the host mirror that a server ships
to its workers. (Collective steps need no mirror: their reducer is staged, comm/staged.py.)
"""
from __future__ import annotations

import numpy as np

from ...device import HostStaging, namespace_of


class HostMirror:
    def __init__(self, inner, staging: HostStaging | None = None):
        self.inner = inner
        self.staging = staging or HostStaging()
        self.synchronous, self.serves = inner.synchronous, inner.serves

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
        if not updated_here:  # a worker: fresh parameters arrived on the host
            self.staging.to_device(self.host_params, params)
        return tail

    def finish_training(self, params) -> None:
        host = self.staging.to_host(params)
        self.inner.finish_training(host)
        self.staging.to_device(host, params)

    def serve(self, params, update_at, on_update) -> dict:
        host_params = self.staging.to_host(params, out=np.empty(params.shape, dtype=params.dtype))
        xp = namespace_of(params)

        def host_update_at(hp, host_grad, t):
            update_at(params, xp.asarray(host_grad), t)
            self.staging.to_host(params, out=hp)

        return self.inner.serve(host_params, host_update_at, on_update)

    def step_stats(self) -> dict:
        return self.inner.step_stats()

    def bus_factor(self) -> float:
        return self.inner.bus_factor()

    def finish(self) -> None:
        self.inner.finish()
