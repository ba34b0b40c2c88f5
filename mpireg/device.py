"""Where arrays live: NumPy on the CPU, CuPy on the GPU. CPU jobs never import CuPy.

Everything device-specific is here, in a few helpers (after baidu-allreduce's alloc/copy split):
- `array_module(device)`: the namespace (`xp`) the models, optimizers and loop use;
- `select_gpu(comm)`: each rank takes the GPU of its local rank on its node;
- `mpi_is_cuda_aware()`: whether MPI accepts device pointers (MPIX_Query_cuda_support);
- `HostStaging`: pinned host mirrors for MPI libraries that are not CUDA-aware.
"""
from __future__ import annotations

import ctypes

import numpy as np

from .errors import ConfigError


def array_module(device: str):
    if device == "cpu":
        return np
    try:
        import cupy
    except ImportError:
        raise ConfigError("device: 'gpu' needs CuPy; install it with pip install -e \".[gpu]\" "
                          "(or use device = 'cpu')") from None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise ConfigError("device: 'gpu' asked for, but no GPU is visible")
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise ConfigError(f"device: 'gpu' asked for, but CUDA reports: {exc}") from None
    return cupy


def is_device_array(array) -> bool:
    # NumPy first: this runs several times per step, and the string test costs a microsecond.
    return not isinstance(array, np.ndarray) and type(array).__module__.split(".")[0] == "cupy"


def namespace_of(array):
    if is_device_array(array):
        import cupy

        return cupy
    return np


def synchronize(array) -> None:
    """Wait for the current CuPy stream before MPI reads or writes this device array."""
    if is_device_array(array):
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def to_host(array):
    return array.get() if is_device_array(array) else np.asarray(array)


def select_gpu(comm) -> tuple[int, int]:
    """Use GPU (local rank mod GPUs) on this node; return (gpu, ranks sharing it)."""
    import cupy
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local_rank, local_size = node.rank, node.size
    node.Free()
    n_gpus = cupy.cuda.runtime.getDeviceCount()
    gpu = local_rank % n_gpus
    cupy.cuda.Device(gpu).use()
    return gpu, -(-local_size // n_gpus)


def mpi_is_cuda_aware() -> bool:
    """MPIX_Query_cuda_support() of the MPI library mpi4py loaded (MPICH >= 4, Open MPI, MVAPICH);
    False where the library has no such query. A library may be built CUDA-aware and still not
    use it at run time (Open MPI without UCX's CUDA transport): `comm.cuda_aware` forces the answer.
    """
    from mpi4py import MPI

    try:
        query = getattr(ctypes.CDLL(MPI.__file__), "MPIX_Query_cuda_support", None)
    except OSError:
        return False
    return bool(query()) if query is not None else False


class HostStaging:
    """Host mirrors of device buffers, for MPI libraries that cannot read device memory.

    On the GPU the mirrors are pinned (page-locked), so copies run at full PCIe/NVLink speed and
    without an extra bounce buffer; the CuPy stream is synchronised before MPI touches a mirror.
    With NumPy arrays the same code copies host to host, which is how the tests exercise it.
    """

    def __init__(self):
        self._mirrors = {}

    def mirror(self, array):
        key = (array.shape, np.dtype(array.dtype).str, id(array))
        if key not in self._mirrors:
            if is_device_array(array):
                import cupyx

                self._mirrors[key] = cupyx.empty_pinned(array.shape, dtype=array.dtype)
            else:
                self._mirrors[key] = np.empty(array.shape, dtype=array.dtype)
        return self._mirrors[key]

    def to_host(self, array, out=None):
        out = self.mirror(array) if out is None else out
        if is_device_array(array):
            array.get(out=out)  # synchronous on the current stream: safe to hand to MPI next
        else:
            np.copyto(out, array)
        return out

    def to_device(self, host, array) -> None:
        if is_device_array(array):
            array.set(host)
        else:
            np.copyto(array, host)
