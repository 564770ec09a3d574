"""A network as the hardware runs it: an integer graph, and its float twin.

Two descriptions of the same feed-forward network (input NCHW or (N, features)), each a list
of layers in topological order (:mod:`.layers`): a layer names the tensors it reads
(``inputs``: the graph's input :data:`~.layers.INPUT` or earlier layers; empty: the previous
layer's output), so a chain needs no wiring and a residual or branching network (any fan-out,
Add and Concat fan-in) is the same list with names.

* the **float graph** (:class:`Dense`, :class:`Conv2d`, :class:`Add`, :class:`Concat`, the
  pooling layers, ... holding float32 weights), what training, pruning and the ONNX importer
  produce, run by :func:`float_forward`;
* the **integer graph** (:class:`IntGraph` of :class:`QDense`, :class:`QConv2d`,
  :class:`QAdd`, :class:`QConcat`, ...): int8 weights, int32 bias and one requantization
  multiplier/shift per output channel on the weighted layers (what the accelerator loads), the
  other ops' scales and zero points for the host.

:func:`quantize_graph` turns the first into the second (every tensor calibrated on data with
any calibrator of :mod:`.calibration`; weights per tensor, per channel or power of two);
:meth:`IntGraph.forward` runs it integer-only, every layer's int8 output kept, in TFLite's or
ONNX Runtime's arithmetic (:data:`REQUANT_MODES`).

Bit widths (2 to 8, per layer): weights of ``b`` bits are symmetric codes in the narrow range
``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (4 bits: [-7, 7]; 3 bits: [-3, 3]; power-of-two weights
``sign * 2^(b-2+e)``), activations of ``b`` bits affine codes over ``2^b`` levels in
``[-2^(b-1), 2^(b-1) - 1]`` (4 bits: [-8, 7]). Both stay in int8 containers: the int8 array
runs them unchanged (narrower weights are sign-extended codes; a narrower output is the same
requantization with the clamp ``[act_min, act_max]`` inside the narrower range), so
:meth:`IntGraph.forward` remains the bit-exact reference. :meth:`IntGraph.nbytes` counts the
codes packed at their width. Concat and GlobalAvgPool outputs stay 8-bit (their int8 kernels
clamp to [-128, 127] only); MaxPool, AvgPool, Pad, Clip, Flatten, Reshape and Transpose keep
their input's width with its quantization. A ReLU after a Dense/Conv2d/Add is fused
into its clamp bounds (TFLite's rule, :func:`.requant.activation_bounds`); max pooling on int8
codes equals pooling the real values (the code map is monotonic), so it needs no parameters;
average pooling keeps its input's scale (TFLite's rule).

:meth:`IntGraph.save` writes what the hardware loads: one ``.npz`` of arrays and a JSON
manifest (layers, wiring, shapes, zero points, scales, sparsity, byte counts, bit widths);
:meth:`IntGraph.load` reads it back with every field validated (:mod:`.graph_file`). The bit
widths are the manifest's optional top-level ``bits`` object, ``{"weights": {layer: b},
"activations": {tensor: b}}``: a file without it (every file written before) is all 8-bit, and
a reader that ignores it still runs the graph bit-exactly (only the byte counts differ).
"""

import dataclasses
import numbers

import numpy as np

from common.checks import check_choice, check_int

from .calibration import calibrate
from .compress import STORAGE_FORMATS, storage_footprints, storage_format
from .layers import (
    FLOAT_LAYERS,
    INPUT,
    INT_LAYERS,
    REQUANT_MODES,
    SHARED_LAYERS,
    WEIGHTED,
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    Dense,
    Flatten,
    GlobalAvgPool,
    GraphError,
    MaxPool2d,
    Pad,
    QAdd,
    QAvgPool2d,
    QClip,
    QConcat,
    QConv2d,
    QDense,
    QGlobalAvgPool,
    QPad,
    Reshape,
    Transpose,
)
from .prune import is_n_m
from .quant import qparams, qparams_from_range, qrange, quantize, quantize_pot
from .requant import activation_bounds, quantize_bias, quantize_multiplier, requant_scale

__all__ = [
    "Dense", "Conv2d", "Add", "Concat", "AvgPool2d", "GlobalAvgPool", "Pad", "Clip",
    "MaxPool2d", "Flatten", "Reshape", "Transpose",
    "QDense", "QConv2d", "QAdd", "QConcat", "QAvgPool2d", "QGlobalAvgPool", "QPad", "QClip",
    "INPUT", "float_forward", "wiring", "tensor_shapes", "IntGraph", "quantize_graph", "GraphError",
    "WEIGHT_MODES", "REQUANT_MODES", "layer_weight_matrix", "n_m_layers", "clip_activation",
    "BIT_WIDTHS", "weight_code_range", "act_code_range", "weight_storage",
]

