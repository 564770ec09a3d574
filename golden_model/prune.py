"""Pruning: keep-masks for unstructured, N:M, filter, channel and neuron pruning.

Every pruning function returns an explicit boolean *keep-mask* (``True`` = keep, ``False`` =
pruned) and never modifies its input; :func:`apply_mask` zeroes the pruned weights and can be
re-applied after every weight update (it is idempotent). The rules follow the project's
``SEMANTICS.md`` ("Pruning"):

Magnitude, unstructured (:func:`magnitude_mask`, :func:`global_magnitude_masks`)
    By threshold ``theta``: ``|w| <= theta`` is pruned. By amount: a float fraction prunes
    ``round_half_even(fraction * n)`` elements, an int prunes that many
    (``torch.nn.utils.prune`` semantics); the smallest ``|w|`` go first and among equal
    ``|w|`` the lower flat (C-order) index is kept (the higher one is pruned first).
N:M structured (:func:`prune_n_m`, :func:`is_n_m`, :func:`check_n_m`)
    In every group of ``M`` consecutive weights along ``axis`` (the reduction / input axis) the
    ``N`` largest ``|w|`` are kept; among equal ``|w|`` the lower index is kept. ``M`` is a power
    of two in {2, 4, 8, 16}. Any real dtype is accepted (the hardware compresses int8 weights).
Filter / channel (:func:`filter_prune_mask`, :func:`channel_prune_mask`)
    Scores are the L1 or L2 norm of each output (axis 0) or input (axis 1) channel, or the FPGM
    score (He et al. 2019): the summed Euclidean distance to all other filters. The lowest
    scores are pruned; among equal scores the lower index is kept.
Neurons (:func:`neuron_prune_mask`, :func:`remove_neurons`)
    Units with the smallest mean ``|activation|`` are pruned (ties: lower index kept), and
    :func:`remove_neurons` physically removes their rows, biases and next-layer columns.
Importance scores (:func:`taylor_scores`, :func:`taylor_filter_scores`, :func:`obd_scores`,
:func:`obd_filter_scores`)
    From the loss's derivatives instead of the weights alone: first-order Taylor
    ``|w * dL/dw|`` (Molchanov et al. 2017, 2019) and Optimal Brain Damage's
    ``h_ii * w_i^2 / 2`` (LeCun et al. 1990). Any per-weight score chooses the kept weights of
    :func:`score_mask` (unstructured; a 1-D per-filter score gives a filter mask) and of
    :func:`prune_n_m` (``scores=``); the lowest scores are pruned, with the same tie rule.
Gradual pruning (:func:`cubic_sparsity`, :class:`PruningSchedule`)
    Zhu & Gupta 2017: ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0))^3``.

One tie rule everywhere: among equal magnitudes or scores the lower index is kept, so N:M
groups, unstructured, filter, channel and neuron pruning all break ties the same way.
"""

import dataclasses
import numbers

import numpy as np

from common.checks import (
    as_float_array,
    check_axis,
    check_bool,
    check_choice,
    check_finite,
    check_int,
)

__all__ = [
    "magnitude_mask", "global_magnitude_masks", "prune_count",
    "prune_n_m", "sparsify_n_m", "is_n_m", "check_n_m", "N_M_GROUP_SIZES",
    "filter_norms", "fpgm_scores", "filter_scores", "filter_prune_mask", "channel_prune_mask",
    "neuron_scores", "neuron_prune_mask", "remove_neurons",
    "taylor_scores", "taylor_filter_scores", "obd_scores", "obd_filter_scores", "score_mask",
    "cubic_sparsity", "PruningSchedule",
    "apply_mask",
]

#: Group sizes ``M`` accepted by the N:M functions.
N_M_GROUP_SIZES = (2, 4, 8, 16)

CRITERIA = ("l1", "l2", "fpgm")


# --- shared helpers ---------------------------------------------------------------------------

def _as_real_array(w, name="w"):
    """Return ``w`` as an ndarray of any real numeric dtype (signed, unsigned or float).

    Floats must be finite. Booleans, complex and object arrays are rejected with ``TypeError``.
    """
    if isinstance(w, np.ndarray):
        arr = w
    elif isinstance(w, (numbers.Real, list, tuple)) and not isinstance(w, bool):
        arr = np.asarray(w)
    else:
        raise TypeError(f"{name} must be a real numeric array, not {type(w).__name__}")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, not dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
    return arr


def _as_weights(w, name="w", *, min_ndim=0):
    """Return ``w`` as a finite floating-point array with at least ``min_ndim`` dimensions."""
    arr = as_float_array(w, name)
    check_finite(arr, name)
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension"
                         f"{'s' if min_ndim > 1 else ''}, not {arr.ndim}")
    return arr


def _as_mask(mask, name="mask"):
    """Return ``mask`` as a boolean ndarray (lists of bools accepted)."""
    arr = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
    if arr.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array, not dtype {arr.dtype}")
    return arr


