"""The integer graph's files: ``graph.json`` (the manifest) and ``graph.npz`` (the arrays).

The manifest (``format: "sparsemac-graph"``, :data:`VERSION`) holds the input's shape and
quantization, then one entry per layer in topological order: ``kind`` (the class name),
``name``, ``inputs`` (the tensors it reads), ``out_shape`` (its output for one sample) and the
layer's parameters; ``bytes`` and ``total_bytes`` report what the weighted layers store. The
arrays of weighted layer ``i`` are ``i.w`` (int8), ``i.bias`` (int32), ``i.multiplier`` and
``i.shift`` (int64) and ``i.w_scale`` (float32); its entry records their ``sha256``.

The optional top-level ``bits`` object, ``{"weights": {layer: b}, "activations": {tensor:
b}}``, holds the bit widths (2 to 8) of every weighted layer's weights and of every tensor with
its own quantization (:class:`~golden_model.graph.IntGraph`); a file without it (every file
written before the widths) is all 8-bit, and a reader that ignores it still runs the graph
bit-exactly (the codes sit in int8 containers; only the byte counts differ), so the version
stays 2.

:func:`load_graph` checks every field: the format and version (1, the chains of earlier
releases, or 2), the widths (names, values, the codes and clamps within them), each entry's
fields (no missing or unknown one, each of its type and range),
the arrays (exactly the expected keys, dtypes, shapes and value ranges, each layer's digest,
the weights matching their declared shape and N:M sparsity), the wiring (names, references to
earlier tensors), the shapes (inferred from the input and compared with the recorded ones) and
each layer's input quantization against the tensor it reads. Anything else raises
:class:`GraphError` naming the file, the layer and the field.
"""

import hashlib
import json
import math
import numbers
import zipfile
from pathlib import Path

import numpy as np

from common.sparsity import Sparsity

from . import layers as L

__all__ = ["VERSION", "save_graph", "load_graph"]

FORMAT = "sparsemac-graph"
#: The version :func:`save_graph` writes; :func:`load_graph` also reads version 1.
VERSION = 2
_ARRAYS = ("w", "bias", "multiplier", "shift", "w_scale")


# --- field kinds ---------------------------------------------------------------------------------

class _Bad(Exception):
    """A field that is not what it should be (the message says what it is)."""


