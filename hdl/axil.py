"""AXI4-Lite: the bus signature, and a register file that a processor reaches through it.

:class:`Signature` describes an AXI4-Lite port from the master's side, with the channel signals
as flat members (``awaddr`` ... ``rready``) so a wrapper can rename them to the conventional
``s_axil_*`` ports a block design expects. :class:`RegisterFile` is a slave built from a list
of :class:`Register` descriptions: control bits and parameters the processor writes, status it
reads, and write-one-pulse strobes.
"""

import dataclasses
import keyword
import operator

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_int

__all__ = ["Resp", "Signature", "Register", "RegisterFile"]


class Resp(enum.IntEnum, shape=2):
    """AXI response codes carried by ``bresp`` and ``rresp``.

    Members
    -------
    OKAY
        0: the access succeeded.
    EXOKAY
        1: exclusive access succeeded (AXI4 only; never sent on AXI4-Lite).
    SLVERR
        2: the slave was reached but reports an error (here: an unmapped address).
    DECERR
        3: no slave at this address (sent by interconnects).
    """

    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class Signature(wiring.Signature):
    """AXI4-Lite signature, as seen from the master.

    A master's port is ``Out(axil.Signature(...))``; a slave's port is
    ``In(axil.Signature(...))``. All five channels are present; ``awprot`` and ``arprot``
    are carried but a slave is free to ignore them.

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr`` and ``araddr``: a byte address.
    data_width : int
        Width of ``wdata`` and ``rdata``: 32 or 64, the widths AXI4-Lite allows.
        ``wstrb`` has one bit per byte lane.

    Members
    -------
    awaddr, awprot, awvalid : Out
        Write address channel; ``awready : In``.
    wdata, wstrb, wvalid : Out
        Write data channel; ``wready : In``.
    bresp, bvalid : In
        Write response channel; ``bready : Out``.
    araddr, arprot, arvalid : Out
        Read address channel; ``arready : In``.
    rdata, rresp, rvalid : In
        Read data channel; ``rready : Out``.

    Raises
    ------
    TypeError
        If ``addr_width`` or ``data_width`` is not an integer.
    ValueError
        If ``addr_width`` is not positive or ``data_width`` is neither 32 nor 64.
    """

    def __init__(self, *, addr_width, data_width=32):
        addr_width = check_int(addr_width, "addr_width", lo=1)
        data_width = check_int(data_width, "data_width")
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, not {data_width}")
        self._addr_width = addr_width
        self._data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width),
            "awprot": Out(3),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
            "araddr": Out(addr_width),
            "arprot": Out(3),
            "arvalid": Out(1),
            "arready": In(1),
            "rdata": In(data_width),
            "rresp": In(2),
            "rvalid": In(1),
            "rready": Out(1),
        })

    @property
    def addr_width(self):
        """Byte address width (read-only)."""
        return self._addr_width

    @property
    def data_width(self):
        """Data width in bits (read-only)."""
        return self._data_width

    def __eq__(self, other):
        return (isinstance(other, Signature) and self.addr_width == other.addr_width
                and self.data_width == other.data_width)

    def __hash__(self):
        return hash((Signature, self.addr_width, self.data_width))

    def __repr__(self):
        return f"axil.Signature(addr_width={self.addr_width}, data_width={self.data_width})"


# Register access types: stored read/write, read-only input, write-one-pulse.
_ACCESS = ("rw", "r", "w1p")


