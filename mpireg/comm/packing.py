"""Fused packing: many gradient arrays <-> one contiguous wire buffer, with a scale and optional
fp16/bf16 compression (round to nearest even). Two implementations with identical results:

- `C`: the extension built from csrc/cpack.c (releases the GIL, F16C where the CPU has it);
- `NUMPY`: the fallback used automatically when the extension is not built.

`default` is the C one when it imports. Each takes arrays with the buffer protocol and checks
dtypes, sizes and contiguity before touching memory. "Identical" means bit for bit for every
value that is not a NaN; a NaN stays a NaN, but its payload may differ (the F16C instructions
quiet signalling NaNs, NumPy keeps them). Overflow becomes infinity silently in both.
"""
from __future__ import annotations

import numpy as np

CODECS = ("none", "fp16", "bf16")


class NumpyPacking:
    name = "numpy"

    @np.errstate(over="ignore", invalid="ignore")
    def pack(self, arrays, out, scale: float = 1.0, compression: str = "none") -> int:
        views, kind = _check_arrays(arrays, compression, writable=False)
        flat = _check_flat(out, kind, compression, sum(v.size for v in views), "out", writable=True)
        cursor = 0
        for v in views:
            dest = flat[cursor:cursor + v.size]
            scaled = v.ravel() * v.dtype.type(scale) if scale != 1.0 else v.ravel()
            if compression == "fp16":
                dest[...] = scaled.astype(np.float16).view(np.uint16)
            elif compression == "bf16":
                dest[...] = _to_bf16(scaled)
            else:
                dest[...] = scaled
            cursor += v.size
        return cursor

    @np.errstate(over="ignore", invalid="ignore")
    def unpack(self, buffer, arrays, scale: float = 1.0, compression: str = "none") -> int:
        views, kind = _check_arrays(arrays, compression, writable=True)
        flat = _check_flat(buffer, kind, compression, sum(v.size for v in views), "buffer", writable=False)
        cursor = 0
        for v in views:
            src = flat[cursor:cursor + v.size]
            if compression == "fp16":
                src = src.view(np.float16).astype(np.float32)
            elif compression == "bf16":
                src = _from_bf16(src)
            out = v.reshape(-1)
            if scale != 1.0:
                np.multiply(src, v.dtype.type(scale), out=out)
            else:
                out[...] = src
            cursor += v.size
        return cursor

    @np.errstate(over="ignore", invalid="ignore")
    def sum_into(self, src, dst, compression: str) -> None:
        if compression not in ("fp16", "bf16"):
            raise ValueError("sum_into reduces fp16/bf16 wire buffers; add floats with NumPy")
        s, d = _as_u16(src, "src"), _as_u16(dst, "dst", writable=True)
        if s.size != d.size:
            raise ValueError(f"src and dst must be 16-bit buffers of one length, got {s.nbytes} and {d.nbytes} bytes")
        if compression == "fp16":
            d[...] = (d.view(np.float16).astype(np.float32) + s.view(np.float16).astype(np.float32)
                      ).astype(np.float16).view(np.uint16)
        else:
            d[...] = _to_bf16(_from_bf16(d) + _from_bf16(s))


def _to_bf16(x: np.ndarray) -> np.ndarray:
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | np.uint32(0x0040)).astype(np.uint16)
    return rounded


def _from_bf16(h: np.ndarray) -> np.ndarray:
    return (h.astype(np.uint32) << 16).view(np.float32)


def _check_arrays(arrays, compression: str, writable: bool):
    if compression not in CODECS:
        raise ValueError(f"compression must be 'none', 'fp16' or 'bf16', got '{compression}'")
    views, kind = [], None
    for i, a in enumerate(arrays):
        try:
            v = np.asarray(memoryview(a) if not isinstance(a, np.ndarray) else a)
        except TypeError:
            raise TypeError(f"arrays[{i}] must be a C-contiguous{', writable' if writable else ''} buffer") from None
        if not v.flags.c_contiguous or (writable and not v.flags.writeable):
            raise TypeError(f"arrays[{i}] must be a C-contiguous{', writable' if writable else ''} buffer")
        allowed = (np.float32, np.float64) if compression == "none" else (np.float32,)
        if v.dtype not in allowed:
            raise TypeError(f"arrays[{i}] must be float32{' or float64' if compression == 'none' else ''}, "
                            f"got {v.dtype}")
        if kind is not None and v.dtype != kind:
            raise TypeError(f"arrays[{i}] is {v.dtype} but arrays[0] is {kind}: pack one dtype at a time")
        kind = v.dtype
        views.append(v)
    return views, kind


