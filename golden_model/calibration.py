"""Calibration: quantization ranges ``(rmin, rmax)`` from data.

Every function returns a float64 pair ``(rmin, rmax)``: two scalars per tensor
(``axis=None``), or two 1-D arrays of length ``x.shape[axis]`` per channel, the statistics of
channel ``c`` being taken over all the elements of ``x.take(c, axis)``. A per-channel result is
the per-tensor algorithm applied to each channel on its own (the per-tensor case is the one
channel case of the same code). Pass the pair to ``quant.qparams_from_range`` to get a scale and
zero point; that function widens the range to include 0.

Algorithms
----------
``minmax``
    Smallest and largest value (:func:`minmax_range`); across batches :class:`MinMaxObserver`
    and :class:`MovingAverageMinMax` (PyTorch's observers).
``percentile``
    A percentile of ``|x|`` (symmetric) or of ``x`` (:func:`percentile_range`).
``mse``
    The clip threshold minimizing the mean squared quantization error over a histogram
    (:func:`mse_range`).
``kl``
    TensorRT entropy calibration: the threshold minimizing ``KL(P || Q)`` (:func:`kl_range`).

Which quantizer the search optimizes
------------------------------------
By default ``mse`` and ``kl`` search the threshold of a symmetric signed code (``2^(bits-1) - 1``
levels each side; 128 levels for KL, TensorRT's int8). Non-negative data such as ReLU outputs
is then quantized one-sided: ``quant.qparams_from_range(0, t)`` gives an affine code of
``2^bits - 1`` steps over ``[0, t]`` with 0 at the bottom code (int8: scale ``t / 255``, zero
point -128). ``one_sided=True`` makes both searches optimize that quantizer instead:
``2^bits - 1`` steps for MSE, ``2^bits`` levels for KL, the range ``(0, t)``. ``bits`` (2 to
16) sets the levels of both (``kl_range`` derives ``num_quant_bins`` from it).

Shared conventions
------------------
- Input is any float16/32/64 array (or a list of numbers); computation is in float64.
  Integer arrays, NaN, Inf and empty data are rejected.
- Histograms (``mse``, ``kl``) have ``num_bins`` bins of equal width ``w = max|x| / num_bins``
  over ``[0, max|x|]``, the last bin closed so that ``max|x|`` falls into it; per channel, each
  channel over its own ``max|x|``. They are computed on the unit scale, as
  ``np.histogram(|x| / max|x|, bins=num_bins, range=(0, 1))``, and so are the searches; a
  threshold is a unit bin edge ``np.linspace(0, 1, num_bins + 1)[i]`` times ``max|x|``. This
  never overflows, even near the float64 limit, and scaling ``x`` by a power of two scales
  the range exactly (while ``x * 2^k`` stays normal). When ``max|x|`` is a power of two the
  histogram is exactly ``np.histogram(|x|, bins=num_bins, range=(0, max|x|))``.
- Data (or a channel) that is all zeros gives the range ``(0.0, 0.0)`` from every algorithm,
  without a division by zero or a warning; ``qparams_from_range`` maps it to its fallback
  scale 1.0.
- Symmetric algorithms return ``(-t, t)`` with ``0 <= t <= max|x|``; one-sided ones
  (``one_sided=True``) return ``(0, t)`` with ``0 <= t <= max(x, 0)``, their histograms being
  those of the positive values only, over ``[0, max(x)]``. The one-sided quantizer maps every
  value ``<= 0`` to code 0, exactly for 0 and whatever ``t`` is for a negative value, so
  leaving them out does not change the MSE argmin; for KL, exact zeros are a level shared by
  ``P`` and ``Q`` (leaving them out scales every divergence by one factor), and negative
  values, which a one-sided range is not meant for, are not part of the distribution. Data
  or a channel with no positive value gives ``(0.0, 0.0)``.
- Ties between candidate thresholds go to the first candidate (the smallest threshold), as
  ``np.argmin`` returns.
"""

