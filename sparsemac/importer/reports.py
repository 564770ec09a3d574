"""What ``sparsemac compress`` tells: the digits accuracy, the layer table it prints and the
``summary.md`` it writes next to the graph."""

from pathlib import Path

import numpy as np

from golden_model.graph import QConv2d, QDense, float_forward

from .digits import DIGITS_SHAPES, digits_split

__all__ = ["digits_accuracy", "layer_rows", "format_table", "summary_markdown"]


def digits_accuracy(result):
    """``(float_accuracy or None, int8_accuracy)`` on the digits test split, or ``None`` when
    the model is not a digits classifier (its input not digits-shaped, or its output not 10
    scores). The int8 figure is the integer graph as the hardware runs it
    (``requant="tflite"``, double rounding)."""
    shape = tuple(result.graph.input_shape)
    if shape not in DIGITS_SHAPES or tuple(result.graph.shapes()[-1]) != (10,):
        return None
    _, _, x_test, y_test = digits_split()
    x = x_test.reshape(-1, *shape)
    int_acc = float(np.mean(result.graph.predict(x) == y_test))
    float_acc = None
    if result.float_layers is not None:
        logits = float_forward(result.float_layers, x)[-1]
        float_acc = float(np.mean(np.argmax(logits, axis=1) == y_test))
    return float_acc, int_acc


def layer_rows(graph):
    """One dict per layer of ``graph`` for the tables: name, kind, the tensors it reads,
    shapes, GEMM geometry, mode, zero points, clamp and bytes (``None`` where a field does not
    apply)."""
    sizes = iter(graph.nbytes())          # one row per weighted layer, in order
    shapes = graph.shapes()
    names = ["input", *(layer.name for layer in graph.layers)]
    rows = []
    for i, (layer, wire) in enumerate(zip(graph.layers, graph.wiring())):
        row = {"layer": layer.name, "kind": type(layer).__name__, "in": shapes[wire[0]],
               "out": shapes[i + 1], "reads": [names[j] for j in wire], "weights": None,
               "gemm": None, "mode": None, "in_zp": None, "out_zp": None, "clamp": None,
               "relu": None, "macs": 0, "bytes": None}
        if isinstance(layer, (QDense, QConv2d)):
            row.update(_weighted_fields(layer, shapes[i + 1], next(sizes)))
        rows.append(row)
    return rows


def _weighted_fields(layer, out_shape, nbytes):
    wm = layer.gemm_weights()
    m_rows = out_shape[1] * out_shape[2] if isinstance(layer, QConv2d) else 1
    mode = "dense" if layer.sparsity is None else f"{layer.sparsity[0]}:{layer.sparsity[1]}"
    return {"weights": tuple(layer.w.shape), "gemm": (m_rows, *wm.shape[::-1]), "mode": mode,
            "in_zp": layer.in_zp, "out_zp": layer.out_zp,
            "clamp": (layer.act_min, layer.act_max), "relu": layer.relu,
            "macs": m_rows * wm.size, "bytes": nbytes}


def _dims(shape):
    return "x".join(map(str, shape))


def format_table(graph):
    """The short table ``sparsemac compress`` prints: layers, shapes, mode, bytes."""
    head = ("layer", "kind", "weights", "output", "mode", "bytes")
    lines = [head]
    for r in layer_rows(graph):
        lines.append((r["layer"], r["kind"], _dims(r["weights"]) if r["weights"] else "-",
                      _dims(r["out"]), r["mode"] or "-",
                      str(r["bytes"]["total"]) if r["bytes"] else "-"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = ["  ".join(str(v).ljust(w) if i < 5 else str(v).rjust(w)
                     for i, (v, w) in enumerate(zip(line, widths, strict=True))).rstrip()
           for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append(f"total {graph.total_bytes()} bytes (weights, N:M indices, int32 bias, "
               "multiplier + shift)")
    return "\n".join(out)


def summary_markdown(result, source, accuracy=None):
    """``summary.md``: per layer what an FPGA engineer sets up (GEMM geometry per sample,
    N:M or dense, zero points and clamp registers, bytes), then the notes."""
    g = result.graph
    source_line = (f"Source: {result.imported.kind} ONNX model; input "
                   f"{result.imported.input_name!r} shape (N, "
                   f"{', '.join(map(str, g.input_shape))}), quantized with scale "
                   f"{g.input_scale!r}, zero point {g.input_zp}. Files: `graph.json` "
                   "(manifest), `graph.npz` (int8 weights, int32 bias, multiplier, shift, "
                   "weight scales).")
    gemm_line = ("GEMM m x k x n is per sample (convolutions: m = output pixels, lowered by "
                 "im2col; padded taps equal the input zero point). Clamp = ACT_MIN, ACT_MAX.")
    head = ("| # | layer | kind | input | output | GEMM m x k x n | mode | IN_ZP | OUT_ZP | "
            "clamp | weight B | index B | bias B | requant B | total B | MACs |")
    rows = layer_rows(g)
    lines = [f"# {Path(str(source)).name}: integer graph", "", source_line, "", gemm_line, "",
             head, "|---:|---|---|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    lines += [_summary_row(i, r) for i, r in enumerate(rows)]
    lines += ["", f"Total: {g.total_bytes()} bytes; "
              f"{sum(r['macs'] for r in rows)} dense-equivalent MACs per sample."]
    if accuracy is not None:
        float_acc, int_acc = accuracy
        lines += ["", f"Digits test split ({len(digits_split()[3])} images): " +
                  (f"float {100 * float_acc:.2f} %, " if float_acc is not None else "") +
                  f"int8 {100 * int_acc:.2f} % (integer requantization, double rounding)."]
    if result.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _summary_row(i, r):
    """One line of the summary's table, for row ``r`` of :func:`layer_rows`."""
    if r["gemm"] is None:
        return (f"| {i} | {r['layer']} | {r['kind']} | {_dims(r['in'])} | "
                f"{_dims(r['out'])} | - | - | - | - | - | - | - | - | - | - | - |")
    b = r["bytes"]
    return (f"| {i} | {r['layer']} | {r['kind']} | {_dims(r['in'])} | "
            f"{_dims(r['out'])} | {' x '.join(map(str, r['gemm']))} | {r['mode']} | "
            f"{r['in_zp']} | {r['out_zp']} | {r['clamp'][0]}, {r['clamp'][1]} | "
            f"{b['weights']} | {b['metadata']} | {b['bias']} | {b['requant']} | "
            f"{b['total']} | {r['macs']} |")
