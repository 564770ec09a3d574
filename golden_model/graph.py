"""A network as the hardware runs it: a chain of integer layers, and its float twin.

Two descriptions of the same feed-forward chain (input NCHW or (N, features)):

* the **float graph** (:class:`Dense`, :class:`Conv2d`, :class:`MaxPool2d`, :class:`Flatten`
  holding float32 weights), what training, pruning and the ONNX importer produce;
* the **integer graph** (:class:`IntGraph` of :class:`QDense`, :class:`QConv2d`,
  :class:`MaxPool2d`, :class:`Flatten`), int8 weights, int32 bias and one requantization
  multiplier/shift per output channel, what the accelerator loads.

:func:`quantize_graph` turns the first into the second (activations calibrated on data with
any calibrator of :mod:`.calibration`; weights per tensor, per channel or power of two);
:meth:`IntGraph.forward` runs it integer-only with :func:`.kernels.qlinear` /
:func:`.kernels.qconv2d`, every layer's int8 output kept. A ReLU after a Dense/Conv2d is fused
into its clamp bounds (TFLite's rule, :func:`.requant.activation_bounds`); max pooling on
int8 codes equals pooling the real values (the code map is monotonic), so it needs no
parameters.

:meth:`IntGraph.save` writes what the hardware loads: one ``.npz`` of arrays and a JSON
manifest (layer kinds, shapes, zero points, scales, sparsity, byte counts);
:meth:`IntGraph.load` reads it back with every field validated.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from common.checks import check_choice, check_int

from .calibration import calibrate
from .compress import nbytes_n_m
from .kernels import conv_output_size, im2col, qconv2d, qlinear
from .prune import is_n_m
from .quant import qparams, qparams_from_range, quantize, quantize_pot
from .requant import activation_bounds, quantize_bias, quantize_multiplier, requant_scale

__all__ = [
    "Dense", "Conv2d", "MaxPool2d", "Flatten", "float_forward", "QDense", "QConv2d",
    "IntGraph", "quantize_graph", "GraphError", "WEIGHT_MODES", "REQUANT_MODES",
    "layer_weight_matrix", "n_m_layers",
]

WEIGHT_MODES = ("per_channel", "per_tensor", "pot")
#: How :meth:`IntGraph.forward` requantizes: ``"tflite"`` with the integer multiplier and
#: shift (what the hardware does), ``"onnx"`` in float32 as ONNX Runtime's QLinear kernels
#: (``round_half_even(float32(acc) * requant_scale(..., mode="onnx"))``).
REQUANT_MODES = ("tflite", "onnx")


class GraphError(ValueError):
    """A graph or a graph file that cannot be built, run or loaded (the message says why)."""


# --- float layers -----------------------------------------------------------------------------

@dataclasses.dataclass
class Dense:
    """``y = x w^T + b`` (``w`` is (out, in)); ``relu`` fuses a ReLU after it."""

    w: np.ndarray
    b: np.ndarray
    relu: bool = False
    name: str = ""

    def __call__(self, x):
        y = x @ self.w.T + self.b
        return np.maximum(y, 0) if self.relu else y


@dataclasses.dataclass
class Conv2d:
    """NCHW convolution, OIHW weights, one group; ``padding`` as in :func:`.kernels.im2col`."""

    w: np.ndarray
    b: np.ndarray
    stride: int = 1
    padding: int = 0
    relu: bool = False
    name: str = ""

    def __call__(self, x):
        cols = im2col(x, self.w.shape[2:], stride=self.stride, padding=self.padding)
        cols = cols.reshape(*cols.shape[:3], -1)                        # (N, OH, OW, C*KH*KW)
        y = cols @ self.w.reshape(self.w.shape[0], -1).T + self.b      # (N, OH, OW, O)
        y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        return np.maximum(y, 0) if self.relu else y


@dataclasses.dataclass
class MaxPool2d:
    """Non-overlapping or strided max pooling, NCHW, no padding (floor of the output size)."""

    kernel: int = 2
    stride: int = 2
    name: str = ""

    def __post_init__(self):
        self.kernel = check_int(self.kernel, "pooling kernel", lo=1)
        self.stride = check_int(self.stride, "pooling stride", lo=1)

    def __call__(self, x):
        n, c, h, w = x.shape
        oh = conv_output_size(h, self.kernel, self.stride, 1, 0)
        ow = conv_output_size(w, self.kernel, self.stride, 1, 0)
        if oh < 1 or ow < 1:
            raise GraphError(f"{self.name or 'maxpool'}: kernel {self.kernel} does not fit "
                             f"an input of {h}x{w}")
        out = None
        for i in range(self.kernel):
            for j in range(self.kernel):
                tap = x[:, :, i:i + self.stride * oh:self.stride,
                        j:j + self.stride * ow:self.stride]
                out = tap if out is None else np.maximum(out, tap)
        return np.ascontiguousarray(out)


@dataclasses.dataclass
class Flatten:
    """(N, C, H, W) -> (N, C*H*W) in C order (ONNX ``Flatten`` with axis 1)."""

    name: str = ""

    def __call__(self, x):
        return x.reshape(x.shape[0], -1)


def float_forward(layers, x):
    """Float inference; returns every layer's output (input first)."""
    outs = [np.asarray(x, dtype=np.float32)]
    for layer in layers:
        outs.append(np.asarray(layer(outs[-1]), dtype=np.float32))
    return outs