WEIGHT_MODES = ("per_channel", "per_tensor", "pot")
#: The bit widths of weights and activations: codes of 2 to 8 bits in int8 containers.
BIT_WIDTHS = (2, 8)
#: Layers whose output has its own quantization (scale, zero point and width); the others keep
#: their input's.
_OWN_OUTPUT = (Dense, Conv2d, Add, Concat, GlobalAvgPool, QDense, QConv2d, QAdd, QConcat,
               QGlobalAvgPool)
#: Of those, the ones whose int8 kernel has no output clamp: their output stays 8-bit.
_INT8_ONLY = (Concat, GlobalAvgPool, QConcat, QGlobalAvgPool)


def _check_width(bits, what):
    return check_int(bits, what, lo=BIT_WIDTHS[0], hi=BIT_WIDTHS[1])


def weight_code_range(bits=8):
    """``(qmin, qmax)`` of ``bits``-bit weights as :func:`quantize_graph` makes them: the
    symmetric narrow range ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]`` ([-127, 127] at 8 bits,
    [-7, 7] at 4, [-3, 3] at 3). A graph file's weights need only fit the full two's complement
    range of their width (what :func:`.compress.pack_values` stores)."""
    return qrange(_check_width(bits, "weight bits"), narrow=True)


def act_code_range(bits=8):
    """``(qmin, qmax)`` of ``bits``-bit activations: ``[-2^(bits-1), 2^(bits-1) - 1]`` in the
    int8 container ([-128, 127] at 8 bits, [-8, 7] at 4)."""
    return qrange(_check_width(bits, "activation bits"))


def weight_storage(w2d, bits=8, sparsity=None, *, formats=STORAGE_FORMATS):
    """How a weighted layer's (out, k) integer codes are stored: ``(format, footprints)``.

    An N:M layer (``sparsity`` ``(n, m)``) is stored N:M (``"n_m"``: kept values and packed
    indices), any other in the smallest of ``formats`` (dense, bitmap, CSR: metadata
    included, ties to the first listed), its values packed at ``bits`` bits
    (:func:`.compress.storage_format`). ``footprints`` maps every format considered to its
    :class:`~.compress.Footprint`.
    """
    prints = storage_footprints(w2d, bits, formats=formats, n_m=sparsity)
    fmt, _ = storage_format(w2d, bits, formats=formats, n_m=sparsity)
    return fmt, prints


# --- wiring ------------------------------------------------------------------------------------

def wiring(layers):
    """Where every layer's inputs come from: per layer, a tuple of indices into the list
    :func:`float_forward` and :meth:`IntGraph.forward` return (0 the graph input, ``i + 1``
    layer ``i``'s output).

    Raises :class:`GraphError` for a duplicate name, a reference to a tensor that is neither
    the input nor an earlier layer (the list must be in topological order), a wrong number of
    inputs, or a layer whose output nothing reads (every layer but the last must feed one).
    """
    index = {INPUT: 0}
    wires = []
    read = set()
    for i, layer in enumerate(layers):
        if not isinstance(layer, (*FLOAT_LAYERS, *INT_LAYERS)):
            raise GraphError(f"layer {i} ({type(layer).__name__}) is not a graph layer")
        label = layer.label()
        names = tuple(layer.inputs)
        if names:
            for name in names:
                if not isinstance(name, str) or name not in index:
                    raise GraphError(f"{label} reads {name!r}, which is neither the input nor an "
                                     "earlier layer (layers must be in topological order)")
            wire = tuple(index[name] for name in names)
        else:
            wire = (i,)
        if layer.arity is not None and len(wire) != layer.arity:
            raise GraphError(f"{label} takes {layer.arity} inputs, not {len(wire)}")
        if layer.arity is None and not wire:
            raise GraphError(f"{label} takes at least one input")
        read.update(wire)
        if layer.name:
            if layer.name in index:
                raise GraphError(f"two tensors are named {layer.name!r}")
            index[layer.name] = i + 1
        wires.append(wire)
    for i, layer in enumerate(layers[:-1]):
        if i + 1 not in read:
            raise GraphError(f"the output of {layer.label()} is never read (only the last "
                             "layer's output leaves the graph)")
    return wires


def tensor_shapes(layers, input_shape):
    """Every tensor's shape for one sample: ``input_shape`` first, then each layer's output
    (a layer whose inputs do not fit raises :class:`GraphError` naming it)."""
    shapes = [tuple(input_shape)]
    for layer, wire in zip(layers, wiring(layers)):
        shapes.append(tuple(int(v) for v in layer.out_shape(*(shapes[j] for j in wire))))
    return shapes