def _check_flat(buf, kind, compression: str, count: int, name: str, writable: bool):
    flat = np.asarray(buf if isinstance(buf, np.ndarray) else memoryview(buf))
    if not flat.flags.c_contiguous or (writable and not flat.flags.writeable):
        raise TypeError(f"{name} must be a C-contiguous{', writable' if writable else ''} buffer")
    flat = flat.reshape(-1)
    want = kind if compression == "none" else np.dtype(np.uint16)
    if kind is not None and (flat.dtype.itemsize != np.dtype(want).itemsize or
                             (compression == "none" and flat.dtype != want)):
        raise TypeError(f"{name} must hold {want} elements for compression '{compression}', got {flat.dtype}")
    if flat.size < count:
        raise ValueError(f"{name} holds {flat.size} elements, the arrays need {count}")
    return flat.view(np.uint16) if compression != "none" else flat


def _as_u16(buf, name, writable=False):
    a = np.asarray(buf).reshape(-1)
    if a.dtype.itemsize != 2 or (writable and not a.flags.writeable):
        raise ValueError(f"{name} must be a 16-bit buffer")
    return a.view(np.uint16)


class DevicePacking:
    """The same packing on CuPy arrays: scale and conversion fused in one elementwise kernel per
    array, with the C extension's rounding (CUDA's __float2half_rn is round-to-nearest-even; the
    bf16 kernel is the C code's integer arithmetic)."""

    name = "cuda"
    _KERNELS = {
        "pack_fp16": ("float32 x, float32 s", "uint16 y", "y = __half_as_ushort(__float2half_rn(x * s))"),
        "pack_bf16": ("float32 x, float32 s", "uint16 y",
                      "unsigned int u = __float_as_uint(x * s);"
                      "y = ((u & 0x7fffffffu) > 0x7f800000u) ? ((u >> 16) | 0x40u)"
                      "                                      : ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)"),
        "unpack_fp16": ("uint16 h, float32 s", "float32 y", "y = __half2float(__ushort_as_half(h)) * s"),
        "unpack_bf16": ("uint16 h, float32 s", "float32 y", "y = __uint_as_float(((unsigned int)h) << 16) * s"),
        "sum_fp16": ("uint16 a", "uint16 d",
                     "d = __half_as_ushort(__float2half_rn(__half2float(__ushort_as_half(d))"
                     " + __half2float(__ushort_as_half(a))))"),
        "sum_bf16": ("uint16 a", "uint16 d",
                     "unsigned int u = __float_as_uint(__uint_as_float(((unsigned int)d) << 16)"
                     " + __uint_as_float(((unsigned int)a) << 16));"
                     "d = ((u & 0x7fffffffu) > 0x7f800000u) ? ((u >> 16) | 0x40u)"
                     "                                      : ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)"),
    }

    def __init__(self):
        import cupy

        self.cupy = cupy
        self.kernels = {name: cupy.ElementwiseKernel(args, out, body, f"mpireg_{name}",
                                                     preamble="#include <cuda_fp16.h>")
                        for name, (args, out, body) in self._KERNELS.items()}

    def pack(self, arrays, out, scale: float = 1.0, compression: str = "none") -> int:
        cursor = 0
        for a in arrays:
            dest = out[cursor:cursor + a.size]
            if compression == "none":
                self.cupy.multiply(a.ravel(), a.dtype.type(scale), out=dest)
            else:
                self.kernels[f"pack_{compression}"](a.ravel(), self.cupy.float32(scale), dest)
            cursor += a.size
        return cursor

    def unpack(self, buffer, arrays, scale: float = 1.0, compression: str = "none") -> int:
        cursor = 0
        for a in arrays:
            src = buffer[cursor:cursor + a.size]
            if compression == "none":
                self.cupy.multiply(src, a.dtype.type(scale), out=a.reshape(-1))
            else:
                self.kernels[f"unpack_{compression}"](src, self.cupy.float32(scale), a.reshape(-1))
            cursor += a.size
        return cursor

    def sum_into(self, src, dst, compression: str) -> None:
        self.kernels[f"sum_{compression}"](src, dst)


_device_packing = None


def for_array(array, host_default=None):
    """The packing implementation for where `array` lives."""
    global _device_packing
    if type(array).__module__.split(".")[0] == "cupy":
        if _device_packing is None:
            _device_packing = DevicePacking()
        return _device_packing
    return host_default or default


NUMPY = NumpyPacking()
try:
    from .. import _cpack as C  # noqa: N812 - the module is the implementation
    C.name = "c"
except ImportError:  # not built: the NumPy twin gives identical results
    C = None
default = C if C is not None else NUMPY


def describe() -> str:
    if C is None:
        return "packing: NumPy fallback (the C extension mpireg._cpack is not built)"
    return f"packing: C extension mpireg._cpack (F16C {'on' if C.HAVE_F16C else 'off'})"