# --- integer layers ---------------------------------------------------------------------------

@dataclasses.dataclass
class _QWeighted:
    w: np.ndarray                 # int8
    bias: np.ndarray              # int32 (out,)
    multiplier: np.ndarray        # int64 (out,), [0, 2^31)
    shift: np.ndarray             # int64 (out,), [-31, 30]
    in_scale: float
    in_zp: int
    out_scale: float
    out_zp: int
    act_min: int
    act_max: int
    w_scale: np.ndarray           # float32 (out,)
    relu: bool = False
    sparsity: tuple = None        # (n, m): w is N:M along its GEMM reduction axis
    name: str = ""

    def gemm_weights(self):
        """The weights as the (out, k) GEMM matrix the array multiplies."""
        return self.w.reshape(self.w.shape[0], -1)

    def requant_kwargs(self, requant="tflite"):
        """Keyword arguments of :func:`.kernels.qlinear` / :func:`.kernels.qconv2d` for
        requantization mode ``requant`` (one of :data:`REQUANT_MODES`)."""
        check_choice(requant, "requant", REQUANT_MODES)
        kw = {"out_zero_point": self.out_zp, "qmin": self.act_min, "qmax": self.act_max}
        if requant == "tflite":
            kw.update(multiplier=self.multiplier, shift=self.shift)
        else:
            kw["scale"] = requant_scale(np.float32(self.in_scale), self.w_scale,
                                        np.float32(self.out_scale), mode="onnx")
        return kw


@dataclasses.dataclass
class QDense(_QWeighted):
    """Integer fully connected layer (:func:`.kernels.qlinear`).

    :meth:`run` requantizes with the integer multiplier and shift (``requant="tflite"``,
    ``rounding`` "double" or "single") or in float32 as ONNX Runtime (``requant="onnx"``,
    where ``rounding`` does not apply).
    """

    def run(self, x, rounding="double", acc_bits=32, requant="tflite"):
        return qlinear(x, self.w, self.bias, x_zero_point=self.in_zp, rounding=rounding,
                       acc_bits=acc_bits, **self.requant_kwargs(requant))


@dataclasses.dataclass
class QConv2d(_QWeighted):
    """Integer convolution (:func:`.kernels.qconv2d`), padded taps equal to ``in_zp``;
    ``run`` requantizes as :meth:`QDense.run`."""

    stride: int = 1
    padding: int = 0

    def run(self, x, rounding="double", acc_bits=32, requant="tflite"):
        return qconv2d(x, self.w, self.bias, stride=self.stride, padding=self.padding,
                       x_zero_point=self.in_zp, rounding=rounding, acc_bits=acc_bits,
                       **self.requant_kwargs(requant))


def layer_weight_matrix(layer):
    """The (out, k) GEMM weight matrix of a float or integer Dense/Conv2d layer."""
    return layer.w.reshape(layer.w.shape[0], -1)


def n_m_layers(layers, m, *, dense_first=False, dense_last=False, edge_reason=None):
    """The one rule for which layers are pruned N:M with group size ``m``.

    Among the weighted layers of ``layers`` (float or integer Dense / Conv2d, in order), every
    one whose GEMM reduction length (in-features, or ``C*KH*KW``) is a multiple of ``m``,
    except the first with ``dense_first`` and the last (the classifier) with ``dense_last``.
    Returns ``(names, notes)``: the names chosen, and one line per weighted layer kept dense
    saying why (for the first or last layer, ``edge_reason`` when given).
    """
    weighted = [ly for ly in layers if isinstance(ly, (Dense, Conv2d, QDense, QConv2d))]
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