def float_forward(layers, x):
    """Float inference; returns every layer's output (input first)."""
    outs = [np.asarray(x, dtype=np.float32)]
    tensor_shapes(layers, outs[0].shape[1:])
    for layer, wire in zip(layers, wiring(layers)):
        outs.append(np.asarray(layer(*(outs[j] for j in wire)), dtype=np.float32))
    return outs


def layer_weight_matrix(layer):
    """The (out, k) GEMM weight matrix of a float or integer Dense/Conv2d layer (with groups,
    each row over its own group's inputs)."""
    return layer.w.reshape(layer.w.shape[0], -1)


def n_m_layers(layers, m, *, dense_first=False, dense_last=False, edge_reason=None):
    """The one rule for which layers are pruned N:M with group size ``m``.

    Among the weighted layers of ``layers`` (float or integer Dense / Conv2d, in order), every
    one whose GEMM reduction length (in-features, or ``C/groups*KH*KW``) is a multiple of
    ``m``, except the first with ``dense_first`` and the last (the classifier) with
    ``dense_last``. Returns ``(names, notes)``: the names chosen, and one line per weighted
    layer kept dense saying why (for the first or last layer, ``edge_reason`` when given).
    """
    weighted = [ly for ly in layers if isinstance(ly, WEIGHTED)]
    names, notes = [], []
    for i, layer in enumerate(weighted):
        k = layer_weight_matrix(layer).shape[1]
        if (dense_first and i == 0) or (dense_last and i == len(weighted) - 1):
            why = edge_reason or f"the {'first' if dense_first and i == 0 else 'last'} layer"
            notes.append(f"{layer.name}: kept dense ({why})")
        elif k % m:
            notes.append(f"{layer.name}: kept dense (reduction length {k} is not a multiple "
                         f"of {m})")
        else:
            names.append(layer.name)
    return names, notes


def clip_activation(lo, hi, what="Clip"):
    """The activation a float clamp ``[lo, hi]`` is: ``"relu"`` for ``[0, inf)``, ``"relu6"``
    for ``[0, 6]``; any other clamp raises :class:`GraphError` (``what`` names it)."""
    lo, hi = float(lo), float(hi)
    if lo == 0.0 and hi == float("inf"):
        return "relu"
    if lo == 0.0 and hi == 6.0:
        return "relu6"
    raise GraphError(f"{what}: only ReLU [0, inf) and ReLU6 [0, 6] clamps are supported, not "
                     f"[{lo:g}, {hi:g}]")


# --- the integer graph -------------------------------------------------------------------------

