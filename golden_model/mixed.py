"""Mixed precision: per-layer weight widths chosen under a byte budget.

Three steps, each usable alone:

:func:`layer_bytes`
    What every weighted layer's weights take as stored (:func:`.graph.weight_storage`: values
    packed at the width, in the smallest of dense / bitmap / CSR, or N:M) at each candidate
    width, from the codes :func:`.graph.quantize_graph` would make.
:func:`layer_sensitivity`
    How much the network's output moves away from the float network's when only that layer's
    weights go to fewer bits: ``d(bits) = max(0, E(layer at bits) - E(all at 8))`` with ``E``
    the mean squared error (``"mse"``) of the dequantized integer output against the float
    output, or the mean ``KL(softmax(float) || softmax(integer))`` (``"kl"``), over the
    calibration data. Every integer graph here shares one set of activation ranges (calibrated
    once), so the differences are the weights' alone. Quantizing to fewer bits is never
    counted as a gain (the clamp at 0).
:func:`choose_bits`
    The widths minimizing the summed sensitivity subject to the summed bytes ``<= budget``:
    exact (a multiple-choice knapsack solved over the Pareto frontier of (bytes, sensitivity),
    layer by layer) or greedy (from every layer at its widest, repeatedly take the narrowing
    with the least sensitivity added per byte saved until the budget holds). Ties between
    equally sensitive choices go to the one storing more bytes (more bits), then to wider
    widths in layer order.

:func:`mixed_precision` runs the three and quantizes the graph with the result. The budget
bounds the weights alone (``IntGraph.weight_bytes``: values and sparse-format metadata); bias
and requantization bytes do not depend on the widths.
"""

import dataclasses

import numpy as np

from common.checks import check_choice, check_int

from .graph import (
    WEIGHTED,
    GraphError,
    _activation_ranges,
    _layer_names,
    _quantize_weights,
    _resolve_bits,
    float_forward,
    quantize_graph,
    weight_storage,
)

__all__ = ["WIDTH_CHOICES", "SENSITIVITY_METRICS", "SEARCHES", "MixedPrecision", "layer_bytes",
           "layer_sensitivity", "choose_bits", "mixed_precision"]

#: The default candidate weight widths.
WIDTH_CHOICES = (8, 4, 3)
#: How the output's departure from the float network is measured.
SENSITIVITY_METRICS = ("mse", "kl")
#: How :func:`choose_bits` searches.
SEARCHES = ("exact", "greedy")


@dataclasses.dataclass(frozen=True)
class MixedPrecision:
    """The result of :func:`mixed_precision`.

    Members
    -------
    bits : dict
        ``{layer name: weight bits}`` chosen.
    weight_bytes : int
        Their weights' bytes as stored (``<= budget``; equals ``graph.weight_bytes()``).
    budget : int
        The budget.
    cost : float
        The summed sensitivity of the choice.
    sensitivity, bytes : dict
        ``{layer name: {bits: value}}`` of :func:`layer_sensitivity` and :func:`layer_bytes`.
    graph : IntGraph
        The graph quantized with ``bits``.
    """

    bits: dict
    weight_bytes: int
    budget: int
    cost: float
    sensitivity: dict
    bytes: dict
    graph: object


def _check_choices(choices):
    if isinstance(choices, (str, bytes)) or not isinstance(choices, (tuple, list)) or \
            not choices:
        raise TypeError(f"choices must be a non-empty tuple of bit widths, not {choices!r}")
    return tuple(sorted({check_int(c, "choices", lo=2, hi=8) for c in choices}, reverse=True))


def _weighted(layers):
    names = _layer_names(layers)
    return [(n, ly) for n, ly in zip(names, layers) if isinstance(ly, WEIGHTED)]


def layer_bytes(layers, *, choices=WIDTH_CHOICES, weights="per_channel", pot_bits=4,
                sparsity=None):
    """``{layer name: {bits: bytes}}``: each weighted layer's weights as stored at each width
    (values plus metadata; :func:`.graph.weight_storage` of the codes
    :func:`.graph.quantize_graph` makes with the same ``weights``, ``pot_bits`` and
    ``sparsity``)."""
    choices = _check_choices(choices)
    sparsity = dict(sparsity or {})
    out = {}
    for name, layer in _weighted(layers):
        out[name] = {}
        for bits in choices:
            q, _ = _quantize_weights(layer.w, weights, pot_bits, bits)
            fmt, prints = weight_storage(q.reshape(q.shape[0], -1), bits,
                                         sparsity.get(layer.name))
            out[name][bits] = prints[fmt].nbytes
    return out


