"""Argument validation: one set of checks and one form of message for every layer.

Every public function of the project validates its arguments eagerly and raises ``TypeError``
for a wrong type or dtype and ``ValueError`` for a bad value, with messages of the form
``"<what> must be <rule>, not <value>"`` so that a user sees the problem and the value.
"""

import numbers
import operator

import numpy as np

__all__ = [
    "as_float_array", "as_int_array", "check_finite", "check_positive_scale", "check_bits",
    "check_int", "check_bool", "check_pair", "check_axis", "check_choice", "int_range",
]


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return repr(value)


def as_float_array(x, name="x"):
    """Return ``x`` as a floating-point ndarray (float16/32/64 kept as given)."""
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, (numbers.Real, list, tuple)) and not isinstance(x, bool):
        arr = np.asarray(x)
        if arr.dtype.kind in "iub":
            arr = arr.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a floating-point array, not {type(x).__name__}")
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, not dtype {arr.dtype}")
    return arr


def as_int_array(q, name="q", dtypes=None):
    """Return ``q`` as an integer ndarray; ``dtypes`` restricts the accepted dtypes."""
    if isinstance(q, np.ndarray):
        arr = q
    elif isinstance(q, (numbers.Integral, list, tuple)) and not isinstance(q, bool):
        arr = np.asarray(q)
        if arr.size == 0:
            arr = arr.astype(np.int64)
    else:
        raise TypeError(f"{name} must be an integer array, not {type(q).__name__}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, not dtype {arr.dtype}")
    if dtypes is not None and isinstance(q, np.ndarray):
        allowed = [np.dtype(d) for d in dtypes]
        if arr.dtype not in allowed:
            names = ", ".join(str(d) for d in allowed)
            raise TypeError(f"{name} must have dtype {names}, not {arr.dtype}")
    return arr


def check_finite(x, name="x"):
    """Raise ``ValueError`` naming the first NaN or Inf in ``x``."""
    bad = ~np.isfinite(x)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        value = np.asarray(x)[idx] if idx else np.asarray(x)[()]
        raise ValueError(f"{name} must be finite, but contains {value} at index {idx}")
    return x


def check_positive_scale(scale, name="scale"):
    """Return ``scale`` as a float array after checking every value is finite and > 0."""
    if isinstance(scale, bool) or not isinstance(scale, (numbers.Real, np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be a positive real number or array, "
                        f"not {type(scale).__name__}")
    arr = np.asarray(scale)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a positive real number or array, not dtype {arr.dtype}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        value = arr[tuple(np.argwhere(bad)[0])] if arr.ndim else arr[()]
        raise ValueError(f"{name} must be finite and positive, not {value}")
    return arr


def check_int(value, name, *, lo=None, hi=None):
    """Return ``operator.index(value)`` after checking ``lo <= value <= hi``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {_describe(value)}") from None
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be at least {lo}, not {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be at most {hi}, not {value}")
    return value


def check_pair(value, name, *, lo=1):
    """``(h, w)`` from an int (both) or a pair of ints, each at least ``lo`` (kernel sizes,
    strides, dilations)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), not {value!r}")
        return tuple(check_int(v, name, lo=lo) for v in value)
    value = check_int(value, name, lo=lo)
    return value, value


def check_bool(value, name):
    """Check that ``value`` is a bool (NumPy's included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return bool(value)


def check_bits(bits, name="bits"):
    """Bit widths of quantized values: 2 to 16."""
    return check_int(bits, name, lo=2, hi=16)


def check_axis(axis, ndim, name="axis"):
    """Return ``axis`` normalized to ``[0, ndim)``."""
    axis = check_int(axis, name)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name} must be in [{-ndim}, {ndim - 1}] for a {ndim}-d array, "
                         f"not {axis}")
    return axis % ndim


def check_choice(value, name, choices):
    """Check that ``value`` is one of ``choices`` (strings)."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, not {value!r}")
    return value


def int_range(bits, signed=True, narrow=False):
    """``(qmin, qmax)`` of a ``bits``-bit integer; ``narrow`` drops the most negative code."""
    bits = check_bits(bits)
    if signed:
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if narrow:
            qmin += 1
    else:
        qmin, qmax = 0, (1 << bits) - 1
        if narrow:
            qmin += 1
    return qmin, qmax
