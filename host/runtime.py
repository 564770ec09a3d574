"""The runtime: an integer network run layer after layer on a backend, checked bit for bit.

:func:`run_network` runs an :class:`golden_model.graph.IntGraph` with its weighted layers on
the accelerator and everything else (pooling, flatten) on the host:

* the input is quantized with the graph's input parameters (or given as int8 codes);
* every weighted layer is lowered to its GEMMs (:mod:`host.lowering`: one, or one per batch of
  groups of a grouped convolution), packed into stream words
  (:mod:`host.packing`), run on the *backend*, and its output unpacked back to NCHW; each
  layer's input is the previous layer's accelerator output (the network is chained on the
  engine, not fed the golden activations);
* every layer's output is compared with ``IntGraph.forward`` run with the array's rounding and
  accumulator width (:func:`check_outputs`), and the predicted classes must be identical; a
  mismatch raises :class:`NetworkMismatch` naming the layer, the first differing index and
  both values;
* cycles are counted per engine run (first input transfer to last output transfer) and set
  against the performance model (:func:`host.perf.layer_cycles`).

A backend is where the engine runs: today the cocotb simulation of the generated RTL
(:class:`sim.network.Simulation`), later a board. It has a ``name``, the array's ``config``,
``prepare(say, words)`` (build what it needs for engine runs of at most ``words`` words per
stream, :func:`host.lowering.stream_words`; returns the seconds it took) and ``execute(job)``,
which runs a network job: a JSON file naming ``graph`` (a directory written by
:meth:`IntGraph.save`), ``work`` (an ``.npz`` with ``golden0`` the int8 input codes and
``golden{i}`` the golden output of layer ``i - 1``), ``results`` and ``outputs`` (where to
write the per-layer records, JSON, and every layer's output, ``.npz`` ``out{i}``),
``max_rows``, ``stalls`` and ``seed``. A record holds ``name`` and ``wall_s``, and for an
engine layer ``sparse``, ``gemm`` ``[m, k, n]`` (the layer's own GEMM: ``k`` one group's
reduction length), ``parts`` (the GEMMs it was lowered to, :func:`host.lowering.lower`) and
``runs``: per engine run ``gemm`` (its part's ``[m, k, n]``), ``rows`` ``[r0, r1]`` and
``cycles``.
"""

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from common.checks import check_int
from golden_model.graph import IntGraph
from hdl.config import Config

from .lowering import layer_name, rows_per_run, stream_words, weighted
from .perf import layer_cycles

__all__ = ["run_network", "NetworkResult", "LayerResult", "NetworkMismatch", "check_layer",
           "check_outputs"]


class NetworkMismatch(AssertionError):
    """The accelerator's output of a layer (or the predicted classes) differs from the golden
    model."""


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
    checked = [check_layer(layer_name(layer, i), golden[i + 1], outputs[i])
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
    engine layer: ``gemm`` ``(m, k, n)`` (the layer's own GEMM over the batch; ``k`` one
    group's reduction length), ``mode`` (``"2:4"``-like or ``"dense"``), ``gemms`` (the
    GEMMs it was lowered to), ``engine_runs``, ``cycles`` (RTL, summed over its runs, first
    input to last output of each), ``model_cycles`` (:func:`host.perf.layer_cycles` of the
    same runs) and ``peak_macs_per_cycle`` of the mode. ``checked``: output values compared
    bit-exact with the golden model. ``wall_s``: wall-clock seconds of the layer in the
    simulation.
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
    gemms: int = 0
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



# --- a run ----------------------------------------------------------------------------------

def run_network(graph, x, backend, *, images=None, quantized=False, max_rows=None,
                stalls=False, seed=1, progress=None):
    """Run ``graph`` on ``backend``, every layer checked against the golden model.

    Parameters
    ----------
    graph : IntGraph
    x : array
        Float inputs ``(N, *graph.input_shape)`` (quantized with the graph's input
        parameters) or, with ``quantized=True``, int8 codes.
    backend
        Where the engine layers run (module docstring), e.g. :class:`sim.network.Simulation`.
    images : int
        Run the first ``images`` inputs only (default all).
    max_rows : int
        Rows (GEMM ``m``) per engine run; a larger layer is fed in several runs. Default the
        whole layer in one run (up to the 24-bit ``M_ROWS`` register).
    stalls : bool
        Random idle cycles on the inputs and backpressure on the output (seeded by ``seed``);
        the cycles then no longer match the performance model.
    progress : callable
        Called with a line of text at each step (e.g. ``print``).

    Returns
    -------
    NetworkResult

    Raises
    ------
    NetworkMismatch
        A layer's output or the predicted classes differ from ``graph.forward``.
    """
    if not isinstance(graph, IntGraph):
        raise TypeError(f"graph must be a golden_model.graph.IntGraph, not {graph!r}")
    config = backend.config
    if not isinstance(config, Config):
        raise TypeError(f"the backend's config must be a hdl.config.Config, not {config!r}")
    say = progress or (lambda text: None)
    x = np.asarray(x)
    if images is not None:
        x = x[:check_int(images, "images", lo=1)]
    if len(x) == 0:
        raise ValueError("x holds no inputs")
    rows_per_run(1, max_rows)
    golden = graph.forward(x, rounding=config.rounding, acc_bits=config.acc_width,
                           quantized=quantized)
    build_s = backend.prepare(say, words=stream_words(config, graph, golden, max_rows=max_rows))
    with tempfile.TemporaryDirectory(prefix="sparsemac-network-") as tmp:
        work = Path(tmp)
        graph.save(work / "graph")
        np.savez(work / "work.npz", **{f"golden{i}": g for i, g in enumerate(golden)})
        job = {"graph": str(work / "graph"), "work": str(work / "work.npz"),
               "results": str(work / "results.json"), "outputs": str(work / "outputs.npz"),
               "max_rows": max_rows, "stalls": bool(stalls), "seed": int(seed)}
        (work / "job.json").write_text(json.dumps(job))
        say(f"running {len(graph.layers)} layers on {len(x)} images on {backend.name}")
        t0 = time.perf_counter()
        backend.execute(work / "job.json")
        sim_wall = time.perf_counter() - t0
        records = json.loads((work / "results.json").read_text())
        with np.load(work / "outputs.npz") as f:
            outputs = [f[f"out{i}"] for i in range(len(graph.layers))]
    checked = check_outputs(graph, golden, outputs)
    layers = [_layer_result(config, layer_name(layer, i), layer, rec, outputs[i], checked[i])
              for i, (layer, rec) in enumerate(zip(graph.layers, records))]
    return NetworkResult(backend.name, config, len(x), layers, np.argmax(outputs[-1], axis=1),
                         bool(stalls), sim_wall, build_s)


def _layer_result(config, name, layer, rec, output, checked):
    common = {"name": name, "kind": type(layer).__name__, "output_shape": tuple(output.shape),
              "checked": checked, "wall_s": rec["wall_s"]}
    if not weighted(layer):
        return LayerResult(where="host", **common)
    sparse = rec["sparse"]
    model = 0
    for run in rec["runs"]:
        (_, k, n), (r0, r1) = run["gemm"], run["rows"]
        model += layer_cycles(config, r1 - r0, k, n, sparse=sparse).cycles
    return LayerResult(
        where="rtl", gemm=tuple(rec["gemm"]), mode=config.sparsity if sparse else "dense",
        engine_runs=len(rec["runs"]), gemms=rec["parts"],
        cycles=sum(run["cycles"] for run in rec["runs"]), model_cycles=model,
        peak_macs_per_cycle=config.peak_macs_sparse if sparse else config.peak_macs_dense,
        **common)