import numbers

import numpy as np

from common.checks import (
    as_float_array,
    check_axis,
    check_bits,
    check_choice,
    check_finite,
    check_int,
)

__all__ = [
    "METHODS", "KL_EPSILON", "minmax_range", "percentile_range", "mse_range", "kl_range",
    "calibrate", "MinMaxObserver", "MovingAverageMinMax",
]

#: Names accepted by :func:`calibrate`.
METHODS = ("minmax", "percentile", "mse", "kl")

#: Floor given to the candidate distribution Q of :func:`kl_range` where Q is 0 and the reference
#: P is not. A non-zero Q is at least ``1 / (count * num_bins)`` (about 1e-22 for 2^53 samples in
#: a million bins), so the floor never changes a non-zero Q.
KL_EPSILON = 1e-30

# Number of fractions of each side of the range tried by the asymmetric MSE grid search.
_ASYM_GRID = 64
# Work arrays of the MSE search are kept around this many elements.
_CHUNK = 1 << 19


# -- validation and layout ------------------------------------------------------------------

def _channels(x, axis, name="x"):
    """Validate data; return it as a float64 2-D array ``(channels, values)`` and the axis."""
    x = as_float_array(x, name)
    if x.size == 0:
        raise ValueError(f"{name} must be non-empty, not an array of shape {x.shape}")
    check_finite(x, name)
    if axis is None:
        return x.astype(np.float64).reshape(1, -1), None
    axis = check_axis(axis, x.ndim)
    x2 = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    return x2.astype(np.float64), axis


def _out(lo, hi, axis):
    """Scalars for a per-tensor result, 1-D arrays for a per-channel one; -0.0 becomes 0.0."""
    lo = np.asarray(lo, dtype=np.float64) + 0.0
    hi = np.asarray(hi, dtype=np.float64) + 0.0
    if axis is None:
        return lo[0], hi[0]
    return lo, hi


def _symmetric(t, axis):
    return _out(-t, t, axis)


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return bool(value)