@dataclasses.dataclass(frozen=True)
class Register:
    """One 32-bit word of a :class:`RegisterFile`.

    Parameters
    ----------
    name : str
        Name of the register, and of the register file's port for it. A Python identifier
        that does not start with ``_``.
    offset : int
        Byte offset in the register file's address space; a multiple of 4.
    width : int
        Number of implemented bits, 1 to 32, in bits ``[0:width]`` of the word. Reads return 0
        in the bits above; writes ignore them.
    access : str
        ``"rw"``: a stored value, written by the bus, read back, and driven on an ``Out`` port.
        ``"r"``: read-only; reads return the value of an ``In`` port the design drives. Writes
        to it are acknowledged with OKAY and have no effect.
        ``"w1p"``: write-one-pulse; writing 1 to bit ``i`` drives bit ``i`` of an ``Out`` port
        high for exactly one cycle. Reads return 0.
    reset : int
        Value of an ``"rw"`` register after reset. Must be 0 for the other access types.
    doc : str
        One-line description, for documentation and manifests.

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If ``name`` is not a public identifier, ``offset`` is negative or not 4-byte aligned,
        ``width`` is outside 1..32, ``access`` is unknown, or ``reset`` does not fit
        (or is nonzero for a register that stores nothing).
    """

    name: str
    offset: int
    width: int
    access: str
    reset: int = 0
    doc: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"Register name must be a string, not {self.name!r}")
        if (not self.name.isidentifier() or keyword.iskeyword(self.name)
                or self.name.startswith("_")):
            raise ValueError(f"Register name must be a Python identifier not starting with '_', "
                             f"not {self.name!r}")
        fields = {}
        for field in ("offset", "width", "reset"):
            value = getattr(self, field)
            try:
                fields[field] = operator.index(value)
            except TypeError:
                raise TypeError(f"Register {self.name!r} {field} must be an integer, "
                                f"not {value!r}") from None
        offset, width, reset = fields["offset"], fields["width"], fields["reset"]
        if offset < 0:
            raise ValueError(f"Register {self.name!r} offset must be non-negative, not {offset}")
        if offset % 4:
            raise ValueError(f"Register {self.name!r} offset must be 4-byte aligned, "
                             f"not {offset:#x}")
        if not 1 <= width <= 32:
            raise ValueError(f"Register {self.name!r} width must be between 1 and 32, "
                             f"not {width}")
        if not isinstance(self.access, str):
            raise TypeError(f"Register {self.name!r} access must be a string, "
                            f"not {self.access!r}")
        if self.access not in _ACCESS:
            raise ValueError(f"Register {self.name!r} access must be one of "
                             f"{', '.join(map(repr, _ACCESS))}, not {self.access!r}")
        if not 0 <= reset < 1 << width:
            raise ValueError(f"Register {self.name!r} reset value must fit in {width} unsigned "
                             f"bits, not {reset:#x}")
        if reset and self.access != "rw":
            raise ValueError(f"Register {self.name!r} of access {self.access!r} cannot have "
                             f"a reset value, not {reset:#x}")
        if not isinstance(self.doc, str):
            raise TypeError(f"Register {self.name!r} doc must be a string, not {self.doc!r}")
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "reset", reset)