@dataclasses.dataclass
class IntGraph:
    """An integer network: the input's quantization, then the layers in topological order
    (see the module docstring for the wiring)."""

    input_shape: tuple            # one sample, e.g. (64,) or (1, 8, 8)
    input_scale: float
    input_zp: int
    layers: list
    #: Bits of weighted layers' weights, by layer name: the layers below 8 bits (missing: 8).
    weight_bits: dict = dataclasses.field(default_factory=dict)
    #: Bits of tensors with their own quantization (the input :data:`INPUT` and the outputs of
    #: Dense, Conv2d, Add), by tensor name: those below 8 bits (missing: 8).
    act_bits: dict = dataclasses.field(default_factory=dict)

    def wiring(self):
        """:func:`wiring` of the layers."""
        return wiring(self.layers)

    def shapes(self):
        """Every tensor's shape for one sample: the input first, then each layer's output."""
        return tensor_shapes(self.layers, self.input_shape)

    def tensor_qparams(self):
        """Every tensor's ``(scale, zero_point)``: the input first, then each layer's output.

        Raises :class:`GraphError` when a layer's recorded input parameters differ from those
        of the tensor it reads (compared as float32, what the files and runtimes store)."""
        params = [(float(self.input_scale), int(self.input_zp))]
        for layer, wire in zip(self.layers, self.wiring()):
            given = [params[j] for j in wire]
            expected = layer.in_qparams()
            if expected is not None:
                for k, ((s, z), (es, ez)) in enumerate(zip(given, expected)):
                    if np.float32(s) != np.float32(es) or int(z) != int(ez):
                        raise GraphError(
                            f"{layer.label()}: input {k} has scale {float(s)!r} and zero point "
                            f"{int(z)}, but the layer was quantized for {float(es)!r} and "
                            f"{int(ez)}")
            scale, zp = layer.out_qparams(*given)
            params.append((float(scale), int(zp)))
        return params

    def layer_weight_bits(self, name):
        """The width of weighted layer ``name``'s weights (8 unless :attr:`weight_bits` says)."""
        return int(self.weight_bits.get(name, 8))

    def tensor_bits(self):
        """Every tensor's activation width: the input first, then each layer's output (a layer
        without its own quantization has its input's; Concat and GlobalAvgPool are 8-bit)."""
        bits = [int(self.act_bits.get(INPUT, 8))]
        for layer, wire in zip(self.layers, self.wiring()):
            bits.append(int(self.act_bits.get(layer.name, 8)) if isinstance(layer, _OWN_OUTPUT)
                        else bits[wire[0]])
        return bits

    def validate(self):
        """Check the wiring, every shape, every tensor's quantization and the bit widths
        (weights within their width, clamps within their output's); returns self."""
        if not self.layers:
            raise GraphError("the graph has no layers")
        for layer in self.layers:
            if not isinstance(layer, INT_LAYERS):
                raise GraphError(f"{layer.label()} is not an integer layer")
        self.shapes()
        self.tensor_qparams()
        for layer in self.weighted():
            _check_qlayer(layer)
        self._check_bits()
        return self

    def _check_bits(self):
        for what, table in (("weight_bits", self.weight_bits), ("act_bits", self.act_bits)):
            if not isinstance(table, dict):
                raise GraphError(f"{what} must be a dict of name -> bits, not {table!r}")
        weighted = {layer.name: layer for layer in self.weighted()}
        own = {layer.name: layer for layer in self.layers if isinstance(layer, _OWN_OUTPUT)}
        for name, bits in self.weight_bits.items():
            if name not in weighted:
                raise GraphError(f"weight_bits names {name!r}, which is not a weighted layer of "
                                 "the graph")
            bits = _check_width(bits, f"weight_bits[{name!r}]")
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            w = weighted[name].w
            if w.size and (int(w.min()) < lo or int(w.max()) > hi):
                raise GraphError(f"{weighted[name].label()}: {bits}-bit weights must lie in "
                                 f"[{lo}, {hi}], not [{int(w.min())}, {int(w.max())}]")
        for name, bits in self.act_bits.items():
            if name != INPUT and name not in own:
                raise GraphError(f"act_bits names {name!r}, which is neither the input nor a "
                                 "layer with its own output quantization")
            bits = _check_width(bits, f"act_bits[{name!r}]")
            lo, hi = act_code_range(bits)
            if name == INPUT:
                if not lo <= int(self.input_zp) <= hi:
                    raise GraphError(f"the {bits}-bit input's zero point {int(self.input_zp)} "
                                     f"is outside [{lo}, {hi}]")
                continue
            layer = own[name]
            if bits < 8 and isinstance(layer, _INT8_ONLY):
                raise GraphError(f"{layer.label()} has no output clamp in its int8 kernel: its "
                                 f"output is 8-bit, not {bits}")
            if bits < 8 and not (lo <= int(layer.act_min) and int(layer.act_max) <= hi):
                raise GraphError(f"{layer.label()}: a {bits}-bit output needs its clamp within "
                                 f"[{lo}, {hi}], not [{int(layer.act_min)}, "
                                 f"{int(layer.act_max)}]")

    def quantize_input(self, x):
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != tuple(self.input_shape):
            raise GraphError(f"input must have shape (N, {', '.join(map(str, self.input_shape))})"
                             f", not {x.shape}")
        qmin, qmax = act_code_range(self.act_bits.get(INPUT, 8))
        return quantize(x, self.input_scale, self.input_zp, qmin=qmin, qmax=qmax).astype(
            np.int8, copy=False)

    def forward(self, x, *, rounding="double", acc_bits=32, quantized=False, requant="tflite"):
        """Every layer's int8 output (the quantized input first).

        ``x`` is float (quantized with the input parameters) or, with ``quantized=True``,
        int8 codes already. ``requant`` (:data:`REQUANT_MODES`): ``"tflite"`` (default, what
        the hardware does) requantizes weighted layers with their integer multiplier and shift
        and ``rounding`` ("double" or "single"), and runs the host ops as LiteRT's reference
        kernels; ``"onnx"`` requantizes in float32, ``round_half_even(float32(acc) * M[c])``
        with ``M[c] = (s_in * s_w[c]) / s_out`` in float32, bit-exact with ONNX Runtime's
        QGemm / QLinearConv / QLinearMatMul (``rounding`` does not apply), and runs the host
        ops as the QLinear kernels ORT fuses a QDQ model into.
        """
        check_choice(requant, "requant", REQUANT_MODES)
        q = np.asarray(x) if quantized else self.quantize_input(x)
        if quantized and (q.dtype != np.int8 or q.shape[1:] != tuple(self.input_shape)):
            raise GraphError(f"quantized input must be int8 of shape (N, "
                             f"{', '.join(map(str, self.input_shape))}), not {q.dtype} "
                             f"{q.shape}")
        bits = int(self.act_bits.get(INPUT, 8))
        if quantized and bits < 8 and q.size:
            lo, hi = act_code_range(bits)
            if int(q.min()) < lo or int(q.max()) > hi:
                raise GraphError(f"quantized input codes must lie in [{lo}, {hi}] (a {bits}-bit "
                                 f"input), not [{int(q.min())}, {int(q.max())}]")
        outs = [q]
        for layer, wire in zip(self.layers, self.wiring()):
            outs.append(layer.run(*(outs[j] for j in wire), rounding=rounding,
                                  acc_bits=acc_bits, requant=requant))
        return outs

    def predict(self, x, **kwargs):
        """Class index of every sample (argmax of the last layer's codes)."""
        out = self.forward(x, **kwargs)[-1]
        return np.argmax(out.reshape(out.shape[0], -1), axis=1)

    def weighted(self):
        return [layer for layer in self.layers if isinstance(layer, (QDense, QConv2d))]

    def nbytes(self, *, formats=STORAGE_FORMATS):
        """What each weighted layer stores, exact to the byte (:func:`weight_storage`).

        Per layer: ``format`` (``"n_m"`` for a layer the hardware runs N:M sparse, else the
        smallest of ``formats``: ``"dense"``, ``"bitmap"`` or ``"csr"``), ``weight_bits``,
        ``weights`` (the values, packed at ``weight_bits`` bits: every code dense, the kept
        values N:M, the non-zeros bitmap and CSR), ``metadata`` (N:M indices of ``log2(M)``
        bits packed; the bitmap; CSR column indices and row pointers), ``formats`` (every
        format considered -> its bytes, values plus metadata), ``bias`` (4 bytes each),
        ``requant`` (multiplier 4 bytes + shift 1 byte per output channel) and ``total``.
        ``formats=("dense",)`` counts every non-N:M layer dense.
        :func:`.compress.encode_weights` produces buffers of exactly these sizes.
        """
        rows = []
        for layer in self.weighted():
            wm = layer.gemm_weights()
            bits = self.layer_weight_bits(layer.name)
            fmt, prints = weight_storage(wm, bits, layer.sparsity, formats=formats)
            out = wm.shape[0]
            row = {"layer": layer.name, "shape": tuple(layer.w.shape), "format": fmt,
                   "weight_bits": bits, "weights": prints[fmt].values,
                   "metadata": prints[fmt].metadata,
                   "formats": {f: fp.nbytes for f, fp in prints.items()},
                   "bias": 4 * out, "requant": 5 * out}
            row["total"] = row["weights"] + row["metadata"] + row["bias"] + row["requant"]
            rows.append(row)
        return rows

    def total_bytes(self, **kwargs):
        """The sum of :meth:`nbytes` ``total`` (``formats`` as there)."""
        return sum(r["total"] for r in self.nbytes(**kwargs))

    def weight_bytes(self, **kwargs):
        """The weights alone as stored: :meth:`nbytes` ``weights + metadata`` summed (what a
        mixed-precision budget bounds; bias and requantization do not depend on the widths)."""
        return sum(r["weights"] + r["metadata"] for r in self.nbytes(**kwargs))

    # --- files ---------------------------------------------------------------------------

    def bits_entry(self):
        """The manifest's ``bits`` object: every weighted layer's weight width and every
        tensor's with its own quantization (the input first), defaults written out."""
        own = [layer.name for layer in self.layers if isinstance(layer, _OWN_OUTPUT)]
        return {"weights": {ly.name: self.layer_weight_bits(ly.name) for ly in self.weighted()},
                "activations": {name: int(self.act_bits.get(name, 8))
                                for name in (INPUT, *own)}}

    def save(self, directory):
        """Write ``graph.json`` (manifest) and ``graph.npz`` (arrays) into ``directory``."""
        from .graph_file import save_graph  # noqa: PLC0415 (the file format's own module)

        save_graph(self, directory)

    @classmethod
    def load(cls, directory):
        """Read a graph written by :meth:`save`; a bad file raises :class:`GraphError`."""
        from .graph_file import load_graph  # noqa: PLC0415

        return load_graph(cls, directory)