def _same_shape(w, values, name):
    """``values`` (a per-weight quantity: scores, gradient, Hessian diagonal) as a finite float64
    array of ``w``'s shape."""
    arr = _as_weights(values, name)
    if arr.shape != w.shape:
        raise ValueError(f"{name} must have the shape of w {w.shape}, not {arr.shape}")
    return arr.astype(np.float64)


def _magnitude_key(arr):
    """Sort key whose ascending order is *descending* ``|w|``, exact for every real dtype.

    Floats: ``-|w|``. Integers: ``|w|`` as uint64 (``-2^63`` included, via two's complement),
    then bitwise NOT, which reverses the order without overflow.
    """
    if arr.dtype.kind == "f":
        return -np.abs(arr)
    mag = arr.astype(np.uint64)
    if arr.dtype.kind == "i":
        mag = np.where(arr < 0, np.negative(mag), mag)
    return np.invert(mag)


def prune_count(amount, size, name="amount"):
    """Number of elements to prune out of ``size`` for ``amount``.

    Parameters
    ----------
    amount : float or int
        A float (Python or NumPy) is a fraction in [0, 1]; it prunes
        ``round_half_even(amount * size)`` elements, computed in float64 as
        ``torch.nn.utils.prune`` does. An int is an absolute count in ``[0, size]``.
    size : int
        Number of prunable elements.
    name : str
        Name used in error messages.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``amount`` is neither a real float nor an integer (``bool`` is rejected).
    ValueError
        If a fraction is outside [0, 1] or a count outside ``[0, size]``.
    """
    if isinstance(amount, (bool, np.bool_)):
        raise TypeError(f"{name} must be a fraction in [0, 1] or an integer count, "
                        f"not {amount!r}")
    if isinstance(amount, numbers.Integral):
        return check_int(amount, name, lo=0, hi=size)
    if isinstance(amount, numbers.Real):
        fraction = float(amount)
        if not 0.0 <= fraction <= 1.0:  # NaN fails too
            raise ValueError(f"{name} must be between 0.0 and 1.0, not {amount!r}")
        return int(round(fraction * size))  # Python round: half to even
    raise TypeError(f"{name} must be a fraction in [0, 1] or an integer count, "
                    f"not {type(amount).__name__}")


def _prune_lowest(scores, count):
    """Keep-mask over the flat ``scores``: the ``count`` lowest are pruned, ties keep the
    lower index (among equal scores the higher index is pruned first)."""
    order = np.lexsort((-np.arange(scores.size), scores))
    keep = np.ones(scores.shape, dtype=np.bool_)
    keep[order[:count]] = False
    return keep


# --- unstructured magnitude pruning -----------------------------------------------------------

def magnitude_mask(w, *, threshold=None, amount=None):
    """Keep-mask of unstructured magnitude pruning, by threshold or by amount.

    Parameters
    ----------
    w : ndarray of float
        Weights of any shape (float16/32/64).
    threshold : float, optional
        Prune every weight with ``|w| <= threshold`` (the seed's rule). The comparison is exact:
        both sides are compared in float64, so ``threshold`` is not rounded to ``w``'s dtype.
    amount : float or int, optional
        Prune the ``prune_count(amount, w.size)`` weights of smallest ``|w|``; among equal
        ``|w|`` the lower flat (C-order) index is kept.

    Exactly one of ``threshold`` and ``amount`` must be given.

    Returns
    -------
    ndarray of bool, shape ``w.shape``
        ``True`` where the weight is kept.

    Raises
    ------
    TypeError
        If ``w`` is not a floating-point array, or ``threshold`` / ``amount`` has a wrong type.
    ValueError
        If both or neither of ``threshold`` and ``amount`` are given, ``w`` is not finite,
        ``threshold`` is negative or not finite, or ``amount`` is out of range.
    """
    arr = _as_weights(w)
    if (threshold is None) == (amount is None):
        raise ValueError("exactly one of threshold and amount must be given, not "
                         f"{'both' if threshold is not None else 'neither'}")
    if threshold is not None:
        if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real):
            raise TypeError(f"threshold must be a real number, not {threshold!r}")
        theta = np.float64(threshold)
        if not (np.isfinite(theta) and theta >= 0):
            raise ValueError(f"threshold must be finite and non-negative, not {threshold!r}")
        return np.abs(arr).astype(np.float64) > theta
    count = prune_count(amount, arr.size)
    return _prune_lowest(np.abs(arr).ravel(), count).reshape(arr.shape)


