"""A whole integer network on the generated RTL, layer after layer, checked bit for bit.

:func:`run_network` runs an :class:`golden_model.graph.IntGraph` on a simulated array:

* the input is quantized with the graph's input parameters (or given as int8 codes);
* every weighted layer (:class:`~golden_model.graph.QDense`, :class:`~golden_model.graph.QConv2d`)
  is one GEMM on the engine: a convolution is lowered by im2col
  (:func:`hdl.packing.conv2d_as_gemm`, padding taps equal to the layer's input zero point),
  packed with the layer's quantization (:func:`hdl.packing.pack_layer`), streamed through the
  RTL, and its output words unpacked and reshaped back to NCHW;
* :class:`~golden_model.graph.MaxPool2d` and :class:`~golden_model.graph.Flatten` run on the
  host with the golden layer objects: the engine is a GEMM engine with fused requantization,
  clamp and ReLU, and has no pooling or reshaping datapath. So do the im2col lowering and the
  packing of words.

Each layer's input is the previous layer's *RTL* output (the network is chained on the
engine, not fed the golden activations). The mode of a layer is chosen per layer
(:func:`engine_sparse`): N:M when its declared sparsity guarantees the array's N:M pattern,
otherwise the dense fallback (so a dense array runs everything dense, and a layer declared
2:4 on a 1:4 array runs dense).

Checking happens at two levels: in the simulation, every engine run goes through the
testbench's scoreboard (:class:`tb.TB`: the RTL against the transaction-level model fed from
the input monitors, then against the golden GEMM rows, as ``regression_tb.run_and_check``
does); on the host, every layer's RTL output is compared with ``IntGraph.forward`` run with
the array's rounding and accumulator width (:func:`check_outputs`), and the predicted classes
must be identical. A mismatch raises :class:`NetworkMismatch` naming the layer, the first
differing index and both values.

Cycles are counted as ``sparsemac bench`` counts them (first input transfer to last output
transfer of each engine run, every stream always ready unless ``stalls=True``) and set
against the performance model (:func:`sim.perf.layer_cycles`), engine run by engine run.

The simulation side is ``sim/network_tb.py``: one simulator build per configuration (cached
under ``build_root``), one simulation per network with every layer in one cocotb test. It
gets its work from ``SPARSEMAC_NETWORK`` (a JSON job naming the graph directory, written with
:meth:`IntGraph.save`, an ``.npz`` of the input and golden outputs, and where to write the
results).
"""

import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import golden_model as gm
from golden_model.graph import Conv2d, Dense, Flatten, IntGraph, MaxPool2d, QConv2d, QDense
from golden_model.train import MLP, load_digits_split
from hdl.config import Config
from hdl.packing import conv2d_as_gemm, pack_layer

from . import runner
from .perf import layer_cycles

__all__ = ["run_network", "NetworkResult", "LayerResult", "NetworkMismatch", "engine_sparse",
           "lower", "golden_gemm", "engine_batches", "check_layer", "check_outputs",
           "digits_mlp", "digits_cnn", "run_digits", "M_ROWS_MAX", "DIGITS_CONFIG"]

#: Largest ``m`` of one engine run: the ``M_ROWS`` register is 24 bits wide (hdl.top).
M_ROWS_MAX = (1 << 24) - 1

#: The array of the measured figures (README): 8x8 PEs, 2:4.
DIGITS_CONFIG = Config(rows=8, cols=8, n=2, m=4)


class NetworkMismatch(AssertionError):
    """The RTL's output of a layer (or the predicted classes) differs from the golden model."""


# --- one layer on the engine ------------------------------------------------------------------

def _weighted(layer):
    return isinstance(layer, (QDense, QConv2d))


def _name(layer, i):
    return layer.name or f"{type(layer).__name__.lower()}{i}"


