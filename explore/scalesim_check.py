"""The performance model beside SCALE-Sim, a public cycle-level systolic-array simulator.

SCALE-Sim v3 (``scalesim`` on PyPI, a test extra) turns a GEMM into the operand addresses a
systolic array of ``ArrayHeight x ArrayWidth`` PEs demands cycle by cycle and runs them through
double-buffered SRAMs backed by DRAM. :func:`scalesim_gemm` runs it in-process on one layer,
weight-stationary, with SRAMs that hold every operand and a DRAM bandwidth far above the
array's demand (:data:`SRAM_KB`, :data:`BANDWIDTH`), so that it never stalls (it reports its
stall cycles: 0 on every layer here). :func:`compare` puts :func:`host.perf.layer_cycles`
beside it, and :func:`format_markdown` writes ``docs/perf/scalesim.md``
(``python -m explore.scalesim_check > docs/perf/scalesim.md``).

Mapping: SCALE-Sim's GEMM topology row is ``name, M, N, K`` with ``M`` output rows, ``N``
output channels (its filters) and ``K`` the reduction (its convolution window): an ``M x K``
input operand and a ``K x N`` filter operand. Weight-stationary, it holds a ``height x width``
block of the filter in the PEs (``K`` along the height, ``N`` along the width) and streams the
``M`` input rows through it, one fold per (K block, N block): its height is our ``rows``, its
width our ``cols``, its folds our passes. An N:M array (``n`` multipliers per PE, ``rows * M``
inputs per pass) maps to ``rows * N`` rows of SCALE-Sim (:func:`scalesim_array`): the same
multipliers and, SCALE-Sim's N:M mode compressing ``K`` to ``K * N / M``, the same inputs per
pass.

The two closed forms, for ``P`` folds (K tiles times N tiles) of an ``m``-row layer on a
SCALE-Sim array of ``H x W`` (:func:`scalesim_formula`, :func:`fill`, :func:`bubble_bound`):
SCALE-Sim takes ``P * (m + 2H + W - 2) - 1`` cycles (per fold: ``H`` to shift the weights in,
``m`` rows, ``H - 1 + W - 1`` of skew to fill and drain the array; no overlap between folds),
ours ``P * m + F`` when the passes run back to back (the next tile loads into the other
weight bank and enters the grid as a wavefront behind the current one; ``F``: the first tile
or parameter packet, then one result latency), plus at most :func:`bubble_bound` cycles when
passes are too short to hide the loads. So, back to back, exactly
``ours - scalesim = F + 1 - P * (2H + W - 2)``.

SCALE-Sim 3.0.0 calls ``int()`` on one-element arrays in two places of its memory model,
which NumPy 2.4 refuses (scalesim-project/SCALE-Sim pull request 162, open):
:func:`scalesim_gemm` runs it with those two modules' ``max`` returning the element, as NumPy
before 2.4 read it. Nothing of SCALE-Sim's code is copied.
"""

import builtins
import contextlib
import dataclasses
import functools
import io
import math
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

from common import Sparsity
from common.checks import check_int
from hdl.config import Config
from hdl.engine import timing
from host.packing import plan_layer
from host.perf import layer_cycles

__all__ = ["ScaleSimRun", "scalesim_gemm", "scalesim_array", "compressed_k", "scalesim_formula",
           "fill", "bubble_bound", "Comparison", "compare", "LAYERS", "ARRAYS", "MODES",
           "format_markdown", "main"]

#: SRAM per operand (kB): every operand of the layers here fits in its active half.
SRAM_KB = 8192
#: DRAM words per cycle, per operand: far above the array's demand (at most 64 per cycle).
BANDWIDTH = 1024

