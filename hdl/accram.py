"""The accumulator's RAM: one write port, and one read port whose data is registered twice.

:class:`AccRam` is a RAM of ``depth`` words of ``width`` bits with a write port and a read
port on ``sync``. A read's data arrives :attr:`AccRam.read_latency` = 3 cycles after its
address: the RAM's synchronous read, then two registers. For the ``"generic"`` target it is an
Amaranth :class:`~amaranth.lib.memory.Memory` and two registers after it, which synthesis maps
as it likes. For ``"ecp5"`` it is Lattice ``DP16KD`` block RAMs side by side, each reading
through its own output register (``REGMODE_B="OUTREG"``), then a register in the fabric:
Yosys infers a DP16KD from the generic RAM but leaves the registers in the fabric, and the
block's clock-to-output without its output register (5.8 ns at speed grade 6, against about
1 ns with it) then sits in the next stage; and the blocks stand in a column of their own, so
the route from their pins to the logic that uses the word (2.4 ns on an 8x8 array) gets a
cycle to itself. Both targets give the same values on the same cycles.

The write address, the write enable and the read address come once per block
(:attr:`AccRam.blocks`), all equal: a user registers a copy for each block (with
:class:`~hdl.fanout.Fanout`), so that the copy sits beside its block instead of one register
reaching blocks across the chip (15 blocks on an 8x8 array).
"""

from amaranth.hdl import C, ClockSignal, Const, Instance, Module, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_choice, check_int

from .config import ECP5_MAX_ACC_DEPTH, TARGETS

__all__ = ["AccRam", "DP16KD_SHAPES", "dp16kd_layout"]