class RegisterFile(wiring.Component):
    """AXI4-Lite slave holding a map of 32-bit registers.

    Every channel obeys the AXI handshake rules: ``*valid`` never waits for ``*ready``, and
    a response holds its value until it is accepted. The write address and write data channels
    are independent: either may arrive first, or both together; the first one is held until
    the other arrives, then the write takes effect, honouring the ``wstrb`` byte lanes. One
    transaction per direction is in flight: ``awready`` and ``wready`` are low from the
    moment a channel is accepted until its write response is accepted, and ``arready`` is low
    while a read response waits. A write and a read may proceed at the same time; a read that
    is accepted in the cycle a write takes effect returns the value before the write.

    Decoding uses ``addr[2:addr_width]``; the two low address bits are ignored (AXI4-Lite
    accesses are word-wide, ``wstrb`` selects the bytes). ``awprot`` and ``arprot`` are ignored.

    Responses:

    * a mapped address answers OKAY, including a write to an ``"r"`` register, which is
      ignored (so a processor may write back a whole block it read, as with most register
      generators), and a read of a ``"w1p"`` register, which returns 0;
    * an unmapped address answers SLVERR; a write to it has no effect and a read returns 0.

    Every output is driven by a flip-flop or by logic of flip-flops only: there is no
    combinational path from any input to any output.

    Parameters
    ----------
    registers : iterable of :class:`Register`
        The register map. At least one register; names and offsets are unique.
    addr_width : int
        Byte address width of the bus, at least 2; every offset is below ``2**addr_width``.

    Members
    -------
    bus : ``In(axil.Signature(addr_width=addr_width, data_width=32))``
        The AXI4-Lite slave port, in the ``sync`` domain.
    <name> : ``Out(width, init=reset)``
        For an ``"rw"`` register: its stored value.
    <name> : ``In(width)``
        For an ``"r"`` register: the value reads return.
    <name> : ``Out(width)``
        For a ``"w1p"`` register: one-cycle pulses, one bit per bit written with 1.

    Raises
    ------
    TypeError
        If ``registers`` is not an iterable of :class:`Register`, or ``addr_width`` is not an
        integer.
    ValueError
        If there are no registers, ``addr_width`` is below 2, two registers share a name or
        an offset, an offset lies beyond the address space, or a name collides with an
        attribute of the register file (such as ``bus``).
    """

    #: Data width of the bus and of every register word.
    DATA_WIDTH = 32

    def __init__(self, registers, *, addr_width):
        addr_width = check_int(addr_width, "addr_width", lo=2)
        try:
            registers = tuple(registers)
        except TypeError:
            raise TypeError(f"Registers must be an iterable of Register, "
                            f"not {registers!r}") from None
        if not registers:
            raise ValueError("Register file must have at least one register")
        names, offsets = set(), {}
        for reg in registers:
            if not isinstance(reg, Register):
                raise TypeError(f"Registers must be Register objects, not {reg!r}")
            if reg.name in names:
                raise ValueError(f"Register name {reg.name!r} is used more than once")
            if reg.name == "bus" or hasattr(type(self), reg.name):
                raise ValueError(f"Register name {reg.name!r} is reserved")
            if reg.offset in offsets:
                raise ValueError(f"Register {reg.name!r} at offset {reg.offset:#x} overlaps "
                                 f"register {offsets[reg.offset]!r}")
            if reg.offset >= 1 << addr_width:
                raise ValueError(f"Register {reg.name!r} offset {reg.offset:#x} is beyond the "
                                 f"{addr_width}-bit address space (at most "
                                 f"{(1 << addr_width) - 4:#x})")
            names.add(reg.name)
            offsets[reg.offset] = reg.name
        self._registers = registers
        self._addr_width = addr_width

        members = {"bus": In(Signature(addr_width=addr_width, data_width=self.DATA_WIDTH))}
        for reg in registers:
            if reg.access == "rw":
                members[reg.name] = Out(reg.width, init=reg.reset)
            elif reg.access == "r":
                members[reg.name] = In(reg.width)
            else:
                members[reg.name] = Out(reg.width)
        super().__init__(members)

    @property
    def addr_width(self):
        """Byte address width of the bus (read-only)."""
        return self._addr_width

    @property
    def data_width(self):
        """Data width of the bus, 32 (read-only)."""
        return self.DATA_WIDTH

    @property
    def registers(self):
        """The register map, a tuple of :class:`Register` in the order given (read-only)."""
        return self._registers

    def register_map(self):
        """The register map as plain data, sorted by offset, for documentation and manifests.

        Returns
        -------
        list of dict
            One dict per register with the keys ``name``, ``offset``, ``width``, ``access``,
            ``reset`` and ``doc``.
        """
        return [dataclasses.asdict(reg) for reg in sorted(self._registers,
                                                          key=lambda reg: reg.offset)]

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        word = slice(2, self._addr_width)

        # Write address and write data: each held from its handshake until the write happens.
        aw_full = Signal()
        aw_addr = Signal(self._addr_width)
        w_full = Signal()
        w_data = Signal(self.DATA_WIDTH)
        w_strb = Signal(self.DATA_WIDTH // 8)
        bvalid = Signal()
        bresp = Signal(2)
        m.d.comb += [
            bus.awready.eq(~aw_full & ~bvalid),
            bus.wready.eq(~w_full & ~bvalid),
            bus.bvalid.eq(bvalid),
            bus.bresp.eq(bresp),
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)

        # Bit mask of the byte lanes written.
        mask = Cat(lane.replicate(8) for lane in w_strb)
        for reg in self._registers:
            if reg.access == "w1p":
                m.d.sync += getattr(self, reg.name).eq(0)
        with m.If(aw_full & w_full):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bvalid.eq(1), bresp.eq(Resp.OKAY)]
            with m.Switch(aw_addr[word]):
                for reg in self._registers:
                    with m.Case(reg.offset >> 2):
                        port = getattr(self, reg.name)
                        if reg.access == "rw":
                            m.d.sync += port.eq((port & ~mask) | (w_data & mask))
                        elif reg.access == "w1p":
                            m.d.sync += port.eq(w_data & mask)
                with m.Default():
                    m.d.sync += bresp.eq(Resp.SLVERR)

        # Read: the value is sampled at the address handshake and held until accepted.
        rvalid = Signal()
        rdata = Signal(self.DATA_WIDTH)
        rresp = Signal(2)
        m.d.comb += [
            bus.arready.eq(~rvalid),
            bus.rvalid.eq(rvalid),
            bus.rdata.eq(rdata),
            bus.rresp.eq(rresp),
        ]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [rvalid.eq(1), rresp.eq(Resp.OKAY), rdata.eq(0)]
            with m.Switch(bus.araddr[word]):
                for reg in self._registers:
                    with m.Case(reg.offset >> 2):
                        if reg.access in ("rw", "r"):
                            m.d.sync += rdata.eq(getattr(self, reg.name))
                with m.Default():
                    m.d.sync += rresp.eq(Resp.SLVERR)
        return m
