"""The compression policy of ``sparsemac compress``: which layers go N:M, how they are pruned,
how float models are quantized (calibrator, weight mode, calibration data).

QDQ models keep their own scales: their int8 weights are pruned, nothing else changes. Float
models are pruned, then quantized with :func:`~golden_model.graph.quantize_graph`.
"""

import dataclasses
import math

import numpy as np

from common import Sparsity
from common.checks import check_choice
from golden_model.calibration import METHODS
from golden_model.graph import (
    WEIGHT_MODES,
    Conv2d,
    Dense,
    GraphError,
    IntGraph,
    n_m_layers,
    quantize_graph,
)
from golden_model.prune import is_n_m, prune_n_m

from .digits import DIGITS_SHAPES, digits_split
from .model import OnnxImport, import_model

__all__ = ["Compressed", "parse_sparsity", "check_options", "compress"]


@dataclasses.dataclass
class Compressed:
    """What :func:`compress` made.

    Members
    -------
    graph : IntGraph
        What the accelerator loads (:meth:`~golden_model.graph.IntGraph.save` writes it).
    imported : OnnxImport
        The model as read.
    sparsity : tuple or None
        The requested ``(n, m)``.
    notes : list of str
        Import notes, then which layers stayed dense and why.
    float_layers : list or None
        The float graph after pruning (float models), for the float accuracy.
    """

    graph: IntGraph
    imported: OnnxImport
    sparsity: tuple = None
    notes: list = dataclasses.field(default_factory=list)
    float_layers: list = None


def parse_sparsity(text):
    """``"2:4"`` -> ``(2, 4)``; ``None``, ``"dense"`` and ``"M:M"`` (every weight kept, e.g.
    ``"1:1"``) -> ``None``.

    The notation is :class:`common.Sparsity`'s: ``M`` in {1, 2, 4, 8, 16}, ``1 <= N <= M``.

    Raises
    ------
    ValueError
        Not ``N:M`` or ``dense``, or ``M`` / ``N`` out of range (Sparsity's messages).
    """
    return None if text is None else Sparsity.parse(text).pattern()


def check_options(*, method=None, weights=None):
    """Validate the quantization options of float models (``None``: the default)."""
    if method is not None:
        check_choice(method, "method", METHODS)
    if weights is not None:
        check_choice(weights, "weights", WEIGHT_MODES)


def compress(model, *, sparsity=None, x_calib=None, method=None, weights=None,
             dense_first_last=False, pot_bits=4, output=None):
    """Import an ONNX model and make the integer graph the accelerator loads.

    Parameters
    ----------
    model : ModelProto, path or bytes
    sparsity : (n, m), "N:M", "dense", Sparsity or None
        Magnitude N:M pruning along the GEMM reduction axis of every Gemm/MatMul/Conv whose
        reduction length is a multiple of ``m`` (the others stay dense, e.g. a first 3x3
        convolution over one channel, 9 taps). Float models are pruned before quantization
        (no fine-tuning); QDQ models have their int8 weights pruned (same order: one row
        shares one scale).
    x_calib : float array (N, *input_shape) or None
        Float models: calibration data; ``None`` uses the digits training split when the
        input is digits-shaped (:data:`~.digits.DIGITS_SHAPES`).
    method : calibrator name (``calibration.METHODS``); float models, default "minmax".
    weights : one of ``WEIGHT_MODES``; float models, default "per_channel".
    dense_first_last : bool
        Keep the first and the last weighted layers dense.
    pot_bits : int
        Exponent bits of ``weights="pot"``.
    output : str, optional
        The graph output to compile (a model with several, e.g. skl2onnx's ``label`` and
        ``probabilities``); default: the one the network computes.

    Returns
    -------
    Compressed

    Raises
    ------
    GraphError, ValueError
        Unsupported models (see :mod:`sparsemac.importer`), bad options, bad calibration
        data; ``method`` / ``weights`` / ``x_calib`` given for a QDQ model, which keeps its
        own.
    """
    if sparsity is None or isinstance(sparsity, (str, Sparsity)):
        sparsity = parse_sparsity(sparsity)
    imported = import_model(model, output=output)
    if imported.kind == "qdq":
        return _compress_qdq(imported, sparsity, dense_first_last,
                             method=method, weights=weights, x_calib=x_calib)
    return _compress_float(imported, sparsity, dense_first_last, x_calib=x_calib,
                           method=method, weights=weights, pot_bits=pot_bits)


