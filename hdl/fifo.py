"""A synchronous FIFO whose storage is read asynchronously: distributed RAM on an FPGA.

Amaranth's :class:`amaranth.lib.fifo.SyncFIFOBuffered` reads its storage through a
synchronous read port and presents that port's data as ``r_data``: synthesis maps it to a
block RAM without its output register, whose clock-to-output (5.8 ns on an ECP5 at speed
grade 6) then starts every path that reads ``r_data``. :class:`DistributedFIFO` has the same
interface and the same behaviour, cycle for cycle (the same inner FIFO of ``depth - 1``
words and output register, the same levels and readiness), but reads the storage
asynchronously into its own output register: the storage becomes LUT RAM (ECP5
``TRELLIS_DPR16X4``), and ``r_data`` comes from a flip-flop.

It suits devices with distributed RAM (ECP5, Xilinx, Intel); on iCE40, which has none, the
storage would be flip-flops, so the generic target keeps Amaranth's FIFO.
"""

from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.lib import memory
from amaranth.lib.fifo import FIFOInterface

from common.checks import check_int

__all__ = ["DistributedFIFO"]


class DistributedFIFO(Elaboratable, FIFOInterface):
    """First-words-fall-through FIFO of ``width``-bit words, ``depth`` of them (at least 2),
    with ``r_data`` registered; the members of :class:`amaranth.lib.fifo.FIFOInterface`.

    Raises
    ------
    TypeError
        If ``width`` or ``depth`` is not an integer.
    ValueError
        If ``width`` is negative or ``depth`` less than 2.
    """

    def __init__(self, *, width, depth):
        super().__init__(width=check_int(width, "width", lo=0),
                         depth=check_int(depth, "depth", lo=2))
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform):
        m = Module()
        inner_depth = self.depth - 1
        inner_level = Signal(range(inner_depth + 1))
        inner_r_rdy = Signal()
        do_write = self.w_rdy & self.w_en
        # The output register is loaded when it is empty or being read.
        do_inner_read = inner_r_rdy & (~self.r_rdy | self.r_en)
        m.d.comb += [
            self.w_rdy.eq(inner_level != inner_depth),
            inner_r_rdy.eq(inner_level != 0),
            self.w_level.eq(self.level),
            self.r_level.eq(self.level),
            self.level.eq(inner_level + self.r_rdy),
        ]

        # Synthesis would fold the output register into a synchronous read port and pick a
        # block RAM again; `ram_style` keeps the storage in LUT RAM (Yosys, Vivado).
        m.submodules.storage = storage = memory.Memory(shape=self.width, depth=inner_depth,
                                                       init=[],
                                                       attrs={"ram_style": "distributed"})
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(inner_depth))
        consume = Signal(range(inner_depth))
        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(self.w_data),
                     w_port.en.eq(do_write), r_port.addr.eq(consume)]

        with m.If(do_write):
            m.d.sync += produce.eq(_next(produce, inner_depth))
        with m.If(do_inner_read):
            m.d.sync += [consume.eq(_next(consume, inner_depth)), self.r_data.eq(r_port.data),
                         self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        with m.If(do_write & ~do_inner_read):
            m.d.sync += inner_level.eq(inner_level + 1)
        with m.If(do_inner_read & ~do_write):
            m.d.sync += inner_level.eq(inner_level - 1)
        return m


def _next(ptr, depth):
    """``ptr + 1`` modulo ``depth``."""
    return Mux(ptr == depth - 1, 0, ptr + 1)
