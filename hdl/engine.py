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

Streams (valid/ready, payload held until transferred):

- ``act``: one beat per activation row of a pass: ``rows`` groups of ``m`` int8; ``last`` on
  the pass's last beat;
- ``wgt``: ``rows`` beats per pass, PE row 0 first: per column, ``n`` int8 weights and ``n``
  indices (their positions in the group of ``m``); ``last`` on PE row ``rows - 1``;
- ``qp``: ``cols`` beats per m-block, column 0 first: int32 bias, multiplier, shift; ``last``
  on column ``cols - 1``;
- ``out``: one beat per output row of a block: ``cols`` int8, ``last`` on the layer's last.

An input ``last`` that disagrees with the engine's own count sets ``framing_error`` (sticky
until the next start); the data are used as counted.

The dense fallback needs no mode: the host sends a non-N:M layer with ``n`` inputs per group
(lanes ``0 .. n-1``, indices ``0 .. n-1``), so a pass covers ``rows * n`` inputs.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .array import Array
from .config import Config
from .pe import pe_latency
from .requant import LATENCY as REQUANT_LATENCY
from .requant import Requant

__all__ = ["Engine", "LayerConfig", "timing"]

#: Width of the layer's row count ``m`` (rows of the im2col matrix for a convolution).
M_ROWS_WIDTH = 24
#: Width of the K- and N-tile counts.
TILES_WIDTH = 16


def timing(config):
    """The engine's fixed timing, in cycles, as a function of the configuration alone.

    ``datapath``: activation transfer to its partial sums at the accumulator; ``accumulate``:
    from there to the requantizer's input (read, registered read, add, registered sum);
    ``result``: last-pass activation transfer to its result on ``out``; ``load_to_use``: a tile's last
    weight word to its first usable activation (timer of the loaded bank); ``drain``: a
    pass's last activation to the loader reusing its bank; ``param_drain``: a block's last
    activation to its parameter bank being free; ``fifo_depth``: output FIFO words.
    """
    grid = (config.rows - 1) + (config.cols - 1) + pe_latency(config)
    datapath = 1 + grid
    accumulate = 4
    result = datapath + accumulate + REQUANT_LATENCY[config.rounding] + 1
    return {"grid": grid, "datapath": datapath, "accumulate": accumulate, "result": result,
            "load_to_use": 2, "drain": config.cols, "param_drain": datapath + 4,
            "fifo_depth": 1 << (result + 4).bit_length()}


class LayerConfig(data.Struct):
    """Per-layer settings, held stable while the engine is busy."""

    m_rows: M_ROWS_WIDTH          # rows of the layer (m)
    m_block: 17                   # rows per m-block, 1 .. acc_depth
    k_tiles: TILES_WIDTH          # passes per m-block
    n_tiles: TILES_WIDTH          # N tiles
    in_zp: signed(8)              # input zero point, subtracted from every activation
    out_zp: signed(8)             # output zero point
    act_min: signed(8)            # clamp bounds (fused ReLU / ReLU6)
    act_max: signed(8)


def qparam_layout():
    """One output channel's requantization parameters."""
    return data.StructLayout({"bias": signed(32), "multiplier": 31, "shift": signed(6)})


