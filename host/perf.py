"""Performance model: cycles, utilization and GOPS of a layer or a network on an array.

The model replays the engine's scheduling rules pass by pass (:func:`hdl.engine.timing`): a
pass starts when the previous one has ended (a one-row pass ``one_row_wait`` cycles later),
its weight tile is loaded (tiles load in order,
each into the bank the pass two before it used, ``drain`` cycles after that pass ended) and,
for the first pass of an m-block, its requantization parameters are loaded (in order, into
the bank the block two before used, ``param_drain`` cycles after it ended). Streams are
assumed always ready, as in ``sparsemac bench``; cycles count from the first input transfer
to the last output transfer. ``tests/test_perf.py`` holds it to the RTL's cycle counts.

:func:`graph_estimate` models a whole integer graph (``sparsemac perf``): every weighted layer
as the GEMMs :func:`host.lowering.lower` cuts it into and the engine runs the runtime feeds
them in (the same rules, so the figures are the RTL's), run one after the other; the ops left
to the host are listed with the elements they produce, and not counted in the cycles.
"""

import dataclasses
import math

from hdl.config import Config
from hdl.engine import timing

from .lowering import engine_sparse, gemm_shapes, layer_gemm, layer_name, rows_per_run, weighted
from .packing import plan_layer

__all__ = ["LayerEstimate", "layer_cycles", "network_cycles", "OpEstimate", "GraphEstimate",
           "graph_estimate", "graph_report", "format_graph_report"]


@dataclasses.dataclass(frozen=True)
class LayerEstimate:
    config: Config
    m: int
    k: int
    n: int
    sparse: bool
    cycles: int
    beats: int
    passes: int

    @property
    def dense_equiv_macs(self):
        return self.m * self.k * self.n

    @property
    def peak_macs_per_cycle(self):
        return self.config.peak_macs_sparse if self.sparse else self.config.peak_macs_dense

    @property
    def utilization(self):
        return self.dense_equiv_macs / (self.cycles * self.peak_macs_per_cycle)

    def gops(self, fmax_mhz):
        """Dense-equivalent giga-operations per second (2 per MAC) at ``fmax_mhz``."""
        return 2 * self.dense_equiv_macs / (self.cycles / (fmax_mhz * 1e6)) / 1e9


def layer_cycles(config, m, k, n, *, sparse, m_block=None):
    """Model the cycles of one ``m x k x n`` layer (see the module docstring)."""
    plan = plan_layer(config, m, k, n, sparse=sparse, m_block=m_block)
    t = timing(config)
    rows, cols = config.rows, config.cols
    blocks = [min(plan.m_block, m - b) for b in range(0, m, plan.m_block)]
    passes = [(blk, kt) for _ in range(plan.n_tiles) for blk in range(len(blocks))
              for kt in range(plan.k_tiles)]
    # Weight loader: tile q starts when the loader is free and bank q % 2 is free.
    ends = []                       # last-beat cycle of each pass
    tile_ready = []
    loader_free = 0                 # first cycle the weight loader may transfer
    # Parameter loader: one packet of cols words per block, in order.
    q_ready, q_loader_free, block_ends = [], 0, []
    group = -1
    start = None
    for q, (blk, kt) in enumerate(passes):
        bank_free = 0 if q < 2 else ends[q - 2] + t["drain"] + 2
        load_start = max(loader_free, bank_free)
        loader_free = load_start + rows
        tile_ready.append(load_start + rows + t["load_to_use"])
        gap = 1 + (t["one_row_wait"] if blocks[blk] == 1 else 0)
        earliest = tile_ready[q] if not ends else max(ends[-1] + gap, tile_ready[q])
        if kt == 0:
            group += 1
            qbank_free = 0 if group < 2 else block_ends[group - 2] + t["param_drain"] + 2
            q_start = max(q_loader_free, qbank_free)
            q_loader_free = q_start + cols
            q_ready.append(q_start + cols)
            earliest = max(earliest, q_ready[group])
        start = earliest if start is None else start
        ends.append(earliest + blocks[blk] - 1)
        if kt == plan.k_tiles - 1:
            block_ends.append(ends[-1])
    cycles = ends[-1] + t["result"] + 1
    return LayerEstimate(config, m, k, n, sparse, cycles, plan.n_tiles * plan.k_tiles * m,
                         len(passes))