@dataclasses.dataclass
class IntGraph:
    """An integer network: the input's quantization, then the layers in order."""

    input_shape: tuple            # one sample, e.g. (64,) or (1, 8, 8)
    input_scale: float
    input_zp: int
    layers: list

    def quantize_input(self, x):
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != tuple(self.input_shape):
            raise GraphError(f"input must have shape (N, {', '.join(map(str, self.input_shape))})"
                             f", not {x.shape}")
        return quantize(x, self.input_scale, self.input_zp)

    def forward(self, x, *, rounding="double", acc_bits=32, quantized=False, requant="tflite"):
        """Every layer's int8 output (the quantized input first).

        ``x`` is float (quantized with the input parameters) or, with ``quantized=True``,
        int8 codes already. ``requant`` (:data:`REQUANT_MODES`): ``"tflite"`` (default, what
        the hardware does) requantizes with each layer's integer multiplier and shift and
        ``rounding`` ("double" or "single"); ``"onnx"`` requantizes in float32,
        ``round_half_even(float32(acc) * M[c])`` with ``M[c] = (s_in * s_w[c]) / s_out`` in
        float32, bit-exact with ONNX Runtime's QGemm / QLinearConv / QLinearMatMul
        (``rounding`` does not apply).
        """
        check_choice(requant, "requant", REQUANT_MODES)
        q = np.asarray(x) if quantized else self.quantize_input(x)
        if quantized and (q.dtype != np.int8 or q.shape[1:] != tuple(self.input_shape)):
            raise GraphError(f"quantized input must be int8 of shape (N, "
                             f"{', '.join(map(str, self.input_shape))}), not {q.dtype} "
                             f"{q.shape}")
        outs = [q]
        for layer in self.layers:
            if isinstance(layer, (QDense, QConv2d)):
                q = layer.run(q, rounding=rounding, acc_bits=acc_bits, requant=requant)
            else:
                q = layer(q)
            outs.append(q)
        return outs

    def predict(self, x, **kwargs):
        """Class index of every sample (argmax of the last layer's codes)."""
        return np.argmax(self.forward(x, **kwargs)[-1], axis=1)

    def weighted(self):
        return [layer for layer in self.layers if isinstance(layer, (QDense, QConv2d))]

    def nbytes(self):
        """What each weighted layer stores, exact to the byte.

        Per layer: ``weights`` (int8 values, N:M kept values only when the layer is sparse),
        ``metadata`` (N:M indices, ``log2(M)`` bits each, packed), ``bias`` (4 bytes each),
        ``requant`` (multiplier 4 bytes + shift 1 byte per output channel) and ``total``.
        """
        rows = []
        for layer in self.weighted():
            wm = layer.gemm_weights()
            if layer.sparsity is not None:
                n, m = layer.sparsity
                fp = nbytes_n_m(wm.shape, n, m, axis=1)
                values, meta = fp.values, fp.metadata
            else:
                values, meta = wm.size, 0
            out = wm.shape[0]
            row = {"layer": layer.name, "shape": tuple(layer.w.shape), "weights": values,
                   "metadata": meta, "bias": 4 * out, "requant": 5 * out}
            row["total"] = values + meta + row["bias"] + row["requant"]
            rows.append(row)
        return rows

    def total_bytes(self):
        return sum(r["total"] for r in self.nbytes())

    # --- files ---------------------------------------------------------------------------

    def save(self, directory):
        """Write ``graph.json`` (manifest) and ``graph.npz`` (arrays) into ``directory``."""
        directory = Path(directory)
        arrays, entries = {}, []
        for i, layer in enumerate(self.layers):
            entry = {"kind": type(layer).__name__, "name": layer.name}
            if isinstance(layer, (QDense, QConv2d)):
                for key in ("w", "bias", "multiplier", "shift", "w_scale"):
                    arrays[f"{i}.{key}"] = np.asarray(getattr(layer, key))
                entry.update({
                    "in_scale": float(layer.in_scale), "in_zp": int(layer.in_zp),
                    "out_scale": float(layer.out_scale), "out_zp": int(layer.out_zp),
                    "act_min": int(layer.act_min), "act_max": int(layer.act_max),
                    "relu": bool(layer.relu), "weight_shape": list(layer.w.shape),
                    "sparsity": None if layer.sparsity is None else
                    f"{layer.sparsity[0]}:{layer.sparsity[1]}"})
                if isinstance(layer, QConv2d):
                    entry.update({"stride": layer.stride, "padding": layer.padding})
            elif isinstance(layer, MaxPool2d):
                entry.update({"kernel": layer.kernel, "stride": layer.stride})
            entries.append(entry)
        manifest = {"format": "sparsemac-graph", "version": 1,
                    "input_shape": list(self.input_shape),
                    "input_scale": float(self.input_scale), "input_zp": int(self.input_zp),
                    "layers": entries, "bytes": self.nbytes(),
                    "total_bytes": self.total_bytes()}
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "graph.npz", "wb") as f:
            np.savez(f, **arrays)
        (directory / "graph.json").write_text(json.dumps(manifest, indent=2, default=list)
                                              + "\n")

    @classmethod
    def load(cls, directory):
        """Read a graph written by :meth:`save`; a bad file raises :class:`GraphError`."""
        directory = Path(directory)
        try:
            manifest = json.loads((directory / "graph.json").read_text())
            arrays = dict(np.load(directory / "graph.npz", allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise GraphError(f"cannot read the graph in {directory}: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != "sparsemac-graph":
            raise GraphError(f"{directory / 'graph.json'} is not a sparsemac graph manifest")
        layers = []
        try:
            for i, e in enumerate(manifest["layers"]):
                kind = e["kind"]
                if kind in ("QDense", "QConv2d"):
                    kw = {key: arrays[f"{i}.{key}"] for key in
                          ("w", "bias", "multiplier", "shift", "w_scale")}
                    sp = e["sparsity"]
                    kw["sparsity"] = None if sp is None else tuple(int(v) for v in sp.split(":"))
                    for key in ("in_scale", "in_zp", "out_scale", "out_zp", "act_min",
                                "act_max", "relu", "name"):
                        kw[key] = e[key]
                    if kind == "QConv2d":
                        kw["stride"], kw["padding"] = e["stride"], e["padding"]
                    layer = (QDense if kind == "QDense" else QConv2d)(**kw)
                    _check_qlayer(layer)
                elif kind == "MaxPool2d":
                    layer = MaxPool2d(e["kernel"], e["stride"], e["name"])
                elif kind == "Flatten":
                    layer = Flatten(e["name"])
                else:
                    raise GraphError(f"layer {i} has unknown kind {kind!r}")
                layers.append(layer)
            return cls(tuple(manifest["input_shape"]), float(manifest["input_scale"]),
                       int(manifest["input_zp"]), layers)
        except KeyError as exc:
            raise GraphError(f"{directory}: the graph is missing {exc}") from None
        except (TypeError, AttributeError) as exc:
            raise GraphError(f"{directory}: malformed graph ({exc})") from None


def _check_qlayer(layer):
    w = np.asarray(layer.w)
    if w.dtype != np.int8 or w.ndim != (2 if isinstance(layer, QDense) else 4):
        raise GraphError(f"{layer.name}: weights must be int8 "
                         f"{'2-d' if isinstance(layer, QDense) else '4-d'}, not {w.dtype} "
                         f"{w.shape}")
    out = w.shape[0]
    for key in ("bias", "multiplier", "shift"):
        v = np.asarray(getattr(layer, key))
        if v.shape != (out,) or v.dtype.kind not in "iu":
            raise GraphError(f"{layer.name}: {key} must be {out} integers, not {v.dtype} "
                             f"{v.shape}")
    if layer.sparsity is not None:
        n, m = layer.sparsity
        if not is_n_m(layer.gemm_weights(), n, m, axis=1):
            raise GraphError(f"{layer.name}: weights are not {n}:{m} sparse as declared")


# --- float -> integer -------------------------------------------------------------------------

def _act_range(x, method):
    """Calibrated range of an activation; data that is never negative keeps ``rmin = 0``."""
    kwargs = {"symmetric": False} if method == "percentile" else {}
    lo, hi = calibrate(x, method, **kwargs)
    if x.min() >= 0:
        lo = 0.0
    return float(lo), float(hi)


def _quantize_weights(w, mode, pot_bits=4):
    """int8 codes and per-output-channel float32 scales of a float weight tensor."""
    wm = w.reshape(w.shape[0], -1).astype(np.float32)
    if mode == "per_channel":
        scale, _ = qparams(wm, axis=0, symmetric=True, narrow=True)
        q = quantize(wm, scale, 0, qmin=-127, axis=0)
    elif mode == "per_tensor":
        s, _ = qparams(wm, symmetric=True, narrow=True)
        scale = np.full(wm.shape[0], s)
        q = quantize(wm, s, 0, qmin=-127)
    else:
        # Power of two: w ~ scale * sign * 2^e, e in [-(2^(bits-1) - 2), 0] relative to the
        # channel's largest magnitude, stored as the int8 code sign * 2^(6 + e) (64 = 2^0).
        amax = np.abs(wm).max(axis=1)
        amax = np.where(amax > 0, amax, 1.0)
        sign, exponent = quantize_pot(wm / amax[:, None], bits=pot_bits, kmax=0)
        e = np.maximum(exponent.astype(np.int64), -6)
        q = (sign.astype(np.int64) * (1 << (6 + e))).astype(np.int8)
        q[sign == 0] = 0
        scale = amax / 64.0
    return q.reshape(w.shape).astype(np.int8), np.asarray(scale, dtype=np.float32)


def quantize_graph(layers, input_shape, x_calib, *, method="minmax", weights="per_channel",
                   sparsity=None, pot_bits=4, act_ranges=None):
    """The :class:`IntGraph` of a float graph.

    ``x_calib`` (float, ``(N, *input_shape)``) calibrates every activation with ``method``
    (a name in ``calibration.METHODS``); ``act_ranges`` (one ``(lo, hi)`` per layer output
    plus the input first, e.g. learned by quantization-aware training) replaces the
    calibration. ``weights`` is one of :data:`WEIGHT_MODES` (symmetric int8, narrow range
    [-127, 127]). ``sparsity`` maps a layer name to ``(n, m)`` when its weights are N:M sparse
    along the GEMM reduction axis (checked), so that the hardware runs it in sparse mode.
    """
    check_choice(weights, "weights", WEIGHT_MODES)
    sparsity = dict(sparsity or {})
    x_calib = np.asarray(x_calib, dtype=np.float32)
    if x_calib.shape[1:] != tuple(input_shape):
        raise GraphError(f"calibration data must have shape (N, {tuple(input_shape)}), "
                         f"not {x_calib.shape}")
    acts = float_forward(layers, x_calib)
    if act_ranges is not None and len(act_ranges) != len(acts):
        raise GraphError(f"act_ranges must hold {len(acts)} ranges (input and every layer), "
                         f"not {len(act_ranges)}")

    def rng(i):
        return act_ranges[i] if act_ranges is not None else _act_range(acts[i], method)

    in_scale, in_zp = qparams_from_range(*rng(0))
    graph = IntGraph(tuple(input_shape), in_scale, in_zp, [])
    for i, layer in enumerate(layers):
        if isinstance(layer, (Dense, Conv2d)):
            wq, w_scale = _quantize_weights(layer.w, weights, pot_bits)
            out_scale, out_zp = qparams_from_range(*rng(i + 1))
            mult, shift = quantize_multiplier(
                requant_scale(np.float32(in_scale), w_scale, np.float32(out_scale)))
            act_min, act_max = activation_bounds("relu" if layer.relu else None, out_scale,
                                                 out_zp)
            kw = dict(w=wq, bias=quantize_bias(layer.b, np.float32(in_scale), w_scale),
                      multiplier=np.asarray(mult, np.int64), shift=np.asarray(shift, np.int64),
                      in_scale=float(in_scale), in_zp=int(in_zp), out_scale=float(out_scale),
                      out_zp=int(out_zp), act_min=int(act_min), act_max=int(act_max),
                      w_scale=w_scale, relu=bool(layer.relu),
                      sparsity=sparsity.get(layer.name), name=layer.name or f"layer{i}")
            q = QDense(**kw) if isinstance(layer, Dense) else QConv2d(
                **kw, stride=layer.stride, padding=layer.padding)
            _check_qlayer(q)
            graph.layers.append(q)
            in_scale, in_zp = out_scale, out_zp
        elif isinstance(layer, (MaxPool2d, Flatten)):
            graph.layers.append(layer)
        else:
            raise GraphError(f"layer {i} ({type(layer).__name__}) is not a graph layer")
    return graph