def engine_sparse(config, layer):
    """Whether ``layer`` runs in the engine's N:M mode on ``config`` (else the dense fallback).

    N:M when the array has a sparse mode and the layer's declared ``sparsity`` ``(n', m')``
    guarantees the array's ``(n, m)`` along the reduction axis: the same pattern, or one that
    implies it (``m'`` a multiple of ``m`` with ``n' <= n``, e.g. 1:8 on 2:4; or ``m`` a
    multiple of ``m'`` with ``n' * m / m' <= n``, e.g. 1:2 on 2:4). A dense layer, a pattern
    that does not imply the array's (2:4 on a 1:4 array) and every layer of a dense array run
    dense.
    """
    if not _weighted(layer):
        raise TypeError(f"only QDense and QConv2d layers run on the engine, not "
                        f"{type(layer).__name__}")
    if not config.sparse or layer.sparsity is None:
        return False
    n, m = (int(v) for v in layer.sparsity)
    if m % config.m == 0:
        return n <= config.n
    if config.m % m == 0:
        return n * (config.m // m) <= config.n
    return False


def lower(layer, x):
    """The GEMM of a weighted layer on input ``x``: ``(x_mat, w_mat, out_shape)``.

    ``x_mat`` is (m, k) int8, ``w_mat`` (n, k) int8; ``out_shape`` is the NCHW output shape of
    a convolution (padding taps equal to ``in_zp``) or None for a dense layer.
    """
    if isinstance(layer, QConv2d):
        return conv2d_as_gemm(np.asarray(x), layer.w, stride=layer.stride,
                              padding=layer.padding, in_zp=layer.in_zp)
    if isinstance(layer, QDense):
        return np.asarray(x), layer.gemm_weights(), None
    raise TypeError(f"only QDense and QConv2d layers run on the engine, not "
                    f"{type(layer).__name__}")


def golden_gemm(layer, y):
    """A weighted layer's output (NCHW for a convolution) as the engine's (m, n) rows."""
    y = np.asarray(y)
    if isinstance(layer, QConv2d):
        return y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])
    return y


def _rows_per_run(m, max_rows):
    step = M_ROWS_MAX if max_rows is None else int(max_rows)
    if not 1 <= step <= M_ROWS_MAX:
        raise ValueError(f"max_rows must be between 1 and {M_ROWS_MAX}, not {max_rows}")
    return [(r0, min(r0 + step, m)) for r0 in range(0, m, step)]


def engine_batches(config, layer, x_mat, w_mat, *, max_rows=None):
    """The engine runs of one GEMM: ``(row range, Packets)`` per run, packed lazily.

    Rows are cut into runs of at most ``max_rows`` (default: the whole layer, up to
    :data:`M_ROWS_MAX`); within a run ``pack_layer`` cuts m-blocks of ``acc_depth`` rows.
    """
    sparse = engine_sparse(config, layer)
    q = {"in_zp": layer.in_zp, "out_zp": layer.out_zp, "act_min": layer.act_min,
         "act_max": layer.act_max}
    for r0, r1 in _rows_per_run(x_mat.shape[0], max_rows):
        yield (r0, r1), pack_layer(config, x_mat[r0:r1], w_mat, layer.bias, layer.multiplier,
                                   layer.shift, sparse=sparse, **q)


# --- checking --------------------------------------------------------------------------------

def check_layer(name, want, got):
    """Raise :class:`NetworkMismatch` unless ``got`` equals ``want`` (shape and every value)."""
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape:
        raise NetworkMismatch(f"{name}: the RTL output has shape {got.shape}, the golden "
                              f"model's {want.shape}")
    if not np.array_equal(want, got):
        bad = np.argwhere(want != got)
        i = tuple(int(v) for v in bad[0])
        raise NetworkMismatch(f"{name}: RTL and golden model differ at index {i} "
                              f"(of shape {want.shape}): golden {int(want[i])}, RTL "
                              f"{int(got[i])} ({len(bad)} of {want.size} values differ)")
    return int(want.size)


