"""NCCL allreduce on GPU buffers, through CuPy's NCCL bindings (device = "gpu" only).

Rank 0 creates the NCCL unique id and broadcasts it over MPI; NCCL then reduces device memory
directly, on the current CuPy stream (NVLink/PCIe within a node, the network between nodes).
Host buffers (evaluation sums, the few scalars of deterministic mode) still go through MPI.
Importing this module imports nothing from CuPy; constructing the strategy does.
"""
from __future__ import annotations

from mpi4py import MPI

from ..device import is_device_array
from ..errors import ConfigError
from .reducer import Reducer


class NcclReducer(Reducer):
    name = "nccl"

    def __init__(self, comm, settings):
        super().__init__(comm, settings)
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError:
            raise ConfigError("comm.strategy: 'nccl' needs CuPy with NCCL (pip install -e \".[gpu]\")") from None
        if not getattr(nccl, "available", True):
            raise ConfigError("comm.strategy: 'nccl': this CuPy was built without NCCL")
        self.cupy, self.nccl = cupy, nccl
        uid = nccl.get_unique_id() if self.rank == 0 else None
        self.nccl_comm = nccl.NcclCommunicator(self.size, comm.bcast(uid, root=0), self.rank)
        self.types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64, "int64": nccl.NCCL_INT64}
        self.wire_types = {"fp16": nccl.NCCL_FLOAT16, "bf16": getattr(nccl, "NCCL_BFLOAT16", None)}

    def _allreduce_piece(self, buf, codec) -> None:
        if not is_device_array(buf):
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=codec.mpi_op)
            return
        kind = self.wire_types[codec.name] if codec.compressed else self.types.get(str(buf.dtype))
        if kind is None:
            raise ConfigError(f"comm.strategy: 'nccl' cannot reduce {codec.name if codec.compressed else buf.dtype} here")
        stream = self.cupy.cuda.get_current_stream()
        self.nccl_comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, kind, self.nccl.NCCL_SUM, stream.ptr)
        stream.synchronize()

    def broadcast(self, buf, root: int = 0) -> None:
        if not is_device_array(buf):
            super().broadcast(buf, root)
            return
        stream = self.cupy.cuda.get_current_stream()
        self.nccl_comm.bcast(buf.data.ptr, buf.size, self.types[str(buf.dtype)], root, stream.ptr)
        stream.synchronize()

    def finish(self) -> None:
        self.nccl_comm.destroy()
        super().finish()