#: ResNet-like GEMMs (im2col ``m x k x n``): CIFAR ResNet-20's channels on a 16x16 input, its
#: stem also at 32x32 (1024 rows: two m-blocks of 512); and small or ragged ones: m below the
#: rows, k not a multiple of the rows, n below the columns.
LAYERS = {
    "conv1 3x3 3->16 @32x32": (1024, 27, 16),
    "conv1 3x3 3->16 @16x16": (256, 27, 16),
    "stage1 3x3 16->16 @16x16": (256, 144, 16),
    "stage2 3x3 32->32 @8x8": (64, 288, 32),
    "stage3 1x1/2 32->64 @4x4": (16, 32, 64),
    "stage3 3x3 64->64 @4x4": (16, 576, 64),
    "fc 64->10": (1, 64, 10),
    "odd 3x7x5": (3, 7, 5),
}
#: Arrays (rows, cols) of the table.
ARRAYS = ((4, 4), (8, 8), (16, 16))
#: Modes of the table: the dense array, and the N:M arrays in N:M mode.
MODES = ("dense", "2:4", "1:4")

_CONFIG = """\
[general]
run_name = run

[architecture_presets]
ArrayHeight = {height}
ArrayWidth = {width}
IfmapSramSzkB = {sram}
FilterSramSzkB = {sram}
OfmapSramSzkB = {sram}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = {bandwidth}
Dataflow = ws
ReadRequestBuffer = 1024
WriteRequestBuffer = 1024

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = {bandwidth}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = {bandwidth}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = {sparse}
SparseRep = ellpack_block
OptimizedMapping = False
BlockSize = 4
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = USER
UseRamulatorTrace = False
"""


@dataclasses.dataclass(frozen=True)
class ScaleSimRun:
    """SCALE-Sim's report on one GEMM (its ``COMPUTE_REPORT.csv`` row).

    Members
    -------
    compute_cycles : int
        "Total Cycles": the cycle of the last output row, stalls included.
    total_cycles : int
        "Total Cycles (incl. prefetch)": from the first DRAM read to the last DRAM write.
    stall_cycles : int
        Cycles the array waited for memory.
    utilization : float
        Dense-equivalent MACs over ``height * width`` per compute cycle, in percent.
    mapping_efficiency, compute_utilization : float
        PEs holding a weight, and PEs busy over each fold, averaged over the folds (percent).
    """

    m: int
    k: int
    n: int
    height: int
    width: int
    sparsity: str
    compute_cycles: int
    total_cycles: int
    stall_cycles: int
    utilization: float
    mapping_efficiency: float
    compute_utilization: float


def _check_layer(m, k, n):
    return tuple(check_int(v, f"layer size {name}", lo=1) for name, v in (("m", m), ("k", k),
                                                                         ("n", n)))


def _check_array(height, width):
    return check_int(height, "height", lo=1), check_int(width, "width", lo=1)


@contextlib.contextmanager
def _numpy_scalars():
    """Run SCALE-Sim 3.0.0's memory model under NumPy 2.4 (see the module docstring)."""
    from scalesim.memory import (  # noqa: PLC0415 (scalesim: a test extra, loaded on use)
        double_buffered_scratchpad_mem,
        read_buffer,
    )

    def scalar_max(*args, **kwargs):
        out = builtins.max(*args, **kwargs)
        return out.item() if isinstance(out, np.ndarray) and out.size == 1 else out

    modules = (double_buffered_scratchpad_mem, read_buffer)
    for module in modules:
        module.max = scalar_max
    try:
        yield
    finally:
        for module in modules:
            del module.max


def _write_inputs(folder, m, k, n, height, width, pattern):
    """SCALE-Sim's config, GEMM topology and (empty) layout files in ``folder``."""
    sparse = not pattern.dense
    config = folder / "scalesim.cfg"
    config.write_text(_CONFIG.format(height=height, width=width, sram=SRAM_KB,
                                     bandwidth=BANDWIDTH, sparse=sparse))
    topology = folder / "gemm.csv"
    topology.write_text(f"Layer, M, N, K, Sparsity,\nlayer, {m}, {n}, {k}, "
                        f"{pattern.n}:{pattern.m},\n")
    layout = folder / "layout.csv"
    layout.write_text("Layer,\n")
    return config, topology, layout