def check_outputs(graph, golden, outputs):
    """Compare every layer's RTL output with the golden one, then the predicted classes.

    ``golden`` is ``graph.forward(...)`` (the input first), ``outputs`` the RTL run's layer
    outputs (one per layer, without the input). Returns the values checked per layer.
    """
    if len(outputs) != len(graph.layers) or len(golden) != len(graph.layers) + 1:
        raise NetworkMismatch(f"expected {len(graph.layers)} layer outputs, got {len(outputs)}")
    checked = [check_layer(_name(layer, i), golden[i + 1], outputs[i])
               for i, layer in enumerate(graph.layers)]
    want, got = np.argmax(golden[-1], axis=1), np.argmax(outputs[-1], axis=1)
    if not np.array_equal(want, got):
        i = int(np.argmax(want != got))
        raise NetworkMismatch(f"predicted classes differ at image {i}: golden {int(want[i])}, "
                              f"RTL {int(got[i])}")
    return checked


# --- results ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LayerResult:
    """One layer of a network run.

    ``where`` is ``"rtl"`` (a GEMM on the engine) or ``"host"`` (pooling, flatten). For an
    engine layer: ``gemm`` ``(m, k, n)``, ``mode`` (``"2:4"``-like or ``"dense"``),
    ``engine_runs``, ``cycles`` (RTL, summed over its runs, first input to last output of
    each), ``model_cycles`` (:func:`sim.perf.layer_cycles` of the same runs) and
    ``peak_macs_per_cycle`` of the mode. ``checked``: output values compared bit-exact with
    the golden model. ``wall_s``: wall-clock seconds of the layer in the simulation.
    """

    name: str
    kind: str
    where: str
    output_shape: tuple
    checked: int
    wall_s: float
    gemm: tuple = None
    mode: str = None
    engine_runs: int = 0
    cycles: int = 0
    model_cycles: int = 0
    peak_macs_per_cycle: int = 0

    @property
    def dense_equiv_macs(self):
        return 0 if self.gemm is None else self.gemm[0] * self.gemm[1] * self.gemm[2]

    @property
    def utilization(self):
        """Dense-equivalent MACs / (cycles * peak dense-equivalent MACs per cycle of the mode)."""
        if not self.cycles:
            return None
        return self.dense_equiv_macs / (self.cycles * self.peak_macs_per_cycle)

    def as_dict(self):
        return {**dataclasses.asdict(self), "dense_equiv_macs": self.dense_equiv_macs,
                "utilization": self.utilization}