def _int(v, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise _Bad(f"must be an integer, not {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _Bad(f"must be between {lo} and {hi}, not {v}" if hi is not None
                   else f"must be at least {lo}, not {v}")
    return int(v)


def _code(v):
    return _int(v, -128, 127)


def _scale(v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise _Bad(f"must be a number, not {v!r}")
    with np.errstate(over="ignore", under="ignore"):
        s = np.float32(v)
    if not (math.isfinite(float(v)) and np.isfinite(s) and s > 0):
        raise _Bad(f"must be a positive finite float32 number, not {v!r}")
    return float(v)


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad(f"must be true or false, not {v!r}")
    return v


def _str(v):
    if not isinstance(v, str):
        raise _Bad(f"must be a string, not {v!r}")
    return v


def _list(item, lengths=None):
    def check(v):
        if not isinstance(v, list):
            raise _Bad(f"must be a list, not {v!r}")
        if lengths is not None and len(v) not in lengths:
            raise _Bad(f"must have {' or '.join(map(str, lengths))} values, not {len(v)}")
        return tuple(item(e) for e in v)
    return check


def _pair_or_int(v):
    if isinstance(v, list):
        return _list(lambda e: _int(e, 1), (2,))(v)
    return _int(v, 1)


def _padding(v):
    if isinstance(v, list):
        return _list(lambda e: _int(e, 0), (2, 4))(v)
    return _int(v, 0)


def _sparsity(v):
    if v is None:
        return None
    try:
        pattern = Sparsity.parse(_str(v))
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    if pattern.n == pattern.m:
        raise _Bad(f"must name an N:M pattern with N < M, not {v!r}")
    return pattern.n, pattern.m


def _activation(v):
    if v not in ("relu", "relu6"):
        raise _Bad(f"must be 'relu' or 'relu6', not {v!r}")
    return v


_QPARAMS = {"in_scale": _scale, "in_zp": _code, "out_scale": _scale, "out_zp": _code}
#: Per kind: its parameter fields and how each is checked.
_FIELDS = {
    "QDense": {**_QPARAMS, "act_min": _code, "act_max": _code, "relu": _bool,
               "weight_shape": _list(lambda e: _int(e, 1), (2,)), "sparsity": _sparsity},
    "QConv2d": {**_QPARAMS, "act_min": _code, "act_max": _code, "relu": _bool,
                "weight_shape": _list(lambda e: _int(e, 1), (4,)), "sparsity": _sparsity,
                "stride": _pair_or_int, "padding": _padding, "groups": lambda v: _int(v, 1)},
    "MaxPool2d": {"kernel": _pair_or_int, "stride": _pair_or_int,
                  "pads": _list(lambda e: _int(e, 0), (4,)), "ceil_mode": _bool},
    "Flatten": {},
    "Reshape": {"shape": _list(lambda e: _int(e, 1))},
    "Transpose": {"perm": _list(lambda e: _int(e, 0))},
    "QAdd": {"a_scale": _scale, "a_zp": _code, "b_scale": _scale, "b_zp": _code,
             "out_scale": _scale, "out_zp": _code, "act_min": _code, "act_max": _code,
             "relu": _bool},
    "QConcat": {"in_scales": _list(_scale), "in_zps": _list(_code), "out_scale": _scale,
                "out_zp": _code, "axis": lambda v: _int(v, 1)},
    "QAvgPool2d": {"kernel": _pair_or_int, "stride": _pair_or_int,
                   "pads": _list(lambda e: _int(e, 0), (4,)), "scale": _scale, "zp": _code,
                   "ceil_mode": _bool, "count_include_pad": _bool},
    "QGlobalAvgPool": {"in_scale": _scale, "in_zp": _code, "out_scale": _scale,
                       "out_zp": _code},
    "QPad": {"pads": _list(lambda e: _int(e, 0), (4,)), "zp": _code},
    "QClip": {"activation": _activation, "scale": _scale, "zp": _code},
}
#: Version 1 wrote chains: no ``inputs`` or ``out_shape``, pooling without pads or ceil mode.
_V1_DEFAULTS = {"MaxPool2d": {"pads": [0, 0, 0, 0], "ceil_mode": False},
                "QConv2d": {"groups": 1}}


def _json_value(v):
    if isinstance(v, tuple):
        return [_json_value(e) for e in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _digest(layer):
    """sha256 over a weighted layer's arrays (dtype, shape and bytes of each, in order): the
    manifest records it, so that arrays edited, swapped or reordered in graph.npz are found."""
    h = hashlib.sha256()
    for key in _ARRAYS:
        a = np.ascontiguousarray(getattr(layer, key))
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --- save ----------------------------------------------------------------------------------------

def save_graph(graph, directory):
    """Write ``graph`` (checked first) into ``directory`` as ``graph.json`` and ``graph.npz``."""
    graph.validate()
    directory = Path(directory)
    shapes = graph.shapes()
    arrays, entries = {}, []
    for i, layer in enumerate(graph.layers):
        kind = type(layer).__name__
        entry = {"kind": kind, "name": layer.name, "inputs": list(layer.inputs),
                 "out_shape": list(shapes[i + 1])}
        for key in _FIELDS[kind]:
            if key == "weight_shape":
                value = list(layer.w.shape)
            elif key == "sparsity":
                value = None if layer.sparsity is None else \
                    f"{layer.sparsity[0]}:{layer.sparsity[1]}"
            else:
                value = getattr(layer, key)
            entry[key] = _json_value(value)
        if isinstance(layer, (L.QDense, L.QConv2d)):
            for key in _ARRAYS:
                arrays[f"{i}.{key}"] = np.asarray(getattr(layer, key))
            entry["sha256"] = _digest(layer)
        entries.append(entry)
    manifest = {"format": FORMAT, "version": VERSION, "input_shape": list(graph.input_shape),
                "input_scale": float(graph.input_scale), "input_zp": int(graph.input_zp),
                "layers": entries, "bits": graph.bits_entry(), "bytes": graph.nbytes(),
                "total_bytes": graph.total_bytes()}
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "graph.npz", "wb") as f:
        np.savez(f, **arrays)
    (directory / "graph.json").write_text(json.dumps(manifest, indent=2, default=_json_value)
                                          + "\n")


# --- load ----------------------------------------------------------------------------------------

def _read(directory):
    path = directory / "graph.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise L.GraphError(f"cannot read {path}: {exc}") from None
    try:
        with open(directory / "graph.npz", "rb") as fh, np.load(fh, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise L.GraphError(f"cannot read {directory / 'graph.npz'}: {exc}") from None
    return manifest, arrays


def _array(arrays, key, dtype, shape, where):
    if key not in arrays:
        raise L.GraphError(f"{where}: graph.npz has no array {key!r}")
    a = arrays[key]
    if a.dtype != dtype or a.shape != shape:
        raise L.GraphError(f"{where}: array {key!r} must be {np.dtype(dtype).name} of shape "
                           f"{shape}, not {a.dtype} {a.shape}")
    return a


def _weighted_arrays(arrays, i, fields, where):
    shape = tuple(fields["weight_shape"])
    out = shape[0]
    kw = {"w": _array(arrays, f"{i}.w", np.int8, shape, where),
          "bias": _array(arrays, f"{i}.bias", np.int32, (out,), where),
          "multiplier": _array(arrays, f"{i}.multiplier", np.int64, (out,), where),
          "shift": _array(arrays, f"{i}.shift", np.int64, (out,), where),
          "w_scale": _array(arrays, f"{i}.w_scale", np.float32, (out,), where)}
    if ((kw["multiplier"] < 0) | (kw["multiplier"] >= 1 << 31)).any():
        raise L.GraphError(f"{where}: every multiplier must be in [0, 2^31)")
    if ((kw["shift"] < -31) | (kw["shift"] > 30)).any():
        raise L.GraphError(f"{where}: every shift must be in [-31, 30]")
    if not (np.isfinite(kw["w_scale"]).all() and (kw["w_scale"] > 0).all()):
        raise L.GraphError(f"{where}: every w_scale must be a positive finite number")
    return kw


def _layer(kind, fields, name, inputs, arrays, i, where):
    f = dict(fields)
    common = {"name": name, "inputs": inputs}
    if kind in ("QDense", "QConv2d"):
        if f["act_min"] > f["act_max"]:
            raise L.GraphError(f"{where}: act_min {f['act_min']} exceeds act_max "
                               f"{f['act_max']}")
        kw = _weighted_arrays(arrays, i, f, where)
        del f["weight_shape"]
        cls = L.QDense if kind == "QDense" else L.QConv2d
        return cls(**kw, **f, **common)
    if kind == "QAdd" and f["act_min"] > f["act_max"]:
        raise L.GraphError(f"{where}: act_min {f['act_min']} exceeds act_max {f['act_max']}")
    if kind == "QConcat" and len(f["in_scales"]) != len(f["in_zps"]):
        raise L.GraphError(f"{where}: in_scales and in_zps must have one value per input")
    return getattr(L, kind)(**f, **common)


def _header(manifest, where):
    """The input's shape, scale and zero point; the version."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise L.GraphError(f"{where} is not a sparsemac graph manifest")
    version = manifest.get("version")
    if isinstance(version, bool) or version not in (1, VERSION):
        raise L.GraphError(f"{where}: version {version!r} is not supported (this sparsemac "
                           f"reads versions 1 and {VERSION})")
    head = {"version": version}
    checks = {"input_shape": _list(lambda e: _int(e, 1), (1, 3)), "input_scale": _scale,
              "input_zp": _code}
    for key, check in checks.items():
        try:
            head[key] = check(manifest.get(key))
        except _Bad as exc:
            raise L.GraphError(f"{where}: {key} {exc}") from None
    entries = manifest.get("layers")
    if not isinstance(entries, list) or not entries:
        raise L.GraphError(f"{where}: layers must be a non-empty list")
    return head, entries


def _bits(entry, where):
    """``(weight_bits, act_bits)`` of the manifest's ``bits`` object, each ``{name: bits}``
    (the names are checked against the graph by ``IntGraph.validate``)."""
    if not isinstance(entry, dict) or set(entry) - {"weights", "activations"}:
        raise L.GraphError(f"{where} must be an object with 'weights' and 'activations', not "
                           f"{entry!r}")
    tables = []
    for key in ("weights", "activations"):
        table = entry.get(key, {})
        if not isinstance(table, dict):
            raise L.GraphError(f"{where}.{key} must be an object of name -> bits, not "
                               f"{table!r}")
        for name, bits in table.items():
            try:
                _int(bits, 2, 8)
            except _Bad:
                raise L.GraphError(f"{where}.{key}[{name!r}] must be an integer from 2 to 8, "
                                   f"not {bits!r}") from None
        tables.append({str(k): int(v) for k, v in table.items()})
    return tables[0], tables[1]


def _entry_fields(e, version, where):
    """``(kind, name, checked fields, recorded shape or None)`` of one layer entry."""
    if not isinstance(e, dict):
        raise L.GraphError(f"{where} must be an object, not {e!r}")
    kind = e.get("kind")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise L.GraphError(f"{where} has unknown kind {kind!r}")
    spec = _FIELDS[kind]
    weighted = ("sha256",) if kind in ("QDense", "QConv2d") else ()
    unknown = sorted(set(e) - {"kind", "name", "inputs", "out_shape", *spec, *weighted})
    if unknown:
        raise L.GraphError(f"{where} ({kind}) has unknown fields {', '.join(unknown)}")
    given = {**_V1_DEFAULTS.get(kind, {}), "inputs": []} if version == 1 else {}
    given.update(e)
    required = {"name", "inputs", *spec} | ({"out_shape", *weighted} if version > 1 else set())
    missing = sorted(required - set(given))
    if missing:
        raise L.GraphError(f"{where} ({kind}) is missing {', '.join(missing)}")
    try:
        name = _str(given["name"])
    except _Bad as exc:
        raise L.GraphError(f"{where}: name {exc}") from None
    where = f"{where} ({kind} {name!r})"
    fields = {}
    checks = [("inputs", _list(_str)), *spec.items()]
    if "out_shape" in given:
        checks.append(("out_shape", _list(lambda v: _int(v, 1))))
    for key, check in checks:
        try:
            fields[key] = check(given[key])
        except _Bad as exc:
            raise L.GraphError(f"{where}: {key} {exc}") from None
    return kind, name, fields, given.get("sha256"), where


def load_graph(cls, directory):
    """The :class:`~golden_model.graph.IntGraph` (class ``cls``) in ``directory``."""
    directory = Path(directory)
    manifest, arrays = _read(directory)
    where_file = directory / "graph.json"
    head, entries = _header(manifest, where_file)
    layers, recorded, expected_arrays = [], [], set()
    for i, e in enumerate(entries):
        kind, name, fields, digest, where = _entry_fields(e, head["version"],
                                                          f"{where_file}: layer {i}")
        recorded.append(fields.pop("out_shape", None))
        inputs = fields.pop("inputs")
        try:
            layer = _layer(kind, fields, name, inputs, arrays, i, where)
        except L.GraphError:
            raise
        except (TypeError, ValueError) as exc:      # a layer's own checks
            raise L.GraphError(f"{where}: {exc}") from None
        if kind in ("QDense", "QConv2d"):
            expected_arrays.update(f"{i}.{key}" for key in _ARRAYS)
            if head["version"] > 1 and digest != _digest(layer):
                raise L.GraphError(f"{where}: its arrays in graph.npz are not the ones saved "
                                   f"with it (sha256 {_digest(layer)[:12]}..., recorded "
                                   f"{str(digest)[:12]}...)")
        layers.append(layer)
    extra = sorted(set(arrays) - expected_arrays)
    if extra:
        raise L.GraphError(f"{directory / 'graph.npz'} holds arrays no layer uses: "
                           f"{', '.join(extra[:5])}")
    graph = cls(head["input_shape"], head["input_scale"], head["input_zp"], layers)
    if manifest.get("bits") is not None:
        graph.weight_bits, graph.act_bits = _bits(manifest["bits"], f"{where_file}: bits")
    try:
        shapes = graph.validate().shapes()          # the widths' names and ranges included
    except L.GraphError as exc:
        raise L.GraphError(f"{where_file}: {exc}") from None
    # Keep what IntGraph keeps: the widths below 8 bits.
    graph.weight_bits = {k: v for k, v in graph.weight_bits.items() if v != 8}
    graph.act_bits = {k: v for k, v in graph.act_bits.items() if v != 8}
    for i, (want, got) in enumerate(zip(recorded, shapes[1:])):
        if want is not None and tuple(want) != tuple(got):
            raise L.GraphError(f"{where_file}: layer {i} ({layers[i].label()}) records shape "
                               f"{list(want)}, but its inputs give {list(got)}")
    return graph
