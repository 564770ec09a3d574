"""The top level that drops into an FPGA project: AXI4-Stream data, AXI4-Lite control.

Ports (conventional names, one clock ``aclk``, active-low synchronous reset ``aresetn``):

- ``s_axis_act_*``, ``s_axis_wgt_*``, ``s_axis_qp_*``: AXI4-Stream slaves (``tdata``,
  ``tvalid``, ``tready``, ``tlast``) for activations, weights + indices, and per-channel
  requantization parameters;
- ``m_axis_out_*``: AXI4-Stream master of int8 results;
- ``s_axil_*``: AXI4-Lite slave of the layer registers (:data:`REGISTERS`);
- ``irq``: high while a layer has finished and no new one was started (``STATUS.DONE``).

``tdata`` widths are the payload widths of :mod:`hdl.layout` rounded up to whole bytes; the
padding bits of an input are ignored, those of an output are 0.
"""

from amaranth.hdl import ClockDomain, ClockSignal, Const, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import axil
from .config import Config
from .engine import Engine
from .layout import M_BLOCK_WIDTH, M_ROWS_WIDTH, TILES_WIDTH, word_bits

__all__ = ["Top", "REGISTERS", "AXIL_ADDR_WIDTH", "tdata_width"]

AXIL_ADDR_WIDTH = 6

#: The register map (32-bit registers; signed fields are two's complement).
REGISTERS = [
    axil.Register("ctrl", 0x00, 1, "w1p", doc="bit 0 START: write 1 to start a layer"),
    axil.Register("status", 0x04, 4, "r",
                  doc="bit 0 BUSY, bit 1 DONE (a layer finished since the last START), "
                      "bit 2 CONFIG_ERROR (last START refused: a zero count or M_BLOCK > "
                      "acc_depth), bit 3 FRAMING_ERROR (an input tlast disagreed)"),
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
        m.submodules.engine = eng = self._engine
        m.submodules.regs = regs = self._regs

        for name, member in regs.signature.members["bus"].signature.members.items():
            inner, outer = getattr(regs.bus, name), getattr(self, f"s_axil_{name}")
            m.d.comb += inner.eq(outer) if member.flow == In else outer.eq(inner)

        bits = word_bits(cfg)
        for name, port in (("act", eng.act), ("wgt", eng.wgt), ("qp", eng.qp)):
            tdata = getattr(self, f"s_axis_{name}_tdata")
            m.d.comb += [
                port.payload.as_value()[:bits[name]].eq(tdata[:bits[name]]),
                port.payload.last.eq(getattr(self, f"s_axis_{name}_tlast")),
                port.valid.eq(getattr(self, f"s_axis_{name}_tvalid")),
                getattr(self, f"s_axis_{name}_tready").eq(port.ready),
            ]
        m.d.comb += [
            self.m_axis_out_tdata.eq(eng.out.payload.data.as_value()),
            self.m_axis_out_tlast.eq(eng.out.payload.last),
            self.m_axis_out_tvalid.eq(eng.out.valid),
            eng.out.ready.eq(self.m_axis_out_tready),
        ]

        done = Signal()
        with m.If(regs.ctrl[0]):
            m.d.sync += done.eq(0)
        with m.Elif(eng.busy.matches(1) & (eng.out.valid & eng.out.ready & eng.out.payload.last)):
            m.d.sync += done.eq(1)
        m.d.comb += [
            eng.start.eq(regs.ctrl[0]),
            eng.layer.m_rows.eq(regs.m_rows), eng.layer.m_block.eq(regs.m_block),
            eng.layer.k_tiles.eq(regs.k_tiles), eng.layer.n_tiles.eq(regs.n_tiles),
            eng.layer.in_zp.eq(regs.in_zp), eng.layer.out_zp.eq(regs.out_zp),
            eng.layer.act_min.eq(regs.act_min), eng.layer.act_max.eq(regs.act_max),
            regs.status.eq(Const(0, 4) | eng.busy | (done << 1) | (eng.error << 2)
                           | (eng.framing_error << 3)),
            regs.cycles.eq(eng.cycles),
            regs.info.eq(self.info_word()),
            self.irq.eq(done),
        ]
        return m