@dataclasses.dataclass(frozen=True)
class NetworkResult:
    """A network run on the RTL: every layer checked, cycles measured and modelled."""

    sim: str
    config: Config
    images: int
    layers: list
    predictions: np.ndarray
    stalls: bool
    sim_wall_s: float             # the simulation (start-up, every layer, writing results)
    build_s: float                # generating and building (0 when the build was cached)

    @property
    def engine_layers(self):
        return [r for r in self.layers if r.where == "rtl"]

    @property
    def cycles(self):
        return sum(r.cycles for r in self.layers)

    @property
    def model_cycles(self):
        return sum(r.model_cycles for r in self.layers)

    @property
    def cycles_per_inference(self):
        return self.cycles / self.images

    @property
    def model_cycles_per_inference(self):
        return self.model_cycles / self.images

    @property
    def checked(self):
        return sum(r.checked for r in self.layers)

    @property
    def dense_equiv_macs(self):
        return sum(r.dense_equiv_macs for r in self.layers)

    @property
    def utilization(self):
        """All engine layers: dense-equivalent MACs over the peak of each layer's mode."""
        peak = sum(r.cycles * r.peak_macs_per_cycle for r in self.engine_layers)
        return self.dense_equiv_macs / peak if peak else None

    def accuracy(self, labels):
        return float(np.mean(self.predictions == np.asarray(labels)[:self.images]))

    def as_dict(self):
        return {"sim": self.sim, "config": self.config.as_dict(), "images": self.images,
                "stalls": self.stalls, "layers": [r.as_dict() for r in self.layers],
                "cycles": self.cycles, "model_cycles": self.model_cycles,
                "cycles_per_inference": self.cycles_per_inference,
                "model_cycles_per_inference": self.model_cycles_per_inference,
                "dense_equiv_macs": self.dense_equiv_macs, "utilization": self.utilization,
                "checked": self.checked, "sim_wall_s": self.sim_wall_s,
                "build_s": self.build_s, "predictions": self.predictions.tolist()}

    def format_table(self):
        """Markdown table: one row per layer, then the totals."""
        c = self.config
        lines = [f"{self.sim}, {c.rows}x{c.cols} {c.sparsity} array, {self.images} images"
                 f"{' (random stalls)' if self.stalls else ''}",
                 "| layer | runs on | GEMM m x k x n | mode | cycles | model cycles | "
                 "cycles/inference | utilization | checked | wall s |",
                 "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in self.layers:
            if r.where == "rtl":
                m, k, n = r.gemm
                lines.append(f"| {r.name} | engine ({r.engine_runs} run"
                             f"{'s' if r.engine_runs > 1 else ''}) | {m}x{k}x{n} | {r.mode} | "
                             f"{r.cycles} | {r.model_cycles} | {r.cycles / self.images:.1f} | "
                             f"{r.utilization:.3f} | {r.checked} | {r.wall_s:.1f} |")
            else:
                lines.append(f"| {r.name} | host ({r.kind}) | - | - | - | - | - | - | "
                             f"{r.checked} | {r.wall_s:.1f} |")
        util = self.utilization
        lines.append(f"| total | | | | {self.cycles} | {self.model_cycles} | "
                     f"{self.cycles_per_inference:.1f} | "
                     f"{'-' if util is None else f'{util:.3f}'} | {self.checked} | "
                     f"{sum(r.wall_s for r in self.layers):.1f} |")
        lines.append(f"simulation {self.sim_wall_s:.1f} s (start-up and layers), build "
                     f"{self.build_s:.1f} s")
        return "\n".join(lines)


# --- the host side of a run ------------------------------------------------------------------

def _simulate(built, env, quiet):
    """``runner.run`` of ``network_tb``: a failure raises ``SimulationFailed`` with cocotb's
    message."""
    runner.run(built, "network_tb", quiet=quiet, env=env)


def run_network(graph, x, *, sim="verilator", config=None, build_root=None, images=None,
                quantized=False, max_rows=None, stalls=False, seed=1, quiet=True,
                progress=None):
    """Run ``graph`` on the RTL of ``config``, every layer checked against the golden model.

    Parameters
    ----------
    graph : IntGraph
    x : array
        Float inputs ``(N, *graph.input_shape)`` (quantized with the graph's input
        parameters) or, with ``quantized=True``, int8 codes.
    sim : {"verilator", "icarus"}
    config : hdl.config.Config
        The array; default :data:`DIGITS_CONFIG` (8x8, 2:4).
    build_root : path
        Where builds are kept (one per simulator and configuration, reused while the Verilog
        is unchanged); default a temporary directory removed afterwards.
    images : int
        Run the first ``images`` inputs only (default all).
    max_rows : int
        Rows (GEMM ``m``) per engine run; a larger layer is fed in several runs. Default the
        whole layer in one run (up to the 24-bit ``M_ROWS`` register).
    stalls : bool
        Random idle cycles on the inputs and backpressure on the output (seeded by ``seed``);
        the cycles then no longer match the performance model.
    quiet : bool
        Build and simulation logs go to files in the build directory.
    progress : callable
        Called with a line of text at each step (e.g. ``print``).

    Returns
    -------
    NetworkResult

    Raises
    ------
    NetworkMismatch
        A layer's RTL output or the predicted classes differ from ``graph.forward``.
    sim.runner.SimulationFailed
        The simulation failed, e.g. the scoreboard found the RTL and the transaction-level
        model disagreeing (the message names the layer, the engine run and the first word).
    """
    if not isinstance(graph, IntGraph):
        raise TypeError(f"graph must be a golden_model.graph.IntGraph, not {graph!r}")
    config = DIGITS_CONFIG if config is None else config
    if not isinstance(config, Config):
        raise TypeError(f"config must be a hdl.config.Config, not {config!r}")
    say = progress or (lambda text: None)
    x = np.asarray(x)
    if images is not None:
        if isinstance(images, bool) or not isinstance(images, (int, np.integer)) or images < 1:
            raise ValueError(f"images must be a positive integer, not {images!r}")
        x = x[:int(images)]
    if len(x) == 0:
        raise ValueError("x holds no inputs")
    _rows_per_run(1, max_rows)
    golden = graph.forward(x, rounding=config.rounding, acc_bits=config.acc_width,
                           quantized=quantized)
    with tempfile.TemporaryDirectory(prefix="sparsemac-network-") as tmp:
        root = Path(build_root) if build_root is not None else Path(tmp)
        say(f"building {runner.config_id(config)} for {sim}")
        t0 = time.perf_counter()
        built = runner.build(sim, config, root, quiet=quiet)
        build_s = time.perf_counter() - t0
        work = Path(tempfile.mkdtemp(prefix="network-", dir=built.directory))
        graph.save(work / "graph")
        np.savez(work / "work.npz", **{f"golden{i}": g for i, g in enumerate(golden)})
        job = {"graph": str(work / "graph"), "work": str(work / "work.npz"),
               "results": str(work / "results.json"), "outputs": str(work / "outputs.npz"),
               "max_rows": max_rows, "stalls": bool(stalls), "seed": int(seed)}
        (work / "job.json").write_text(json.dumps(job))
        say(f"running {len(graph.layers)} layers on {len(x)} images on {sim}")
        t0 = time.perf_counter()
        _simulate(built, {"SPARSEMAC_NETWORK": str(work / "job.json")}, quiet)
        sim_wall = time.perf_counter() - t0
        records = json.loads((work / "results.json").read_text())
        with np.load(work / "outputs.npz") as f:
            outputs = [f[f"out{i}"] for i in range(len(graph.layers))]
        shutil.rmtree(work)
    checked = check_outputs(graph, golden, outputs)
    layers = []
    for i, (layer, rec) in enumerate(zip(graph.layers, records)):
        common = {"name": _name(layer, i), "kind": type(layer).__name__,
                  "output_shape": tuple(outputs[i].shape), "checked": checked[i],
                  "wall_s": rec["wall_s"]}
        if not _weighted(layer):
            layers.append(LayerResult(where="host", **common))
            continue
        sparse = rec["sparse"]
        m, k, n = rec["gemm"]
        model = sum(layer_cycles(config, r1 - r0, k, n, sparse=sparse).cycles
                    for r0, r1 in rec["rows"])
        layers.append(LayerResult(
            where="rtl", gemm=(m, k, n), mode=config.sparsity if sparse else "dense",
            engine_runs=len(rec["cycles"]), cycles=sum(rec["cycles"]), model_cycles=model,
            peak_macs_per_cycle=config.peak_macs_sparse if sparse else config.peak_macs_dense,
            **common))
    return NetworkResult(sim, config, len(x), layers, np.argmax(outputs[-1], axis=1),
                         bool(stalls), sim_wall, build_s)


# --- the digits networks ---------------------------------------------------------------------

def _n_m_layers(layers, n, m):
    """Names of the weighted layers to prune N:M: those whose GEMM reduction length is a
    multiple of ``m``, except the classifier (the last), as in ``sparsemac.flows``."""
    weighted = [ly for ly in layers if isinstance(ly, (Dense, Conv2d))]
    return [ly.name for ly in weighted[:-1] if (ly.w.size // ly.w.shape[0]) % m == 0]


def _pruned(layer, n, m):
    wm = layer.w.reshape(layer.w.shape[0], -1)
    wm = np.where(gm.prune_n_m(wm, n, m, axis=1), wm, np.float32(0))
    return dataclasses.replace(layer, w=wm.reshape(layer.w.shape).astype(np.float32))


def digits_mlp(*, epochs=8, finetune=4, seed=0, data=None):
    """The 64-64-10 MLP trained on the digits, ``fc0`` 2:4 pruned (masks kept applied while it
    is fine-tuned), quantized per channel: ``fc0`` runs N:M on a 2:4 array, ``fc1`` (the
    classifier) in the dense fallback. ``data``: :func:`load_digits_split`'s tuple."""
    x_train, y_train, _, _ = data or load_digits_split()
    net = MLP.init([64, 64, 10], seed=seed).fit(x_train, y_train, epochs=epochs, seed=seed)
    net.masks = [gm.prune_n_m(net.weights[0], 2, 4, axis=1), None]
    net.fit(x_train, y_train, epochs=finetune, seed=seed + 1)
    layers = [Dense(net.weights[0], net.biases[0], relu=True, name="fc0"),
              Dense(net.weights[1], net.biases[1], name="fc1")]
    return gm.quantize_graph(layers, (64,), x_train, sparsity={"fc0": (2, 4)})


def digits_cnn(layers=None, *, seed=0, data=None):
    """A small CNN on the 8x8 digits (input ``(1, 8, 8)``), quantized on the training split.

    By default conv0 1->8 3x3 pad 1 ReLU, pool0 (max 2x2), conv1 8->8 3x3 pad 1 ReLU, pool1,
    flatten, fc0 32->10, He-initialized and untrained (the classes it predicts mean nothing;
    the arithmetic is what is checked). ``layers`` replaces them with any float layers of
    :mod:`golden_model.graph` on that input (e.g. a trained ``CNN.to_layers()``). Every
    weighted layer but the classifier whose GEMM reduction length is a multiple of 4 (here
    conv1, C*KH*KW = 72) is 2:4 pruned by magnitude and declared 2:4.
    """
    x_train = (data or load_digits_split())[0].reshape(-1, 1, 8, 8)
    if layers is None:
        rng = np.random.default_rng(seed)

        def he(shape):
            fan_in = int(np.prod(shape[1:]))
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

        def bias(n):
            return (rng.standard_normal(n) * 0.05).astype(np.float32)

        layers = [Conv2d(he((8, 1, 3, 3)), bias(8), padding=1, relu=True, name="conv0"),
                  MaxPool2d(2, 2, name="pool0"),
                  Conv2d(he((8, 8, 3, 3)), bias(8), padding=1, relu=True, name="conv1"),
                  MaxPool2d(2, 2, name="pool1"), Flatten(name="flatten"),
                  Dense(he((10, 32)), bias(10), name="fc0")]
    names = _n_m_layers(layers, 2, 4)
    layers = [_pruned(ly, 2, 4) if ly.name in names else ly for ly in layers]
    return gm.quantize_graph(layers, (1, 8, 8), x_train,
                             sparsity={name: (2, 4) for name in names})


def run_digits(*, sim="verilator", config=None, images=None, build_root=None, progress=None,
               quiet=True):
    """:func:`digits_mlp` and :func:`digits_cnn` on the digits test split (449 images) on
    the RTL of ``config`` (default :data:`DIGITS_CONFIG`), one build for both.

    Returns ``{"mlp": NetworkResult, "cnn": NetworkResult, "labels": y_test}``
    (``result.accuracy(labels)`` is the accuracy of the classes the RTL predicted).
    """
    data = load_digits_split()
    x_test, y_test = data[2], data[3]
    out = {"labels": y_test}
    with tempfile.TemporaryDirectory(prefix="sparsemac-network-") as tmp:
        root = build_root or tmp
        for key, graph, x in (("mlp", digits_mlp(data=data), x_test),
                              ("cnn", digits_cnn(data=data), x_test.reshape(-1, 1, 8, 8))):
            if progress:
                progress(f"{key}: {', '.join(_describe(ly) for ly in graph.layers)}")
            out[key] = run_network(graph, x, sim=sim, config=config, build_root=root,
                                   images=images, quiet=quiet, progress=progress)
    return out


def _describe(layer):
    if not _weighted(layer):
        return layer.name or type(layer).__name__
    sp = "" if layer.sparsity is None else f" {layer.sparsity[0]}:{layer.sparsity[1]}"
    return f"{layer.name} {'x'.join(map(str, layer.w.shape))}{sp}"