def network_cycles(config, layers):
    """Estimates of a list of layers ``(m, k, n, sparse)``, run one after the other."""
    return [layer_cycles(config, m, k, n, sparse=sparse) for m, k, n, sparse in layers]


@dataclasses.dataclass(frozen=True)
class OpEstimate:
    """One layer of a graph on an array (:func:`graph_estimate`).

    ``where`` is ``"engine"`` or ``"host"``. ``elements``: the values the layer produces per
    batch. For an engine layer: ``gemm`` (the layer's own ``(m, k, n)`` over the batch, ``k``
    one group's reduction length), ``mode`` (the array's N:M pattern or ``"dense"``) and
    ``runs`` (a :class:`LayerEstimate` per engine run, over every GEMM of the layer).
    """

    name: str
    kind: str
    where: str
    elements: int
    gemm: tuple = None
    mode: str = None
    gemms: int = 0
    runs: tuple = ()

    @property
    def cycles(self):
        return sum(r.cycles for r in self.runs)

    @property
    def macs(self):
        """The multiply-accumulates the layer needs (dense-equivalent, zeros included)."""
        return 0 if self.gemm is None else math.prod(self.gemm)

    @property
    def utilization(self):
        """:attr:`macs` over the array's peak in the layer's mode, for its cycles."""
        if not self.runs:
            return None
        return self.macs / sum(r.cycles * r.peak_macs_per_cycle for r in self.runs)

    def as_dict(self):
        return {"name": self.name, "kind": self.kind, "where": self.where,
                "elements": self.elements, "gemm": None if self.gemm is None else list(self.gemm),
                "mode": self.mode, "gemms": self.gemms, "engine_runs": len(self.runs),
                "cycles": self.cycles, "macs": self.macs, "utilization": self.utilization}


@dataclasses.dataclass(frozen=True)
class GraphEstimate:
    """A whole graph on an array, for a batch of ``batch`` inputs."""

    config: Config
    batch: int
    layers: list

    @property
    def engine_layers(self):
        return [ly for ly in self.layers if ly.where == "engine"]

    @property
    def host_layers(self):
        return [ly for ly in self.layers if ly.where == "host"]

    @property
    def cycles(self):
        return sum(ly.cycles for ly in self.layers)

    @property
    def cycles_per_inference(self):
        return self.cycles / self.batch

    @property
    def macs(self):
        return sum(ly.macs for ly in self.layers)

    @property
    def utilization(self):
        peak = sum(r.cycles * r.peak_macs_per_cycle for ly in self.engine_layers
                   for r in ly.runs)
        return self.macs / peak

    def inferences_per_s(self, freq_mhz):
        """Inferences per second at ``freq_mhz``, the engine's cycles only."""
        return freq_mhz * 1e6 / self.cycles_per_inference


