"""Sparse weight formats with exact byte accounting: N:M, bitmap and CSR.

N:M compressed (:func:`compress_n_m`, :func:`decompress_n_m`)
    Every group of ``M`` consecutive weights along the reduction axis is stored as exactly ``N``
    values and ``N`` indices (the positions within the group, strictly increasing), in arrays
    whose reduction axis is split into ``(groups, N)``, so ``N`` travels with the data. The indices
    take ``log2(M)`` bits each and are packed by :func:`pack_indices` into a little-endian bit
    stream: index ``k`` occupies bits ``k*b .. k*b+b-1`` of the stream, bit ``j`` of the stream
    is bit ``j % 8`` (LSB = 0) of byte ``j // 8``, so the first index sits in the least
    significant bits of byte 0; the last byte is zero-padded. For 2:4 (NVIDIA's sparse tensor
    cores use 2-bit indices) a byte holds the two indices of two consecutive groups, group 0 in
    the low nibble. The tensor-core-specific interleaving of metadata (cuSPARSELt reordering)
    is not modelled.
Bitmap (:func:`to_bitmap`, :func:`from_bitmap`)
    One bit per element in C order, packed with ``np.packbits(..., bitorder="little")`` (element
    0 is bit 0 of byte 0), plus the non-zero values in C order.
CSR (:func:`to_csr`, :func:`from_csr`)
    ``data``, column ``indices`` and row pointers ``indptr`` of a 2-D array, with the smallest
    unsigned integer dtype (uint8/16/32/64) that holds the largest column index (``indices``),
    respectively the number of non-zeros (``indptr``).

Byte accounting (:class:`Footprint`, :func:`nbytes_dense`, :func:`nbytes_n_m`,
:func:`nbytes_bitmap`, :func:`nbytes_csr`) splits each format into ``values`` and ``metadata``
bytes; they equal the ``nbytes`` / lengths of the buffers the functions above produce (values
of ``b`` bits are counted densely bit-packed: ``ceil(count * b / 8)`` bytes, which is
``values.nbytes`` for ``b = 8`` and an int8 array). :func:`compression_report` and
:func:`format_report` compare the formats for a set of layers.

Sub-8-bit codes (:func:`pack_values`, :func:`unpack_values`)
    Signed codes of ``b`` bits (2 to 8, two's complement, ``[-2^(b-1), 2^(b-1) - 1]``) packed
    into the same little-endian bit stream as the N:M indices: code ``k`` occupies bits
    ``k*b .. k*b+b-1``, so two 4-bit codes share a byte (the first in the low nibble) and
    ``count`` 3-bit codes take ``ceil(count * 3 / 8)`` bytes. At 8 bits the stream is the int8
    array's own bytes.
Stored weights (:func:`storage_footprints`, :func:`storage_format`, :func:`encode_weights`,
:func:`decode_weights`)
    A 2-D integer weight matrix is stored dense, as a bitmap or as CSR (:data:`STORAGE_FORMATS`),
    or as N:M when the hardware runs it sparse; its values at ``value_bits`` bits, packed.
    :func:`storage_format` picks the smallest of the formats offered (ties: the first listed,
    so dense before bitmap before CSR); :func:`encode_weights` produces the buffers, whose
    byte counts are the :class:`Footprint` of the format (the test of the accounting).

Signed zeros: ``-0.0`` counts as zero everywhere, so a round trip turns it into ``+0.0``.
"""

import dataclasses
import math
import numbers

import numpy as np

from common.checks import as_float_array, as_int_array, check_axis, check_int

from .prune import (
    _as_real_array,
    _check_n_m_params,
    _from_groups,
    _n_m_groups,
    _n_m_keep_groups,
    check_n_m,
    prune_n_m,
)

__all__ = [
    "compress_n_m", "decompress_n_m", "pack_indices", "unpack_indices", "index_bits",
    "to_bitmap", "from_bitmap", "BITMAP_BITORDER", "to_csr", "from_csr", "csr_index_dtype",
    "Footprint", "nbytes_dense", "nbytes_n_m", "nbytes_bitmap", "nbytes_csr",
    "compression_report", "format_report", "pack_values", "unpack_values", "STORAGE_FORMATS",
    "storage_footprints", "storage_format", "encode_weights", "decode_weights",
]

#: Bit order of the packed bitmap (``np.packbits`` / ``np.unpackbits``).
BITMAP_BITORDER = "little"


def index_bits(m):
    """Bits of one N:M index, ``log2(m)``, for ``m`` in {2, 4, 8, 16}."""
    _, m = _check_n_m_params(1, m)
    return m.bit_length() - 1


def _shape(shape, name="shape"):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of integers, not {type(shape).__name__}")
    return tuple(check_int(s, f"{name}[{i}]", lo=0) for i, s in enumerate(shape))


