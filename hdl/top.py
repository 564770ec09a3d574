"""The top level that drops into an FPGA project: AXI4-Stream data, AXI4-Lite control.

Ports (conventional names, one clock ``aclk``, active-low synchronous reset ``aresetn``):

- ``s_axis_act_*``, ``s_axis_wgt_*``, ``s_axis_qp_*``: AXI4-Stream slaves (``tdata``,
  ``tvalid``, ``tready``, ``tlast``) for activations, weights + indices, and per-channel
  requantization parameters;
- ``m_axis_out_*``: AXI4-Stream master of int8 results;
- ``s_axil_*``: AXI4-Lite slave of the layer registers (:data:`REGISTERS`);
- ``irq``: high while ``STATUS.DONE`` or ``STATUS.ERROR`` is set and enabled in
  ``IRQ_ENABLE``.

Between the ports and the engine sits the :class:`~hdl.guard.Guard`: a malformed packet, a
word past a layer's last, the watchdog or ABORT sets a sticky error bit, resets the engine
(not the registers) and drains the inputs, so that nothing of a failed layer reaches the next.

``tdata`` widths are the payload widths of :mod:`hdl.layout` rounded up to whole bytes; the
padding bits of an input are ignored, those of an output are 0.
"""

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module, ResetInserter, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import axil
from .config import Config
from .engine import Engine
from .guard import DRAIN_QUIET, WATCHDOG_WIDTH, Guard
from .layout import M_BLOCK_WIDTH, M_ROWS_WIDTH, TILES_WIDTH, word_bits

__all__ = ["Top", "REGISTERS", "STATUS", "AXIL_ADDR_WIDTH", "tdata_width"]

AXIL_ADDR_WIDTH = 6

#: The bits of STATUS, from bit 0: name -> meaning. The error bits (2, 4-7) hold until the
#: next START.
STATUS = {
    "busy": "a layer runs, or DRAINING",
    "done": "a layer finished since the last START",
    "config_error": "the last START was refused (a zero count or M_BLOCK > acc_depth)",
    "error": "any of bits 2 and 4-7",
    "act_error": "an act packet was short, long or had a misplaced tlast, or an act word came "
                 "after the layer's last",
    "wgt_error": "the same on the wgt stream",
    "qp_error": "the same on the qp stream",
    "watchdog": "WATCHDOG cycles passed with the layer running and no transfer on any stream",
    "draining": f"after an abort: input words are discarded until none is valid for "
                f"{DRAIN_QUIET} cycles in a row, and a started output packet is closed with "
                "one zero word and tlast",
}

#: The register map (32-bit registers; signed fields are two's complement).
REGISTERS = [
    axil.Register("ctrl", 0x00, 2, "w1p",
                  doc="bit 0 START: start a layer (ignored while BUSY); bit 1 ABORT: abort "
                      "the layer, reset the engine and drain the inputs"),
    axil.Register("status", 0x04, len(STATUS), "r",
                  doc="; ".join(f"bit {i} {name.upper()}: {doc}"
                                for i, (name, doc) in enumerate(STATUS.items()))),
    axil.Register("m_rows", 0x08, M_ROWS_WIDTH, "rw", reset=1, doc="rows of the layer (m)"),
    axil.Register("m_block", 0x0C, M_BLOCK_WIDTH, "rw", reset=1,
                  doc="rows per m-block, 1 .. acc_depth"),
    axil.Register("k_tiles", 0x10, TILES_WIDTH, "rw", reset=1,
                  doc="K tiles (passes per m-block)"),
    axil.Register("n_tiles", 0x14, TILES_WIDTH, "rw", reset=1, doc="N tiles"),
    axil.Register("in_zp", 0x18, 8, "rw", doc="input zero point (int8)"),
    axil.Register("out_zp", 0x1C, 8, "rw", doc="output zero point (int8)"),
    axil.Register("act_min", 0x20, 8, "rw", reset=0x80, doc="output clamp minimum (int8)"),
    axil.Register("act_max", 0x24, 8, "rw", reset=0x7F, doc="output clamp maximum (int8)"),
    axil.Register("cycles", 0x28, 32, "r", doc="cycles busy in the last or current layer"),
    axil.Register("info", 0x2C, 32, "r",
                  doc="rows [7:0], cols [15:8], N [19:16], M [24:20] of this array"),
    axil.Register("watchdog", 0x30, WATCHDOG_WIDTH, "rw",
                  doc="cycles with a layer running and no transfer on any stream that abort "
                      "it (STATUS.WATCHDOG); 0 turns the watchdog off"),
    axil.Register("irq_enable", 0x34, 2, "rw", reset=0b11,
                  doc="bit 0: irq on DONE; bit 1: irq on ERROR"),
]