@functools.cache
def _run(m, k, n, height, width, pattern):
    """One SCALE-Sim run in a folder of its own, its report read back from its objects."""
    from scalesim.scale_sim import scalesim  # noqa: PLC0415 (scalesim: a test extra)

    with tempfile.TemporaryDirectory(prefix="scalesim_") as tmp:
        folder = Path(tmp)
        config, topology, layout = _write_inputs(folder, m, k, n, height, width, pattern)
        console = io.StringIO()
        try:
            with (contextlib.redirect_stdout(console), contextlib.redirect_stderr(console),
                  _numpy_scalars(), warnings.catch_warnings()):
                # SCALE-Sim leaves its input files open (closed when collected).
                warnings.simplefilter("ignore", ResourceWarning)
                sim = scalesim(save_disk_space=True, verbose=False, config=str(config),
                               topology=str(topology), layout=str(layout),
                               input_type_gemm=True)
                sim.run_scale(top_path=str(folder))
        except Exception as exc:
            exc.add_note(f"SCALE-Sim's output: {console.getvalue()!r}")
            raise
        layer = sim.runner.single_layer_sim_object_list[0]
        total, compute, stalls, util, mapping, busy = layer.get_compute_report_items()
    return ScaleSimRun(m, k, n, height, width, str(pattern), int(compute), int(total),
                       int(stalls), float(util), float(mapping), float(busy))


def scalesim_gemm(m, k, n, *, height, width, sparsity="dense"):
    """Run SCALE-Sim weight-stationary on an ``m x k x n`` GEMM (``m`` rows, reduction ``k``,
    ``n`` outputs) on a ``height x width`` array, in-process, its console output swallowed.

    Parameters
    ----------
    m, k, n : int
        Layer size, each at least 1.
    height, width : int
        SCALE-Sim's ``ArrayHeight`` (along ``k``) and ``ArrayWidth`` (along ``n``).
    sparsity : str
        ``"dense"``, or ``"N:M"`` for SCALE-Sim's N:M mode (``SparsitySupport``, the
        topology's N:M column, ``ellpack_block`` storage, no optimized mapping).

    Returns
    -------
    ScaleSimRun
        Results are cached per argument set.

    Raises
    ------
    ValueError
        If a size is below 1 or ``sparsity`` is not ``"dense"`` or ``"N:M"``.
    """
    m, k, n = _check_layer(m, k, n)
    height, width = _check_array(height, width)
    return _run(m, k, n, height, width, Sparsity.parse(sparsity))