# --- N:M --------------------------------------------------------------------------------------

def compress_n_m(w, n, m, axis=-1, *, prune=False):
    """Compress ``w`` to N:M form: ``n`` values and ``n`` indices per group of ``m``.

    The kept positions of each group are those :func:`~golden_model.prune.prune_n_m` selects
    (the ``n`` largest ``|w|``, ties keep the lower index). For an N:M-sparse ``w`` these are its
    non-zeros, padded with the lowest-index unused positions (whose values are written as 0) so
    that every group has exactly ``n`` (value, index) pairs; indices are strictly increasing
    within a group.

    Parameters
    ----------
    w : array of any real numeric dtype
        Weights (int8 in hardware); floats must be finite.
    n, m : int
        ``n`` kept per group of ``m``; ``m`` in {2, 4, 8, 16}, ``1 <= n <= m``.
    axis : int
        Reduction axis; its length ``L`` must be divisible by ``m``.
    prune : bool
        If ``False`` (the default) ``w`` must already be N:M sparse (see
        :func:`~golden_model.prune.check_n_m`), so nothing is lost silently. If ``True`` a
        non-sparse ``w`` is pruned first (the dropped values are lost).

    Returns
    -------
    values : ndarray, dtype of ``w``
        Shape of ``w`` with ``axis`` split into two axes ``(L // m, n)``: groups, then the
        ``n`` kept values of each group. ``n`` is thus part of the shape, and
        ``values.reshape`` merging the two axes gives the flat stream the hardware loads.
    indices : ndarray of uint8
        Same shape as ``values``; position in ``[0, m)`` of each value within its group.

    Raises
    ------
    TypeError
        If ``w`` is not real numeric or ``n``, ``m``, ``axis`` are not integers.
    ValueError
        If ``w`` is not N:M sparse and ``prune`` is ``False``, or as
        :func:`~golden_model.prune.prune_n_m`.
    """
    arr = _as_real_array(w)
    if not isinstance(prune, (bool, np.bool_)):
        raise TypeError(f"prune must be a bool, not {prune!r}")
    if not prune:
        check_n_m(arr, n, m, axis)
    n, m = _check_n_m_params(n, m)
    groups, axis = _n_m_groups(arr, n, m, axis)
    keep = _n_m_keep_groups(groups, n)
    # Stable sort of "not kept": the kept positions first, in increasing order.
    positions = np.argsort(~keep, axis=-1, kind="stable")[..., :n]
    values = np.take_along_axis(groups, positions, axis=-1)
    values = np.where(values != 0, values, np.zeros((), dtype=arr.dtype))
    grouped = (-2, -1), (axis, axis + 1)
    return (np.moveaxis(values, *grouped),
            np.moveaxis(positions.astype(np.uint8), *grouped))


def decompress_n_m(values, indices, m, axis=-1):
    """Inverse of :func:`compress_n_m`: scatter the values back to their positions.

    ``decompress_n_m(*compress_n_m(w, n, m, axis), m, axis)`` equals ``w`` exactly for every
    N:M-sparse ``w`` (``-0.0`` becomes ``+0.0``). ``n`` is read from the shape: ``values``
    holds axes ``(G, n)`` where the original tensor had its reduction axis.

    Parameters
    ----------
    values : array of any real numeric dtype
        Kept values, shaped as :func:`compress_n_m` returns them (one more dimension than
        the original tensor).
    indices : array of integers
        Same shape; per group ``n`` strictly increasing positions in ``[0, m)``.
    m : int
        Group size, as in :func:`compress_n_m`.
    axis : int
        The reduction axis of the *original* tensor (as given to :func:`compress_n_m`).

    Returns
    -------
    ndarray, dtype of ``values``
        The original shape, ``axis`` of length ``G * m``; zeros at the positions not listed.

    Raises
    ------
    TypeError
        If ``values`` is not real numeric or ``indices`` not integer.
    ValueError
        If the shapes differ, the axis length is not divisible by ``n``, an index is out of
        ``[0, m)``, or the indices of a group are not strictly increasing.
    """
    vals = _as_real_array(values, "values")
    idx = as_int_array(indices, "indices")
    if vals.shape != idx.shape:
        raise ValueError(f"indices must have the shape of values {vals.shape}, not {idx.shape}")
    if vals.ndim < 2:
        raise ValueError(f"values must have the grouped shape (..., groups, n, ...) of "
                         f"compress_n_m, at least 2 dimensions, not shape {vals.shape}")
    axis = check_axis(axis, vals.ndim - 1)
    n = vals.shape[axis + 1]
    n, m = _check_n_m_params(n, m)
    out_of_range = (idx < 0) | (idx >= m)
    if out_of_range.any():
        where = tuple(int(i) for i in np.argwhere(out_of_range)[0])
        raise ValueError(f"indices must be in [0, {m}), not {int(idx[where])} at index {where}")
    gv = np.moveaxis(vals, (axis, axis + 1), (-2, -1))
    gi = np.moveaxis(idx, (axis, axis + 1), (-2, -1)).astype(np.intp)
    bad = np.argwhere((np.diff(gi, axis=-1) <= 0).any(axis=-1))
    if bad.size:
        first = tuple(int(i) for i in bad[0])
        raise ValueError(f"indices must be strictly increasing within each group: group "
                         f"{first[-1]} of row {first[:-1]} has {gi[first].tolist()}")
    out = np.zeros((*gv.shape[:-1], m), dtype=vals.dtype)
    np.put_along_axis(out, gi, gv, axis=-1)
    return _from_groups(out, axis)