def _dequantized_output(graph, x):
    out = graph.forward(x)[-1]
    scale, zp = graph.tensor_qparams()[-1]
    return (out.astype(np.float64) - zp) * scale


def _log_softmax(z):
    z = z.reshape(z.shape[0], -1)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _error(reference, approx, metric):
    if metric == "mse":
        return float(np.mean((approx - reference.reshape(approx.shape)) ** 2))
    lp, lq = _log_softmax(reference), _log_softmax(approx)
    return float(np.mean((np.exp(lp) * (lp - lq)).sum(axis=1)))


def layer_sensitivity(layers, input_shape, x_calib, *, choices=WIDTH_CHOICES, metric="mse",
                      method="minmax", weights="per_channel", pot_bits=4, sparsity=None,
                      act_bits=8):
    """``{layer name: {bits: sensitivity}}`` of every weighted layer at every width (see the
    module docstring; 0 at 8 bits). The other arguments are :func:`.graph.quantize_graph`'s.
    """
    choices = _check_choices(choices)
    check_choice(metric, "metric", SENSITIVITY_METRICS)
    x_calib = np.asarray(x_calib, dtype=np.float32)
    acts = float_forward(layers, x_calib)
    _, abits = _resolve_bits(layers, 8, act_bits)
    ranges = _activation_ranges(layers, acts, method, abits)
    reference = acts[-1].astype(np.float64)
    kw = dict(weights=weights, pot_bits=pot_bits, sparsity=sparsity, act_ranges=ranges,
              act_bits=act_bits)

    def error(weight_bits):
        graph = quantize_graph(layers, input_shape, x_calib, weight_bits=weight_bits, **kw)
        return _error(reference, _dequantized_output(graph, x_calib), metric)

    base = error(8)
    out = {}
    for name, _ in _weighted(layers):
        out[name] = {b: 0.0 if b == 8 else max(0.0, error({name: b}) - base) for b in choices}
    return out


def _check_tables(sensitivity, nbytes):
    if not isinstance(sensitivity, dict) or not isinstance(nbytes, dict) or not nbytes:
        raise TypeError("sensitivity and bytes must be non-empty dicts of layer name -> "
                        "{bits: value}")
    if list(sensitivity) != list(nbytes):
        raise ValueError(f"sensitivity and bytes must name the same layers in the same order, "
                         f"not {list(sensitivity)} and {list(nbytes)}")
    options = []
    for name in nbytes:
        if set(sensitivity[name]) != set(nbytes[name]) or not nbytes[name]:
            raise ValueError(f"layer {name!r}: sensitivity and bytes must give the same widths, "
                             f"not {sorted(sensitivity[name])} and {sorted(nbytes[name])}")
        options.append([(int(nbytes[name][b]), float(sensitivity[name][b]), int(b))
                        for b in sorted(nbytes[name], reverse=True)])
    return options


def choose_bits(sensitivity, nbytes, budget, *, search="exact"):
    """The widths ``{layer name: bits}`` minimizing the summed sensitivity with the summed
    bytes ``<= budget`` (see the module docstring for the searches and their ties).

    Parameters
    ----------
    sensitivity, nbytes : dict
        ``{layer name: {bits: value}}`` over the same layers and widths
        (:func:`layer_sensitivity`, :func:`layer_bytes`).
    budget : int
        Bytes, at least the smallest choice's.
    search : {"exact", "greedy"}

    Raises
    ------
    TypeError
        ``budget`` not an integer; the tables not dicts.
    ValueError
        ``budget`` below the bytes of every layer at its smallest (the message gives both);
        tables that do not match.
    """
    check_choice(search, "search", SEARCHES)
    options = _check_tables(sensitivity, nbytes)
    budget = check_int(budget, "budget")
    minimum = sum(min(o[0] for o in opts) for opts in options)
    if budget < minimum:
        raise ValueError(f"budget {budget} bytes is below the minimum {minimum} (every layer "
                         "at its smallest width)")
    names = list(nbytes)
    picks = _exact(options, budget) if search == "exact" else _greedy(options, budget)
    return dict(zip(names, picks))