def _check_real(value, name, lo, hi, *, lo_open):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {value!r}")
    value = float(value)
    ok = (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        left = "(" if lo_open else "["
        raise ValueError(f"{name} must be in {left}{lo:g}, {hi:g}], not {value:g}")
    return value


def _abs_histograms(a, num_bins, one_sided=False):
    """Histograms of ``|row| / max|row|`` over ``[0, 1]``; rows with max 0 are skipped.

    ``one_sided``: of the positive values of each row only, over ``[0, max(row)]``.

    Returns ``(amax, live, hist, edges)``: ``amax`` per row, ``live`` the indices of the rows
    with ``amax > 0``, ``hist`` their float64 counts (2-D) and ``edges`` the unit bin edges
    (``np.linspace(0, 1, num_bins + 1)``, shared by every row).
    """
    mag = np.maximum(a, 0.0) if one_sided else np.abs(a)
    amax = mag.max(axis=1)
    live = np.flatnonzero(amax > 0)
    hist = np.empty((live.size, num_bins), dtype=np.float64)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    for k, c in enumerate(live):
        row = mag[c][mag[c] > 0] if one_sided else mag[c]
        hist[k], _ = np.histogram(row / amax[c], bins=num_bins, range=(0.0, 1.0))
    return amax, live, hist, edges


# -- min-max ---------------------------------------------------------------------------------

def minmax_range(x, *, axis=None):
    """Smallest and largest value of ``x``, per tensor or per channel.

    The range is returned as observed: it is not widened to include 0 (the quantization side,
    ``qparams_from_range``, does that).

    Parameters
    ----------
    x : float array
        Calibration data, float16/32/64, finite, non-empty.
    axis : int or None
        ``None`` for one range over the whole tensor; an axis for one range per index along it.

    Returns
    -------
    (rmin, rmax) : float64 scalars, or 1-D float64 arrays of length ``x.shape[axis]``.

    Raises
    ------
    TypeError
        ``x`` not floating point; ``axis`` not an integer.
    ValueError
        ``x`` empty or not finite; ``axis`` out of range.
    """
    a, axis = _channels(x, axis)
    return _out(a.min(axis=1), a.max(axis=1), axis)


class MinMaxObserver:
    """Running min-max across batches (PyTorch ``MinMaxObserver``).

    After the batches ``x_1 .. x_n``, :attr:`range` is ``(min_k min(x_k), max_k max(x_k))``:
    the min-max range of their concatenation. Per channel along ``axis`` when given, every batch
    then having the same number of channels along it. State is float64.

    Parameters
    ----------
    axis : int or None
        As in :func:`minmax_range`.

    Members
    -------
    axis : int or None
        Read-only.
    batches : int
        Number of batches seen.
    range : (rmin, rmax)
        As :func:`minmax_range` returns it; ``RuntimeError`` before the first batch.

    Raises
    ------
    TypeError
        ``axis`` not an integer or None.
    """

    def __init__(self, axis=None):
        if axis is not None:
            axis = check_int(axis, "axis")
        self._axis = axis
        self.reset()

    @property
    def axis(self):
        return self._axis

    @property
    def batches(self):
        return self._batches

    def reset(self):
        """Forget every batch seen."""
        self._min = None
        self._max = None
        self._batches = 0

    def _batch(self, x):
        a, _ = _channels(x, self._axis)
        if self._min is not None and a.shape[0] != self._min.shape[0]:
            raise ValueError(f"x must have {self._min.shape[0]} channels along axis "
                             f"{self._axis}, as the first batch, not {a.shape[0]}")
        return a.min(axis=1), a.max(axis=1)

    def update(self, x):
        """Fold one batch into the range.

        Parameters
        ----------
        x : float array
            One batch, as the data of :func:`minmax_range`.

        Raises
        ------
        TypeError, ValueError
            As :func:`minmax_range`; also a channel count different from the first batch's.
        """
        lo, hi = self._batch(x)
        if self._min is None:
            self._min, self._max = lo, hi
        else:
            self._min, self._max = self._fold(lo, hi)
        self._batches += 1

    def _fold(self, lo, hi):
        """The new ``(min, max)`` state from a batch's ``(lo, hi)``; subclasses change this."""
        return np.minimum(self._min, lo), np.maximum(self._max, hi)

    @property
    def range(self):
        if self._min is None:
            raise RuntimeError(f"{type(self).__name__} has no range before the first update")
        return _out(self._min, self._max, self._axis)


class MovingAverageMinMax(MinMaxObserver):
    """Exponential moving average of the batch min and max (PyTorch
    ``MovingAverageMinMaxObserver`` / ``MovingAveragePerChannelMinMaxObserver``).

    The first batch sets ``min = min(x_1)`` and ``max = max(x_1)``; each later batch ``x``
    moves them by ``momentum`` of the way to its own extrema::

        min <- min + momentum * (min(x) - min)
        max <- max + momentum * (max(x) - max)

    ``momentum`` is the weight of the new batch (PyTorch's ``averaging_constant``), not of the
    old state: ``momentum=1`` keeps only the last batch, a small momentum averages over about
    ``1 / momentum`` batches. State is float64 (PyTorch keeps float32).

    Parameters
    ----------
    momentum : float
        In ``(0, 1]``; 0.01 by default, as PyTorch.
    axis : int or None
        As in :func:`minmax_range`.

    Members
    -------
    momentum : float
        Read-only.
    axis, batches, range
        As :class:`MinMaxObserver`.

    Raises
    ------
    TypeError
        ``momentum`` not a real number; ``axis`` not an integer or None.
    ValueError
        ``momentum`` outside ``(0, 1]``.
    """

    def __init__(self, momentum=0.01, axis=None):
        self._momentum = _check_real(momentum, "momentum", 0.0, 1.0, lo_open=True)
        super().__init__(axis)

    @property
    def momentum(self):
        return self._momentum

    def _fold(self, lo, hi):
        m = self._momentum
        return self._min + m * (lo - self._min), self._max + m * (hi - self._max)


# -- percentile ------------------------------------------------------------------------------

def percentile_range(x, percentile=99.99, *, axis=None, symmetric=True):
    """Range from a percentile of the data, clipping the rarest values.

    Symmetric: ``t = np.percentile(|x|, percentile)`` and the range is ``(-t, t)``.
    Asymmetric: ``(np.percentile(x, 100 - percentile), np.percentile(x, percentile))``.
    Percentiles are NumPy's default ``method="linear"`` (interpolated between the two closest
    order statistics), computed in float64. ``percentile=100`` gives ``max|x|`` (symmetric) or
    the min-max range (asymmetric).

    Parameters
    ----------
    x : float array
        Calibration data, float16/32/64, finite, non-empty.
    percentile : float
        In ``(0, 100]``; in ``[50, 100]`` when asymmetric (below 50 the lower bound would exceed
        the upper one, which ``qparams_from_range`` rejects).
    axis : int or None
        As in :func:`minmax_range`.
    symmetric : bool
        Percentile of ``|x|`` and a range symmetric around 0, or the two tails of ``x``.

    Returns
    -------
    (rmin, rmax) : float64 scalars, or 1-D float64 arrays of length ``x.shape[axis]``.

    Raises
    ------
    TypeError
        ``x`` not floating point; ``percentile`` not a real number; ``symmetric`` not a bool;
        ``axis`` not an integer.
    ValueError
        ``x`` empty or not finite; ``percentile`` out of range; ``axis`` out of range.
    """
    symmetric = _check_bool(symmetric, "symmetric")
    if symmetric:
        p = _check_real(percentile, "percentile", 0.0, 100.0, lo_open=True)
    else:
        p = _check_real(percentile, "percentile", 50.0, 100.0, lo_open=False)
    a, axis = _channels(x, axis)
    if symmetric:
        return _symmetric(np.percentile(np.abs(a), p, axis=1), axis)
    lo, hi = np.percentile(a, [100.0 - p, p], axis=1)
    return _out(lo, hi, axis)


# -- MSE ---------------------------------------------------------------------------------------

def _mse_symmetric(hist, edges, levels):
    """Index ``k`` (1-based edge) minimizing the histogram MSE of symmetric quantization."""
    nz = hist > 0
    h = hist[nz]
    centres = 0.5 * (edges[:-1] + edges[1:])[nz]
    t = edges[1:]
    errors = np.empty(t.size, dtype=np.float64)
    step = max(1, _CHUNK // h.size)
    for s in range(0, t.size, step):
        scale = (t[s:s + step] / levels)[:, None]
        q = np.minimum(np.rint(centres / scale), levels)
        errors[s:s + step] = ((centres - q * scale) ** 2 * h).sum(axis=1)
    return int(np.argmin(errors))


def _mse_affine(a, num_bins, bits):
    """Asymmetric grid search of one row; returns ``(lo, hi)``."""
    lo0 = min(a.min(), 0.0)
    hi0 = max(a.max(), 0.0)
    if lo0 == hi0:
        return 0.0, 0.0
    frac = np.arange(1, _ASYM_GRID + 1) / _ASYM_GRID

    def grid(lo, hi):
        lows = lo * frac if lo < 0 else np.zeros(1)
        highs = hi * frac if hi > 0 else np.zeros(1)
        return np.repeat(lows, highs.size), np.tile(highs, lows.size)

    # The search runs on the unit scale, where the larger side is 1 (no overflow, no underflow
    # of a whole side, so every scale is positive); the chosen pair is returned in x's units,
    # within [min(x, 0), max(x, 0)].
    lo_out, hi_out = grid(lo0, hi0)
    unit = max(-lo0, hi0)
    lo0, hi0 = lo0 / unit, hi0 / unit
    lo_c, hi_c = grid(lo0, hi0)
    hist, edges = np.histogram(a / unit, bins=num_bins, range=(lo0, hi0))
    nz = hist > 0
    h = hist[nz].astype(np.float64)
    centres = 0.5 * (edges[:-1] + edges[1:])[nz]
    qmax = float((1 << bits) - 1)
    errors = np.empty(lo_c.size, dtype=np.float64)
    step = max(1, _CHUNK // h.size)
    for s in range(0, lo_c.size, step):
        lo = lo_c[s:s + step, None]
        scale = (hi_c[s:s + step, None] - lo) / qmax
        zp = np.clip(-np.rint(lo / scale), 0.0, qmax)
        q = np.clip(np.rint(centres / scale) + zp, 0.0, qmax)
        errors[s:s + step] = ((centres - (q - zp) * scale) ** 2 * h).sum(axis=1)
    k = int(np.argmin(errors))
    return lo_out[k], hi_out[k]


def mse_range(x, *, bits=8, axis=None, symmetric=True, num_bins=2048, one_sided=False):
    """Clipping range minimizing the mean squared quantization error over a histogram.

    Symmetric (the default): the histogram of ``|x|`` (``num_bins`` bins over
    ``[0, max|x|]``, see the module docstring) stands for the data, each bin by its count at
    its centre ``c_j``. Every bin edge ``t = k * w``, ``k = 1 .. num_bins``, is a candidate
    threshold of symmetric quantization with ``L = 2^(bits-1) - 1`` levels each side
    (``scale = t / L``, zero point 0, rounding half to even, codes clamped to ``[-L, L]``).
    The error of a candidate, ``sum_j hist_j * (c_j - scale * min(round(c_j / scale), L))^2``
    (evaluated on the unit scale of the module docstring), holds both the clipping error of the
    bins beyond ``t`` and the rounding error of those below (NVIDIA pytorch-quantization's "mse"
    method, with edges as candidates instead of centres). The smallest-error candidate wins,
    the smallest ``t`` on a tie; the range is ``(-t, t)``. Each bin stands at its centre, so a
    tensor of equal magnitudes gets ``t`` just below ``max|x|`` (by about ``w / 2``).

    One-sided (``one_sided=True``): the quantizer applied to non-negative data, affine over
    ``[0, t]`` with ``L = 2^bits - 1`` steps and 0 at the bottom code (what
    ``quant.qparams_from_range(0, t, bits=bits)`` gives; ``scale = t / L``). The same search
    as the symmetric one, with that ``L`` and the histogram of the positive values over
    ``[0, max(x)]`` (values ``<= 0`` are left out: their error does not depend on ``t``);
    the range is ``(0, t)``.

    Asymmetric (``symmetric=False``): a coarse grid search. The histogram is of ``x`` over
    ``[min(x, 0), max(x, 0)]`` (``num_bins`` bins, computed on the scale where the larger of
    ``-min(x, 0)`` and ``max(x, 0)`` is 1); candidate bounds are ``lo = min(x, 0) * i
    / 64`` and ``hi = max(x, 0) * j / 64`` for ``i, j = 1 .. 64`` (just 0 on a side with no
    data); each pair is scored with the affine quantization of ``quant.qparams_from_range``
    (``scale = (hi - lo) / (2^bits - 1)``, zero point ``round(-lo / scale)`` clamped, rounding
    half to even) at the bin centres. The first minimum with ``i`` outer and ``j`` inner wins
    (the narrowest low bound, then the narrowest high bound). The range always contains 0.

    Parameters
    ----------
    x : float array
        Calibration data, float16/32/64, finite, non-empty.
    bits : int
        Code width, 2 to 16.
    axis : int or None
        As in :func:`minmax_range`.
    symmetric : bool
        Symmetric threshold search, or the asymmetric grid search.
    num_bins : int
        Histogram bins, at least 1.
    one_sided : bool
        Optimize the one-sided quantizer over ``[0, t]`` (for ReLU outputs); needs
        ``symmetric=True`` (the default).

    Returns
    -------
    (rmin, rmax) : float64 scalars, or 1-D float64 arrays of length ``x.shape[axis]``.

    Raises
    ------
    TypeError
        ``x`` not floating point; ``bits``, ``num_bins`` or ``axis`` not an integer;
        ``symmetric`` or ``one_sided`` not a bool.
    ValueError
        ``x`` empty or not finite; ``bits``, ``num_bins`` or ``axis`` out of range;
        ``one_sided=True`` with ``symmetric=False``.
    """
    bits = check_bits(bits)
    symmetric = _check_bool(symmetric, "symmetric")
    one_sided = _check_bool(one_sided, "one_sided")
    if one_sided and not symmetric:
        raise ValueError("one_sided=True searches a range (0, t) and takes symmetric=True, "
                         "not symmetric=False")
    num_bins = check_int(num_bins, "num_bins", lo=1)
    a, axis = _channels(x, axis)
    if one_sided:
        levels = float((1 << bits) - 1)
        amax, live, hist, edges = _abs_histograms(a, num_bins, one_sided=True)
        t = np.zeros(a.shape[0], dtype=np.float64)
        for k, c in enumerate(live):
            t[c] = edges[1 + _mse_symmetric(hist[k], edges, levels)] * amax[c]
        return _out(np.zeros_like(t), t, axis)
    if not symmetric:
        pairs = [_mse_affine(row, num_bins, bits) for row in a]
        lo, hi = np.array(pairs, dtype=np.float64).reshape(-1, 2).T
        return _out(lo, hi, axis)
    levels = float((1 << (bits - 1)) - 1)
    amax, live, hist, edges = _abs_histograms(a, num_bins)
    t = np.zeros(a.shape[0], dtype=np.float64)
    for k, c in enumerate(live):
        t[c] = edges[1 + _mse_symmetric(hist[k], edges, levels)] * amax[c]
    return _symmetric(t, axis)


# -- KL divergence (TensorRT entropy calibration) ---------------------------------------------

def _kl_divergences(hist, num_quant_bins):
    """``KL(P_i || Q_i)`` of every candidate ``i`` in ``[num_quant_bins, hist.size]``.

    Evaluated per level rather than per bin: in level ``k`` (``S_k`` counts in ``n_k``
    non-zero bins) every non-zero bin has ``Q_j = S_k / (n_k * Z)`` with ``Z = sum(hist[:i])``,
    so the bins of a level contribute ``sum_j hist_j * log(hist_j * n_k * Z / (N * S_k)) / N``,
    which prefix sums of ``hist``, ``hist > 0`` and ``hist * log(hist)`` give for every
    candidate at once. Bin ``i-1`` is then corrected for the outliers folded into ``P``.
    """
    num_bins = hist.size
    nq = num_quant_bins
    total = hist.sum()
    cand = np.arange(nq, num_bins + 1)
    # Level k of candidate i holds bins ceil(k * i / nq) .. ceil((k + 1) * i / nq) - 1, the
    # bins j with floor(j * nq / i) == k.
    bounds = (np.arange(nq + 1)[None, :] * cand[:, None] + nq - 1) // nq
    nonzero = hist > 0
    hlogh = hist * np.log(np.where(nonzero, hist, 1.0))
    c_count = np.concatenate(([0.0], np.cumsum(hist)))
    c_width = np.concatenate(([0], np.cumsum(nonzero)))
    c_hlogh = np.concatenate(([0.0], np.cumsum(hlogh)))
    count = np.diff(c_count[bounds], axis=1)
    width = np.diff(c_width[bounds], axis=1)
    hl = np.diff(c_hlogh[bounds], axis=1)
    z = c_count[cand][:, None]
    live = count > 0
    log_q = np.log(np.divide(count, width * z, out=np.ones_like(count), where=live))
    log_n = np.log(total)
    kl = np.where(live, hl - count * (log_n + log_q), 0.0).sum(axis=1)
    # Bin i-1: P gets the tail; Q is the level's mean, or KL_EPSILON if the bin is empty.
    last = hist[cand - 1]
    tail = total - c_count[cand]
    has = last > 0
    log_last = np.log(np.where(has, last, 1.0))
    log_q_last = np.where(has, log_q[:, -1], np.log(KL_EPSILON))
    folded = last + tail
    old = np.where(has, last * (log_last - log_n - log_q_last), 0.0)
    new = folded * (np.log(np.where(folded > 0, folded, 1.0)) - log_n - log_q_last)
    kl += np.where(tail > 0, new - old, 0.0)
    return kl / total


def kl_range(x, *, axis=None, num_bins=2048, num_quant_bins=None, bits=None, one_sided=False):
    """Range minimizing the KL divergence: TensorRT entropy calibration, symmetric or
    one-sided.

    With ``hist`` the histogram of ``|x|`` (``num_bins`` bins of width ``w`` over
    ``[0, max|x|]``, see the module docstring), every ``i`` in ``[num_quant_bins, num_bins]``
    is a candidate number of bins kept:

    1. Reference ``P``: ``hist[:i]`` with the outliers ``sum(hist[i:])`` added to bin ``i-1``.
    2. Candidate ``Q``: ``hist[:i]`` (without the outliers) merged into ``num_quant_bins``
       levels, bin ``j`` going to level ``floor(j * num_quant_bins / i)`` (levels of
       ``floor`` or ``ceil`` of ``i / num_quant_bins`` consecutive bins, the equal split of
       pytorch-quantization), then expanded back: each level's count is spread uniformly over
       the bins of that level whose ``hist`` is non-zero; the others get 0.
    3. Both are normalized to sum 1 (an all-zero ``Q`` stays 0).
    4. ``KL(P || Q) = sum over P_j > 0 of P_j * log(P_j / Q_j)`` (natural log). Where
       ``P_j > 0`` but ``Q_j == 0`` (only bin ``i-1``, when it is empty and outliers were
       folded into it), ``Q_j`` is replaced by :data:`KL_EPSILON` (1e-30), without
       renormalizing: a large but finite penalty.

    The first (smallest) ``i`` of minimum divergence wins, and the threshold is the upper
    edge of bin ``i-1``: ``t = i * w`` (``edges[i]``), so ``i = num_bins`` gives ``max|x|``.
    (TensorRT's description uses ``(i + 0.5) * w``; pytorch-quantization uses ``edges[i]`` as
    here, but the last argmin.) The range is ``(-t, t)``. The histogram's bin 0 is used as is
    (pytorch-quantization overwrites it with bin 1).

    One-sided (``one_sided=True``, for the quantizer over ``[0, t]`` applied to ReLU outputs):
    the same search on the histogram of the positive values over ``[0, max(x)]`` (exact zeros
    are a level of their own in both ``P`` and ``Q``, and leaving them out scales every
    divergence by the same factor); the range is ``(0, t)``.

    The number of levels follows the code: ``num_quant_bins = 2^(bits-1)`` symmetric (128 at
    8 bits, TensorRT's, the magnitudes 0 .. 127 of a signed code), ``2^bits`` one-sided (the
    codes 0 .. 2^bits - 1), ``bits`` 8 by default. ``num_quant_bins``, when given, sets it
    directly instead.

    The sum of step 4 is evaluated per level, with prefix sums, for all candidates at once
    (the same sum up to float rounding; ``O(num_quant_bins)`` per candidate instead of
    ``O(i)``).

    Parameters
    ----------
    x : float array
        Calibration data, float16/32/64, finite, non-empty.
    axis : int or None
        As in :func:`minmax_range`.
    num_bins : int
        Histogram bins, at least ``num_quant_bins``.
    num_quant_bins : int or None
        Levels of the candidate distribution, at least 1; None (the default) derives them
        from ``bits``: 128 for int8 (the magnitudes of a symmetric signed code).
    bits : int or None
        Code width, 2 to 16 (8 when None); not together with ``num_quant_bins``.
    one_sided : bool
        Optimize the one-sided quantizer over ``[0, t]`` (for ReLU outputs).

    Returns
    -------
    (rmin, rmax) : float64 scalars, or 1-D float64 arrays of length ``x.shape[axis]``.

    Raises
    ------
    TypeError
        ``x`` not floating point; ``num_bins``, ``num_quant_bins``, ``bits`` or ``axis`` not
        an integer; ``one_sided`` not a bool.
    ValueError
        ``x`` empty or not finite; ``num_quant_bins < 1``; ``bits`` out of range; both
        ``bits`` and ``num_quant_bins``; ``num_bins < num_quant_bins``; ``axis`` out of range.
    """
    one_sided = _check_bool(one_sided, "one_sided")
    if num_quant_bins is None:
        bits = 8 if bits is None else check_bits(bits)
        num_quant_bins = 1 << bits if one_sided else 1 << (bits - 1)
    elif bits is not None:
        raise ValueError(f"kl_range takes bits or num_quant_bins, not both (bits={bits!r}, "
                         f"num_quant_bins={num_quant_bins!r})")
    num_quant_bins = check_int(num_quant_bins, "num_quant_bins", lo=1)
    num_bins = check_int(num_bins, "num_bins")
    if num_bins < num_quant_bins:
        raise ValueError(f"num_bins must be at least num_quant_bins ({num_quant_bins}), "
                         f"not {num_bins}")
    a, axis = _channels(x, axis)
    amax, live, hist, edges = _abs_histograms(a, num_bins, one_sided)
    t = np.zeros(a.shape[0], dtype=np.float64)
    for k, c in enumerate(live):
        i = num_quant_bins + int(np.argmin(_kl_divergences(hist[k], num_quant_bins)))
        t[c] = edges[i] * amax[c]
    if one_sided:
        return _out(np.zeros_like(t), t, axis)
    return _symmetric(t, axis)


# -- dispatcher --------------------------------------------------------------------------------

_FUNCTIONS = {
    "minmax": minmax_range, "percentile": percentile_range, "mse": mse_range, "kl": kl_range,
}


def calibrate(x, method="minmax", *, axis=None, **kwargs):
    """Range of ``x`` by the named calibration method.

    Parameters
    ----------
    x : float array
        Calibration data, float16/32/64, finite, non-empty.
    method : {"minmax", "percentile", "mse", "kl"}
        :func:`minmax_range`, :func:`percentile_range`, :func:`mse_range` or
        :func:`kl_range`.
    axis : int or None
        As in :func:`minmax_range`.
    **kwargs
        Passed on to the method's function (e.g. ``percentile=99.9``, ``bits=4``). For data
        that the graph quantizes one-sided (non-negative, range ``(0, t)``), pass
        ``one_sided=True`` to ``"mse"`` and ``"kl"`` so that they optimize that quantizer;
        both take ``bits``.

    Returns
    -------
    (rmin, rmax) : float64 scalars, or 1-D float64 arrays of length ``x.shape[axis]``.

    Raises
    ------
    TypeError
        A keyword the method does not take; as the method's function.
    ValueError
        An unknown ``method``; as the method's function.
    """
    check_choice(method, "method", METHODS)
    return _FUNCTIONS[method](x, axis=axis, **kwargs)