def scalesim_array(config):
    """SCALE-Sim's ``(height, width)`` for ``config``: ``rows * n`` by ``cols``, the same
    multipliers and the same inputs per pass (in N:M mode with SCALE-Sim's N:M mode, in the
    dense fallback with its dense mode)."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a hdl.config.Config, not {config!r}")
    return config.rows * config.n, config.cols


def compressed_k(k, sparsity):
    """The reduction length SCALE-Sim keeps in N:M mode: the non-zero rows of a filter pruned
    ``N`` of every ``M`` (the first ``N`` of each group, the last group cut at ``k``)."""
    k = check_int(k, "layer size k", lo=1)
    p = Sparsity.parse(sparsity)
    return k // p.m * p.n + min(k % p.m, p.n)


def scalesim_formula(m, k, n, *, height, width, sparsity="dense"):
    """SCALE-Sim's compute cycles in closed form: ``P * (m + 2 * height + width - 2) - 1``
    for ``P = ceil(k' / height) * ceil(n / width)`` folds, ``k'`` :func:`compressed_k`."""
    m, k, n = _check_layer(m, k, n)
    height, width = _check_array(height, width)
    folds = math.ceil(compressed_k(k, sparsity) / height) * math.ceil(n / width)
    return folds * (m + 2 * height + width - 2) - 1


def fill(config):
    """``F``: the cycles a layer takes beyond its activation beats when its passes run back
    to back: the first tile's load (``rows`` words and ``load_to_use``) or the first parameter
    packet (``cols`` words), whichever is later, then the result latency of the last beat."""
    t = timing(config)
    return max(config.rows + t["load_to_use"], config.cols) + t["result"]


def _pass_lengths(config, m, k, n, sparse):
    """Rows of every pass in order, and the K tiles (passes per m-block)."""
    plan = plan_layer(config, m, k, n, sparse=sparse)
    blocks = [min(plan.m_block, m - b) for b in range(0, m, plan.m_block)]
    lengths = [blk for _ in range(plan.n_tiles) for blk in blocks for _ in range(plan.k_tiles)]
    return lengths, plan.k_tiles


def bubble_bound(config, m, k, n, *, sparse):
    """The most cycles :func:`host.perf.layer_cycles` can add to ``P * m + fill(config)``
    (``P``: K tiles times N tiles), waiting for the banks of short passes.

    Pass ``q`` may wait after pass ``q - 1`` for its weight bank (freed ``drain + 2`` cycles
    after pass ``q - 2``, then ``rows`` words and ``load_to_use``: at most
    ``rows + cols + 1 + load_to_use - len(q - 1)``; pass 1: its tile after the first), and the
    first pass of an m-block for its parameter bank (freed ``param_drain + 2`` cycles after the
    block two before, then ``cols`` words: at most ``param_drain + cols + 1 - k_tiles * len``,
    the rows of the block before; block 1: its packet after the first); a one-row pass waits
    ``one_row_wait`` cycles at least. 0: every pass follows
    the one before without a gap, and the layer takes exactly ``P * m + F`` cycles.
    """
    t = timing(config)
    rows, cols = config.rows, config.cols
    lengths, k_tiles = _pass_lengths(config, m, k, n, sparse)
    start = max(rows + t["load_to_use"], cols)
    bound = 0
    for q in range(1, len(lengths)):
        prev = lengths[q - 1]
        if q == 1:
            waits = [2 * rows + t["load_to_use"] - start - prev]
        else:
            waits = [rows + t["drain"] + 1 + t["load_to_use"] - prev]
        if q % k_tiles == 0:
            block = k_tiles * prev
            if q == k_tiles:
                waits.append(2 * cols - start - block)
            else:
                waits.append(t["param_drain"] + cols + 1 - block)
        if lengths[q] == 1:
            waits.append(t["one_row_wait"])
        bound += max(0, *waits)
    return bound


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One layer on one array: our cycles, SCALE-Sim's, and what explains the difference.

    Members
    -------
    folds : int
        K tiles times N tiles: SCALE-Sim's folds, our passes per m-block.
    passes : int
        Our passes (``folds`` per m-block of up to ``acc_depth`` rows).
    ours : int
        :func:`host.perf.layer_cycles` (the RTL's cycle counter).
    fill : int
        :func:`fill` of the array.
    bubbles : int
        :func:`bubble_bound`: ``floor <= ours <= floor + bubbles``.
    scalesim : ScaleSimRun
    """

    name: str
    m: int
    k: int
    n: int
    rows: int
    cols: int
    sparsity: str
    folds: int
    passes: int
    ours: int
    fill: int
    bubbles: int
    scalesim: ScaleSimRun

    @property
    def theirs(self):
        """SCALE-Sim's compute cycles."""
        return self.scalesim.compute_cycles

    @property
    def floor(self):
        """``folds * m + fill``: :attr:`ours` when the passes are back to back."""
        return self.folds * self.m + self.fill

    @property
    def ratio(self):
        """Ours over SCALE-Sim's compute cycles."""
        return self.ours / self.theirs

    @property
    def band(self):
        """``(low, high)``: :attr:`ratio` from the two closed forms, ``low`` with the passes
        back to back, ``high`` with every bubble :func:`bubble_bound` allows."""
        return self.floor / self.theirs, (self.floor + self.bubbles) / self.theirs

    @property
    def explained(self):
        """``F + 1 - folds * (2H + W - 2)``: ``ours - theirs`` when the passes are back to
        back (SCALE-Sim's weight load and skew per fold against our one fill per layer)."""
        h, w = self.scalesim.height, self.scalesim.width
        return self.fill + 1 - self.folds * (2 * h + w - 2)


def _named(layers):
    if isinstance(layers, dict):
        return [(name, *_check_layer(*shape)) for name, shape in layers.items()]
    return [(f"{m}x{k}x{n}", *_check_layer(m, k, n)) for m, k, n in layers]


def _config(rows, cols, sparsity):
    return Config.from_sparsity(check_int(rows, "rows", lo=1), check_int(cols, "cols", lo=1),
                                sparsity)


def compare(layers, arrays, sparsity="dense"):
    """Our cycles beside SCALE-Sim's for every layer on every array.

    Parameters
    ----------
    layers : sequence of (m, k, n), or dict of name -> (m, k, n)
    arrays : sequence of (rows, cols)
    sparsity : str
        ``"dense"``: a dense array (:meth:`hdl.config.Config.from_sparsity` ``"dense"``,
        ``sparse=False``) against SCALE-Sim dense on ``rows x cols``; ``"N:M"``: an N:M array
        in N:M mode against SCALE-Sim's N:M mode on ``rows * N x cols``.

    Returns
    -------
    list of Comparison
        Layer by layer, array by array.

    Raises
    ------
    ValueError
        For a size below 1, an array the generator does not build, or a bad ``sparsity``.
    """
    pattern = Sparsity.parse(sparsity)
    named = _named(layers)
    out = []
    for rows, cols in arrays:
        config = _config(rows, cols, str(pattern))
        height, width = scalesim_array(config)
        for name, m, k, n in named:
            plan = plan_layer(config, m, k, n, sparse=config.sparse)
            est = layer_cycles(config, m, k, n, sparse=config.sparse)
            run = scalesim_gemm(m, k, n, height=height, width=width, sparsity=str(pattern))
            out.append(Comparison(name, m, k, n, config.rows, config.cols, str(pattern),
                                  plan.k_tiles * plan.n_tiles, est.passes, est.cycles,
                                  fill(config),
                                  bubble_bound(config, m, k, n, sparse=config.sparse), run))
    return out


def _table(rows):
    lines = ["| layer | m x k x n | array | SCALE-Sim array | P | ours | SCALE-Sim | "
             "SCALE-Sim incl. DRAM | ours / SCALE-Sim | back to back | ours - SCALE-Sim | "
             "F + 1 - P(2H+W-2) |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        s = r.scalesim
        b2b = "yes" if r.bubbles == 0 else f"no: +{r.ours - r.floor} (bound {r.bubbles})"
        lines.append(f"| {r.name} | {r.m}x{r.k}x{r.n} | {r.rows}x{r.cols} {r.sparsity} | "
                     f"{s.height}x{s.width} | {r.folds} | {r.ours:,} | {r.theirs:,} | "
                     f"{s.total_cycles:,} | {r.ratio:.3f} | {b2b} | {r.ours - r.theirs:,} | "
                     f"{r.explained:,} |")
    return lines


_EXPLANATION = """\
**Mapping.** SCALE-Sim's GEMM row is `M, N, K` (output rows, output channels, reduction).
Weight-stationary, it holds a `H x W` block of the `K x N` filter in the PEs, `K` along the
height and `N` along the width, and streams the `M` input rows through it: `ArrayHeight` is our
`rows`, `ArrayWidth` our `cols`, a fold our pass. An N:M array (N multipliers per PE, `rows * M`
inputs per pass) is set against `rows * N` SCALE-Sim rows in its N:M mode: the same multipliers
and the same inputs per pass.

**Closed forms.** `P` = K tiles x N tiles (SCALE-Sim's folds; our passes per m-block).
SCALE-Sim: `P * (m + 2H + W - 2) - 1` on every run below (per fold: `H` cycles shifting the
weights in, the `m` rows, `H - 1 + W - 1` of skew filling and draining the array; a fold starts
when the one before has drained; the figure is the cycle index of the last output row).
Ours: `P * m + F` when the passes run back to back ("back to back" below), with
`F = max(rows + 3, cols) + result latency` (the first tile or parameter packet, then zero point,
grid, accumulator read-add, requantization, output FIFO: `rows + cols + 19` with double
rounding); a pass shorter than `rows + cols + 4` rows (or an m-block shorter than
`rows + 2 cols + 5` over its K tiles) waits for its weight (parameter) bank, adding the bubbles
shown, never more than the bound. So, back to back, exactly:
`ours - SCALE-Sim = F + 1 - P * (2H + W - 2)` (last column; equal to the one before it on every
back-to-back row).

Long passes hide our loads and fill: ours / SCALE-Sim tends to 1 as `m` grows, and stays
below 1 while `P * (2H + W - 2)` exceeds `F + 1`. A single pass (`P = 1`) costs us
`F + 1 - (2H + W - 2)` cycles more: 24 on a square dense array, the accumulator and
requantization tail SCALE-Sim does not have.
"""

#: What each one models: (aspect, ours, SCALE-Sim).
_MODELS = (
    ("weight load", "`rows` words into the other bank while the current pass runs "
     "(double-buffered PEs)", "`H` cycles per fold, the array idle"),
    ("fill / drain of the grid", "once per layer: passes follow as wavefronts",
     "`H + W - 2` per fold"),
    ("accumulator depth", "m-blocks of up to `acc_depth` rows, partial sums on chip across the "
     "K tiles", "none: a fold streams all `M` rows"),
    ("requantization", "per channel, 11 cycles (double rounding) in the result latency; "
     "parameters double-buffered per m-block", "not modelled"),
    ("memory", "streams always ready (as `sparsemac bench` measures); no SRAM",
     "double-buffered SRAMs and DRAM bandwidth (no stalls here; \"incl. DRAM\" adds the first "
     "prefetch and the last write-back)"),
    ("N:M", "a PE holds N weights and their indices and selects N of M activations: "
     "`rows * M` inputs per pass", "the filter compressed to `K * N / M` rows (the first N of "
     "every M), one weight per PE; no cycle for metadata"),
)


def _models_table():
    lines = ["| | ours (`host.perf`, = the RTL) | SCALE-Sim 3, ws |", "|---|---|---|"]
    return lines + [f"| {aspect} | {ours} | {theirs} |" for aspect, ours, theirs in _MODELS]


def format_markdown(results):
    """``docs/perf/scalesim.md`` from ``{mode: compare(...)}``: the setup, the mapping and the
    closed forms, then one table per mode."""
    runs = [r for rows in results.values() for r in rows]
    lines = ["# The performance model against SCALE-Sim", "",
             "`python -m explore.scalesim_check > docs/perf/scalesim.md`. SCALE-Sim "
             f"{version('scalesim')} in-process, weight-stationary, {SRAM_KB} kB of SRAM per "
             f"operand and {BANDWIDTH} words/cycle of DRAM bandwidth: "
             f"{sum(r.scalesim.stall_cycles for r in runs)} stall cycles over the {len(runs)} "
             "runs. Ours: `host.perf.layer_cycles` (the RTL's cycle counter), dense arrays and "
             f"N:M arrays in N:M mode, acc_depth {Config(rows=1, cols=1).acc_depth}, double "
             "rounding.", "", _EXPLANATION, "**What each models.**", "", *_models_table(), ""]
    for mode, rows in results.items():
        title = "Dense arrays" if mode == "dense" else f"{mode} arrays, {mode} mode"
        ratios = [r.ratio for r in rows]
        lines += [f"## {title}", "", *_table(rows), "",
                  f"ours / SCALE-Sim from {min(ratios):.3f} to {max(ratios):.3f}; "
                  f"{sum(r.bubbles == 0 for r in rows)} of {len(rows)} back to back.", ""]
    return "\n".join(lines)


def main():
    """Print :func:`format_markdown` for :data:`LAYERS` on :data:`ARRAYS` in every mode."""
    print(format_markdown({mode: compare(LAYERS, ARRAYS, mode) for mode in MODES}), end="")


if __name__ == "__main__":
    main()