def _below_8(table):
    """The entries of a width table below 8 bits (what :class:`IntGraph` keeps)."""
    return {name: bits for name, bits in table.items() if bits != 8}


def _check_qlayer(layer):
    w = np.asarray(layer.w)
    if w.dtype != np.int8 or w.ndim != (2 if isinstance(layer, QDense) else 4):
        raise GraphError(f"{layer.name}: weights must be int8 "
                         f"{'2-d' if isinstance(layer, QDense) else '4-d'}, not {w.dtype} "
                         f"{w.shape}")
    if not int(layer.act_min) <= int(layer.out_zp) <= int(layer.act_max):
        raise GraphError(f"{layer.name}: the output zero point {int(layer.out_zp)} must lie "
                         f"within the clamp [{int(layer.act_min)}, {int(layer.act_max)}]")
    out = w.shape[0]
    for key in ("bias", "multiplier", "shift"):
        v = np.asarray(getattr(layer, key))
        if v.shape != (out,) or v.dtype.kind not in "iu":
            raise GraphError(f"{layer.name}: {key} must be {out} integers, not {v.dtype} "
                             f"{v.shape}")
    if layer.sparsity is not None:
        n, m = layer.sparsity
        k = layer.gemm_weights().shape[1]
        if k % m:
            raise GraphError(f"{layer.name}: declared {n}:{m} sparse, but its reduction length "
                             f"{k} is not a multiple of {m}")
        if not is_n_m(layer.gemm_weights(), n, m, axis=1):
            raise GraphError(f"{layer.name}: weights are not {n}:{m} sparse as declared")