def global_magnitude_masks(weights, amount):
    """Keep-masks of global magnitude pruning: one ranking (one threshold) over all layers.

    The ``|w|`` of all layers are ranked together (in float64, exact for every float dtype) and
    the ``prune_count(amount, total_size)`` smallest are pruned. Among equal ``|w|`` the earlier
    layer (list order or dict insertion order), then the lower flat index, is kept.

    Parameters
    ----------
    weights : list or tuple of ndarray, or dict of name -> ndarray
        Floating-point weights of each layer.
    amount : float or int
        Fraction of all weights (float in [0, 1]) or count (int) to prune.

    Returns
    -------
    list or dict of ndarray of bool
        One keep-mask per layer, same container kind (a list for a list or tuple, a dict with
        the same keys for a dict) and same shapes.

    Raises
    ------
    TypeError
        If ``weights`` is not a list, tuple or dict, a layer is not a floating-point array, or
        ``amount`` has a wrong type.
    ValueError
        If a layer is not finite or ``amount`` is out of range.
    """
    if isinstance(weights, dict):
        names = list(weights)
        arrays = [_as_weights(weights[k], f"weights[{k!r}]") for k in names]
    elif isinstance(weights, (list, tuple)):
        names = None
        arrays = [_as_weights(x, f"weights[{i}]") for i, x in enumerate(weights)]
    else:
        raise TypeError(f"weights must be a list or dict of arrays, not {type(weights).__name__}")
    flat = [np.abs(a).astype(np.float64).ravel() for a in arrays]
    scores = np.concatenate(flat) if flat else np.zeros(0, dtype=np.float64)
    keep = _prune_lowest(scores, prune_count(amount, scores.size))
    bounds = np.cumsum([0] + [a.size for a in arrays])
    masks = [keep[lo:hi].reshape(a.shape) for lo, hi, a in zip(bounds, bounds[1:], arrays)]
    return dict(zip(names, masks)) if names is not None else masks


# --- N:M structured sparsity -------------------------------------------------------------------

def _check_n_m_params(n, m):
    m = check_int(m, "M")
    if m not in N_M_GROUP_SIZES:
        raise ValueError(f"M must be a power of two in {{2, 4, 8, 16}}, not {m}")
    n = check_int(n, "N")
    if not 1 <= n <= m:
        raise ValueError(f"N must be between 1 and M ({m}), not {n}")
    return n, m


def _n_m_groups(arr, n, m, axis):
    """Validate and return ``(groups, axis)``: ``arr`` with ``axis`` moved last, split in groups.

    ``groups`` has shape ``(*other_axes, L // m, m)``.
    """
    n, m = _check_n_m_params(n, m)
    if arr.ndim == 0:
        raise ValueError("w must have at least 1 dimension, not 0")
    axis = check_axis(axis, arr.ndim)
    length = arr.shape[axis]
    if length % m:
        raise ValueError(f"axis {axis} has length {length}, not divisible by M = {m}")
    moved = np.moveaxis(arr, axis, -1)
    return moved.reshape(*moved.shape[:-1], length // m, m), axis


def _from_groups(groups, axis):
    """Inverse of :func:`_n_m_groups`' reshaping: merge the groups and move the axis back."""
    merged = groups.reshape(*groups.shape[:-2], groups.shape[-2] * groups.shape[-1])
    return np.moveaxis(merged, -1, axis)


def _n_m_keep_groups(groups, n):
    """Grouped keep-mask: the ``n`` largest ``|w|`` of each group, ties keep the lower index."""
    return _n_m_keep_lowest_keys(_magnitude_key(groups), n)


def _n_m_keep_lowest_keys(keys, n):
    """Grouped keep-mask: the ``n`` lowest ``keys`` of each group, ties keep the lower index."""
    order = np.argsort(keys, axis=-1, kind="stable")
    m = keys.shape[-1]
    ranks = np.empty(keys.shape, dtype=np.intp)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(m), keys.shape), axis=-1)
    return ranks < n


def prune_n_m(w, n, m, axis=-1, *, scores=None):
    """Keep-mask of N:M structured pruning.

    In every group of ``m`` consecutive weights along ``axis`` the ``n`` weights of largest
    ``|w|`` (or, given ``scores``, of largest score) are kept. Among equal ``|w|`` the lower
    index within the group is kept, so the result is deterministic; in particular a group with
    fewer than ``n`` non-zeros keeps all its non-zeros plus its lowest-index zeros, and the mask
    always has exactly ``n`` ``True`` per group. ``|w|`` is exact for every dtype (``|-128|``
    of int8 is 128).

    Parameters
    ----------
    w : array of any real numeric dtype
        Weights (int8 included). Floats must be finite.
    n : int
        Weights kept per group, ``1 <= n <= m``.
    m : int
        Group size, a power of two in {2, 4, 8, 16}.
    axis : int
        The reduction (input) axis, e.g. ``-1`` (or 1) for a linear weight ``(out, in)``. Its
        length must be divisible by ``m``.
    scores : ndarray of float, optional
        Importance of every weight, shape ``w.shape`` (e.g. :func:`taylor_scores` or
        :func:`obd_scores`), ranked instead of ``|w|``: the ``n`` highest of each group are
        kept, among equal scores the lower index.

    Returns
    -------
    ndarray of bool, shape ``w.shape``

    Raises
    ------
    TypeError
        If ``w`` is not a real numeric array, ``scores`` not a floating-point array, or ``n``,
        ``m``, ``axis`` are not integers.
    ValueError
        If ``m`` or ``n`` is out of range, ``axis`` is out of range or its length is not
        divisible by ``m``, ``w`` or ``scores`` is not finite, or ``scores`` has another shape.
    """
    arr = _as_real_array(w)
    groups, axis = _n_m_groups(arr, n, m, axis)
    if scores is None:
        return _from_groups(_n_m_keep_groups(groups, n), axis)
    score_groups, _ = _n_m_groups(_same_shape(arr, scores, "scores"), n, m, axis)
    return _from_groups(_n_m_keep_lowest_keys(-score_groups, n), axis)