class _LayerConstants:
    """Values derived from the layer registers once, at ``start``, so that the loop control
    compares registers with registers instead of re-deriving them through carry chains."""

    def __init__(self):
        self.m_rows_m1 = Signal(M_ROWS_WIDTH, name="lc_m_rows_m1")
        self.m_block = Signal(17, name="lc_m_block")
        self.m_block_m1 = Signal(17, name="lc_m_block_m1")
        self.over0 = Signal(signed(M_ROWS_WIDTH + 1), name="lc_over0")
        self.over0_m1 = Signal(signed(M_ROWS_WIDTH + 1), name="lc_over0_m1")
        self.two_m_block = Signal(18, name="lc_two_m_block")
        self.k_last_m1 = Signal(TILES_WIDTH, name="lc_k_last_m1")
        self.n_last_m1 = Signal(TILES_WIDTH, name="lc_n_last_m1")
        self.one_k = Signal(name="lc_one_k")            # a single K tile
        self.one_block = Signal(name="lc_one_block")    # a single m-block
        self.two_blocks = Signal(name="lc_two_blocks")  # at most two m-blocks
        self.one_n = Signal(name="lc_one_n")            # a single N tile

    @staticmethod
    def one_values(layer):
        """``(one_k, one_block, one_n, two_blocks)`` of a (not yet registered) LayerConfig."""
        return (layer.k_tiles == 1, layer.m_rows <= layer.m_block, layer.n_tiles == 1,
                layer.m_rows <= 2 * layer.m_block)

    def load(self, layer):
        """Assignments that load the constants from a (not yet registered) LayerConfig."""
        one_k, one_block, one_n, two_blocks = self.one_values(layer)
        return [
            self.m_rows_m1.eq(layer.m_rows - 1),
            self.m_block.eq(layer.m_block), self.m_block_m1.eq(layer.m_block - 1),
            self.over0.eq(layer.m_rows - layer.m_block),
            self.over0_m1.eq(layer.m_rows - layer.m_block - 1),
            self.two_m_block.eq(2 * layer.m_block), self.two_blocks.eq(two_blocks),
            self.k_last_m1.eq(layer.k_tiles - 2),
            self.n_last_m1.eq(layer.n_tiles - 2),
            self.one_k.eq(one_k), self.one_block.eq(one_block), self.one_n.eq(one_n),
        ]