# --- float -> integer -------------------------------------------------------------------------

def _act_range(x, method, bits=8):
    """Calibrated range of an activation that is quantized affine at ``bits`` bits.

    Data that is never negative (a ReLU output) is quantized over ``[0, t]`` with
    ``2^bits - 1`` steps: it keeps ``rmin = 0``, and the MSE and KL searches optimize that
    quantizer (``one_sided=True``); percentile takes the percentiles of ``x`` itself
    (``symmetric=False``). Signed data gets the symmetric MSE / KL threshold of ``bits`` bits.
    """
    non_negative = bool(x.min() >= 0)
    if method == "percentile":
        kwargs = {"symmetric": False}
    elif method in ("mse", "kl"):
        kwargs = {"bits": bits, "one_sided": non_negative}
    else:
        kwargs = {}
    lo, hi = calibrate(x, method, **kwargs)
    if non_negative:
        lo = 0.0
    return float(lo), float(hi)


def _quantize_weights(w, mode, pot_bits=4, bits=8):
    """Codes (int8 containers) and per-output-channel float32 scales of a float weight tensor
    at ``bits`` bits (:func:`weight_code_range`)."""
    wm = w.reshape(w.shape[0], -1).astype(np.float32)
    qmin, qmax = weight_code_range(bits)
    if mode == "per_channel":
        scale, _ = qparams(wm, axis=0, bits=bits, symmetric=True, narrow=True)
        q = quantize(wm, scale, 0, qmin=qmin, qmax=qmax, axis=0)
    elif mode == "per_tensor":
        s, _ = qparams(wm, bits=bits, symmetric=True, narrow=True)
        scale = np.full(wm.shape[0], s)
        q = quantize(wm, s, 0, qmin=qmin, qmax=qmax)
    else:
        # Power of two: w ~ scale * sign * 2^e, e in [-(2^(pot_bits-1) - 2), 0] relative to
        # the channel's largest magnitude and at least -(bits - 2), stored as the code
        # sign * 2^(bits - 2 + e) (8 bits: 64 = 2^0, down to 1 = 2^-6; 4 bits: 4, 2, 1).
        top = bits - 2
        amax = np.abs(wm).max(axis=1)
        amax = np.where(amax > 0, amax, 1.0)
        sign, exponent = quantize_pot(wm / amax[:, None], bits=pot_bits, kmax=0)
        e = np.maximum(exponent.astype(np.int64), -top)
        q = (sign.astype(np.int64) * (1 << (top + e))).astype(np.int8)
        q[sign == 0] = 0
        scale = amax / float(1 << top)
    return q.reshape(w.shape).astype(np.int8), np.asarray(scale, dtype=np.float32)


def _layer_names(layers):
    return [layer.name or f"layer{i}" for i, layer in enumerate(layers)]


def _bits_table(spec, what, allowed, names, default=8):
    """``{name: bits}`` for every name in ``allowed`` from an int (all of them) or a dict
    (those it names; the rest ``default``)."""
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in allowed]
        if unknown:
            raise GraphError(f"{what} names {unknown[0]!r}, which is not {names}")
        table = dict.fromkeys(allowed, default)
        table.update({k: _check_width(v, f"{what}[{k!r}]") for k, v in spec.items()})
        return table
    if isinstance(spec, (numbers.Integral, np.integer)) or isinstance(spec, bool):
        return dict.fromkeys(allowed, _check_width(spec, what))
    raise TypeError(f"{what} must be an integer or a dict of name -> bits, not {spec!r}")


