"""A checksum allgather: every rank must still hold the same parameters, bit for bit."""
from __future__ import annotations

import zlib

import numpy as np

from ..errors import MpiregError


def verify_identical(comm, params, step: int) -> None:
    digest = zlib.crc32(np.ascontiguousarray(params).view(np.uint8))
    digests = np.array(comm.allgather(digest))
    if np.any(digests != digests[0]):
        differ = np.flatnonzero(digests != digests[0]).tolist()
        raise MpiregError(f"parameters diverged across ranks at step {step}: ranks {differ} "
                          f"differ from rank 0 (checksums {digests.tolist()})")