def tdata_width(bits):
    return -(-bits // 8) * 8


class Top(wiring.Component):
    """The generated accelerator.

    Parameters
    ----------
    config : Config

    Members
    -------
    See the module docstring; the manifest lists every port with its width and role.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        self._config = config
        self._engine = Engine(config)
        self._guard = Guard(config)
        self._regs = axil.RegisterFile(REGISTERS, addr_width=AXIL_ADDR_WIDTH)
        bits = word_bits(config)
        members = {"aclk": In(1), "aresetn": In(1)}
        for name in ("act", "wgt", "qp"):
            members[f"s_axis_{name}_tdata"] = In(tdata_width(bits[name]))
            members[f"s_axis_{name}_tvalid"] = In(1)
            members[f"s_axis_{name}_tready"] = Out(1)
            members[f"s_axis_{name}_tlast"] = In(1)
        members["m_axis_out_tdata"] = Out(tdata_width(bits["out"]))
        members["m_axis_out_tvalid"] = Out(1)
        members["m_axis_out_tready"] = In(1)
        members["m_axis_out_tlast"] = Out(1)
        for name, member in self._regs.signature.members["bus"].signature.members.items():
            members[f"s_axil_{name}"] = member
        members["irq"] = Out(1)
        super().__init__(members)

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from a last-pass activation beat to its result (``m_axis_out`` ready)."""
        return self._engine.latency

    @property
    def engine(self):
        return self._engine

    def info_word(self):
        c = self._config
        return c.rows | (c.cols << 8) | (c.n << 16) | (c.m << 20)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.domains.sync = ClockDomain()
        m.d.comb += [ClockSignal().eq(self.aclk), ResetSignal().eq(~self.aresetn)]
        m.submodules.guard = guard = self._guard
        # An abort resets the engine, not the registers.
        m.submodules.engine = ResetInserter({"sync": guard.reset})(self._engine)
        eng = self._engine
        m.submodules.regs = regs = self._regs

        for name, member in regs.signature.members["bus"].signature.members.items():
            inner, outer = getattr(regs.bus, name), getattr(self, f"s_axil_{name}")
            m.d.comb += inner.eq(outer) if member.flow == In else outer.eq(inner)

        bits = word_bits(cfg)
        for name in ("act", "wgt", "qp"):
            port = getattr(guard, name)
            tdata = getattr(self, f"s_axis_{name}_tdata")
            m.d.comb += [
                port.payload.as_value()[:bits[name]].eq(tdata[:bits[name]]),
                port.payload.last.eq(getattr(self, f"s_axis_{name}_tlast")),
                port.valid.eq(getattr(self, f"s_axis_{name}_tvalid")),
                getattr(self, f"s_axis_{name}_tready").eq(port.ready),
            ]
            wiring.connect(m, getattr(guard, f"{name}_o"), getattr(eng, name))
        wiring.connect(m, eng.out, guard.out_i)
        m.d.comb += [
            self.m_axis_out_tdata.eq(guard.out.payload.data.as_value()),
            self.m_axis_out_tlast.eq(guard.out.payload.last),
            self.m_axis_out_tvalid.eq(guard.out.valid),
            guard.out.ready.eq(self.m_axis_out_tready),
        ]

        start = regs.ctrl[0] & ~guard.draining
        done = Signal()
        with m.If(regs.ctrl[0] | guard.reset):
            m.d.sync += done.eq(0)
        with m.Elif(eng.busy.matches(1) & (eng.out.valid & eng.out.ready & eng.out.payload.last)):
            m.d.sync += done.eq(1)
        errors = guard.errors
        error = errors.as_value().any()
        status = {"busy": eng.busy | guard.draining, "done": done, "config_error": errors.config,
                  "error": error, "act_error": errors.act, "wgt_error": errors.wgt,
                  "qp_error": errors.qp, "watchdog": errors.watchdog,
                  "draining": guard.draining}
        assert list(status) == list(STATUS)
        m.d.comb += [
            eng.start.eq(start),
            guard.start.eq(start & ~eng.busy), guard.refused.eq(eng.refused),
            guard.abort.eq(regs.ctrl[1]),
            guard.busy.eq(eng.busy), guard.stream_error.eq(eng.stream_error),
            guard.watchdog.eq(regs.watchdog),
            eng.layer.m_rows.eq(regs.m_rows), eng.layer.m_block.eq(regs.m_block),
            eng.layer.k_tiles.eq(regs.k_tiles), eng.layer.n_tiles.eq(regs.n_tiles),
            eng.layer.in_zp.eq(regs.in_zp), eng.layer.out_zp.eq(regs.out_zp),
            eng.layer.act_min.eq(regs.act_min), eng.layer.act_max.eq(regs.act_max),
            regs.status.eq(Cat(*status.values())),
            regs.cycles.eq(eng.cycles),
            regs.info.eq(self.info_word()),
            self.irq.eq((done & regs.irq_enable[0]) | (error & regs.irq_enable[1])),
        ]
        return m