def _first_n_m_violation(w, n, m, axis):
    arr = _as_real_array(w)
    groups, axis = _n_m_groups(arr, n, m, axis)
    counts = np.count_nonzero(groups, axis=-1)
    bad = np.argwhere(counts > n)
    if bad.size == 0:
        return None
    first = tuple(int(i) for i in bad[0])
    return axis, first[:-1], first[-1], int(counts[first])


def sparsify_n_m(w, n, m, axis=-1):
    """``w`` with N:M pruning applied along ``axis``, whatever that axis's length.

    A ragged last group (when the length is not a multiple of ``m``) is pruned as if padded
    with zeros, which is how the hardware pads the reduction axis of a layer. The result has
    ``w``'s shape and dtype; within every whole group it equals
    ``apply_mask(w, prune_n_m(w, n, m, axis))``.
    """
    arr = _as_real_array(w)
    if arr.ndim == 0:
        raise ValueError("w must have at least 1 dimension, not 0")
    ax = check_axis(axis, arr.ndim)
    length = arr.shape[ax]
    pad = -length % check_int(m, "M")
    widths = [(0, 0)] * arr.ndim
    widths[ax] = (0, pad)
    padded = np.pad(arr, widths)
    kept = np.where(prune_n_m(padded, n, m, axis=ax), padded, np.zeros((), padded.dtype))
    return np.take(kept, np.arange(length), axis=ax).astype(arr.dtype)


def is_n_m(w, n, m, axis=-1):
    """Whether every group of ``m`` consecutive weights along ``axis`` has at most ``n`` non-zeros.

    Parameters and errors as :func:`prune_n_m` (``-0.0`` counts as zero).

    Returns
    -------
    bool
    """
    return _first_n_m_violation(w, n, m, axis) is None


def check_n_m(w, n, m, axis=-1):
    """Raise ``ValueError`` unless ``w`` is N:M sparse along ``axis`` (see :func:`is_n_m`).

    The message names the first offending group in C order of ``(row, group)``, where ``row``
    is the index tuple of the other axes (in their original order) and ``group`` the index of
    the group along ``axis``, e.g.
    ``"weights are not 2:4 along axis 1: group 3 of row (0,) has 3 non-zeros"``.

    Parameters and other errors as :func:`prune_n_m`.

    Returns
    -------
    None
    """
    bad = _first_n_m_violation(w, n, m, axis)
    if bad is not None:
        axis, row, group, count = bad
        raise ValueError(f"weights are not {n}:{m} along axis {axis}: group {group} of row "
                         f"{row} has {count} non-zeros")


# --- structured filter / channel pruning -----------------------------------------------------

def _channels(w, axis, name="w"):
    """``(C, K)`` float64 view: one row per channel along ``axis`` (all other axes flattened)."""
    arr = _as_weights(w, name, min_ndim=1)
    axis = check_axis(axis, arr.ndim)
    moved = np.moveaxis(arr, axis, 0).astype(np.float64)
    return moved.reshape(moved.shape[0], -1)


def filter_norms(w, *, ord=1, axis=0):
    """L1 or L2 norm of every slice of ``w`` along ``axis`` (a filter for axis 0).

    Parameters
    ----------
    w : ndarray of float
        Weights, e.g. conv OIHW or linear ``(out, in)``.
    ord : {1, 2}
        1 for the sum of ``|w|``, 2 for the Euclidean norm.
    axis : int
        0 for output channels (filters), 1 for input channels.

    Returns
    -------
    ndarray of float64, shape ``(w.shape[axis],)``
        Computed in float64 whatever the dtype of ``w``.

    Raises
    ------
    TypeError
        If ``w`` is not a floating-point array or ``axis`` is not an integer.
    ValueError
        If ``ord`` is not 1 or 2, ``axis`` is out of range, or ``w`` is 0-d or not finite.
    """
    if isinstance(ord, (bool, np.bool_)):
        raise ValueError(f"ord must be one of 1, 2, not {ord!r}")
    check_choice(ord, "ord", (1, 2))
    rows = _channels(w, axis)
    if ord == 1:
        return np.abs(rows).sum(axis=1)
    return np.sqrt(np.square(rows).sum(axis=1))