def _compress_qdq(imported, sparsity, dense_first_last, *, method, weights, x_calib):
    given = [what for what, value in (("a calibration method", method),
                                      ("a weight mode", weights),
                                      ("calibration data", x_calib)) if value is not None]
    if given:
        raise GraphError(f"the model is already quantized (QDQ) and keeps its own scales; "
                         f"{', '.join(given)} applies to float models only")
    graph = imported.graph
    notes = list(imported.notes)
    if sparsity is not None:
        weighted = graph.weighted()
        chosen, kept = _prunable(weighted, sparsity, dense_first_last)
        notes += kept
        for layer in weighted:
            if layer.name in chosen:
                wm = layer.gemm_weights()
                mask = prune_n_m(wm, *sparsity, axis=1)
                layer.w = np.where(mask, wm, 0).astype(np.int8).reshape(layer.w.shape)
                layer.sparsity = sparsity
    return Compressed(graph, imported, sparsity, notes)


def _compress_float(imported, sparsity, dense_first_last, *, x_calib, method, weights,
                    pot_bits):
    check_options(method=method, weights=weights)
    method = "minmax" if method is None else method
    weights = "per_channel" if weights is None else weights
    layers = imported.layers
    notes = list(imported.notes)
    chosen = {}
    if sparsity is not None:
        weighted = [x for x in layers if isinstance(x, (Dense, Conv2d))]
        chosen, kept = _prunable(weighted, sparsity, dense_first_last)
        notes += kept
        for layer in weighted:
            if layer.name in chosen:
                wm = layer.w.reshape(layer.w.shape[0], -1)
                mask = prune_n_m(wm, *sparsity, axis=1)
                layer.w = np.where(mask, wm, 0).astype(np.float32).reshape(layer.w.shape)
    x = _calibration(imported.input_shape, x_calib)
    graph = quantize_graph(layers, imported.input_shape, x, method=method, weights=weights,
                           sparsity=chosen, pot_bits=pot_bits)
    for layer in graph.weighted():
        if layer.sparsity is not None and not is_n_m(layer.gemm_weights(), *layer.sparsity,
                                                     axis=1):
            raise GraphError(f"{layer.name}: quantized weights are not "
                             f"{layer.sparsity[0]}:{layer.sparsity[1]}")
    return Compressed(graph, imported, sparsity, notes, float_layers=layers)


def _prunable(layers, n_m, dense_first_last):
    """``{name: (n, m)}`` of the layers to prune (:func:`golden_model.graph.n_m_layers`, the
    one rule), and a note for every layer kept dense."""
    names, notes = n_m_layers(layers, n_m[1], dense_first=dense_first_last,
                              dense_last=dense_first_last, edge_reason="--dense-first-last")
    return {name: tuple(n_m) for name in names}, notes


def _calibration(input_shape, x_calib):
    """The calibration samples, float32 ``(N, *input_shape)``: ``x_calib`` checked, or the
    digits training split for a digits-shaped input."""
    if x_calib is None:
        if tuple(input_shape) not in DIGITS_SHAPES:
            raise GraphError(f"no calibration data: the model's input {tuple(input_shape)} is "
                             "not digits-shaped (64 or 1x8x8); give calibration data "
                             "(--calib FILE.npy)")
        return digits_split()[0].reshape(-1, *input_shape)
    x = np.asarray(x_calib)
    if x.dtype.kind != "f":
        raise GraphError(f"calibration data must be float, not {x.dtype}")
    if x.ndim == 2 and len(input_shape) > 1 and x.shape[1] == math.prod(input_shape):
        x = x.reshape(-1, *input_shape)   # flat samples, e.g. (N, 64) for a 1x8x8 input
    if x.shape[1:] != tuple(input_shape) or x.shape[0] < 1:
        raise GraphError(f"calibration data must have shape (N, "
                         f"{', '.join(map(str, input_shape))}), not {x.shape}")
    if not np.all(np.isfinite(x)):
        raise GraphError("calibration data must be finite")
    return x.astype(np.float32)