#: ``(data width, depth)`` of the ECP5 ``DP16KD`` configurations, widest first (16384 data
#: bits each; the 9- and 18-bit ones also hold the bytes' ninth bits).
DP16KD_SHAPES = ((18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
#: Address bits below a word's address on the ``ADx`` pins, per data width (Yosys's
#: ``brams_map_16kd.v``: the address is always 14 bits in 1-bit units, its low bits 0, and at
#: width 18 pins ``ADx1``, ``ADx0`` are the write's byte enables).
_LOW_BITS = {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}
_AD_PINS = 14


def dp16kd_layout(width, depth):
    """``(data width, blocks)`` of an ECP5 RAM of ``depth`` words of ``width`` bits: the widest
    DP16KD configuration whose depth covers ``depth``, and as many blocks side by side as
    ``width`` needs."""
    width = check_int(width, "width", lo=1)
    depth = check_int(depth, "depth", lo=1, hi=ECP5_MAX_ACC_DEPTH)
    data_width = next(w for w, d in DP16KD_SHAPES if depth <= d)
    return data_width, -(-width // data_width)


class AccRam(wiring.Component):
    """A RAM with a write port and a read port that delivers the word 3 cycles later.

    Both ports are synchronous to ``sync``. A write of :py:`write.data` at :py:`write.addr`
    takes effect on the rising edge ending a cycle with :py:`write.en` high. :py:`read.data`
    is the word that was at :py:`read.addr` :attr:`read_latency` cycles before, as it was
    before that cycle's write: the RAM reads the address on the edge ending its cycle (a write
    in that same cycle is not seen) and two registers pass the word on after the next edges. A
    read in the same cycle as a write to the same address gives an unspecified word (the old
    one with ``"generic"``; the ECP5 block RAM does not define it, and its model shows X).
    The words start undefined (0 in both implementations).

    Parameters
    ----------
    width : int
        Bits of a word, at least 1.
    depth : int
        Words, at least 1; at most 16384 with ``target="ecp5"``.
    target : ``"generic"`` or ``"ecp5"``
        ``"generic"`` (default): an Amaranth :class:`~amaranth.lib.memory.Memory` with a
        non-transparent read port and two reset-less registers after it. ``"ecp5"``: ECP5
        ``DP16KD`` block RAMs, ``ceil(width / w)`` of them side by side in the widest
        configuration ``w`` bits wide that is ``depth`` deep or deeper (:func:`dp16kd_layout`);
        port A writes, port B reads through its output register (``REGMODE_B="OUTREG"``),
        then a reset-less register in the fabric.
        Simulating it needs the model ``hdl/vendor/ecp5/DP16KD.v``.

    Members
    -------
    write : ``In(wiring.Signature({"addr": Out(addrs), "data": Out(width), "en": Out(blocks)}))``
        The write port: address and enable, one copy per block (:attr:`blocks`; the copies
        must be equal), and the word. ``addrs`` is ``data.ArrayLayout(range(depth), blocks)``.
    read : ``In(wiring.Signature({"addr": Out(addrs), "data": In(width)}))``
        The read port: :py:`read.addr` in (one equal copy per block), :py:`read.data` out,
        :attr:`read_latency` cycles later.

    Raises
    ------
    TypeError
        If ``width`` or ``depth`` is not an integer.
    ValueError
        If ``width`` or ``depth`` is less than 1, ``target`` is not one of
        :data:`hdl.config.TARGETS`, or ``depth`` is more than 16384 with ``"ecp5"``.
    """

    def __init__(self, *, width, depth, target="generic"):
        self._width = check_int(width, "width", lo=1)
        self._target = check_choice(target, "target", TARGETS)
        self._depth = check_int(depth, "depth", lo=1,
                                hi=ECP5_MAX_ACC_DEPTH if self._target == "ecp5" else None)
        self._blocks = (dp16kd_layout(self._width, self._depth)[1] if self._target == "ecp5"
                        else 1)
        addr = data.ArrayLayout(range(self._depth), self._blocks)
        super().__init__({
            "write": In(wiring.Signature({"addr": Out(addr),
                                          "data": Out(unsigned(self._width)),
                                          "en": Out(self._blocks)})),
            "read": In(wiring.Signature({"addr": Out(addr),
                                         "data": In(unsigned(self._width))})),
        })

    @property
    def width(self):
        return self._width

    @property
    def depth(self):
        return self._depth

    @property
    def target(self):
        return self._target

    @property
    def blocks(self):
        """RAM blocks side by side (1 for ``"generic"``): the copies of the addresses and of
        the write enable."""
        return self._blocks

    @property
    def read_latency(self):
        """Cycles from :py:`read.addr` to its word on :py:`read.data`: the RAM's read and the
        two registers after it."""
        return 3

    def elaborate(self, platform):
        if self._target == "ecp5":
            return self._elaborate_ecp5()
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=unsigned(self._width), depth=self._depth,
                                               init=[])
        wr = mem.write_port()
        rd = mem.read_port()              # synchronous, not transparent for the write port
        read_q = Signal(self._width, name="read_q", reset_less=True)
        read_qq = Signal(self._width, name="read_qq", reset_less=True)
        m.d.comb += [wr.addr.eq(self.write.addr[0]), wr.data.eq(self.write.data),
                     wr.en.eq(self.write.en[0]), rd.addr.eq(self.read.addr[0]),
                     self.read.data.eq(read_qq)]
        m.d.sync += [read_q.eq(rd.data), read_qq.eq(read_q)]
        return m

    def _elaborate_ecp5(self):
        m = Module()
        data_width, blocks = dp16kd_layout(self._width, self._depth)
        low = _LOW_BITS[data_width]
        abits = len(self.read.addr[0])
        pad = Const(0, _AD_PINS - low - abits)

        def pins(addr, low_bits):
            # ADx13..0: the word address above `low` bits, then zeros.
            pins = low_bits + [addr[i] for i in range(abits)] + [pad[i] for i in range(len(pad))]
            assert len(pins) == _AD_PINS
            return pins

        # At width 18 port A's ADA1, ADA0 are the byte enables of the write (both bytes), port
        # B's (a read) 0, like Yosys's map.
        low_a = [C(int(data_width == 18 and i < 2), 1) for i in range(low)]
        low_b = [C(0, 1) for _ in range(low)]
        read_data = Signal(self._width, name="read_q")
        read_qq = Signal(self._width, name="read_qq", reset_less=True)
        m.d.sync += read_qq.eq(read_data)
        m.d.comb += self.read.data.eq(read_qq)
        for k in range(blocks):
            ad_a, ad_b = pins(self.write.addr[k], low_a), pins(self.read.addr[k], low_b)
            lo, hi = k * data_width, min((k + 1) * data_width, self._width)
            used = hi - lo
            di = Signal(18, name=f"b{k}_di")
            do = Signal(18, name=f"b{k}_do")
            unused_doa = Signal(18, name=f"b{k}_unused_doa")
            m.d.comb += [di[:used].eq(self.write.data[lo:hi]),
                         read_data[lo:hi].eq(do[:used])]
            zero = C(0, 1)
            kwargs = {
                "p_DATA_WIDTH_A": data_width, "p_DATA_WIDTH_B": data_width,
                "p_REGMODE_A": "NOREG", "p_REGMODE_B": "OUTREG",
                "p_RESETMODE": "SYNC", "p_CSDECODE_A": "0b000", "p_CSDECODE_B": "0b000",
                "p_WRITEMODE_A": "NORMAL", "p_WRITEMODE_B": "NORMAL",
                # The output register needs no global reset: the read register of "generic"
                # has none either, and its contents before the first read do not matter.
                "p_GSR": "DISABLED",
                "i_CLKA": ClockSignal("sync"), "i_CEA": C(1, 1), "i_OCEA": C(1, 1),
                "i_WEA": self.write.en[k], "i_RSTA": zero,
                "i_CLKB": ClockSignal("sync"), "i_CEB": C(1, 1), "i_OCEB": C(1, 1),
                "i_WEB": zero, "i_RSTB": zero,
            }
            for port, ad in (("A", ad_a), ("B", ad_b)):
                for i in range(3):
                    kwargs[f"i_CS{port}{i}"] = zero
                for i in range(_AD_PINS):
                    kwargs[f"i_AD{port}{i}"] = ad[i]
            for i in range(18):
                kwargs[f"i_DIA{i}"] = di[i]
                kwargs[f"i_DIB{i}"] = zero
                kwargs[f"o_DOA{i}"] = unused_doa[i]
                kwargs[f"o_DOB{i}"] = do[i]
            m.submodules[f"bram{k}"] = Instance("DP16KD", **kwargs)
        return m
