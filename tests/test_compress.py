"""Tests of golden_model.compress: N:M, index packing, bitmap, CSR and exact byte accounting."""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from golden_model.compress import (
    STORAGE_FORMATS,
    Footprint,
    compress_n_m,
    compression_report,
    csr_index_dtype,
    decode_weights,
    decompress_n_m,
    encode_weights,
    format_report,
    from_bitmap,
    from_csr,
    index_bits,
    nbytes_bitmap,
    nbytes_csr,
    nbytes_dense,
    nbytes_n_m,
    pack_indices,
    pack_values,
    storage_footprints,
    storage_format,
    to_bitmap,
    to_csr,
    unpack_indices,
    unpack_values,
)
from golden_model.prune import apply_mask, is_n_m, prune_n_m

PATTERNS = [(1, 2), (2, 4), (1, 4), (3, 4), (2, 8), (4, 8), (4, 16), (8, 16)]


def raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


def same_bits(a, b):
    """Equal dtype, shape and bytes (so +0.0 / -0.0 differ)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@st.composite
def n_m_sparse(draw, dtypes=(np.int8, np.float32)):
    """An N:M-sparse 2-D or 3-D array, its pattern and its axis."""
    n, m = draw(st.sampled_from(PATTERNS))
    dtype = draw(st.sampled_from(dtypes))
    lead = draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))
    groups = draw(st.integers(1, 3))
    axis = draw(st.integers(0, len(lead)))
    shape = list(lead)
    shape.insert(axis, groups * m)
    elements = (st.integers(-128, 127) if dtype == np.int8
                else st.integers(-64, 64).map(lambda v: v / 8))
    w = draw(hnp.arrays(dtype, tuple(shape), elements=elements))
    return apply_mask(w, prune_n_m(w, n, m, axis=axis)), n, m, axis


# --- N:M ---------------------------------------------------------------------------------------

def test_compress_n_m_hand_computed():
    w = np.array([[0, 3, 0, -2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, -128, 5]], dtype=np.int8)
    values, indices = compress_n_m(w, 2, 4)
    assert values.dtype == np.int8 and indices.dtype == np.uint8
    # Groups with fewer than 2 non-zeros are padded with 0 at the lowest unused positions.
    # Grouped shape (rows, groups, N): N is in the shape, decompression needs only M.
    np.testing.assert_array_equal(values, [[[3, -2], [0, 0], [1, 0], [-128, 5]]])
    np.testing.assert_array_equal(indices, [[[1, 3], [0, 1], [0, 1], [2, 3]]])
    assert same_bits(decompress_n_m(values, indices, 4), w)
    # 1:4 and 2:4 of the same length are told apart by the shape
    v1, i1 = compress_n_m(np.array([[0, 7, 0, 0, 0, 0, 0, 9]], dtype=np.int8), 1, 4)
    assert v1.shape == (1, 2, 1)
    np.testing.assert_array_equal(decompress_n_m(v1, i1, 4), [[0, 7, 0, 0, 0, 0, 0, 9]])


def test_compress_n_m_along_axis_0_and_padding_values_are_plus_zero():
    w = np.array([[0.0, 1.5], [-0.0, 0.0], [2.5, -0.0], [0.0, 0.0]], dtype=np.float32)
    values, indices = compress_n_m(w, 1, 4, axis=0)
    np.testing.assert_array_equal(values, [[[2.5, 1.5]]])       # (groups, N, columns)
    np.testing.assert_array_equal(indices, [[[2, 0]]])
    v2, i2 = compress_n_m(w, 2, 4, axis=0)
    np.testing.assert_array_equal(i2, [[[0, 0], [2, 1]]])
    assert not np.signbit(v2).any()  # padding is +0.0 even where w held -0.0
    assert same_bits(decompress_n_m(v2, i2, 4, axis=0), np.abs(w))


def test_compress_n_m_rejects_dense_input_unless_prune():
    w = np.array([[4, 3, 2, 1, 1, 1, 0, 0]], dtype=np.int8)
    with raises(ValueError, "weights are not 2:4 along axis 1: group 0 of row (0,) has 4 "
                            "non-zeros"):
        compress_n_m(w, 2, 4)
    values, indices = compress_n_m(w, 2, 4, prune=True)
    np.testing.assert_array_equal(values, [[[4, 3], [1, 1]]])
    np.testing.assert_array_equal(indices, [[[0, 1], [0, 1]]])
    np.testing.assert_array_equal(decompress_n_m(values, indices, 4),
                                  [[4, 3, 0, 0, 1, 1, 0, 0]])
    with raises(TypeError, "prune must be a bool, not 1"):
        compress_n_m(w, 2, 4, prune=1)


@settings(max_examples=80, deadline=None)
@given(n_m_sparse())
def test_n_m_round_trip_is_exact(case):
    w, n, m, axis = case
    values, indices = compress_n_m(w, n, m, axis=axis)
    ax = axis % w.ndim
    expected_shape = w.shape[:ax] + (w.shape[ax] // m, n) + w.shape[ax + 1:]
    assert values.shape == indices.shape == expected_shape
    assert values.dtype == w.dtype and indices.dtype == np.uint8
    assert (indices < m).all()
    grouped = np.moveaxis(indices, ax + 1, -1).reshape(-1, n).astype(int)
    assert (np.diff(grouped, axis=-1) > 0).all()
    out = decompress_n_m(values, indices, m, axis=axis)
    assert same_bits(out, w + np.zeros((), w.dtype))  # -0.0 -> +0.0, nothing else changes
    assert is_n_m(out, n, m, axis=axis)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(PATTERNS), hnp.arrays(np.int8, st.tuples(st.integers(1, 3),
                                                                 st.integers(1, 2))))
def test_compress_with_prune_equals_prune_then_compress(nm, seed_block):
    n, m = nm
    w = np.tile(seed_block, (1, m))  # last axis divisible by m, with many ties
    values, indices = compress_n_m(w, n, m, prune=True)
    pruned = apply_mask(w, prune_n_m(w, n, m))
    assert same_bits(decompress_n_m(values, indices, m), pruned)
    v2, i2 = compress_n_m(pruned, n, m)
    assert same_bits(v2, values) and same_bits(i2, indices)


def test_decompress_errors():
    v = np.array([[[1, 2], [3, 4]]], dtype=np.int8)          # 1 row, 2 groups, N = 2
    i = np.array([[[0, 1], [2, 3]]], dtype=np.uint8)
    with raises(ValueError, "indices must be in [0, 4), not 4 at index (0, 1, 1)"):
        decompress_n_m(v, np.array([[[0, 1], [2, 4]]], dtype=np.uint8), 4)
    with raises(ValueError, "indices must be strictly increasing within each group: group 1 "
                            "of row (0,) has [3, 2]"):
        decompress_n_m(v, np.array([[[0, 1], [3, 2]]], dtype=np.uint8), 4)
    with raises(ValueError, "indices must be strictly increasing within each group: group 0 "
                            "of row (0,) has [1, 1]"):
        decompress_n_m(v, np.array([[[1, 1], [0, 1]]], dtype=np.uint8), 4)
    with raises(ValueError, "indices must have the shape of values (1, 2, 2), not (2, 2)"):
        decompress_n_m(v, i[0], 4)
    with raises(ValueError, "values must have the grouped shape (..., groups, n, ...) of "
                               "compress_n_m, at least 2 dimensions, not shape (4,)"):
        decompress_n_m(v.ravel(), i.ravel(), 4)
    with raises(ValueError, "N must be between 1 and M (2), not 4"):
        decompress_n_m(np.zeros((1, 1, 4), np.int8), np.zeros((1, 1, 4), np.uint8), 2)
    with raises(TypeError, "indices must be an integer array, not dtype float64"):
        decompress_n_m(v, i.astype(float), 4)
    with raises(ValueError, "M must be a power of two in {2, 4, 8, 16}, not 3"):
        decompress_n_m(v, i, 3)


# --- index packing -----------------------------------------------------------------------------

def test_pack_indices_layout():
    # 2-bit indices, first in the least significant bits: 1 | 3 << 2 | 0 << 4 | 1 << 6 = 77.
    np.testing.assert_array_equal(pack_indices(np.array([1, 3, 0, 1, 0, 1]), 4), [77, 4])
    # 1-bit (1:2 / 2:2): eight per byte, LSB first.
    np.testing.assert_array_equal(pack_indices([1, 0, 0, 0, 0, 0, 0, 1, 1], 2), [0x81, 0x01])
    # 3-bit indices straddle bytes: 5 | 6 << 3 | 7 << 6 = 0b111_110_101 -> 0xF5, 0x01.
    np.testing.assert_array_equal(pack_indices([5, 6, 7], 8), [0xF5, 0x01])
    # 4-bit: two per byte, low nibble first.
    assert pack_indices(np.array([[0xA, 0x3], [0xF, 0x0]], dtype=np.uint8), 16).tobytes() \
        == b"\x3a\x0f"
    assert pack_indices(np.zeros(0, dtype=np.uint8), 4).shape == (0,)
    assert [index_bits(m) for m in (2, 4, 8, 16)] == [1, 2, 3, 4]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([2, 4, 8, 16]), st.data())
def test_pack_unpack_round_trip_and_bit_stream(m, data):
    idx = np.array(data.draw(st.lists(st.integers(0, m - 1), max_size=40)), dtype=np.uint8)
    bits = index_bits(m)
    packed = pack_indices(idx, m)
    assert packed.dtype == np.uint8 and packed.shape == (math.ceil(idx.size * bits / 8),)
    # Independent model of the layout: a little-endian integer whose bits k*b.. hold index k.
    stream = sum(int(v) << (k * bits) for k, v in enumerate(idx))
    assert int.from_bytes(packed.tobytes(), "little") == stream
    out = unpack_indices(packed, m, idx.size)
    assert same_bits(out, idx)
    assert same_bits(unpack_indices(packed.tobytes(), m, idx.size), idx)


def test_pack_errors():
    with raises(ValueError, "indices must be in [0, 4), not 4 at index (1,)"):
        pack_indices([0, 4], 4)
    with raises(ValueError, "indices must be in [0, 2), not -1 at index (0, 0)"):
        pack_indices(np.array([[-1]]), 2)
    with raises(ValueError, "M must be a power of two in {2, 4, 8, 16}, not 6"):
        pack_indices([0], 6)
    with raises(TypeError, "indices must be an integer array, not dtype float32"):
        pack_indices(np.zeros(2, dtype=np.float32), 4)
    with raises(ValueError, "packed must be 3 bytes long for 10 2-bit indices, not 2"):
        unpack_indices(np.zeros(2, dtype=np.uint8), 4, 10)
    with raises(ValueError, "packed must have zero padding bits after the last index"):
        unpack_indices(np.array([0x10], dtype=np.uint8), 4, 2)
    with raises(TypeError, "packed must be bytes or a 1-D uint8 array, not dtype int8 and "
                           "shape (1,)"):
        unpack_indices(np.zeros(1, dtype=np.int8), 4, 1)
    with raises(ValueError, "count must be at least 0, not -1"):
        unpack_indices(b"", 4, -1)


# --- sub-8-bit values --------------------------------------------------------------------------

def test_pack_values_layout():
    # 4-bit two's complement, first code in the low nibble: 1, -2 -> 0xE1; 7, -8 -> 0x87.
    assert pack_values(np.array([1, -2, 7, -8], dtype=np.int8), 4).tobytes() == b"\xe1\x87"
    # 3-bit codes straddle bytes: 3 | (-4 & 7) << 3 | (-1 & 7) << 6 = 0b111_100_011 -> E3 01.
    np.testing.assert_array_equal(pack_values([3, -4, -1], 3), [0xE3, 0x01])
    # 8 bits: the int8 array's own bytes.
    q = np.array([[-128, 5], [127, -1]], dtype=np.int8)
    assert pack_values(q, 8).tobytes() == q.tobytes()
    assert pack_values(np.zeros(0, dtype=np.int8), 4).shape == (0,)


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 8), st.data())
def test_pack_unpack_values_round_trip(bits, data):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = np.array(data.draw(st.lists(st.integers(lo, hi), max_size=40)), dtype=np.int8)
    packed = pack_values(q, bits)
    assert packed.dtype == np.uint8 and packed.shape == (math.ceil(q.size * bits / 8),)
    stream = sum((int(v) & ((1 << bits) - 1)) << (k * bits) for k, v in enumerate(q))
    assert int.from_bytes(packed.tobytes(), "little") == stream
    assert same_bits(unpack_values(packed, bits, q.size), q)
    assert same_bits(unpack_values(packed.tobytes(), bits, q.size), q)


def test_pack_values_errors():
    with raises(ValueError, "q must hold 4-bit codes in [-8, 7], not 8 at index (1,)"):
        pack_values([0, 8], 4)
    with raises(ValueError, "q must hold 3-bit codes in [-4, 3], not -5 at index (0, 0)"):
        pack_values(np.array([[-5]]), 3)
    with raises(ValueError, "bits must be between 2 and 8, not 9"):
        pack_values([0], 9)
    with raises(TypeError, "q must be an integer array, not dtype float32"):
        pack_values(np.zeros(2, dtype=np.float32), 4)
    with raises(ValueError, "packed must be 2 bytes long for 3 4-bit codes, not 1"):
        unpack_values(b"\x00", 4, 3)
    with raises(ValueError, "packed must have zero padding bits after the last code"):
        unpack_values(b"\x10", 4, 1)


# --- stored weights ----------------------------------------------------------------------------

def test_storage_format_picks_the_smallest_ties_to_dense():
    # 8 x 8, one non-zero: dense 64, bitmap 8 + 1, CSR 1 + (1 + 9) -> bitmap.
    w = np.zeros((8, 8), dtype=np.int8)
    w[3, 5] = -2
    prints = storage_footprints(w)
    assert {f: fp.nbytes for f, fp in prints.items()} == {"dense": 64, "bitmap": 9, "csr": 11}
    assert storage_format(w) == ("bitmap", Footprint(1, 8))
    assert storage_format(w, formats=("dense", "csr")) == ("csr", Footprint(1, 10))
    # 1 x 8 at 8 bits, all non-zero but one: dense 8, bitmap 1 + 7 = 8 -> tie, dense wins.
    tie = np.array([[1, 2, 3, 4, 5, 6, 7, 0]], dtype=np.int8)
    assert storage_format(tie)[0] == "dense"
    assert storage_format(tie, formats=("bitmap", "dense"))[0] == "bitmap"
    assert storage_format(w, n_m=(2, 4)) == ("n_m", nbytes_n_m((8, 8), 2, 4, axis=1))
    assert STORAGE_FORMATS == ("dense", "bitmap", "csr")
    with raises(ValueError, "formats must be among 'dense', 'bitmap', 'csr', not 'coo'"):
        storage_footprints(w, formats=("coo",))
    with raises(ValueError, "w2d must be a 2-D matrix, not 1-D"):
        storage_footprints(w.ravel())
    with raises(ValueError, "value_bits must be between 2 and 8, not 1"):
        storage_footprints(w, 1)
    with raises(ValueError, "fmt must be one of 'dense', 'bitmap', 'csr', 'n_m', not 'coo'"):
        encode_weights(w, "coo")
    with raises(ValueError, "format 'n_m' needs n_m=(n, m)"):
        encode_weights(w, "n_m")


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 8), st.integers(1, 6), st.integers(1, 4), st.floats(0, 1), st.data())
def test_encoded_buffers_have_the_counted_sizes(bits, rows, groups, density, data):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    w = data.draw(hnp.arrays(np.int8, (rows, 4 * groups), elements=st.integers(lo, hi)))
    w = np.where(np.random.default_rng(rows).random(w.shape) < density, w, 0).astype(np.int8)
    for fmt, fp in storage_footprints(w, bits).items():
        buffers = encode_weights(w, fmt, bits)
        assert buffers["values"].nbytes == fp.values
        assert sum(b.nbytes for k, b in buffers.items() if k != "values") == fp.metadata
        assert same_bits(decode_weights(buffers, fmt, w.shape, bits), w)
    sparse = apply_mask(w, prune_n_m(w, 2, 4, axis=1))
    buffers = encode_weights(sparse, "n_m", bits, n_m=(2, 4))
    fp = nbytes_n_m(w.shape, 2, 4, axis=1, value_bits=bits)
    assert (buffers["values"].nbytes, buffers["indices"].nbytes) == (fp.values, fp.metadata)
    assert same_bits(decode_weights(buffers, "n_m", w.shape, bits, n_m=(2, 4)), sparse)


# --- bitmap ------------------------------------------------------------------------------------

def test_bitmap_hand_computed():
    w = np.array([[0, 3, 0, -2, 0], [0, 0, 0, 7, 1]], dtype=np.int8)
    bitmap, values = to_bitmap(w)
    # Elements 1, 3, 8, 9 are non-zero: byte 0 = 0b00001010, byte 1 = 0b00000011 (little).
    np.testing.assert_array_equal(bitmap, [0x0A, 0x03])
    np.testing.assert_array_equal(values, [3, -2, 7, 1])
    assert bitmap.dtype == np.uint8 and values.dtype == np.int8
    assert same_bits(from_bitmap(bitmap, values, w.shape), w)
    assert same_bits(from_bitmap(bitmap.tobytes(), values, (2, 5)), w)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from([np.int8, np.float32]), hnp.array_shapes(max_dims=3),
                  elements=st.integers(-2, 2)))
def test_bitmap_round_trip(w):
    bitmap, values = to_bitmap(w)
    assert bitmap.shape == (math.ceil(w.size / 8),)
    assert values.shape == (np.count_nonzero(w),)
    assert same_bits(from_bitmap(bitmap, values, w.shape), w)
    assert nbytes_bitmap(w.shape, values.size).metadata == bitmap.nbytes
    assert nbytes_bitmap(w.shape, values.size, 8 * w.itemsize).values == values.nbytes


def test_bitmap_errors():
    w = np.array([1, 0, 2], dtype=np.int8)
    bitmap, values = to_bitmap(w)
    with raises(ValueError, "values must have shape (2,) to match the bitmap, not (3,)"):
        from_bitmap(bitmap, np.ones(3, dtype=np.int8), (3,))
    with raises(ValueError, "bitmap must be 2 bytes long for shape (9,), not 1"):
        from_bitmap(bitmap, values, (9,))
    with raises(ValueError, "bitmap must have zero padding bits after the last element"):
        from_bitmap(np.array([0x0D], dtype=np.uint8), np.ones(3, dtype=np.int8), (3,))
    with raises(TypeError, "w must be a real numeric array, not dtype bool"):
        to_bitmap(w != 0)


# --- CSR ---------------------------------------------------------------------------------------

def test_csr_hand_computed():
    w = np.array([[0, 3, 0, -2], [0, 0, 0, 0], [5, 0, 0, 1]], dtype=np.int8)
    data, indices, indptr = to_csr(w)
    np.testing.assert_array_equal(data, [3, -2, 5, 1])
    np.testing.assert_array_equal(indices, [1, 3, 0, 3])
    np.testing.assert_array_equal(indptr, [0, 2, 2, 4])
    assert (data.dtype, indices.dtype, indptr.dtype) == (np.int8, np.uint8, np.uint8)
    assert same_bits(from_csr(data, indices, indptr, w.shape), w)


@pytest.mark.parametrize(("cols", "nnz", "index_dtype", "ptr_dtype"), [
    (256, 255, np.uint8, np.uint8),      # largest column index 255, nnz 255
    (257, 256, np.uint16, np.uint16),
    (1, 1, np.uint8, np.uint8),
])
def test_csr_index_dtypes_are_the_smallest_that_fit(cols, nnz, index_dtype, ptr_dtype):
    w = np.zeros((1, cols), dtype=np.float32)
    w[0, -nnz:] = 1.0
    data, indices, indptr = to_csr(w)
    assert (indices.dtype, indptr.dtype) == (index_dtype, ptr_dtype)
    assert nbytes_csr(w.shape, nnz, 32) == Footprint(data.nbytes, indices.nbytes + indptr.nbytes)
    assert csr_index_dtype(2**32) == np.uint64 and csr_index_dtype(65535) == np.uint16


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from([np.int8, np.float32]),
                  hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=7),
                  elements=st.integers(-2, 2)))
def test_csr_round_trip(w):
    data, indices, indptr = to_csr(w)
    assert same_bits(from_csr(data, indices, indptr, w.shape), w)
    fp = nbytes_csr(w.shape, data.size, 8 * w.itemsize)
    assert fp.values == data.nbytes
    assert fp.metadata == indices.nbytes + indptr.nbytes


def test_csr_errors():
    w = np.array([[0, 3], [4, 0]], dtype=np.int8)
    data, indices, indptr = to_csr(w)
    with raises(ValueError, "w2d must be 2-D, not 1-D"):
        to_csr(np.ones(3))
    with raises(ValueError, "indptr must have shape (3,), not (2,)"):
        from_csr(data, indices, indptr[:2], (2, 2))
    with raises(ValueError, "indptr must be non-decreasing from 0 to 2, not [0, 2, 1]"):
        from_csr(data, indices, np.array([0, 2, 1]), (2, 2))
    with raises(ValueError, "indices must be in [0, 2), not [1, 2]"):
        from_csr(data, np.array([1, 2]), indptr, (2, 2))
    with raises(ValueError, "indices must be strictly increasing within each row"):
        from_csr(data, np.array([1, 1]), np.array([0, 2, 2]), (2, 2))
    with raises(ValueError, "data and indices must be 1-D of the same length, not (2,) and "
                            "(1,)"):
        from_csr(data, indices[:1], indptr, (2, 2))
    with raises(ValueError, "shape must be 2-D, not (4,)"):
        from_csr(data, indices, indptr, (4,))


# --- byte accounting ---------------------------------------------------------------------------

def test_nbytes_64x128_2_4():
    fp = nbytes_n_m((64, 128), 2, 4)
    assert (fp.values, fp.metadata, fp.nbytes) == (4096, 1024, 5120)
    assert nbytes_dense((64, 128)) == Footprint(8192, 0)
    assert nbytes_dense((64, 128), 32).nbytes == 32768
    assert nbytes_n_m((64, 128), 2, 4, value_bits=4) == Footprint(2048, 1024)
    assert nbytes_n_m((64, 128), 1, 4) == Footprint(2048, 512)
    assert nbytes_n_m((64, 128), 4, 16) == Footprint(2048, 1024)
    assert nbytes_n_m((3, 8), 3, 8) == Footprint(9, 4)    # 9 indices * 3 bits = 27 bits
    assert nbytes_bitmap((64, 128), 4096) == Footprint(4096, 1024)
    # CSR: 4096 uint8 column indices (cols 128) + 65 uint16 row pointers (nnz 4096).
    assert nbytes_csr((64, 128), 4096) == Footprint(4096, 4096 + 65 * 2)


@settings(max_examples=40, deadline=None)
@given(n_m_sparse())
def test_nbytes_n_m_equals_the_actual_buffers(case):
    w, n, m, axis = case
    values, indices = compress_n_m(w, n, m, axis=axis)
    packed = pack_indices(indices, m)
    fp = nbytes_n_m(w.shape, n, m, axis=axis, value_bits=8 * w.itemsize)
    assert fp == Footprint(values.nbytes, len(packed.tobytes()))


def test_nbytes_errors():
    with raises(ValueError, "axis 1 has length 10, not divisible by M = 4"):
        nbytes_n_m((2, 10), 2, 4)
    with raises(ValueError, "nnz must be between 0 and 6, not 7"):
        nbytes_bitmap((2, 3), 7)
    with raises(ValueError, "value_bits must be between 1 and 64, not 0"):
        nbytes_dense((2, 3), 0)
    with raises(ValueError, "shape must be 2-D, not (2, 3, 4)"):
        nbytes_csr((2, 3, 4), 1)
    with raises(ValueError, "shape[1] must be at least 0, not -3"):
        nbytes_dense((2, -3))


# --- report ------------------------------------------------------------------------------------

def test_compression_report_exact_bytes():
    rng = np.random.default_rng(6)
    fc = rng.standard_normal((64, 128)).astype(np.float32)  # no zeros
    conv = np.ones((8, 4, 3, 3), dtype=np.float32)          # GEMM view (8, 36)
    rows = compression_report({"fc": fc, "conv": conv})
    assert [r["layer"] for r in rows] == ["fc", "conv", "total"]
    r = rows[0]
    assert (r["shape"], r["params"], r["nnz"]) == ((64, 128), 8192, 4096)
    assert (r["float32"], r["dense"]) == (32768, 8192)
    assert (r["n_m_values"], r["n_m_metadata"], r["n_m"]) == (4096, 1024, 5120)
    assert (r["bitmap_values"], r["bitmap_metadata"], r["bitmap"]) == (4096, 1024, 5120)
    assert (r["csr_values"], r["csr_metadata"], r["csr"]) == (4096, 4226, 8322)
    assert (r["ratio_dense"], r["ratio_n_m"], r["ratio_bitmap"]) == (4.0, 6.4, 6.4)
    assert r["ratio_csr"] == 32768 / 8322
    c = rows[1]
    # 288 params, 144 kept: 144 values + 144 * 2 bits = 36 bytes; bitmap 36 bytes;
    # CSR 144 uint8 indices + 9 uint8 row pointers.
    assert (c["float32"], c["dense"], c["n_m"], c["bitmap"], c["csr"]) == \
        (1152, 288, 180, 180, 144 + 144 + 9)
    t = rows[2]
    assert (t["params"], t["float32"], t["n_m_values"], t["n_m_metadata"], t["csr"]) == \
        (8480, 33920, 4240, 1060, 8322 + 297)
    assert t["ratio_n_m"] == 33920 / 5300
    # The numbers are those of the real buffers of the pruned int8 layer.
    q = np.clip(np.round(apply_mask(fc, prune_n_m(fc, 2, 4)) * 32), -127, 127).astype(np.int8)
    values, indices = compress_n_m(q, 2, 4)
    assert values.nbytes == r["n_m_values"] and pack_indices(indices, 4).size == r["n_m_metadata"]


def test_compression_report_counts_zeros_for_bitmap_and_csr():
    w = np.zeros((2, 8), dtype=np.float64)
    w[0, :3] = [1.0, 2.0, 3.0]  # 2:4 keeps 2.0, 3.0 in group 0; group 1 is all zero
    (row, total) = compression_report({"w": w}, n=2, m=4, value_bits=4)
    assert row["nnz"] == 2
    assert (row["dense"], row["n_m_values"], row["n_m_metadata"]) == (8, 4, 2)
    assert (row["bitmap_values"], row["bitmap_metadata"]) == (1, 2)
    assert (row["csr_values"], row["csr_metadata"]) == (1, 2 + 3)
    assert total["nnz"] == 2


def test_format_report_markdown():
    rows = compression_report({"fc": np.ones((2, 8), dtype=np.float32)})
    text = format_report(rows)
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 4
    assert lines[0] == ("| layer | shape | params | nnz | float32 B | int8 dense B "
                        "| 2:4 B (values + meta) | bitmap B (values + meta) "
                        "| CSR B (values + meta) | x dense | x 2:4 | x bitmap | x CSR |")
    assert lines[2] == ("| fc | 2x8 | 16 | 8 | 64 | 16 | 10 (8 + 2) | 10 (8 + 2) "
                        "| 19 (8 + 11) | 4.00x | 6.40x | 6.40x | 3.37x |")
    assert lines[3].startswith("| **total** |  | **16** |")
    assert all(line.count("|") == 14 for line in lines)


def test_report_errors():
    with raises(ValueError, "layers must be a non-empty dict of weights, not {}"):
        compression_report({})
    with raises(TypeError, "layers must be a dict of name -> weights, not list"):
        compression_report([np.ones((2, 4))])
    with raises(TypeError, "layers['fc'] must be a floating-point array, not dtype int8"):
        compression_report({"fc": np.ones((2, 4), dtype=np.int8)})
    with raises(ValueError, "layers['fc'] has 6 inputs per output, not divisible by M = 4"):
        compression_report({"fc": np.ones((2, 6))})
    with raises(ValueError, "N must be between 1 and M (4), not 5"):
        compression_report({"fc": np.ones((2, 4))}, n=5)
    with raises(ValueError, "rows must be a non-empty list of report rows, not []"):
        format_report([])