def graph_estimate(config, graph, *, batch=1, dense=False, max_rows=None):
    """Model ``graph`` (an :class:`~golden_model.graph.IntGraph`) on ``config`` for ``batch``
    inputs (one engine run per GEMM over the whole batch, as the runtime feeds it).

    ``dense=True`` models the graph's dense twin: every layer in the dense fallback (what
    the N:M speed-up is measured against). ``max_rows``: rows per engine run, as the
    runtime's (default: each GEMM in one run).
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a hdl.config.Config, not {config!r}")
    shapes = graph.shapes()
    out = []
    for i, (layer, wire) in enumerate(zip(graph.layers, graph.wiring())):
        name, kind = layer_name(layer, i), type(layer).__name__
        elements = batch * math.prod(shapes[i + 1])
        if not weighted(layer):
            out.append(OpEstimate(name, kind, "host", elements))
            continue
        in_shape = shapes[wire[0]]
        sparse = not dense and engine_sparse(config, layer)
        m, k, n = layer_gemm(layer, in_shape)
        parts = gemm_shapes(config, layer, in_shape)
        runs = tuple(layer_cycles(config, r1 - r0, pk, pn, sparse=sparse)
                     for pm, pk, pn in parts for r0, r1 in rows_per_run(pm * batch, max_rows))
        out.append(OpEstimate(name, kind, "engine", elements, (m * batch, k, n),
                              config.sparsity if sparse else "dense", len(parts), runs))
    return GraphEstimate(config, batch, out)


def graph_report(config, graph, *, batch=1, freq_mhz=100.0):
    """What ``sparsemac perf`` prints, as a JSON-ready dict: per layer the modelled cycles of
    ``graph`` and of its dense twin on the same array, in total the cycles per inference,
    inferences/s at ``freq_mhz`` and the N:M speed-up; the host ops with their elements."""
    est = graph_estimate(config, graph, batch=batch)
    twin = graph_estimate(config, graph, batch=batch, dense=True)
    layers = []
    for ly, dense in zip(est.layers, twin.layers):
        row = ly.as_dict()
        row["dense_cycles"] = dense.cycles
        row["speedup"] = dense.cycles / ly.cycles if ly.cycles else None
        layers.append(row)
    host = {}
    for ly in est.host_layers:
        count, elements = host.get(ly.kind, (0, 0))
        host[ly.kind] = (count + 1, elements + ly.elements)
    return {
        "config": config.as_dict(), "array": f"{config.rows}x{config.cols} {config.sparsity}",
        "batch": batch, "freq_mhz": float(freq_mhz), "layers": layers,
        "engine_layers": len(est.engine_layers), "host_layers": len(est.host_layers),
        "cycles": est.cycles, "dense_cycles": twin.cycles,
        "cycles_per_inference": est.cycles_per_inference,
        "dense_cycles_per_inference": twin.cycles_per_inference,
        "inferences_per_s": est.inferences_per_s(freq_mhz),
        "dense_inferences_per_s": twin.inferences_per_s(freq_mhz),
        "speedup": twin.cycles / est.cycles, "macs_per_inference": est.macs // batch,
        "utilization": est.utilization, "dense_utilization": twin.utilization,
        "host_ops": [{"kind": kind, "layers": count, "elements_per_inference": elements // batch}
                     for kind, (count, elements) in host.items()],
    }


def format_graph_report(report):
    """:func:`graph_report` as Markdown: one row per engine layer, the totals, the host ops."""
    lines = [f"{report['array']} array, batch {report['batch']}, "
             f"{report['engine_layers']} layers on the engine, {report['host_layers']} on the "
             "host",
             "| layer | GEMM m x k x n | GEMMs | mode | cycles | utilization | dense cycles | "
             "speed-up |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for ly in report["layers"]:
        if ly["where"] != "engine":
            continue
        m, k, n = ly["gemm"]
        lines.append(f"| {ly['name']} | {m}x{k}x{n} | {ly['gemms']} | {ly['mode']} | "
                     f"{ly['cycles']:,} | {ly['utilization']:.3f} | {ly['dense_cycles']:,} | "
                     f"{ly['speedup']:.2f}x |")
    lines.append(f"| total | {report['macs_per_inference']:,} MACs/inference | | | "
                 f"{report['cycles']:,} | {report['utilization']:.3f} | "
                 f"{report['dense_cycles']:,} | {report['speedup']:.2f}x |")
    f = report["freq_mhz"]
    lines += ["",
              f"N:M graph: {report['cycles_per_inference']:,.0f} cycles/inference, "
              f"{report['inferences_per_s']:,.1f} inferences/s at {f:g} MHz",
              f"dense twin: {report['dense_cycles_per_inference']:,.0f} cycles/inference, "
              f"{report['dense_inferences_per_s']:,.1f} inferences/s at {f:g} MHz",
              f"speed-up of the N:M graph over the dense twin: {report['speedup']:.2f}x"]
    if report["host_ops"]:
        ops = ", ".join(f"{op['kind']} x{op['layers']} ({op['elements_per_inference']:,} "
                        "elements)" for op in report["host_ops"])
        lines.append(f"on the host (not in the cycles), per inference: {ops}")
    return "\n".join(lines)