def _exact(options, budget):
    # Frontier points (bytes, cost, widths): per byte total the best, then only those whose
    # cost does not exceed every cheaper point's (a point with fewer bytes and a strictly lower
    # cost dominates: any completion of it is at least as good and fits whenever the other's
    # does).
    def better(a, b):            # a preferred over b at equal bytes
        return (a[1], tuple(-w for w in a[2])) < (b[1], tuple(-w for w in b[2]))

    frontier = [(0, 0.0, ())]
    for opts in options:
        best = {}
        for nb, cost, widths in frontier:
            for ob, oc, ow in opts:
                point = (nb + ob, cost + oc, (*widths, ow))
                if point[0] <= budget and (point[0] not in best or better(point, best[point[0]])):
                    best[point[0]] = point
        frontier, lowest = [], float("inf")
        for total in sorted(best):
            point = best[total]
            if point[1] <= lowest:
                frontier.append(point)
                lowest = point[1]
    winner = min(frontier, key=lambda p: (p[1], -p[0], tuple(-w for w in p[2])))
    return list(winner[2])


def _greedy(options, budget):
    picks = [0] * len(options)                  # index into each layer's widths, widest first
    total = sum(opts[0][0] for opts in options)
    while total > budget:
        step = None
        for i, opts in enumerate(options):
            here = opts[picks[i]]
            for j in range(picks[i] + 1, len(opts)):
                saved = here[0] - opts[j][0]
                if saved > 0:
                    rate = (opts[j][1] - here[1]) / saved
                    if step is None or rate < step[0]:
                        step = (rate, i, j)
                    break
        if step is None:                        # cannot happen: the minimum fits
            raise ValueError(f"budget {budget} bytes cannot be met")
        _, i, j = step
        total -= options[i][picks[i]][0] - options[i][j][0]
        picks[i] = j
    return [opts[p][2] for opts, p in zip(options, picks)]


def mixed_precision(layers, input_shape, x_calib, budget, *, choices=WIDTH_CHOICES,
                    metric="mse", search="exact", method="minmax", weights="per_channel",
                    pot_bits=4, sparsity=None, act_bits=8):
    """Per-layer weight widths from ``choices`` under a budget of ``budget`` weight bytes, and
    the integer graph they give (:class:`MixedPrecision`).

    The arguments after ``search`` are :func:`.graph.quantize_graph`'s (``method`` the
    activations' calibrator); every graph built shares the activation ranges calibrated once.

    Raises
    ------
    ValueError
        As :func:`choose_bits` (a budget below the minimum names both), or a bad argument.
    """
    choices = _check_choices(choices)
    nbytes = layer_bytes(layers, choices=choices, weights=weights, pot_bits=pot_bits,
                         sparsity=sparsity)
    if not nbytes:
        raise GraphError("the graph has no Dense or Conv2d layer to choose widths for")
    budget = check_int(budget, "budget")
    minimum = sum(min(v.values()) for v in nbytes.values())
    if budget < minimum:
        raise ValueError(f"budget {budget} bytes is below the minimum {minimum} (every layer "
                         "at its smallest width)")
    sens = layer_sensitivity(layers, input_shape, x_calib, choices=choices, metric=metric,
                             method=method, weights=weights, pot_bits=pot_bits,
                             sparsity=sparsity, act_bits=act_bits)
    bits = choose_bits(sens, nbytes, budget, search=search)
    x_calib = np.asarray(x_calib, dtype=np.float32)
    _, abits = _resolve_bits(layers, 8, act_bits)
    ranges = _activation_ranges(layers, float_forward(layers, x_calib), method, abits)
    graph = quantize_graph(layers, input_shape, x_calib, weights=weights, pot_bits=pot_bits,
                           sparsity=sparsity, act_ranges=ranges, weight_bits=bits,
                           act_bits=act_bits)
    return MixedPrecision(bits=bits, weight_bytes=sum(nbytes[n][b] for n, b in bits.items()),
                          budget=budget, cost=float(sum(sens[n][b] for n, b in bits.items())),
                          sensitivity=sens, bytes=nbytes, graph=graph)

