"""The array namespace for `device`: NumPy on the CPU, CuPy on the GPU. CPU jobs never import CuPy."""
from __future__ import annotations

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


def to_host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)
