"""Fused packing: round trips, C and NumPy agree bit for bit, bad arguments raise."""
import numpy as np
import pytest

from mpireg.comm import packing

IMPLS = [packing.NUMPY] + ([packing.C] if packing.C is not None else [])
needs_c = pytest.mark.skipif(packing.C is None, reason="C extension not built")
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 70000.0, -1e9, 1e-8, 6e-8, 5.96e-8,
                    2.98e-8, 6.1e-5, 6.09e-5, 1.00048828125, 1.000732421875, 3.4e38, np.inf, -np.inf,
                    np.nan, 1.0 + 2**-11, 1.0 + 3 * 2**-11, 2**-24, 2**-25, 3 * 2**-25, 2**-126, 2**-149],
                   dtype=np.float32)


def _arrays(rng, sizes, dtype=np.float32):
    return [(rng.standard_normal(n) * 10).astype(dtype).reshape(-1) for n in sizes]


def _same(a, b, compression):
    """Bit for bit, except that a NaN only has to stay a NaN (its payload may differ)."""
    decode = {"none": lambda x: x, "fp16": lambda x: x.view(np.float16),
              "bf16": lambda x: (x.astype(np.uint32) << 16).view(np.float32)}[compression]
    nan_a, nan_b = np.isnan(decode(a)), np.isnan(decode(b))
    return np.array_equal(nan_a, nan_b) and np.array_equal(a[~nan_a], b[~nan_b])


def _wire(n, dtype, compression):
    return np.zeros(n, dtype=dtype if compression == "none" else np.uint16)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
@pytest.mark.parametrize("compression", packing.CODECS)
@pytest.mark.parametrize("sizes", [[1], [0, 3], [7, 1, 13, 2], [1000, 1, 999], [8] * 50, [65537]])
def test_round_trip(impl, compression, sizes, rng):
    arrays = _arrays(rng, sizes)
    wire = _wire(sum(sizes), np.float32, compression)
    assert impl.pack(arrays, wire, 0.25, compression) == sum(sizes)
    back = [np.empty_like(a) for a in arrays]
    impl.unpack(wire, back, 4.0, compression)
    rtol = {"none": 0, "fp16": 2**-11, "bf16": 2**-8}[compression]
    for a, b in zip(arrays, back):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-6 if compression != "none" else 0)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_float64_and_multidimensional_arrays(impl, rng):
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal(5), np.array(2.5)]
    wire = np.empty(18)
    impl.pack(arrays, wire, 2.0)
    assert np.array_equal(wire, np.concatenate([a.ravel() for a in arrays]) * 2.0)
    back = [np.empty_like(a) for a in arrays]
    impl.unpack(wire, back, 0.5)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back))


@needs_c
@pytest.mark.parametrize("compression", packing.CODECS)
@pytest.mark.parametrize("scale", [1.0, 0.125, 3.0])
def test_c_and_numpy_agree_bit_for_bit(compression, scale, rng):
    values = np.concatenate([SPECIAL, -SPECIAL, rng.standard_normal(10007).astype(np.float32) * 100,
                             rng.integers(0, 2**32, 100003, dtype=np.uint64).astype(np.uint32).view(np.float32)])
    arrays = [values[:5], values[5:1000], values[1000:]]
    wires = []
    for impl in (packing.C, packing.NUMPY):
        wire = _wire(values.size, np.float32, compression)
        impl.pack(arrays, wire, scale, compression)
        wires.append(wire)
    assert _same(wires[0], wires[1], compression)
    backs = []
    for impl in (packing.C, packing.NUMPY):
        back = [np.empty_like(a) for a in arrays]
        impl.unpack(wires[0], back, 1.0 / scale, compression)
        backs.append(np.concatenate(back))
    assert _same(backs[0], backs[1], "none")
    if compression != "none":
        other = rng.permutation(wires[0])
        sums = []
        for impl in (packing.C, packing.NUMPY):
            dst = wires[0].copy()
            impl.sum_into(other, dst, compression)
            sums.append(dst)
        assert _same(sums[0], sums[1], compression)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_fp16_matches_numpy_round_to_nearest_even_and_every_half_survives(impl):
    every_half = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    as_f32 = [np.empty(2**16, np.float32)]
    impl.unpack(every_half, as_f32, 1.0, "fp16")
    np.testing.assert_array_equal(as_f32[0], every_half.view(np.float16).astype(np.float32))
    again = np.empty(2**16, np.uint16)
    impl.pack(as_f32, again, 1.0, "fp16")
    finite = ~np.isnan(as_f32[0])
    assert np.array_equal(again[finite], every_half[finite])
    # exact midpoints between neighbouring halves round to the even one
    lo = every_half[:0x7BFF].view(np.float16).astype(np.float64)
    hi = every_half[1:0x7C00].view(np.float16).astype(np.float64)
    mid = ((lo + hi) / 2).astype(np.float32)
    out = np.empty(mid.size, np.uint16)
    impl.pack([mid], out, 1.0, "fp16")
    np.testing.assert_array_equal(out, mid.astype(np.float16).view(np.uint16))


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_bf16_rounds_to_nearest_even(impl):
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-9, -2.0 - 2**-7, np.inf, np.nan, 3.4e38],
                 dtype=np.float32)
    out = np.empty(x.size, np.uint16)
    impl.pack([x], out, 1.0, "bf16")
    back = (out.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(back[:5], [1.0, 1.0, 1.0 + 2**-6, 1.0, -2.0])
    assert back[5] == np.inf and np.isnan(back[6])
    assert back[7] == np.inf  # 3.4e38 = 0x7F7FC99E: the dropped half is above the tie, so it carries


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_bad_arguments_raise_clearly(impl):
    f32 = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="float32"):
        impl.pack([np.zeros(4, np.int32)], f32)
    with pytest.raises(TypeError, match="fp16/bf16 compress float32 only|float32"):
        impl.pack([np.zeros(4)], np.zeros(4, np.uint16), 1.0, "fp16")
    with pytest.raises(TypeError, match="one dtype at a time"):
        impl.pack([f32, np.zeros(2)], np.zeros(6))
    with pytest.raises(TypeError, match="C-contiguous"):
        impl.pack([np.zeros((4, 4), np.float32)[:, 1]], f32)
    with pytest.raises(ValueError, match="holds 4 elements, the arrays need 5"):
        impl.pack([np.zeros(5, np.float32)], f32)
    with pytest.raises(TypeError, match="16-bit|uint16"):
        impl.pack([f32], np.zeros(4, np.float32), 1.0, "bf16")
    with pytest.raises(ValueError, match="compression must be"):
        impl.pack([f32], f32, 1.0, "int8")
    read_only = np.zeros(4, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        impl.pack([f32], read_only)
    with pytest.raises(TypeError, match="writable"):
        impl.unpack(f32, [read_only])
    with pytest.raises(ValueError, match="one length"):
        impl.sum_into(np.zeros(3, np.uint16), np.zeros(4, np.uint16), "fp16")


@needs_c
def test_buffer_protocol_objects_not_only_numpy():
    import array

    src = array.array("f", [1.0, 2.0, 3.0])
    wire = array.array("f", [0.0] * 4)
    assert packing.C.pack([src, array.array("f", [4.0])], wire, 2.0) == 4
    assert list(wire) == [2.0, 4.0, 6.0, 8.0]