def _resolve_bits(layers, weight_bits, act_bits):
    """Complete ``(weight_bits, act_bits)`` tables of a float graph (see
    :func:`quantize_graph`)."""
    names = _layer_names(layers)
    weighted = [n for n, ly in zip(names, layers) if isinstance(ly, (Dense, Conv2d))]
    wbits = _bits_table(weight_bits, "weight_bits", weighted,
                        "a Dense or Conv2d layer of the graph")
    own = [INPUT, *(n for n, ly in zip(names, layers) if isinstance(ly, _OWN_OUTPUT))]
    if isinstance(act_bits, dict):
        abits = _bits_table(act_bits, "act_bits", own,
                            "the input or a layer with its own output quantization (Dense, "
                            "Conv2d, Add, Concat, GlobalAvgPool)")
        for n, ly in zip(names, layers):
            if isinstance(ly, _INT8_ONLY) and abits[n] != 8:
                raise GraphError(f"act_bits[{n!r}]: {ly.label()} has no output clamp in its "
                                 f"int8 kernel, so its output is 8-bit, not {abits[n]}")
    else:
        abits = _bits_table(act_bits, "act_bits", own, "")
        for n, ly in zip(names, layers):
            if isinstance(ly, _INT8_ONLY):
                abits[n] = 8
    return wbits, abits


def _activation_ranges(layers, acts, method, abits):
    """The calibrated range of every tensor with its own quantization (``None`` for the
    others, which keep their input's), each for its width."""
    names = [INPUT, *_layer_names(layers)]
    own = {INPUT} | {n for n, ly in zip(names[1:], layers) if isinstance(ly, _OWN_OUTPUT)}
    return [_act_range(a, method, abits[n]) if n in own else None
            for n, a in zip(names, acts)]


