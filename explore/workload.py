"""What ``sparsemac explore`` runs on each array: one GEMM layer, or a whole network.

A workload turns a point's array and its measured clock into figures, with the performance
model (:mod:`host.perf`, exact to the RTL's cycles); it does not depend on synthesis, so the
sweep's cache holds the hardware alone and a workload can change without a new place and
route.

:class:`Gemm`
    One ``m x k x n`` layer (``MxKxN`` on the command line): cycles in the array's N:M mode
    (where it has one) and in the dense fallback, utilization, dense-equivalent GOPS at Fmax.
:class:`Network`
    An integer graph per array sparsity (an ONNX model compressed once for each N:M pattern
    of the sweep, or one compressed graph folder for every array): the whole network with
    :func:`host.perf.graph_estimate`, its GEMMs lowered as the runtime lowers them; cycles per
    inference of the graph and of its dense twin (every layer in the dense fallback),
    inferences/s at Fmax, and inferences/s per 1,000 LUTs and per DSP block, the figures an
    architect picks an array by.
"""

import dataclasses
import re

from host.perf import graph_estimate, layer_cycles

__all__ = ["Gemm", "Network", "parse_gemm"]

_GEMM = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def parse_gemm(text):
    """``"256x128x64"`` -> :class:`Gemm` ``(256, 128, 64)``, or None when ``text`` is not of
    that form (a file or folder name, for the caller to try)."""
    match = _GEMM.match(str(text).strip().lower())
    if match is None:
        return None
    m, k, n = (int(v) for v in match.groups())
    if min(m, k, n) < 1:
        raise ValueError(f"Workload must be MxKxN with positive integers (e.g. 256x128x64), "
                         f"not {text!r}")
    return Gemm(m, k, n)


def _rate(record, cycles, ops):
    """``(per second, dense-equivalent GOPS)`` at the record's clock (``clock_mhz``: its
    Fmax, or the clock assumed without place and route), or Nones without one."""
    clock = record.get("clock_mhz")
    if not clock:
        return None, None
    per_s = clock * 1e6 / cycles
    return per_s, 2 * ops * per_s / 1e9


@dataclasses.dataclass(frozen=True)
class Gemm:
    """One ``m x k x n`` GEMM layer."""

    m: int
    k: int
    n: int

    kind = "gemm"

    @property
    def name(self):
        return f"{self.m}x{self.k}x{self.n}"

    def figures(self, config, record):
        """``cycles_{sparse,dense}``, ``utilization_{sparse,dense}`` and, with a clock,
        ``gops_{sparse,dense}`` of the layer on ``config``."""
        out = {}
        for mode, sparse in (("sparse", True), ("dense", False)):
            if sparse and not config.sparse:
                continue
            est = layer_cycles(config, self.m, self.k, self.n, sparse=sparse)
            out[f"cycles_{mode}"] = est.cycles
            out[f"utilization_{mode}"] = est.utilization
            _, gops = _rate(record, est.cycles, self.m * self.k * self.n)
            if gops is not None:
                out[f"gops_{mode}"] = gops
        return out


@dataclasses.dataclass(frozen=True)
class Network:
    """A network: ``graphs`` maps an array's sparsity (``"2:4"``, ``"dense"``, ...) to the
    :class:`~golden_model.graph.IntGraph` it runs, or holds one graph under ``"*"`` for every
    array. ``name`` labels the outputs (the model file or graph folder)."""

    name: str
    graphs: dict = dataclasses.field(compare=False, hash=False)

    kind = "network"

    def graph(self, sparsity):
        """The graph an array of ``sparsity`` runs."""
        return self.graphs.get(sparsity, self.graphs.get("*"))

    def figures(self, config, record):
        """Per inference: ``cycles_sparse`` (the graph, its N:M layers in the array's N:M
        mode; an array with one), ``cycles_dense`` (its dense twin), their utilization; with
        a clock: ``inferences_s`` (the N:M figure where the array has a sparse mode),
        ``inferences_s_dense``, ``inferences_s_per_klut``, ``inferences_s_per_dsp`` and
        dense-equivalent ``gops_{sparse,dense}``."""
        graph = self.graph(config.sparsity)
        if graph is None:
            raise ValueError(f"the workload {self.name!r} has no graph for a "
                             f"{config.sparsity} array")
        out = {}
        for mode, dense in (("sparse", False), ("dense", True)):
            if mode == "sparse" and not config.sparse:
                continue
            est = graph_estimate(config, graph, dense=dense)
            out[f"cycles_{mode}"] = est.cycles
            out[f"utilization_{mode}"] = est.utilization
            per_s, gops = _rate(record, est.cycles, est.macs)
            if per_s is not None:
                out[f"inferences_s_{mode}"] = per_s
                out[f"gops_{mode}"] = gops
        best = out.get("inferences_s_sparse", out.get("inferences_s_dense"))
        if best is not None:
            out["inferences_s"] = best
            if record.get("luts"):
                out["inferences_s_per_klut"] = best / record["luts"] * 1000
            if record.get("dsps"):
                out["inferences_s_per_dsp"] = best / record["dsps"]
        return out
