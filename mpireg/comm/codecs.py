"""What travels on the wire and how two wire buffers are summed.

`FLOAT` sends float32/float64 as they are (MPI.SUM, NumPy add). `FP16` and `BF16` send 16-bit
words; their sum decodes to float32, adds, and rounds back (round to nearest even), both in a
local reduction (ring, parameter server) and inside MPI as a user-defined commutative operation.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from . import packing


class Codec:
    def __init__(self, name: str):
        self.name = name
        self.compressed = name != "none"
        self._op = None

    def wire_dtype(self, dtype):
        return np.dtype(np.uint16) if self.compressed else np.dtype(dtype)

    def add(self, src, dst) -> None:
        """dst += src, elementwise, in this codec's arithmetic."""
        if self.compressed:
            packing.for_array(dst).sum_into(src, dst, self.name)
        else:
            np.add(dst, src, out=dst)  # CuPy arrays dispatch to CuPy through __array_ufunc__

    @property
    def mpi_op(self):
        if not self.compressed:
            return MPI.SUM
        if self._op is None:
            name = self.name

            def wire_sum(inbuf, inoutbuf, datatype):
                packing.default.sum_into(np.frombuffer(inbuf, dtype=np.uint16),
                                         np.frombuffer(inoutbuf, dtype=np.uint16), name)

            self._op = MPI.Op.Create(wire_sum, commute=True)
        return self._op

    def free(self) -> None:
        if self._op is not None:
            self._op.Free()
            self._op = None


FLOAT = Codec("none")


def make_codec(name: str) -> Codec:
    if name not in packing.CODECS:
        raise ValueError(f"unknown compression {name!r}")
    return FLOAT if name == "none" else Codec(name)