def quantize_graph(layers, input_shape, x_calib, *, method="minmax", weights="per_channel",
                   sparsity=None, pot_bits=4, act_ranges=None, weight_bits=8, act_bits=8):
    """The :class:`IntGraph` of a float graph.

    ``x_calib`` (float, ``(N, *input_shape)``) calibrates every tensor with ``method`` (a name
    in ``calibration.METHODS``; non-negative tensors, ReLU outputs, with the one-sided MSE and
    KL searches of the quantizer applied to them, see :func:`_act_range`); ``act_ranges`` (one
    ``(lo, hi)`` per layer output plus the input first, e.g. learned by quantization-aware
    training) replaces the calibration. ``weights`` is one of :data:`WEIGHT_MODES` (symmetric,
    narrow range: [-127, 127] at 8 bits). ``sparsity`` maps a layer name to ``(n, m)`` when
    its weights are N:M sparse along the GEMM reduction axis (checked), so that the hardware
    runs it in sparse mode.

    ``weight_bits`` and ``act_bits`` (2 to 8, default 8) set the widths (see the module
    docstring): an int for every layer, or a dict ``{name: bits}`` for some (the others 8).
    Weight widths are per Dense/Conv2d layer; activation widths per tensor with its own
    quantization: the input (:data:`INPUT`) and the outputs of Dense, Conv2d and Add (an int
    leaves Concat and GlobalAvgPool outputs at 8 bits; a dict giving them fewer raises).

    Per op: a Dense/Conv2d/Add/Concat/GlobalAvgPool output gets its own calibrated scale and
    zero point (a fused ReLU clamps with TFLite's bounds, within the output's width); MaxPool,
    AvgPool, Pad, Clip, Flatten, Reshape and Transpose keep their input's (what TFLite
    requires of average pooling; max, pad and reshape need no arithmetic); a Clip that no
    layer before it fused is a :class:`QClip` of a ReLU or ReLU6.

    Raises
    ------
    TypeError
        A width that is not an integer (or a dict of them).
    ValueError
        A width outside 2..8 (the message names it and the layer); :class:`GraphError` for a
        dict naming no such layer, or the graph's own errors.
    """
    check_choice(weights, "weights", WEIGHT_MODES)
    sparsity = dict(sparsity or {})
    x_calib = np.asarray(x_calib, dtype=np.float32)
    if x_calib.shape[1:] != tuple(input_shape):
        raise GraphError(f"calibration data must have shape (N, {tuple(input_shape)}), "
                         f"not {x_calib.shape}")
    wires = wiring(layers)
    wbits, abits = _resolve_bits(layers, weight_bits, act_bits)
    names = [INPUT, *_layer_names(layers)]
    acts = float_forward(layers, x_calib)
    if act_ranges is not None and len(act_ranges) != len(acts):
        raise GraphError(f"act_ranges must hold {len(acts)} ranges (input and every layer), "
                         f"not {len(act_ranges)}")

    def own(i):
        bits = abits[names[i]]
        rng = act_ranges[i] if act_ranges is not None else _act_range(acts[i], method, bits)
        return qparams_from_range(*rng, bits=bits)

    params = [own(0)]
    graph = IntGraph(tuple(input_shape), float(params[0][0]), int(params[0][1]), [],
                     weight_bits=_below_8(wbits), act_bits=_below_8(abits))
    for i, (layer, wire) in enumerate(zip(layers, wires)):
        ins = [params[j] for j in wire]
        name = names[i + 1]
        inputs = tuple(layer.inputs)
        if isinstance(layer, (Dense, Conv2d)):
            (in_scale, in_zp), (out_scale, out_zp) = ins[0], own(i + 1)
            q = _quantize_weighted(layer, in_scale, in_zp, out_scale, out_zp, weights,
                                   pot_bits, sparsity.get(layer.name), name, inputs,
                                   wbits[name], abits[name])
        elif isinstance(layer, Add):
            out_scale, out_zp = own(i + 1)
            lo, hi = act_code_range(abits[name])
            act_min, act_max = activation_bounds("relu" if layer.relu else None, out_scale,
                                                 out_zp, qmin=lo, qmax=hi)
            (a_s, a_z), (b_s, b_z) = ins
            q = QAdd(float(a_s), int(a_z), float(b_s), int(b_z), float(out_scale),
                     int(out_zp), int(act_min), int(act_max), bool(layer.relu), name, inputs)
        elif isinstance(layer, Concat):
            out_scale, out_zp = own(i + 1)
            q = QConcat(tuple(float(s) for s, _ in ins), tuple(int(z) for _, z in ins),
                        float(out_scale), int(out_zp), layer.axis, name, inputs)
        elif isinstance(layer, GlobalAvgPool):
            out_scale, out_zp = own(i + 1)
            q = QGlobalAvgPool(float(ins[0][0]), int(ins[0][1]), float(out_scale), int(out_zp),
                               name, inputs)
        elif isinstance(layer, AvgPool2d):
            q = QAvgPool2d(layer.kernel, layer.stride, tuple(layer.pads), float(ins[0][0]),
                           int(ins[0][1]), bool(layer.ceil_mode), bool(layer.count_include_pad),
                           name, inputs)
        elif isinstance(layer, Pad):
            q = QPad(tuple(layer.pads), int(ins[0][1]), name, inputs)
        elif isinstance(layer, Clip):
            q = QClip(clip_activation(layer.lo, layer.hi, layer.label()), float(ins[0][0]),
                      int(ins[0][1]), name, inputs)
        elif isinstance(layer, SHARED_LAYERS):
            q = layer                               # no parameters: the float layer itself
        else:
            raise GraphError(f"layer {i} ({type(layer).__name__}) is not a float graph layer")
        graph.layers.append(q)
        params.append(q.out_qparams(*ins))
    return graph.validate()


def _fused_activation(layer):
    """The activation a float Dense/Conv2d fuses: ``"relu6"``, ``"relu"`` or None."""
    if getattr(layer, "relu6", False):
        return "relu6"
    return "relu" if layer.relu else None


def _quantize_weighted(layer, in_scale, in_zp, out_scale, out_zp, weights, pot_bits, sparsity,
                       name, inputs, w_bits=8, out_bits=8):
    wq, w_scale = _quantize_weights(layer.w, weights, pot_bits, w_bits)
    mult, shift = quantize_multiplier(
        requant_scale(np.float32(in_scale), w_scale, np.float32(out_scale)))
    lo, hi = act_code_range(out_bits)
    act_min, act_max = activation_bounds(_fused_activation(layer), out_scale, out_zp, qmin=lo,
                                         qmax=hi)
    kw = dict(w=wq, bias=quantize_bias(layer.b, np.float32(in_scale), w_scale),
              multiplier=np.asarray(mult, np.int64), shift=np.asarray(shift, np.int64),
              in_scale=float(in_scale), in_zp=int(in_zp), out_scale=float(out_scale),
              out_zp=int(out_zp), act_min=int(act_min), act_max=int(act_max),
              w_scale=w_scale, relu=_fused_activation(layer) is not None, sparsity=sparsity,
              name=name, inputs=inputs)
    q = QDense(**kw) if isinstance(layer, Dense) else QConv2d(
        **kw, stride=layer.stride, padding=layer.padding, groups=layer.groups)
    _check_qlayer(q)
    return q