def fpgm_scores(w, *, axis=0):
    """FPGM score of every filter: its summed Euclidean distance to all other filters.

    ``score[i] = sum_j ||F_i - F_j||_2`` in float64 (He et al. 2019, "Filter Pruning via
    Geometric Median"); each distance is the square root of the summed squared differences, as
    ``scipy.spatial.distance.cdist(metric="euclidean")`` used by the authors' code. The filters
    with the smallest score are the closest to the geometric median, the most replaceable.

    Parameters
    ----------
    w : ndarray of float
        Weights; the filters are the slices along ``axis``.
    axis : int
        0 for output channels, 1 for input channels.

    Returns
    -------
    ndarray of float64, shape ``(w.shape[axis],)``

    Raises
    ------
    As :func:`filter_norms`.
    """
    rows = _channels(w, axis)
    scores = np.empty(rows.shape[0], dtype=np.float64)
    for i in range(rows.shape[0]):  # one row of the distance matrix at a time: O(C * K) memory
        scores[i] = np.sqrt(np.square(rows - rows[i]).sum(axis=1)).sum()
    return scores


def filter_scores(w, *, criterion="l1", axis=0):
    """Importance scores of the slices of ``w`` along ``axis`` (lower = pruned first).

    ``"l1"`` and ``"l2"`` are :func:`filter_norms`, ``"fpgm"`` is :func:`fpgm_scores`.

    Raises
    ------
    ValueError
        If ``criterion`` is unknown; otherwise as :func:`filter_norms`.
    """
    check_choice(criterion, "criterion", CRITERIA)
    if criterion == "fpgm":
        return fpgm_scores(w, axis=axis)
    return filter_norms(w, ord=1 if criterion == "l1" else 2, axis=axis)


def filter_prune_mask(w, amount, *, criterion="l1", axis=0):
    """1-D keep-mask over the output channels (filters) of ``w``.

    The ``prune_count(amount, w.shape[axis])`` channels of lowest :func:`filter_scores` are
    pruned; among equal scores the lower channel index is kept. Apply it with
    ``apply_mask(w, keep, axis=axis)`` or remove the channels with ``w[keep]``.

    Parameters
    ----------
    w : ndarray of float
        Weights, e.g. conv OIHW or linear ``(out, in)``.
    amount : float or int
        Fraction (float in [0, 1]) or number (int) of channels to prune.
    criterion : {"l1", "l2", "fpgm"}
        Importance score.
    axis : int
        Channel axis: 0 (output channels, the default) or 1 (input channels).

    Returns
    -------
    ndarray of bool, shape ``(w.shape[axis],)``

    Raises
    ------
    TypeError
        If ``w`` is not a floating-point array or ``amount`` / ``axis`` has a wrong type.
    ValueError
        If ``criterion`` is unknown, ``amount`` or ``axis`` is out of range, or ``w`` is 0-d or
        not finite.
    """
    check_choice(criterion, "criterion", CRITERIA)
    scores = filter_scores(w, criterion=criterion, axis=axis)
    return _prune_lowest(scores, prune_count(amount, scores.size))


def channel_prune_mask(w, amount, *, criterion="l1"):
    """1-D keep-mask over the input channels (axis 1) of ``w``.

    Same rules as :func:`filter_prune_mask` with ``axis=1``; the channel scores are computed
    over all output channels and kernel positions.

    Returns
    -------
    ndarray of bool, shape ``(w.shape[1],)``
    """
    arr = _as_weights(w, min_ndim=2)
    return filter_prune_mask(arr, amount, criterion=criterion, axis=1)


# --- neuron pruning ---------------------------------------------------------------------------