def pack_indices(indices, m):
    """Pack N:M indices of ``log2(m)`` bits each into bytes, little-endian bit stream.

    The indices are taken in C order; index ``k`` occupies bits ``k*b .. k*b+b-1`` of the stream
    (its LSB first) and bit ``j`` of the stream is bit ``j % 8`` of byte ``j // 8``: the first
    index is in the least significant bits of byte 0. Unused high bits of the last byte are 0.

    Parameters
    ----------
    indices : array of integers
        Values in ``[0, m)``, any shape.
    m : int
        Group size in {2, 4, 8, 16}.

    Returns
    -------
    ndarray of uint8, shape ``(ceil(indices.size * log2(m) / 8),)``
        Use ``.tobytes()`` for a ``bytes`` object.

    Raises
    ------
    TypeError
        If ``indices`` is not an integer array.
    ValueError
        If ``m`` is not in {2, 4, 8, 16} or an index is out of ``[0, m)``.
    """
    bits = index_bits(m)
    idx = as_int_array(indices, "indices")
    bad = (idx < 0) | (idx >= m)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"indices must be in [0, {m}), not {int(idx[where])} at index {where}")
    flat = idx.ravel().astype(np.uint8)
    stream = (flat[:, None] >> np.arange(bits, dtype=np.uint8)) & np.uint8(1)
    return np.packbits(stream.ravel(), bitorder="little")


