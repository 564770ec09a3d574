"""The layer engine: streams in, tiles sequenced over the grid, int8 results out.

A layer ``out[i, c] = requant(sum_k (x[i, k] - zp_in) * w[c, k] + bias[c])`` of ``m`` rows is
computed in *passes*. A pass covers one K tile (``rows`` groups of ``m`` inputs) and one N tile
(``cols`` output channels) for one *m-block* of up to ``acc_depth`` rows::

    for nt in range(n_tiles):                    # output channels, cols at a time
        for block in m-blocks of m_block rows:   # the last one may be shorter
            for kt in range(k_tiles):            # inputs, one K tile at a time
                pass: load tile (nt, kt); stream the block's activation rows of K tile kt

Partial sums of a block accumulate in on-chip RAM across the K tiles; during the last pass
of a block they go through per-channel requantization to the output. The weight tile of the
next pass loads into the other bank of every PE while the current pass runs, and the
requantization parameters of the next block into the other parameter bank, so passes follow
each other without a gap once a pass is at least ``rows + cols`` beats long.

Nothing inside stalls. An activation beat is admitted only when its pass's weights are in
place and, in a last pass, when the output FIFO is sure to have room for its result (a credit
counter), so output backpressure stops the input, never the pipeline.

The engine is wiring between blocks, each in its own module (streams, with backpressure,
joined with ``wiring.connect``; flows that never stall, a beat with ``valid`` low being a
bubble, assigned)::

    wgt -> Loader (weights) -w-> Array.w_in
    qp  -> Loader (params)  -w-> ParamBank
    act -> Scheduler -o-> ZeroPoint -> Array.a_in;  Array.p_out -> Accumulator.psum
           Scheduler -side-> Delay -> Accumulator.side
           Scheduler <-banks-> each Loader;  Scheduler <-credit-> Output
    Accumulator <-bank/params-> ParamBank
    Accumulator -o-> Requant -o-> Output -o-> out

- :class:`~hdl.loader.Loader` (two of them): weight tiles into the PEs' banks, parameter
  packets into the :class:`~hdl.parambank.ParamBank`; each bank FREE -> LOADING -> LOADED ->
  INUSE -> DRAINING -> FREE;
- :class:`~hdl.scheduler.Scheduler`: admits activation beats (``act.ready``), takes and
  releases the loaders' banks, reserves output words;
- :class:`~hdl.zeropoint.ZeroPoint`, :class:`~hdl.array.Array`: ``x - in_zp`` and the
  systolic grid; each beat's sideband runs beside them in a :class:`~hdl.delay.Delay`;
- :class:`~hdl.accumulator.Accumulator`, :class:`~hdl.requant.Requant`,
  :class:`~hdl.output.Output`: partial sums across K tiles, requantization, the output FIFO
  and its credits.

The loaders and the scheduler each walk the layer loop (:mod:`hdl.loop`); the engine holds
the layer registers, ``start``/``busy`` and the cycle counter.

Streams (valid/ready, payload held until transferred):

- ``act``: one beat per activation row of a pass: ``rows`` groups of ``m`` int8; ``last`` on
  the pass's last beat;
- ``wgt``: ``rows`` beats per pass, PE row 0 first: per column, ``n`` int8 weights and ``n``
  indices (their positions in the group of ``m``); ``last`` on PE row ``rows - 1``;
- ``qp``: ``cols`` beats per m-block, column 0 first: int32 bias, multiplier, shift; ``last``
  on column ``cols - 1``;
- ``out``: one beat per output row of a block: ``cols`` int8, ``last`` on the layer's last.

An input ``last`` that disagrees with the engine's own count, and a beat past the layer's
last on a stream (taken while the layer runs, and discarded), pulse that stream's bit of
``stream_error``; the engine itself goes on with the data as counted. What to do about it is
the top level's (:class:`~hdl.faults.Faults` resets the engine and drains the inputs).

The dense fallback needs no mode: the host sends a non-N:M layer with ``n`` inputs per group
(lanes ``0 .. n-1``, indices ``0 .. n-1``), so a pass covers ``rows * n`` inputs.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .accumulator import Accumulator, side_layout
from .array import Array, array_load_to_use
from .config import Config
from .delay import Delay
from .layout import LayerConfig, StreamFlags, act_layout, out_layout, qp_layout, wgt_layout
from .loader import Loader
from .loop import Constants
from .output import Output
from .parambank import ParamBank
from .pe import pe_latency
from .requant import LATENCY as REQUANT_LATENCY
from .requant import Requant
from .scheduler import ONE_BEAT_WAIT, Scheduler
from .zeropoint import ZeroPoint

__all__ = ["Engine", "timing"]

#: Width of the ``cycles`` counter.
CYCLES_WIDTH = 32


def timing(config):
    """The engine's fixed timing, in cycles, as a function of the configuration alone.

    ``datapath``: activation transfer to its partial sums at the accumulator; ``accumulate``:
    from there to the requantizer's input (the RAM read beside the partial sums, the
    add, the registered sum);
    ``result``: last-pass activation transfer to its result on ``out`` (the requantizer, and
    the output FIFO's one cycle more); ``load_to_use``: a tile's last weight word to its first
    usable activation (timer of the loaded bank); ``drain``: a pass's last activation to the
    loader reusing its bank; ``param_drain``: a block's last activation to its parameter bank
    being free; ``one_row_wait``: idle cycles before a pass of one row
    (:data:`~hdl.scheduler.ONE_BEAT_WAIT`); ``fifo_depth``: output FIFO words.
    :class:`Engine` is built from these, and
    its blocks' latencies add up to them (the tests check it).
    """
    grid = (config.rows - 1) + (config.cols - 1) + pe_latency(config)
    datapath = 1 + grid
    accumulate = 4
    result = datapath + accumulate + REQUANT_LATENCY[config.rounding] + 1
    return {"grid": grid, "datapath": datapath, "accumulate": accumulate, "result": result,
            "load_to_use": array_load_to_use(config), "drain": config.cols,
            "param_drain": datapath + 4, "one_row_wait": ONE_BEAT_WAIT,
            "fifo_depth": 1 << (result + 4).bit_length()}


class Engine(wiring.Component):
    """The complete datapath and its sequencer, with stream ports (no bus protocol).

    Parameters
    ----------
    config : Config

    Members
    -------
    act, wgt, qp : In(stream.Signature(...))
        Activation, weight and requantization-parameter streams (see the module docstring).
    out : Out(stream.Signature(...))
        Results.
    layer : In(LayerConfig)
        Sampled on ``start``. The engine decodes it a cycle ahead (its loop constants, and
        whether ``start`` is refused, are registers), so it must hold its value from the cycle
        before ``start`` on; the AXI4-Lite registers of :class:`~hdl.top.Top` change at least
        three cycles before a START (one write at a time, each with its response).
    start : In(1)
        A one-cycle pulse starts a layer (ignored while busy).
    busy : Out(1)
        From ``start`` until the last result has been transferred.
    refused : Out(1)
        ``start`` is refused this cycle (not busy, and a zero count or ``m_block`` above
        ``acc_depth``).
    stream_error : Out(StreamFlags)
        One cycle per faulty beat, per input stream: its ``last`` flag disagrees with the
        layer's geometry (a packet short, long or misplaced), or it came after the layer's
        last beat on that stream.
    cycles : Out(32)
        Cycles spent busy in the last (or current) layer.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`~hdl.config.Config`.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        self._config = config
        t = timing(config)
        self._grid = Array(config)
        self._wgt_loader = Loader(wgt_layout(config), beats=config.rows, per_pass=True,
                                  load_to_use=self._grid.load_to_use, drain=self._grid.drain)
        self._qp_loader = Loader(qp_layout(), beats=config.cols, per_pass=False,
                                 load_to_use=0, drain=t["param_drain"])
        self._scheduler = Scheduler(config)
        self._zero_point = ZeroPoint(config)
        self._accumulator = Accumulator(config)
        # The sideband reaches the accumulator `side_lead` cycles before the partial sums; only
        # its valid flag is reset (the rest is data it qualifies).
        side_cycles = self.datapath_latency - self._accumulator.side_lead
        self._side = Delay(side_layout(config), side_cycles, reset_less=True)
        self._side_valid = Delay(1, side_cycles)
        self._params = ParamBank(lanes=config.cols, target=config.target)
        # The output FIFO's credits leave room for every result: the requantizer never stalls.
        self._requant = Requant(lanes=config.cols, rounding=config.rounding, tag_width=1,
                                target=config.target, stalls=False)
        self._output = Output(config, depth=t["fifo_depth"])
        super().__init__({
            "act": In(stream.Signature(act_layout(config))),
            "wgt": In(stream.Signature(wgt_layout(config))),
            "qp": In(stream.Signature(qp_layout())),
            "out": Out(stream.Signature(out_layout(config))),
            "layer": In(LayerConfig),
            "start": In(1),
            "busy": Out(1),
            "refused": Out(1),
            "stream_error": Out(StreamFlags),
            "cycles": Out(CYCLES_WIDTH),
        })

    @property
    def config(self):
        return self._config

    @property
    def datapath_latency(self):
        """Cycles from an activation beat's transfer to its partial sums at the accumulator."""
        return self._zero_point.latency + self._grid.latency

    @property
    def requant_latency(self):
        return self._requant.latency

    @property
    def latency(self):
        """Cycles from a last-pass activation beat's transfer to its result on ``out`` (when
        ``out`` is ready): zero-point stage, grid, accumulator read-add, requantization and
        the output FIFO."""
        return (self.datapath_latency + self._accumulator.latency + self._requant.latency
                + self._output.latency)

    @property
    def fifo_depth(self):
        """Output FIFO depth: enough credit to cover the whole pipeline at one beat a cycle."""
        return self._output.depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.wgt_loader = wload = self._wgt_loader
        m.submodules.qp_loader = qload = self._qp_loader
        m.submodules.scheduler = sched = self._scheduler
        m.submodules.zero_point = zero = self._zero_point
        m.submodules.array = grid = self._grid
        m.submodules.side_delay = side = self._side
        m.submodules.side_valid = side_valid = self._side_valid
        m.submodules.accumulator = acc = self._accumulator
        m.submodules.param_banks = params = self._params
        m.submodules.requant = rq = self._requant
        m.submodules.output = output = self._output

        start, busy, layer, consts, start_consts = self._control(m)
        for block in (wload, qload, sched):
            m.d.comb += [block.start.eq(start), block.start_consts.eq(start_consts),
                         block.consts.eq(consts), block.busy.eq(busy)]
        m.d.comb += [
            self.stream_error.act.eq(sched.framing_error | sched.overrun),
            self.stream_error.wgt.eq(wload.framing_error | wload.overrun),
            self.stream_error.qp.eq(qload.framing_error | qload.overrun),
        ]

        # Streams.
        wiring.connect(m, wiring.flipped(self.wgt), wload.i)
        wiring.connect(m, wiring.flipped(self.qp), qload.i)
        wiring.connect(m, wiring.flipped(self.act), sched.act)
        wiring.connect(m, wload.banks, sched.weights)
        wiring.connect(m, qload.banks, sched.params)
        wiring.connect(m, output.credit, sched.credit)
        wiring.connect(m, acc.o, rq.i)
        wiring.connect(m, rq.o, output.i)
        wiring.connect(m, output.o, wiring.flipped(self.out))

        # Flows that never stall (a beat that is not valid is a bubble).
        w = wload.w
        m.d.comb += [
            grid.w_in.valid.eq(w.valid), grid.w_in.bank.eq(w.bank), grid.w_in.row.eq(w.index),
            grid.w_in.w.eq(w.w), grid.w_in.idx.eq(w.idx),
            params.w.eq(qload.w),
            zero.i.eq(sched.o), zero.zp.eq(layer.in_zp), grid.a_in.eq(zero.o),
            side.i.eq(sched.side), side_valid.i.eq(sched.side.valid), acc.side.eq(side.o),
            acc.side.valid.eq(side_valid.o), acc.psum.eq(grid.p_out.data),
            params.bank.eq(acc.param_bank), acc.params.eq(params.data),
            rq.out_zp.eq(layer.out_zp), rq.act_min.eq(layer.act_min),
            rq.act_max.eq(layer.act_max),
        ]
        return m

    def _control(self, m):
        """``start``/``busy``, ``refused``, ``cycles`` and the layer registers. Returns
        ``(start, busy, layer, consts, start_consts)``: the accepted start pulse, busy, the
        layer register, its loop constants, and the constants of the layer on ``self.layer``
        (decoded a cycle ahead, for the loops' start)."""
        cfg = self._config
        # Loaded by every start before they are used: no reset (fewer loads on the reset net).
        layer = Signal(LayerConfig, reset_less=True)
        consts = Signal(Constants, name="layer_consts", reset_less=True)
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        # Decoded every cycle from the input, so that `start` only loads registers: no compare
        # or subtraction lies between the layer registers and the loop counters. Refused until
        # the first decode after reset.
        start_consts = Signal(Constants, name="start_consts", reset_less=True)
        bad = Signal(init=1, name="start_bad")
        m.d.sync += [
            *start_consts.load(self.layer),
            bad.eq((self.layer.m_rows == 0) | (self.layer.m_block == 0) |
                   (self.layer.m_block > cfg.acc_depth) | (self.layer.k_tiles == 0) |
                   (self.layer.n_tiles == 0)),
        ]
        start = Signal()
        m.d.comb += start.eq(self.start & ~busy & ~bad)
        m.d.comb += self.refused.eq(self.start & ~busy & bad)
        with m.If(busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(start):
            m.d.sync += [layer.eq(self.layer), busy.eq(1), self.cycles.eq(0),
                         consts.eq(start_consts)]
        with m.If(self.out.valid & self.out.ready & self.out.payload.last):
            m.d.sync += busy.eq(0)
        return start, busy, layer, consts, start_consts