def neuron_scores(activations, axis=0):
    """Mean ``|a|`` of every unit over the samples (the calibration batch), in float64.

    Parameters
    ----------
    activations : ndarray of float
        E.g. ``(samples, units)`` for a linear layer, ``(N, C, H, W)`` for a convolution.
    axis : int or tuple of int
        The sample axes averaged over: 0 for ``(samples, units)``, ``(0, 2, 3)`` for NCHW.

    Returns
    -------
    ndarray of float64
        ``activations`` reduced over ``axis``.

    Raises
    ------
    TypeError
        If ``activations`` is not a floating-point array or ``axis`` is not an integer or tuple
        of integers.
    ValueError
        If an axis is out of range or repeated, or ``activations`` is 0-d, empty along ``axis``
        or not finite.
    """
    arr = _as_weights(activations, "activations", min_ndim=1)
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    axes = tuple(check_axis(a, arr.ndim) for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis must not repeat an axis, not {axis!r}")
    samples = int(np.prod([arr.shape[a] for a in axes]))
    if samples == 0:
        raise ValueError(f"activations must have at least one sample along axis {axis!r}, not 0")
    return np.abs(arr.astype(np.float64)).mean(axis=axes)


def neuron_prune_mask(activations, amount, *, axis=0):
    """1-D keep-mask over units: the units of smallest :func:`neuron_scores` are pruned.

    ``prune_count(amount, units)`` units are pruned; among equal scores (e.g. several dead
    units) the lower index is kept.

    Parameters
    ----------
    activations : ndarray of float
        Activations of the layer; after reducing ``axis`` one dimension (the units) must remain.
    amount : float or int
        Fraction (float in [0, 1]) or number (int) of units to prune.
    axis : int or tuple of int
        Sample axes, as in :func:`neuron_scores`.

    Returns
    -------
    ndarray of bool, shape ``(units,)``

    Raises
    ------
    ValueError
        If more or less than one axis remains after the reduction, or as
        :func:`neuron_scores` and :func:`prune_count`.
    """
    scores = neuron_scores(activations, axis)
    if scores.ndim != 1:
        raise ValueError(f"activations must leave one unit axis after reducing axis {axis!r}, "
                         f"not {scores.ndim}")
    return _prune_lowest(scores, prune_count(amount, scores.size))


def remove_neurons(w_this, b_this, w_next, keep):
    """Physically remove pruned units: rows of this layer, its biases, columns of the next.

    Parameters
    ----------
    w_this : ndarray of a real numeric dtype
        This layer's weights, output axis first: ``(out, in)`` or OIHW.
    b_this : ndarray or None
        This layer's bias, shape ``(out,)``, or ``None``.
    w_next : ndarray of a real numeric dtype
        The next layer's weights, input axis second: ``(out2, out)`` or ``(O2, out, H, W)``.
    keep : ndarray of bool, shape ``(out,)``
        Keep-mask over the units, e.g. from :func:`neuron_prune_mask`.

    Returns
    -------
    (w_this, b_this, w_next) : tuple of new ndarrays (``b_this`` stays ``None`` if ``None``)
        ``w_this[keep]``, ``b_this[keep]`` and ``w_next[:, keep]``, same dtypes. If the removed
        units only ever output 0 the network's output is unchanged.

    Raises
    ------
    TypeError
        If an array has a non-real dtype or ``keep`` is not boolean.
    ValueError
        If the shapes do not match ``keep``.
    """
    wt = _as_real_array(w_this, "w_this")
    wn = _as_real_array(w_next, "w_next")
    keep = _as_mask(keep, "keep")
    if wt.ndim < 1:
        raise ValueError(f"w_this must have at least 1 dimension, not {wt.ndim}")
    out = wt.shape[0]
    if keep.shape != (out,):
        raise ValueError(f"keep must have shape {(out,)}, not {keep.shape}")
    if wn.ndim < 2 or wn.shape[1] != out:
        raise ValueError(f"w_next must have {out} input channels (axis 1) to match w_this, "
                         f"not shape {wn.shape}")
    bias = None
    if b_this is not None:
        b = _as_real_array(b_this, "b_this")
        if b.shape != (out,):
            raise ValueError(f"b_this must have shape {(out,)}, not {b.shape}")
        bias = b[keep].copy()
    return wt[keep].copy(), bias, wn[:, keep].copy()


# --- importance scores from derivatives of the loss -------------------------------------------

def taylor_scores(w, grad, *, squared=False):
    """First-order Taylor importance of every weight: ``|w * g|``, or ``(w * g)^2``.

    Zeroing weight ``i`` changes the loss by ``L(w - w_i e_i) - L(w) ~ -g_i w_i`` to first
    order, with ``g = dL/dw``; the score is the size of that change, ``|w_i g_i|``
    (Molchanov et al. 2017, "Pruning Convolutional Neural Networks for Resource Efficient
    Inference", applied to weights), or with ``squared`` ``(w_i g_i)^2``, the per-weight
    criterion of Molchanov et al. 2019, "Importance Estimation for Neural Network Pruning".

    Parameters
    ----------
    w : ndarray of float
        Weights of any shape.
    grad : ndarray of float
        ``dL/dw``, shape ``w.shape`` (e.g. from :func:`.train.weight_gradients`).
    squared : bool
        Square instead of the absolute value.

    Returns
    -------
    ndarray of float64, shape ``w.shape``

    Raises
    ------
    TypeError
        If ``w`` or ``grad`` is not a floating-point array, or ``squared`` not a bool.
    ValueError
        If ``w`` or ``grad`` is not finite or ``grad`` has another shape.
    """
    arr = _as_weights(w).astype(np.float64)
    product = arr * _same_shape(arr, grad, "grad")
    return np.square(product) if check_bool(squared, "squared") else np.abs(product)


def taylor_filter_scores(w, grad, *, axis=0, squared=False):
    """First-order Taylor importance of every filter (slice of ``w`` along ``axis``).

    ``sum_{k in F} |w_k g_k|``: the sum of the filter's :func:`taylor_scores`; or with
    ``squared`` ``(sum_{k in F} w_k g_k)^2``, Molchanov et al. 2019's group criterion, the
    squared first-order change of the loss when the whole filter is zeroed.

    Parameters
    ----------
    w, grad : ndarray of float
        Weights, e.g. conv OIHW or linear ``(out, in)``, and ``dL/dw`` of the same shape.
    axis : int
        0 for output channels (filters, neurons), 1 for input channels.
    squared : bool
        The 2019 variant.

    Returns
    -------
    ndarray of float64, shape ``(w.shape[axis],)``

    Raises
    ------
    As :func:`taylor_scores`, and ``ValueError`` if ``w`` is 0-d or ``axis`` out of range.
    """
    arr = _as_weights(w, min_ndim=1).astype(np.float64)
    product = arr * _same_shape(arr, grad, "grad")
    if check_bool(squared, "squared"):
        return np.square(_channels(product, axis).sum(axis=1))
    return _channels(np.abs(product), axis).sum(axis=1)


def obd_scores(w, hessian_diag):
    """Optimal Brain Damage saliency of every weight: ``h_ii * w_i^2 / 2``.

    With the loss at a minimum (gradient ~ 0) and the Hessian taken as diagonal, zeroing
    weight ``i`` changes the loss by ``h_ii w_i^2 / 2`` (LeCun, Denker & Solla 1990, "Optimal
    Brain Damage"). The sign is kept: a negative ``h_ii`` (a non-convex direction, or
    the noise of an estimated diagonal) ranks the weight first for pruning.

    Parameters
    ----------
    w : ndarray of float
        Weights of any shape.
    hessian_diag : ndarray of float
        ``d^2 L / dw_i^2``, shape ``w.shape`` (e.g. from :func:`.train.hessian_diagonal`).

    Returns
    -------
    ndarray of float64, shape ``w.shape``

    Raises
    ------
    TypeError
        If ``w`` or ``hessian_diag`` is not a floating-point array.
    ValueError
        If either is not finite or ``hessian_diag`` has another shape.
    """
    arr = _as_weights(w).astype(np.float64)
    return 0.5 * _same_shape(arr, hessian_diag, "hessian_diag") * np.square(arr)


def obd_filter_scores(w, hessian_diag, *, axis=0):
    """OBD saliency of every filter: ``sum_{k in F} h_kk w_k^2 / 2``.

    Under OBD's diagonal approximation the loss change of zeroing a set of weights is the sum
    of their saliencies (:func:`obd_scores`).

    Returns
    -------
    ndarray of float64, shape ``(w.shape[axis],)``

    Raises
    ------
    As :func:`obd_scores`, and ``ValueError`` if ``w`` is 0-d or ``axis`` out of range.
    """
    arr = _as_weights(w, min_ndim=1)
    return _channels(obd_scores(arr, hessian_diag), axis).sum(axis=1)


def score_mask(scores, amount):
    """Keep-mask pruning the ``prune_count(amount, scores.size)`` lowest ``scores``.

    The rule of :func:`magnitude_mask` by amount with any importance in place of ``|w|``:
    among equal scores the lower flat (C-order) index is kept. Per-weight scores
    (:func:`taylor_scores`, :func:`obd_scores`) give an unstructured mask of ``w``'s shape;
    per-filter scores (:func:`taylor_filter_scores`, :func:`obd_filter_scores`) give a 1-D
    filter mask for ``apply_mask(w, keep, axis=0)`` or :func:`remove_neurons`.

    Parameters
    ----------
    scores : ndarray of float
        Importance, any shape (higher = kept).
    amount : float or int
        Fraction (float in [0, 1]) or number (int) of entries to prune.

    Returns
    -------
    ndarray of bool, shape ``scores.shape``

    Raises
    ------
    TypeError
        If ``scores`` is not a floating-point array or ``amount`` has a wrong type.
    ValueError
        If ``scores`` is not finite or ``amount`` is out of range.
    """
    arr = _as_weights(scores, "scores")
    count = prune_count(amount, arr.size)
    return _prune_lowest(arr.astype(np.float64).ravel(), count).reshape(arr.shape)


# --- gradual pruning schedule ------------------------------------------------------------------

def _fraction(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be between 0.0 and 1.0, not {value!r}")
    return float(value)


def _check_schedule(initial, final, begin_step, end_step, frequency):
    initial = _fraction(initial, "initial")
    final = _fraction(final, "final")
    begin_step = check_int(begin_step, "begin_step", lo=0)
    end_step = check_int(end_step, "end_step")
    if end_step <= begin_step:
        raise ValueError(f"end_step must be greater than begin_step ({begin_step}), "
                         f"not {end_step}")
    frequency = check_int(frequency, "frequency", lo=1)
    return initial, final, begin_step, end_step, frequency


def cubic_sparsity(step, *, initial, final, begin_step, end_step, frequency=1):
    """Target sparsity of gradual pruning at ``step`` (Zhu & Gupta 2017).

    ``s = final + (initial - final) * (1 - (t - begin_step) / (end_step - begin_step))^3``
    (float64), where ``t`` is the last update step at or before ``step``: the updates happen
    at ``begin_step + k * frequency`` and at ``end_step``, and the target is held in between.
    Before ``begin_step`` the result is ``initial``, from ``end_step`` on it is ``final``.

    Parameters
    ----------
    step : int
        Training step.
    initial, final : float
        Sparsities in [0, 1] (``initial`` at ``begin_step``, ``final`` from ``end_step``).
    begin_step : int
        First pruning step, >= 0.
    end_step : int
        Last pruning step, > ``begin_step``.
    frequency : int
        Steps between mask updates, >= 1.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If an argument has a wrong type.
    ValueError
        If a sparsity is outside [0, 1], ``begin_step < 0``, ``end_step <= begin_step`` or
        ``frequency < 1``.
    """
    initial, final, begin_step, end_step, frequency = _check_schedule(
        initial, final, begin_step, end_step, frequency)
    step = check_int(step, "step")
    if step < begin_step:
        return initial
    if step >= end_step:
        return final
    t = (step - begin_step) // frequency * frequency
    progress = np.float64(t) / np.float64(end_step - begin_step)
    return float(np.float64(final) + (np.float64(initial) - final) * (1.0 - progress) ** 3)


@dataclasses.dataclass(frozen=True)
class PruningSchedule:
    """Cubic gradual-pruning schedule (Zhu & Gupta 2017); see :func:`cubic_sparsity`.

    Members
    -------
    initial, final : float
        Sparsities in [0, 1].
    begin_step, end_step : int
        Pruning window, ``0 <= begin_step < end_step``.
    frequency : int
        Steps between mask updates, >= 1.

    Raises
    ------
    TypeError, ValueError
        At construction, as :func:`cubic_sparsity`.
    """

    initial: float
    final: float
    begin_step: int
    end_step: int
    frequency: int = 1

    def __post_init__(self):
        values = _check_schedule(self.initial, self.final, self.begin_step, self.end_step,
                                 self.frequency)
        for field, value in zip(("initial", "final", "begin_step", "end_step", "frequency"),
                                values):
            object.__setattr__(self, field, value)

    def sparsity(self, step):
        """Target sparsity in effect at ``step`` (a float in [0, 1])."""
        return cubic_sparsity(step, initial=self.initial, final=self.final,
                              begin_step=self.begin_step, end_step=self.end_step,
                              frequency=self.frequency)

    __call__ = sparsity

    def should_prune(self, step):
        """Whether the mask is recomputed at ``step``: ``begin_step + k * frequency`` or
        ``end_step``, inside ``[begin_step, end_step]``."""
        step = check_int(step, "step")
        if not self.begin_step <= step <= self.end_step:
            return False
        return step == self.end_step or (step - self.begin_step) % self.frequency == 0


# --- masks ------------------------------------------------------------------------------------

def apply_mask(w, mask, *, axis=None):
    """Return a new array equal to ``w`` with zeros where ``mask`` is ``False``.

    Idempotent (``apply_mask(apply_mask(w, k), k) == apply_mask(w, k)``), so re-apply it after
    every weight update to keep pruned weights at zero. The dtype of ``w`` is preserved.

    Parameters
    ----------
    w : ndarray of a real numeric dtype
        Weights (float or integer).
    mask : ndarray of bool
        Either ``w.shape``, or, with ``axis``, a 1-D channel mask of length ``w.shape[axis]``
        broadcast along all other axes.
    axis : int, optional
        Axis of ``w`` a 1-D ``mask`` applies to (0: output channels, 1: input channels).

    Returns
    -------
    ndarray, same shape and dtype as ``w``

    Raises
    ------
    TypeError
        If ``w`` is not real numeric or ``mask`` is not boolean.
    ValueError
        If the shape of ``mask`` does not match.
    """
    arr = _as_real_array(w)
    mask = _as_mask(mask)
    if axis is None:
        if mask.shape != arr.shape:
            raise ValueError(f"mask must have shape {arr.shape}, not {mask.shape}")
        full = mask
    else:
        if arr.ndim == 0:
            raise ValueError("w must have at least 1 dimension to apply a channel mask, not 0")
        axis = check_axis(axis, arr.ndim)
        if mask.shape != (arr.shape[axis],):
            raise ValueError(f"mask must have shape {(arr.shape[axis],)} for axis {axis}, "
                             f"not {mask.shape}")
        full = mask.reshape([-1 if i == axis else 1 for i in range(arr.ndim)])
    return np.where(full, arr, np.zeros((), dtype=arr.dtype))