class _Nest:
    """Counters of the layer loop (nt, block, kt) that advance on ``step``.

    Exposes ``first_kt``, ``last_kt``, ``last_block``, ``last`` (the last pass of the layer)
    and ``block_len_m1`` (rows of the current block, minus one); with ``kt=False`` it counts
    blocks only. The block position is kept as ``over``, the rows from this block to the end
    of the layer minus ``m_block`` (the block is the last one when ``over <= 0``), beside
    ``over - 1`` and whether the next block is the last (``over <= m_block``). The flags are
    registers computed with the counters they describe, from present values, so whatever
    they gate starts from a flip-flop, and no update puts a comparison before a multiplexer.
    """

    def __init__(self, m, name, lc, step, *, kt=True):
        self._lc = lc
        self._kt = kt
        self.nt = Signal(TILES_WIDTH, name=f"{name}_nt")
        self.kt = Signal(TILES_WIDTH, name=f"{name}_kt")
        self.over = Signal(signed(M_ROWS_WIDTH + 1), name=f"{name}_over")
        self.over_m1 = Signal(signed(M_ROWS_WIDTH + 1), name=f"{name}_over_m1")
        self.next_last = Signal(name=f"{name}_next_last_block")
        self.first_kt = Signal(name=f"{name}_first_kt")
        self.last_kt = Signal(name=f"{name}_last_kt") if kt else Const(1)
        self.last_block = Signal(name=f"{name}_last_block")
        self.last_nt = Signal(name=f"{name}_last_nt")
        self.block_len_m1 = Signal(17, name=f"{name}_block_len_m1")
        self.last = self.last_kt & self.last_block & self.last_nt
        with m.If(step):
            with m.If(~self.last_kt):
                m.d.sync += [self.kt.eq(self.kt + 1), self.first_kt.eq(0)]
                if kt:
                    m.d.sync += self.last_kt.eq(self.kt == lc.k_last_m1)
            with m.Else():
                m.d.sync += [self.kt.eq(0), self.first_kt.eq(1)]
                if kt:
                    m.d.sync += self.last_kt.eq(lc.one_k)
                with m.If(~self.last_block):
                    m.d.sync += [self.over.eq(self.over - lc.m_block),
                                 self.over_m1.eq(self.over_m1 - lc.m_block),
                                 self.next_last.eq(~(self.over > lc.two_m_block)),
                                 self.last_block.eq(self.next_last),
                                 self.block_len_m1.eq(Mux(self.next_last, self.over_m1,
                                                          lc.m_block_m1))]
                with m.Else():
                    m.d.sync += [self.over.eq(lc.over0), self.over_m1.eq(lc.over0_m1),
                                 self.next_last.eq(lc.two_blocks),
                                 self.last_block.eq(lc.one_block),
                                 self.block_len_m1.eq(Mux(lc.one_block, lc.m_rows_m1,
                                                          lc.m_block_m1)),
                                 self.nt.eq(self.nt + 1),
                                 self.last_nt.eq(self.nt == lc.n_last_m1)]

    def reset(self, layer):
        """Assignments that restart the loop for ``layer`` (the LayerConfig being started)."""
        one_k, one_block, one_n, two_blocks = _LayerConstants.one_values(layer)
        over = layer.m_rows - layer.m_block
        resets = [self.nt.eq(0), self.kt.eq(0), self.over.eq(over), self.over_m1.eq(over - 1),
                  self.next_last.eq(two_blocks), self.first_kt.eq(1),
                  self.last_block.eq(one_block), self.last_nt.eq(one_n),
                  self.block_len_m1.eq(Mux(one_block, layer.m_rows - 1, layer.m_block - 1))]
        if self._kt:
            resets.append(self.last_kt.eq(one_k))
        return resets


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
        Sampled on ``start``.
    start : In(1)
        A one-cycle pulse starts a layer (ignored while busy).
    busy : Out(1)
        From ``start`` until the last result has been transferred.
    error : Out(1)
        The last ``start`` was refused: a zero count or ``m_block`` above ``acc_depth``.
    framing_error : Out(1)
        An input ``last`` flag disagreed with the layer's geometry since the last start.
    cycles : Out(32)
        Cycles spent busy in the last (or current) layer.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        self._config = config
        self._grid = Array(config)
        self._requant = Requant(lanes=config.cols, rounding=config.rounding, tag_width=1)
        super().__init__({
            "act": In(stream.Signature(self.act_layout(config))),
            "wgt": In(stream.Signature(self.wgt_layout(config))),
            "qp": In(stream.Signature(data.StructLayout({"data": qparam_layout(), "last": 1}))),
            "out": Out(stream.Signature(self.out_layout(config))),
            "layer": In(LayerConfig),
            "start": In(1),
            "busy": Out(1),
            "error": Out(1),
            "framing_error": Out(1),
            "cycles": Out(32),
        })

    @staticmethod
    def act_layout(config):
        return data.StructLayout({
            "data": data.ArrayLayout(data.ArrayLayout(signed(8), config.m), config.rows),
            "last": 1,
        })

    @staticmethod
    def wgt_layout(config):
        return data.StructLayout({
            "w": data.ArrayLayout(data.ArrayLayout(signed(8), config.n), config.cols),
            "idx": data.ArrayLayout(data.ArrayLayout(max(config.index_bits, 1), config.n),
                                    config.cols),
            "last": 1,
        })

    @staticmethod
    def out_layout(config):
        return data.StructLayout({"data": data.ArrayLayout(signed(8), config.cols), "last": 1})

    @property
    def config(self):
        return self._config

    @property
    def datapath_latency(self):
        """Cycles from an activation beat's transfer to its partial sums at the accumulator."""
        return 1 + self._grid.latency

    @property
    def requant_latency(self):
        return self._requant.latency

    @property
    def latency(self):
        """Cycles from a last-pass activation beat's transfer to its result on ``out`` (when
        ``out`` is ready): zero-point stage, grid, accumulator read-add, requantization and
        the output FIFO."""
        return timing(self._config)["result"]

    @property
    def fifo_depth(self):
        """Output FIFO depth: enough credit to cover the whole pipeline at one beat a cycle."""
        return timing(self._config)["fifo_depth"]

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.array = grid = self._grid
        m.submodules.requant = rq = self._requant
        m.submodules.fifo = ofifo = fifo.SyncFIFOBuffered(
            width=len(self.out.payload.as_value()), depth=self.fifo_depth)
        m.submodules.acc = acc_mem = memory.Memory(
            shape=data.ArrayLayout(signed(cfg.acc_width), cfg.cols), depth=cfg.acc_depth,
            init=[])
        acc_w = acc_mem.write_port()
        # A row's partial sum is read 2 cycles before it is added and written back, and the
        # RAM's output goes straight into a register (a block RAM's clock-to-output is slow).
        # A row of the next pass of the same block, arriving 1 or 2 beats later (tiny
        # blocks), takes the sum written in the 2 cycles before instead (forwarding, below).
        acc_r = acc_mem.read_port()

        layer = Signal(LayerConfig)
        lc = _LayerConstants()
        running = Signal()          # admitting input (scheduler not finished)

        # -- start / busy / done ------------------------------------------------------------
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        bad = ((self.layer.m_rows == 0) | (self.layer.m_block == 0) |
               (self.layer.m_block > cfg.acc_depth) | (self.layer.k_tiles == 0) |
               (self.layer.n_tiles == 0))
        start = Signal()
        m.d.comb += start.eq(self.start & ~busy & ~bad)
        with m.If(self.start & ~busy):
            m.d.sync += self.error.eq(bad)
        with m.If(busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # -- bank bookkeeping ---------------------------------------------------------------
        # Weight banks: FREE -> LOADING -> LOADED -> INUSE -> DRAINING -> FREE.
        FREE, LOADING, LOADED, INUSE, DRAINING = range(5)
        wstate = [Signal(3, name=f"wbank{b}_state") for b in range(2)]
        wtimer = [Signal(8, name=f"wbank{b}_timer") for b in range(2)]
        qstate = [Signal(3, name=f"qbank{b}_state") for b in range(2)]
        qtimer = [Signal(8, name=f"qbank{b}_timer") for b in range(2)]
        for timer in (*wtimer, *qtimer):
            with m.If(timer != 0xFF):
                m.d.sync += timer.eq(timer + 1)

        # -- weight loader ------------------------------------------------------------------
        l_step = Signal()
        lnest = _Nest(m, "load", lc, l_step)
        l_bank = Signal()
        l_row = Signal(range(cfg.rows + 1))
        l_active = Signal()      # a tile is being loaded
        l_done = Signal()        # every tile of the layer was loaded
        l_state = Mux(l_bank, wstate[1], wstate[0])
        can_load = busy & ~l_done & ((l_state == FREE) | l_active)
        m.d.comb += self.wgt.ready.eq(can_load)
        w_fire = self.wgt.valid & self.wgt.ready
        m.d.comb += [
            grid.w_in.valid.eq(w_fire), grid.w_in.bank.eq(l_bank), grid.w_in.row.eq(l_row),
            grid.w_in.w.eq(self.wgt.payload.w), grid.w_in.idx.eq(self.wgt.payload.idx),
        ]
        framing = Signal()
        m.d.comb += self.framing_error.eq(framing)
        with m.If(w_fire & (self.wgt.payload.last != (l_row == cfg.rows - 1))):
            m.d.sync += framing.eq(1)
        with m.If(w_fire):
            with m.If(l_row == cfg.rows - 1):
                m.d.sync += [l_row.eq(0), l_active.eq(0), l_bank.eq(~l_bank)]
                m.d.comb += l_step.eq(1)
                for b in range(2):
                    with m.If(l_bank == b):
                        m.d.sync += [wstate[b].eq(LOADED), wtimer[b].eq(0)]
                with m.If(lnest.last):
                    m.d.sync += l_done.eq(1)
            with m.Else():
                m.d.sync += [l_row.eq(l_row + 1), l_active.eq(1)]
                for b in range(2):
                    with m.If(l_bank == b):
                        m.d.sync += wstate[b].eq(LOADING)

        # -- requantization-parameter loader (one packet of cols beats per m-block) ----------
        q_step = Signal()
        qnest = _Nest(m, "qload", lc, q_step, kt=False)
        q_bank = Signal()
        q_col = Signal(range(cfg.cols + 1))
        q_active = Signal()
        q_done = Signal()
        q_state = Mux(q_bank, qstate[1], qstate[0])
        qregs = [Signal(data.ArrayLayout(qparam_layout(), cfg.cols), name=f"qparams{b}",
                        reset_less=True) for b in range(2)]
        m.d.comb += self.qp.ready.eq(busy & ~q_done & ((q_state == FREE) | q_active))
        q_fire = self.qp.valid & self.qp.ready
        with m.If(q_fire & (self.qp.payload.last != (q_col == cfg.cols - 1))):
            m.d.sync += framing.eq(1)
        # The beat is written into its bank's register one cycle after its transfer, from
        # registers (a one-gate enable): no parameter is read that early, since a block's
        # first result reaches the requantizer datapath + 3 cycles after its first beat.
        q_wr = Signal(name="qparam_wr")
        q_wr_bank = Signal(name="qparam_wr_bank")
        q_wr_col = Signal.like(q_col, name="qparam_wr_col")
        q_wr_data = Signal(qparam_layout(), name="qparam_wr_data", reset_less=True)
        m.d.sync += [q_wr.eq(q_fire), q_wr_bank.eq(q_bank), q_wr_col.eq(q_col),
                     q_wr_data.eq(self.qp.payload.data)]
        for b in range(2):
            for c in range(cfg.cols):
                with m.If(q_wr & (q_wr_bank == b) & (q_wr_col == c)):
                    m.d.sync += qregs[b][c].eq(q_wr_data)
        with m.If(q_fire):
            with m.If(q_col == cfg.cols - 1):
                m.d.sync += [q_col.eq(0), q_active.eq(0), q_bank.eq(~q_bank)]
                m.d.comb += q_step.eq(1)
                for b in range(2):
                    with m.If(q_bank == b):
                        m.d.sync += qstate[b].eq(LOADED)
                with m.If(qnest.last):
                    m.d.sync += q_done.eq(1)
            with m.Else():
                m.d.sync += [q_col.eq(q_col + 1), q_active.eq(1)]
                for b in range(2):
                    with m.If(q_bank == b):
                        m.d.sync += qstate[b].eq(LOADING)

        # -- pass scheduler -----------------------------------------------------------------
        s_step = Signal()
        snest = _Nest(m, "pass", lc, s_step)
        p_bank = Signal()                       # weight bank of the current pass
        g_bank = Signal()                       # parameter bank of the current block
        beat = Signal(17)
        in_pass = Signal()                      # the current pass has started
        s_done = Signal()
        credit = Signal(range(self.fifo_depth + 1))
        # Whether each bank can start a pass is a register, computed one cycle ahead from the
        # bank's state and timer, so that act.ready is a few gates from flip-flops: a weight
        # bank is usable when LOADED for load_to_use cycles, a parameter bank when LOADED.
        wusable = [Signal(name=f"wbank{b}_usable") for b in range(2)]
        qloaded = [Signal(name=f"qbank{b}_loaded") for b in range(2)]
        weights_ready = in_pass | Mux(p_bank, wusable[1], wusable[0])
        params_ready = ~snest.first_kt | in_pass | Mux(g_bank, qloaded[1], qloaded[0])
        # The FIFO depth is a power of two: credit < fifo_depth is credit's top bit clear.
        assert self.fifo_depth & (self.fifo_depth - 1) == 0
        room = ~snest.last_kt | ~credit[-1]
        m.d.comb += self.act.ready.eq(running & weights_ready & params_ready & room)
        a_fire = self.act.valid & self.act.ready
        last_beat = beat == snest.block_len_m1
        with m.If(a_fire & (self.act.payload.last != last_beat)):
            m.d.sync += framing.eq(1)
        with m.If(a_fire):
            with m.If(~in_pass):
                for b in range(2):
                    with m.If(p_bank == b):
                        m.d.sync += wstate[b].eq(INUSE)
                with m.If(snest.first_kt):
                    for b in range(2):
                        with m.If(g_bank == b):
                            m.d.sync += qstate[b].eq(INUSE)
            m.d.sync += in_pass.eq(~last_beat)
            with m.If(last_beat):
                m.d.sync += [beat.eq(0), p_bank.eq(~p_bank)]
                m.d.comb += s_step.eq(1)
                for b in range(2):
                    with m.If(p_bank == b):
                        m.d.sync += [wstate[b].eq(DRAINING), wtimer[b].eq(0)]
                with m.If(snest.last_kt):
                    m.d.sync += g_bank.eq(~g_bank)
                    for b in range(2):
                        with m.If(g_bank == b):
                            m.d.sync += [qstate[b].eq(DRAINING), qtimer[b].eq(0)]
                with m.If(snest.last):
                    m.d.sync += running.eq(0)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        # Next cycle's wusable and qloaded: a bank stays LOADED until a pass (a block, for
        # parameters) starts on it; a weight bank's timer counts from its last weight word
        # (and saturates), a parameter bank is usable as soon as it is LOADED.
        take = a_fire & ~in_pass
        for b in range(2):
            m.d.sync += wusable[b].eq((wstate[b] == LOADED) &
                                      (wtimer[b] >= grid.load_to_use - 1) &
                                      ~(take & (p_bank == b)))
            m.d.sync += qloaded[b].eq(
                (q_fire & (q_col == cfg.cols - 1) & (q_bank == b)) |
                ((qstate[b] == LOADED) & ~(take & snest.first_kt & (g_bank == b))))
        # Drained banks are free again: weights once the wavefront left the grid, parameters
        # once the last beat of the block reached the requantizer.
        q_drain = timing(cfg)["param_drain"]
        for b in range(2):
            with m.If((wstate[b] == DRAINING) & (wtimer[b] >= grid.drain)):
                m.d.sync += wstate[b].eq(FREE)
            with m.If((qstate[b] == DRAINING) & (qtimer[b] >= q_drain)):
                m.d.sync += qstate[b].eq(FREE)

        # -- zero-point stage and the sideband that travels beside the grid -------------------
        a_stage = grid.a_in
        m.d.sync += [a_stage.valid.eq(a_fire), a_stage.bank.eq(p_bank)]
        # One copy of the input zero point per row, next to that row's subtractors (the layer
        # register alone would fan out to rows * m of them across the array). The copies form
        # a chain (row r holds it r + 1 cycles after start; identical copies would be merged
        # by synthesis), complete by the first activation: its tile takes rows + 2 cycles.
        zp_row = [Signal(signed(8), name=f"in_zp_row{r}") for r in range(cfg.rows)]
        for r in range(cfg.rows):
            m.d.sync += zp_row[r].eq(layer.in_zp if r == 0 else zp_row[r - 1])
            for j in range(cfg.m):
                m.d.sync += a_stage.data[r][j].eq(self.act.payload.data[r][j] - zp_row[r])
        side_layout = data.StructLayout({
            "valid": 1, "addr": range(cfg.acc_depth), "first": 1, "last": 1, "eol": 1,
            "gbank": 1})
        side = Signal(side_layout, name="side_0")
        m.d.comb += [
            side.valid.eq(a_fire), side.addr.eq(beat), side.first.eq(snest.first_kt),
            side.last.eq(snest.last_kt), side.eol.eq(snest.last & last_beat),
            side.gbank.eq(g_bank),
        ]
        for d in range(self.datapath_latency):
            nxt = Signal(side_layout, name=f"side_{d + 1}")
            m.d.sync += nxt.eq(side)
            side = nxt

        # -- accumulate: read, register the read data, add and write back; the sum and the
        # block's parameters are registered again before the requantizer (timing["accumulate"]
        # stages), so no logic follows the RAM's output and none precedes the bias add.
        acc_layout = data.ArrayLayout(signed(cfg.acc_width), cfg.cols)
        m.d.comb += acc_r.addr.eq(side.addr)
        s2 = Signal(side_layout, name="acc_side")
        s3 = Signal(side_layout, name="add_side")
        s4 = Signal(side_layout, name="rq_side")
        psum = Signal(acc_layout, name="psum", reset_less=True)
        psum3 = Signal(acc_layout, name="psum_d", reset_less=True)
        stored = Signal(acc_layout, name="acc_read", reset_less=True)
        total = Signal(acc_layout)
        total4 = Signal(acc_layout, name="acc_sum", reset_less=True)
        total5 = Signal(acc_layout, name="acc_sum_d", reset_less=True)
        writes3 = s3.valid & ~s3.last
        writes4 = s4.valid & ~s4.last
        m.d.sync += [s2.eq(side), psum.eq(grid.p_out.data), stored.eq(acc_r.data),
                     s3.eq(s2), psum3.eq(psum), s4.eq(s3), total5.eq(total4)]
        # The RAM read (issued at `side`) missed the writes of the two rows ahead: by the time
        # this row adds, they are at s4 and s5. Which one holds this row's sum is decided a
        # stage early, so the add sees registered selects.
        fwd4 = Signal(name="acc_fwd4")
        fwd5 = Signal(name="acc_fwd5")
        m.d.sync += [fwd4.eq(writes3 & (s3.addr == s2.addr)),
                     fwd5.eq(writes4 & (s4.addr == s2.addr))]
        for c in range(cfg.cols):
            before = Mux(fwd4, total4[c], Mux(fwd5, total5[c], stored[c]))
            m.d.comb += total[c].eq(Mux(s3.first, 0, before) + psum3[c])
        m.d.comb += [acc_w.addr.eq(s3.addr), acc_w.data.eq(total), acc_w.en.eq(writes3)]
        params = Signal(data.ArrayLayout(qparam_layout(), cfg.cols), reset_less=True)
        m.d.sync += [total4.eq(total), params.eq(Mux(s3.gbank, qregs[1], qregs[0]))]
        m.d.comb += [rq.i.valid.eq(s4.valid & s4.last), rq.i.payload.tag.eq(s4.eol)]
        for c in range(cfg.cols):
            m.d.comb += [
                rq.i.payload.acc[c].eq(total4[c]),
                rq.i.payload.bias[c].eq(params[c].bias),
                rq.i.payload.multiplier[c].eq(params[c].multiplier),
                rq.i.payload.shift[c].eq(params[c].shift),
            ]
        m.d.comb += [rq.out_zp.eq(layer.out_zp), rq.act_min.eq(layer.act_min),
                     rq.act_max.eq(layer.act_max)]

        # -- output FIFO and credit -----------------------------------------------------------
        out_word = Signal(self.out.payload.shape())
        m.d.comb += [out_word.data.eq(rq.o.payload.data), out_word.last.eq(rq.o.payload.tag[0])]
        m.d.comb += [ofifo.w_data.eq(out_word.as_value()), ofifo.w_en.eq(rq.o.valid),
                     rq.o.ready.eq(ofifo.w_rdy)]
        m.d.comb += [self.out.valid.eq(ofifo.r_rdy), ofifo.r_en.eq(self.out.ready),
                     self.out.payload.eq(ofifo.r_data)]
        out_fire = self.out.valid & self.out.ready
        admit = a_fire & snest.last_kt
        m.d.sync += credit.eq(credit + admit - out_fire)

        # -- start and finish -----------------------------------------------------------------
        with m.If(start):
            m.d.sync += [
                layer.eq(self.layer), busy.eq(1), running.eq(1), self.cycles.eq(0),
                framing.eq(0),
                l_bank.eq(0), l_row.eq(0), l_active.eq(0), l_done.eq(0),
                q_bank.eq(0), q_col.eq(0), q_active.eq(0), q_done.eq(0),
                p_bank.eq(0), g_bank.eq(0), beat.eq(0), in_pass.eq(0),
                *lc.load(self.layer), *lnest.reset(self.layer), *qnest.reset(self.layer),
                *snest.reset(self.layer),
                *[s.eq(FREE) for s in (*wstate, *qstate)],
                *[f.eq(0) for f in (*wusable, *qloaded)],
            ]
        with m.If(out_fire & self.out.payload.last):
            m.d.sync += busy.eq(0)
        return m