def unpack_indices(packed, m, count):
    """Inverse of :func:`pack_indices`: the first ``count`` indices of the stream.

    Parameters
    ----------
    packed : bytes or 1-D array of uint8
        Exactly ``ceil(count * log2(m) / 8)`` bytes.
    m : int
        Group size in {2, 4, 8, 16}.
    count : int
        Number of indices, >= 0.

    Returns
    -------
    ndarray of uint8, shape ``(count,)``

    Raises
    ------
    TypeError
        If ``packed`` is neither bytes nor a uint8 array.
    ValueError
        If ``packed`` has the wrong length, or its padding bits are not zero.
    """
    bits = index_bits(m)
    count = check_int(count, "count", lo=0)
    buf = _as_bytes(packed, "packed")
    need = -(-count * bits // 8)
    if buf.size != need:
        raise ValueError(f"packed must be {need} bytes long for {count} {bits}-bit indices, "
                         f"not {buf.size}")
    stream = np.unpackbits(buf, bitorder="little")
    if stream[count * bits:].any():
        raise ValueError("packed must have zero padding bits after the last index")
    weights = (np.uint8(1) << np.arange(bits, dtype=np.uint8))
    return (stream[:count * bits].reshape(count, bits) * weights).sum(axis=1, dtype=np.uint8)


def _as_bytes(buf, name):
    if isinstance(buf, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(buf), dtype=np.uint8)
    if isinstance(buf, np.ndarray) and buf.dtype == np.uint8 and buf.ndim == 1:
        return buf
    what = f"dtype {buf.dtype} and shape {buf.shape}" if isinstance(buf, np.ndarray) \
        else type(buf).__name__
    raise TypeError(f"{name} must be bytes or a 1-D uint8 array, not {what}")


# --- bitmap -----------------------------------------------------------------------------------

def to_bitmap(w):
    """Bitmap format: a packed non-zero bitmap plus the non-zero values.

    Parameters
    ----------
    w : array of any real numeric dtype

    Returns
    -------
    bitmap : ndarray of uint8, shape ``(ceil(w.size / 8),)``
        Bit ``k`` (element ``k`` of ``w`` in C order) is bit ``k % 8`` (LSB = 0) of byte
        ``k // 8`` (``np.packbits(..., bitorder="little")``); 1 means non-zero. Padding is 0.
    values : ndarray, dtype of ``w``, shape ``(nnz,)``
        The non-zero values in C order.

    Raises
    ------
    TypeError
        If ``w`` is not real numeric.
    ValueError
        If ``w`` contains NaN or Inf.
    """
    arr = _as_real_array(w)
    nz = arr.ravel() != 0
    return np.packbits(nz, bitorder=BITMAP_BITORDER), arr.ravel()[nz].copy()


def from_bitmap(bitmap, values, shape):
    """Inverse of :func:`to_bitmap`.

    Parameters
    ----------
    bitmap : bytes or 1-D array of uint8
        Exactly ``ceil(prod(shape) / 8)`` bytes, zero padding bits.
    values : 1-D array of a real numeric dtype
        One value per set bit, in C order.
    shape : tuple of int

    Returns
    -------
    ndarray of ``shape``, dtype of ``values``

    Raises
    ------
    TypeError
        If an argument has a wrong type.
    ValueError
        If the lengths do not match the shape or the number of set bits.
    """
    shape = _shape(shape)
    size = math.prod(shape)
    buf = _as_bytes(bitmap, "bitmap")
    vals = _as_real_array(values, "values")
    need = -(-size // 8)
    if buf.size != need:
        raise ValueError(f"bitmap must be {need} bytes long for shape {shape}, not {buf.size}")
    bits = np.unpackbits(buf, bitorder=BITMAP_BITORDER)
    if bits[size:].any():
        raise ValueError("bitmap must have zero padding bits after the last element")
    nz = bits[:size].astype(np.bool_)
    if vals.shape != (int(nz.sum()),):
        raise ValueError(f"values must have shape ({int(nz.sum())},) to match the bitmap, "
                         f"not {vals.shape}")
    out = np.zeros(size, dtype=vals.dtype)
    out[nz] = vals
    return out.reshape(shape)


# --- CSR --------------------------------------------------------------------------------------

def csr_index_dtype(max_value):
    """Smallest unsigned integer dtype (uint8, uint16, uint32, uint64) holding ``max_value``."""
    max_value = check_int(max_value, "max_value", lo=0)
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"max_value must be at most {np.iinfo(np.uint64).max}, not {max_value}")


def to_csr(w2d):
    """Compressed sparse row format of a 2-D array.

    Parameters
    ----------
    w2d : 2-D array of any real numeric dtype

    Returns
    -------
    data : ndarray, dtype of ``w2d``, shape ``(nnz,)``
        Non-zeros in C order.
    indices : ndarray, shape ``(nnz,)``
        Column of each non-zero, strictly increasing within a row; dtype
        ``csr_index_dtype(max(cols - 1, 0))``.
    indptr : ndarray, shape ``(rows + 1,)``
        Row ``r`` is ``data[indptr[r]:indptr[r + 1]]``; dtype ``csr_index_dtype(nnz)``.

    Raises
    ------
    TypeError
        If ``w2d`` is not real numeric.
    ValueError
        If ``w2d`` is not 2-D or contains NaN or Inf.
    """
    arr = _as_real_array(w2d, "w2d")
    if arr.ndim != 2:
        raise ValueError(f"w2d must be 2-D, not {arr.ndim}-D")
    rows, cols = np.nonzero(arr)
    nnz = rows.size
    indptr = np.zeros(arr.shape[0] + 1, dtype=csr_index_dtype(nnz))
    np.cumsum(np.bincount(rows, minlength=arr.shape[0]), out=indptr[1:])
    indices = cols.astype(csr_index_dtype(max(arr.shape[1] - 1, 0)))
    return arr[rows, cols].copy(), indices, indptr


def from_csr(data, indices, indptr, shape):
    """Inverse of :func:`to_csr` (canonical CSR: sorted, unique column indices per row).

    Parameters
    ----------
    data : 1-D array of a real numeric dtype
    indices : 1-D array of integers, same length as ``data``
    indptr : 1-D array of integers, length ``rows + 1``, ``indptr[0] == 0``, non-decreasing,
        ``indptr[-1] == len(data)``
    shape : (int, int)

    Returns
    -------
    ndarray of ``shape``, dtype of ``data``

    Raises
    ------
    TypeError
        If an argument has a wrong type.
    ValueError
        If the arrays are inconsistent with each other or with ``shape``.
    """
    shape = _shape(shape)
    if len(shape) != 2:
        raise ValueError(f"shape must be 2-D, not {shape}")
    vals = _as_real_array(data, "data")
    idx = as_int_array(indices, "indices")
    ptr = as_int_array(indptr, "indptr")
    rows, cols = shape
    if vals.ndim != 1 or idx.shape != vals.shape:
        raise ValueError(f"data and indices must be 1-D of the same length, not {vals.shape} "
                         f"and {idx.shape}")
    if ptr.shape != (rows + 1,):
        raise ValueError(f"indptr must have shape {(rows + 1,)}, not {ptr.shape}")
    ptr = ptr.astype(np.int64)
    if ptr[0] != 0 or ptr[-1] != vals.size or (np.diff(ptr) < 0).any():
        raise ValueError(f"indptr must be non-decreasing from 0 to {vals.size}, "
                         f"not {ptr.tolist()}")
    idx = idx.astype(np.int64)
    if ((idx < 0) | (idx >= cols)).any():
        raise ValueError(f"indices must be in [0, {cols}), not {idx.tolist()}")
    row_of = np.repeat(np.arange(rows), np.diff(ptr))
    same_row = row_of[1:] == row_of[:-1]
    if (same_row & (idx[1:] <= idx[:-1])).any():
        raise ValueError("indices must be strictly increasing within each row")
    out = np.zeros(shape, dtype=vals.dtype)
    out[row_of, idx] = vals
    return out


# --- byte accounting --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Footprint:
    """Exact size of a stored tensor in bytes.

    Members
    -------
    values : int
        Bytes of the stored values.
    metadata : int
        Bytes of everything else (indices, bitmaps, row pointers).
    nbytes : int
        ``values + metadata``.
    """

    values: int
    metadata: int = 0

    @property
    def nbytes(self):
        return self.values + self.metadata


def _value_bytes(count, value_bits):
    value_bits = check_int(value_bits, "value_bits", lo=1, hi=64)
    return -(-count * value_bits // 8)


def nbytes_dense(shape, value_bits=8):
    """Dense storage: ``ceil(size * value_bits / 8)`` value bytes, no metadata."""
    return Footprint(_value_bytes(math.prod(_shape(shape)), value_bits), 0)


def nbytes_n_m(shape, n, m, axis=-1, value_bits=8):
    """N:M storage as :func:`compress_n_m` + :func:`pack_indices` produce it.

    ``k = size * n / m`` kept values: ``ceil(k * value_bits / 8)`` value bytes and
    ``ceil(k * log2(m) / 8)`` metadata bytes (all indices of the tensor packed in one stream).

    Raises
    ------
    ValueError
        If ``n``, ``m`` are out of range or ``shape[axis]`` is not divisible by ``m``.
    """
    shape = _shape(shape)
    n, m = _check_n_m_params(n, m)
    if not shape:
        raise ValueError("shape must have at least 1 dimension, not 0")
    axis = check_axis(axis, len(shape))
    if shape[axis] % m:
        raise ValueError(f"axis {axis} has length {shape[axis]}, not divisible by M = {m}")
    kept = math.prod(shape) // m * n
    return Footprint(_value_bytes(kept, value_bits), -(-kept * index_bits(m) // 8))


def nbytes_bitmap(shape, nnz, value_bits=8):
    """Bitmap storage as :func:`to_bitmap` produces it: ``ceil(size / 8)`` metadata bytes."""
    shape = _shape(shape)
    size = math.prod(shape)
    nnz = check_int(nnz, "nnz", lo=0, hi=size)
    return Footprint(_value_bytes(nnz, value_bits), -(-size // 8))


def nbytes_csr(shape, nnz, value_bits=8):
    """CSR storage as :func:`to_csr` produces it.

    Metadata: ``nnz`` column indices of ``csr_index_dtype(cols - 1)`` plus ``rows + 1`` row
    pointers of ``csr_index_dtype(nnz)``.
    """
    shape = _shape(shape)
    if len(shape) != 2:
        raise ValueError(f"shape must be 2-D, not {shape}")
    rows, cols = shape
    nnz = check_int(nnz, "nnz", lo=0, hi=rows * cols)
    meta = (nnz * csr_index_dtype(max(cols - 1, 0)).itemsize
            + (rows + 1) * csr_index_dtype(nnz).itemsize)
    return Footprint(_value_bytes(nnz, value_bits), meta)


# --- sub-8-bit values -------------------------------------------------------------------------

def _check_value_bits(bits, name="value_bits"):
    return check_int(bits, name, lo=2, hi=8)


def pack_values(q, bits):
    """Pack signed ``bits``-bit codes (two's complement) into a little-endian bit stream.

    The codes are taken in C order; code ``k`` occupies bits ``k*bits .. k*bits+bits-1`` of
    the stream (its LSB first), bit ``j`` of the stream being bit ``j % 8`` of byte ``j // 8``
    (the layout of :func:`pack_indices`). Unused high bits of the last byte are 0. For
    ``bits = 8`` the result is the bytes of ``q`` as int8.

    Parameters
    ----------
    q : array of integers
        Codes in ``[-2^(bits-1), 2^(bits-1) - 1]``, any shape.
    bits : int
        2 to 8.

    Returns
    -------
    ndarray of uint8, shape ``(ceil(q.size * bits / 8),)``

    Raises
    ------
    TypeError
        If ``q`` is not an integer array or ``bits`` not an integer.
    ValueError
        If ``bits`` is out of range or a code does not fit ``bits`` bits.
    """
    bits = _check_value_bits(bits, "bits")
    codes = as_int_array(q, "q")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    bad = (codes < lo) | (codes > hi)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"q must hold {bits}-bit codes in [{lo}, {hi}], not "
                         f"{int(codes[where])} at index {where}")
    flat = (codes.ravel().astype(np.int64) & ((1 << bits) - 1)).astype(np.uint8)
    if bits == 8:
        return flat
    stream = (flat[:, None] >> np.arange(bits, dtype=np.uint8)) & np.uint8(1)
    return np.packbits(stream.ravel(), bitorder="little")


def unpack_values(packed, bits, count):
    """Inverse of :func:`pack_values`: the first ``count`` codes, sign-extended to int8.

    Raises
    ------
    TypeError
        If ``packed`` is neither bytes nor a uint8 array.
    ValueError
        If ``packed`` has the wrong length or non-zero padding bits.
    """
    bits = _check_value_bits(bits, "bits")
    count = check_int(count, "count", lo=0)
    buf = _as_bytes(packed, "packed")
    need = -(-count * bits // 8)
    if buf.size != need:
        raise ValueError(f"packed must be {need} bytes long for {count} {bits}-bit codes, "
                         f"not {buf.size}")
    stream = np.unpackbits(buf, bitorder="little")
    if stream[count * bits:].any():
        raise ValueError("packed must have zero padding bits after the last code")
    weights = np.int64(1) << np.arange(bits, dtype=np.int64)
    raw = (stream[:count * bits].reshape(count, bits).astype(np.int64) * weights).sum(axis=1)
    return np.where(raw >= 1 << (bits - 1), raw - (1 << bits), raw).astype(np.int8)


# --- stored weights -----------------------------------------------------------------------------

#: The formats an unstructured (or dense) weight matrix may be stored in, in order of preference
#: on a tie of byte counts.
STORAGE_FORMATS = ("dense", "bitmap", "csr")


def _matrix(w2d):
    arr = as_int_array(w2d, "w2d")
    if arr.ndim != 2:
        raise ValueError(f"w2d must be a 2-D matrix, not {arr.ndim}-D")
    return arr


def _check_formats(formats):
    if isinstance(formats, str) or not isinstance(formats, (tuple, list)) or not formats:
        raise TypeError(f"formats must be a non-empty tuple of names among "
                        f"{', '.join(map(repr, STORAGE_FORMATS))}, not {formats!r}")
    for f in formats:
        if f not in STORAGE_FORMATS:
            raise ValueError(f"formats must be among {', '.join(map(repr, STORAGE_FORMATS))}, "
                             f"not {f!r}")
    return tuple(dict.fromkeys(formats))


def _check_fmt(fmt):
    if fmt not in (*STORAGE_FORMATS, "n_m"):
        raise ValueError(f"fmt must be one of {', '.join(map(repr, STORAGE_FORMATS))}, 'n_m', "
                         f"not {fmt!r}")


def storage_footprints(w2d, value_bits=8, *, formats=STORAGE_FORMATS, n_m=None):
    """The :class:`Footprint` of an integer weight matrix in each format offered.

    Parameters
    ----------
    w2d : 2-D integer array
        The (out, k) GEMM weight codes.
    value_bits : int
        Bits per stored value, 2 to 8 (sub-8-bit values packed, :func:`pack_values`).
    formats : tuple of str
        Among :data:`STORAGE_FORMATS`; ignored with ``n_m``.
    n_m : (int, int) or None
        The ``(n, m)`` pattern the matrix is stored in (along its rows, axis 1): then the only
        format is ``"n_m"`` (:func:`nbytes_n_m`).

    Returns
    -------
    dict of str -> Footprint, in the order of ``formats`` (or ``{"n_m": ...}``).
    """
    arr = _matrix(w2d)
    value_bits = _check_value_bits(value_bits)
    if n_m is not None:
        n, m = n_m
        return {"n_m": nbytes_n_m(arr.shape, n, m, axis=1, value_bits=value_bits)}
    nnz = int(np.count_nonzero(arr))
    make = {"dense": lambda: nbytes_dense(arr.shape, value_bits),
            "bitmap": lambda: nbytes_bitmap(arr.shape, nnz, value_bits),
            "csr": lambda: nbytes_csr(arr.shape, nnz, value_bits)}
    return {f: make[f]() for f in _check_formats(formats)}


def storage_format(w2d, value_bits=8, *, formats=STORAGE_FORMATS, n_m=None):
    """``(format, Footprint)``: the smallest of :func:`storage_footprints` (metadata
    included; on a tie the format listed first, so dense beats an equal-sized bitmap)."""
    prints = storage_footprints(w2d, value_bits, formats=formats, n_m=n_m)
    best = min(prints, key=lambda f: prints[f].nbytes)     # min keeps the first of equals
    return best, prints[best]


def encode_weights(w2d, fmt, value_bits=8, *, n_m=None):
    """The buffers an integer weight matrix is stored as, in format ``fmt``.

    Returns a dict of 1-D arrays: ``values`` (the codes :func:`pack_values` packs: all of
    them for ``"dense"``, the non-zeros in C order for ``"bitmap"`` and ``"csr"``, the kept
    values of :func:`compress_n_m` for ``"n_m"``) and the metadata: ``bitmap``
    (:func:`to_bitmap`), ``indices`` and ``indptr`` (:func:`to_csr`) or ``indices``
    (:func:`pack_indices`). ``values.nbytes`` and the sum of the metadata buffers' ``nbytes``
    are the format's :class:`Footprint`.
    """
    arr = _matrix(w2d)
    value_bits = _check_value_bits(value_bits)
    if fmt == "n_m":
        if n_m is None:
            raise ValueError("format 'n_m' needs n_m=(n, m)")
        n, m = n_m
        values, indices = compress_n_m(arr, n, m, axis=1)
        return {"values": pack_values(values, value_bits),
                "indices": pack_indices(indices, m)}
    _check_fmt(fmt)
    if fmt == "dense":
        return {"values": pack_values(arr, value_bits)}
    if fmt == "bitmap":
        bitmap, values = to_bitmap(arr)
        return {"values": pack_values(values, value_bits), "bitmap": bitmap}
    data, indices, indptr = to_csr(arr)
    return {"values": pack_values(data, value_bits), "indices": indices, "indptr": indptr}


def decode_weights(buffers, fmt, shape, value_bits=8, *, n_m=None):
    """Inverse of :func:`encode_weights`: the int8 matrix of ``shape`` (``n_m``: the
    ``(n, m)`` pattern, for ``"n_m"``)."""
    rows, cols = _shape(shape)
    value_bits = _check_value_bits(value_bits)
    if fmt == "n_m":
        if n_m is None:
            raise ValueError("format 'n_m' needs n_m=(n, m)")
        n, m = _check_n_m_params(*n_m)
        if cols % m:
            raise ValueError(f"shape {(rows, cols)} has rows of {cols}, not divisible by "
                             f"M = {m}")
        kept = rows * cols // m * n
        idx = unpack_indices(buffers["indices"], m, kept).reshape(rows, cols // m, n)
        vals = unpack_values(buffers["values"], value_bits, kept).reshape(idx.shape)
        return decompress_n_m(vals, idx, m, axis=1)
    _check_fmt(fmt)
    if fmt == "dense":
        return unpack_values(buffers["values"], value_bits, rows * cols).reshape(rows, cols)
    if fmt == "bitmap":
        bitmap = _as_bytes(buffers["bitmap"], "bitmap")
        nnz = int(np.unpackbits(bitmap, bitorder=BITMAP_BITORDER)[:rows * cols].sum())
        return from_bitmap(bitmap, unpack_values(buffers["values"], value_bits, nnz),
                           (rows, cols))
    nnz = len(buffers["indices"])
    return from_csr(unpack_values(buffers["values"], value_bits, nnz), buffers["indices"],
                    buffers["indptr"], (rows, cols))


# --- report -----------------------------------------------------------------------------------

_SIZE_KEYS = ("float32", "dense", "n_m", "bitmap", "csr")


def _ratio(num, den):
    return num / den if den else None


def compression_report(layers, *, n=2, m=4, value_bits=8):
    """Storage of each layer (and the total) in float32, dense int, N:M, bitmap and CSR.

    Each layer is viewed as a 2-D GEMM weight ``(out, rest)`` (``w.reshape(out, -1)``: a linear
    ``(out, in)`` stays as is, a conv OIHW becomes ``(O, I*H*W)``) and pruned N:M along its last
    axis with :func:`~golden_model.prune.prune_n_m`. The bitmap and CSR sizes are those of the
    same N:M-pruned tensor (its non-zeros counted on the float weights; zeros created later by
    quantization are not counted). All integer formats store ``value_bits``-bit values and
    include their metadata.

    Parameters
    ----------
    layers : dict of name -> ndarray of float
        Non-empty; each weight at least 1-D (a 1-D weight is one row) with a last dimension of
        the 2-D view divisible by ``m``.
    n, m : int
        Sparsity pattern.
    value_bits : int
        Bits per stored integer value (8 for int8).

    Returns
    -------
    list of dict
        One row per layer in order, then a row named ``"total"``. Keys: ``layer``, ``shape``
        (``None`` in the total), ``params``, ``nnz`` (after N:M pruning), ``n``, ``m``,
        ``value_bits``, byte counts ``float32``, ``dense``, ``n_m_values``, ``n_m_metadata``,
        ``n_m``, ``bitmap_values``, ``bitmap_metadata``, ``bitmap``, ``csr_values``,
        ``csr_metadata``, ``csr``, and ratios ``ratio_dense``, ``ratio_n_m``, ``ratio_bitmap``,
        ``ratio_csr`` = float32 bytes / format bytes (``None`` for 0 bytes).

    Raises
    ------
    TypeError
        If ``layers`` is not a dict or a weight is not a floating-point array.
    ValueError
        If ``layers`` is empty, or as :func:`nbytes_n_m` for a layer.
    """
    if not isinstance(layers, dict):
        raise TypeError(f"layers must be a dict of name -> weights, not {type(layers).__name__}")
    if not layers:
        raise ValueError("layers must be a non-empty dict of weights, not {}")
    n, m = _check_n_m_params(n, m)
    check_int(value_bits, "value_bits", lo=1, hi=64)
    rows = []
    for name, w in layers.items():
        arr = as_float_array(w, f"layers[{name!r}]")
        if arr.ndim == 0:
            raise ValueError(f"layers[{name!r}] must have at least 1 dimension, not 0")
        w2d = arr.reshape(1 if arr.ndim == 1 else arr.shape[0], -1)
        if w2d.shape[1] % m:
            raise ValueError(f"layers[{name!r}] has {w2d.shape[1]} inputs per output, "
                             f"not divisible by M = {m}")
        pruned = np.where(prune_n_m(w2d, n, m, axis=-1), w2d, 0)
        nnz = int(np.count_nonzero(pruned))
        sizes = {
            "float32": nbytes_dense(w2d.shape, 32),
            "dense": nbytes_dense(w2d.shape, value_bits),
            "n_m": nbytes_n_m(w2d.shape, n, m, -1, value_bits),
            "bitmap": nbytes_bitmap(w2d.shape, nnz, value_bits),
            "csr": nbytes_csr(w2d.shape, nnz, value_bits),
        }
        row = {"layer": str(name), "shape": tuple(arr.shape), "params": int(arr.size),
               "nnz": nnz, "n": n, "m": m, "value_bits": value_bits}
        for key, fp in sizes.items():
            row[key] = fp.nbytes
            if key in ("n_m", "bitmap", "csr"):
                row[f"{key}_values"], row[f"{key}_metadata"] = fp.values, fp.metadata
        rows.append(row)
    total = {"layer": "total", "shape": None, "n": n, "m": m, "value_bits": value_bits}
    for key in ("params", "nnz", *_SIZE_KEYS, "n_m_values", "n_m_metadata", "bitmap_values",
                "bitmap_metadata", "csr_values", "csr_metadata"):
        total[key] = sum(r[key] for r in rows)
    rows.append(total)
    for row in rows:
        for key in _SIZE_KEYS[1:]:
            row[f"ratio_{key}"] = _ratio(row["float32"], row[key])
    return rows


def format_report(rows):
    """Markdown table of :func:`compression_report` rows (byte counts, ratios vs float32).

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`compression_report`.

    Returns
    -------
    str
        A GitHub-flavoured Markdown table ending with a newline.

    Raises
    ------
    ValueError
        If ``rows`` is empty.
    """
    if not rows:
        raise ValueError("rows must be a non-empty list of report rows, not []")
    first = rows[0]
    nm, bits = f"{first['n']}:{first['m']}", first["value_bits"]
    header = ["layer", "shape", "params", "nnz", "float32 B", f"int{bits} dense B",
              f"{nm} B (values + meta)", "bitmap B (values + meta)", "CSR B (values + meta)",
              "x dense", f"x {nm}", "x bitmap", "x CSR"]

    def ratio(value):
        return "-" if value is None else f"{value:.2f}x"

    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    for r in rows:
        shape = "" if r["shape"] is None else "x".join(str(s) for s in r["shape"])
        cells = [r["layer"], shape, str(r["params"]), str(r["nnz"]), str(r["float32"]),
                 str(r["dense"]),
                 f"{r['n_m']} ({r['n_m_values']} + {r['n_m_metadata']})",
                 f"{r['bitmap']} ({r['bitmap_values']} + {r['bitmap_metadata']})",
                 f"{r['csr']} ({r['csr_values']} + {r['csr_metadata']})",
                 ratio(r["ratio_dense"]), ratio(r["ratio_n_m"]), ratio(r["ratio_bitmap"]),
                 ratio(r["ratio_csr"])]
        if r["layer"] == "total":
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
