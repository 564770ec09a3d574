# amaranth: UnusedElaboratable=no
"""Tests of hdl.axil: the AXI4-Lite signature and the register file.

The register file is checked against a Python model in the Amaranth simulator (directed cases,
then a seeded random sequence with stalls on every channel), exported to Verilog with the
conventional ``s_axil_*`` port names, and cross-checked in Icarus and Verilator through
cocotbext-axi's AXI4-Lite master (``tests/cocotb/axil_tb.py``).
"""

import json
import os
import random
import re
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, ClockSignal, Module, ResetSignal, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from conftest import require_simulator

from hdl import axil
from hdl.axil import Register, RegisterFile, Resp
from sim import toolchain

HERE = Path(__file__).parent
SEED = int(os.environ.get("AXIL_SEED", "2024"))
ADDR_WIDTH = 8
REGISTERS = [
    Register("ctrl", 0x00, width=3, access="w1p", doc="start / clear / flush strobes"),
    Register("m", 0x04, width=16, access="rw", reset=1, doc="rows per tile"),
    Register("status", 0x08, width=2, access="r", doc="busy, done"),
    Register("scale", 0x0C, width=32, access="rw", reset=0x0001_0000, doc="requant multiplier"),
    Register("shift", 0x10, width=5, access="rw", reset=3, doc="requant shift"),
    Register("id", 0x14, width=32, access="r", doc="build identifier"),
    # 0x18 and 0x1c are holes: accesses answer SLVERR.
    Register("irq", 0x20, width=8, access="w1p", doc="interrupt acknowledge"),
]
UNMAPPED = [0x18, 0x1C, 0x24, 0xFC]
TIMEOUT = 50


def raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


def strobe_mask(strb):
    return sum(0xFF << (8 * lane) for lane in range(4) if strb >> lane & 1)


class RegisterModel:
    """What the register file should do, one access at a time."""

    def __init__(self, registers, addr_width):
        self.by_word = {reg.offset >> 2: reg for reg in registers}
        self.addr_width = addr_width
        self.values = {reg.name: reg.reset for reg in registers if reg.access == "rw"}
        self.inputs = {reg.name: 0 for reg in registers if reg.access == "r"}

    def _decode(self, addr):
        return self.by_word.get((addr % (1 << self.addr_width)) >> 2)

    def write(self, addr, data, strb):
        """``(bresp, {w1p name: pulse})``."""
        reg = self._decode(addr)
        if reg is None:
            return Resp.SLVERR, {}
        mask = strobe_mask(strb) & ((1 << reg.width) - 1)
        if reg.access == "rw":
            self.values[reg.name] = (self.values[reg.name] & ~mask) | (data & mask)
        if reg.access == "w1p" and data & mask:
            return Resp.OKAY, {reg.name: data & mask}
        return Resp.OKAY, {}

    def read(self, addr):
        """``(rdata, rresp)``."""
        reg = self._decode(addr)
        if reg is None:
            return 0, Resp.SLVERR
        if reg.access == "rw":
            return self.values[reg.name], Resp.OKAY
        if reg.access == "r":
            return self.inputs[reg.name] & ((1 << reg.width) - 1), Resp.OKAY
        return 0, Resp.OKAY


# ------------------------------------------------------------------------------------------------
# Validation


def test_signature_members_and_flow():
    sig = axil.Signature(addr_width=12)
    assert list(sig.members) == [
        "awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
        "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready",
        "rdata", "rresp", "rvalid", "rready"]
    from_master = {"awaddr": 12, "awprot": 3, "awvalid": 1, "wdata": 32, "wstrb": 4, "wvalid": 1,
                   "bready": 1, "araddr": 12, "arprot": 3, "arvalid": 1, "rready": 1}
    from_slave = {"awready": 1, "wready": 1, "bresp": 2, "bvalid": 1, "arready": 1,
                  "rdata": 32, "rresp": 2, "rvalid": 1}
    for name, member in sig.members.items():
        if name in from_master:
            assert member.flow == Out and Shape.cast(member.shape).width == from_master[name], name
        else:
            assert member.flow == In and Shape.cast(member.shape).width == from_slave[name], name
    assert (sig.addr_width, sig.data_width) == (12, 32)
    assert axil.Signature(addr_width=4, data_width=64).members["wstrb"].shape == 8
    assert sig == axil.Signature(addr_width=12, data_width=32)
    assert sig != axil.Signature(addr_width=13)
    assert sig.flip() == axil.Signature(addr_width=12).flip()
    assert repr(sig) == "axil.Signature(addr_width=12, data_width=32)"


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"addr_width": "8"}, TypeError, "addr_width must be an integer, not '8'"),
    ({"addr_width": 0}, ValueError, "addr_width must be at least 1, not 0"),
    ({"addr_width": 8, "data_width": 32.0}, TypeError, "data_width must be an integer, not 32.0"),
    ({"addr_width": 8, "data_width": 16}, ValueError, "data_width must be 32 or 64, not 16"),
])
def test_signature_validation(kwargs, exc, message):
    with raises(exc, message):
        axil.Signature(**kwargs)


@pytest.mark.parametrize(("args", "kwargs", "exc", "message"), [
    ((1, 0, 1, "rw"), {}, TypeError, "Register name must be a string, not 1"),
    (("2x", 0, 1, "rw"), {}, ValueError,
     "Register name must be a Python identifier not starting with '_', not '2x'"),
    (("_m", 0, 1, "rw"), {}, ValueError,
     "Register name must be a Python identifier not starting with '_', not '_m'"),
    (("class", 0, 1, "rw"), {}, ValueError,
     "Register name must be a Python identifier not starting with '_', not 'class'"),
    (("m", "4", 1, "rw"), {}, TypeError, "Register 'm' offset must be an integer, not '4'"),
    (("m", 4, 1.0, "rw"), {}, TypeError, "Register 'm' width must be an integer, not 1.0"),
    (("m", 4, 1, "rw"), {"reset": None}, TypeError,
     "Register 'm' reset must be an integer, not None"),
    (("m", -4, 1, "rw"), {}, ValueError, "Register 'm' offset must be non-negative, not -4"),
    (("m", 6, 1, "rw"), {}, ValueError, "Register 'm' offset must be 4-byte aligned, not 0x6"),
    (("m", 4, 0, "rw"), {}, ValueError, "Register 'm' width must be between 1 and 32, not 0"),
    (("m", 4, 33, "rw"), {}, ValueError, "Register 'm' width must be between 1 and 32, not 33"),
    (("m", 4, 8, 1), {}, TypeError, "Register 'm' access must be a string, not 1"),
    (("m", 4, 8, "wo"), {}, ValueError,
     "Register 'm' access must be one of 'rw', 'r', 'w1p', not 'wo'"),
    (("m", 4, 8, "rw"), {"reset": 256}, ValueError,
     "Register 'm' reset value must fit in 8 unsigned bits, not 0x100"),
    (("m", 4, 8, "rw"), {"reset": -1}, ValueError,
     "Register 'm' reset value must fit in 8 unsigned bits, not -0x1"),
    (("m", 4, 8, "r"), {"reset": 1}, ValueError,
     "Register 'm' of access 'r' cannot have a reset value, not 0x1"),
    (("m", 4, 8, "w1p"), {"reset": 2}, ValueError,
     "Register 'm' of access 'w1p' cannot have a reset value, not 0x2"),
    (("m", 4, 8, "rw"), {"doc": 3}, TypeError, "Register 'm' doc must be a string, not 3"),
])
def test_register_validation(args, kwargs, exc, message):
    with raises(exc, message):
        Register(*args, **kwargs)


def test_register_is_frozen_and_coerces_integers():
    class Index:
        def __index__(self):
            return 8

    reg = Register("m", Index(), width=Index(), access="rw", reset=Index())
    assert (reg.offset, reg.width, reg.reset) == (8, 8, 8)
    with pytest.raises(AttributeError):
        reg.offset = 12


@pytest.mark.parametrize(("registers", "addr_width", "exc", "message"), [
    (REGISTERS, "8", TypeError, "addr_width must be an integer, not '8'"),
    (REGISTERS, 1, ValueError, "addr_width must be at least 2, not 1"),
    (3, 8, TypeError, "Registers must be an iterable of Register, not 3"),
    ([], 8, ValueError, "Register file must have at least one register"),
    ([("m", 0, 1, "rw")], 8, TypeError,
     "Registers must be Register objects, not ('m', 0, 1, 'rw')"),
    ([Register("m", 0, 1, "rw"), Register("m", 4, 1, "r")], 8, ValueError,
     "Register name 'm' is used more than once"),
    ([Register("a", 4, 1, "rw"), Register("b", 4, 1, "r")], 8, ValueError,
     "Register 'b' at offset 0x4 overlaps register 'a'"),
    ([Register("a", 0x100, 1, "rw")], 8, ValueError,
     "Register 'a' offset 0x100 is beyond the 8-bit address space (at most 0xfc)"),
    ([Register("bus", 0, 1, "rw")], 8, ValueError, "Register name 'bus' is reserved"),
    ([Register("registers", 0, 1, "rw")], 8, ValueError, "Register name 'registers' is reserved"),
    ([Register("signature", 0, 1, "rw")], 8, ValueError, "Register name 'signature' is reserved"),
    ([Register("elaborate", 0, 1, "rw")], 8, ValueError, "Register name 'elaborate' is reserved"),
])
def test_register_file_validation(registers, addr_width, exc, message):
    with raises(exc, message):
        RegisterFile(registers, addr_width=addr_width)


def test_register_file_ports_and_map():
    rf = RegisterFile(reversed(REGISTERS), addr_width=ADDR_WIDTH)
    members = rf.signature.members
    assert members["bus"] == In(axil.Signature(addr_width=ADDR_WIDTH, data_width=32))
    assert members["m"] == Out(16, init=1)
    assert members["scale"] == Out(32, init=0x0001_0000)
    assert members["status"] == In(2)
    assert members["ctrl"] == Out(3)
    assert members["irq"] == Out(8)
    assert (rf.addr_width, rf.data_width) == (ADDR_WIDTH, 32)
    assert rf.registers == tuple(reversed(REGISTERS))
    regmap = rf.register_map()
    assert [entry["offset"] for entry in regmap] == sorted(reg.offset for reg in REGISTERS)
    assert regmap[1] == {"name": "m", "offset": 4, "width": 16, "access": "rw", "reset": 1,
                         "doc": "rows per tile"}
    json.dumps(regmap)
    with pytest.raises(AttributeError):
        rf.registers = ()


# ------------------------------------------------------------------------------------------------
# Amaranth simulation


class Master:
    """Drives the five AXI4-Lite channels of ``dut.bus`` from a testbench, one access at a time.

    ``probe`` (a ``random.Random``) makes every cycle also check that no output of the register
    file follows its inputs combinationally: inputs are scrambled, outputs must not move.
    """

    def __init__(self, ctx, dut, *, probe=None):
        self.ctx, self.dut, self.bus, self.probe = ctx, dut, dut.bus, probe
        members = dut.signature.members
        bus_members = members["bus"].signature.members
        ports = [(getattr(self.bus, name), member) for name, member in bus_members.items()]
        ports += [(getattr(dut, name), member) for name, member in members.items()
                  if name != "bus"]
        # Flows as the register file sees them (its bus member is In, so these are flipped).
        self.inputs = [sig for sig, member in ports if member.flow == In]
        self.outputs = [sig for sig, member in ports if member.flow == Out]

    def _probe(self):
        if self.probe is None:
            return
        ctx = self.ctx
        saved = [ctx.get(sig) for sig in self.inputs]
        outputs = [ctx.get(sig) for sig in self.outputs]
        for _ in range(3):
            for sig in self.inputs:
                ctx.set(sig, self.probe.getrandbits(len(sig)))
            moved = [sig.name for sig, old in zip(self.outputs, outputs) if ctx.get(sig) != old]
            assert not moved, f"combinational path from the inputs to {moved}"
        for sig, value in zip(self.inputs, saved):
            ctx.set(sig, value)

    async def _response(self, valid, ready, payload, *, delay, early):
        """Wait for ``valid``; hold ``ready`` low ``delay`` cycles meanwhile checking that the
        response holds; accept it. ``early`` raises ``ready`` before ``valid`` when no delay."""
        ctx = self.ctx
        ctx.set(ready, early and delay == 0)
        for _ in range(TIMEOUT):
            self._probe()
            if ctx.get(valid):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"{valid.name} did not rise in {TIMEOUT} cycles")
        held = tuple(ctx.get(sig) for sig in payload)
        for _ in range(delay):
            await ctx.tick()
            self._probe()
            assert ctx.get(valid), f"{valid.name} fell before {ready.name}"
            assert tuple(ctx.get(sig) for sig in payload) == held, f"{valid.name} payload moved"
            if ready.name == "bus__bready":
                assert not ctx.get(self.bus.awready) and not ctx.get(self.bus.wready), \
                    "a new write was accepted while the write response waits"
            else:
                assert not ctx.get(self.bus.arready), \
                    "a new read was accepted while the read response waits"
        ctx.set(ready, 1)
        await ctx.tick()
        ctx.set(ready, 0)
        assert not ctx.get(valid), f"{valid.name} did not fall after the handshake"
        return held

    async def write(self, addr, data, strb=0xF, *, aw_delay=0, w_delay=0, b_delay=0,
                    b_early=False):
        """Present AW after ``aw_delay`` and W after ``w_delay`` cycles; return ``bresp``."""
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.wdata, data)
        ctx.set(bus.wstrb, strb)
        aw_done = w_done = False
        for cycle in range(TIMEOUT):
            if aw_done and w_done:
                break
            ctx.set(bus.awvalid, not aw_done and cycle >= aw_delay)
            ctx.set(bus.wvalid, not w_done and cycle >= w_delay)
            self._probe()
            aw_fire = ctx.get(bus.awvalid) and ctx.get(bus.awready)
            w_fire = ctx.get(bus.wvalid) and ctx.get(bus.wready)
            await ctx.tick()
            aw_done, w_done = aw_done or aw_fire, w_done or w_fire
        else:
            raise AssertionError(f"write to {addr:#x} not accepted in {TIMEOUT} cycles")
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        bresp, = await self._response(bus.bvalid, bus.bready, [bus.bresp],
                                      delay=b_delay, early=b_early)
        return bresp

    async def read(self, addr, *, ar_delay=0, r_delay=0, r_early=False):
        """Present AR after ``ar_delay`` cycles; return ``(rdata, rresp)``."""
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.araddr, addr)
        for _ in range(ar_delay):
            self._probe()
            await ctx.tick()
        ctx.set(bus.arvalid, 1)
        for _ in range(TIMEOUT):
            self._probe()
            fire = ctx.get(bus.arready)
            await ctx.tick()
            if fire:
                break
        else:
            raise AssertionError(f"read of {addr:#x} not accepted in {TIMEOUT} cycles")
        ctx.set(bus.arvalid, 0)
        return await self._response(bus.rvalid, bus.rready, [bus.rdata, bus.rresp],
                                    delay=r_delay, early=r_early)


def pulse_monitor(dut, log):
    """Background testbench: ``(cycle, name, value)`` for every cycle a w1p port is nonzero."""
    names = [reg.name for reg in dut.registers if reg.access == "w1p"]

    async def monitor(ctx):
        cycle = 0
        async for _clk, _rst, *values in ctx.tick().sample(*(getattr(dut, n) for n in names)):
            cycle += 1
            log.extend((cycle, name, value) for name, value in zip(names, values) if value)

    return monitor


def simulate(dut, *testbenches, pulses=None):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    if pulses is not None:
        sim.add_testbench(pulse_monitor(dut, pulses), background=True)
    sim.run()


def make_dut():
    return RegisterFile(REGISTERS, addr_width=ADDR_WIDTH)


def test_reset_values_and_read_of_every_access_type():
    dut = make_dut()
    pulses = []

    async def testbench(ctx):
        bus = Master(ctx, dut)
        assert ctx.get(dut.m) == 1 and ctx.get(dut.scale) == 0x0001_0000 and ctx.get(dut.shift) == 3
        assert ctx.get(dut.ctrl) == 0 and ctx.get(dut.irq) == 0
        ctx.set(dut.status, 0b10)
        ctx.set(dut.id, 0xC0DE_5EED)
        model = RegisterModel(REGISTERS, ADDR_WIDTH)
        model.inputs.update(status=0b10, id=0xC0DE_5EED)
        for reg in REGISTERS:
            assert await bus.read(reg.offset) == model.read(reg.offset), reg.name

    simulate(dut, testbench, pulses=pulses)
    assert pulses == []


def test_write_then_read_every_register():
    dut = make_dut()
    pulses = []

    async def testbench(ctx):
        bus = Master(ctx, dut)
        for reg in REGISTERS:
            assert await bus.write(reg.offset, 0xFFFF_FFFF) == Resp.OKAY, reg.name
            data, resp = await bus.read(reg.offset)
            assert resp == Resp.OKAY, reg.name
            if reg.access == "rw":
                assert data == (1 << reg.width) - 1 == ctx.get(getattr(dut, reg.name)), reg.name
            else:
                assert data == 0, reg.name  # "r" inputs are 0, "w1p" reads 0
        assert await bus.write(0x04, 0x1234_5678) == Resp.OKAY
        assert ctx.get(dut.m) == 0x5678
        assert await bus.read(0x04) == (0x5678, Resp.OKAY)

    simulate(dut, testbench, pulses=pulses)
    assert [(name, value) for _, name, value in pulses] == [("ctrl", 0b111), ("irq", 0xFF)]


def test_read_only_register_follows_its_input_and_ignores_writes():
    dut = make_dut()

    async def testbench(ctx):
        bus = Master(ctx, dut)
        for value in (0, 1, 2, 3):
            ctx.set(dut.status, value)
            assert await bus.read(0x08) == (value, Resp.OKAY)
        ctx.set(dut.id, 0x8000_0001)
        assert await bus.write(0x14, 0x1234_5678) == Resp.OKAY
        assert await bus.read(0x14) == (0x8000_0001, Resp.OKAY)

    simulate(dut, testbench)


@pytest.mark.parametrize(("aw_delay", "w_delay"), [(0, 0), (0, 3), (3, 0), (1, 2), (5, 1)],
                         ids=["together", "aw-first", "w-first", "aw-1-w-2", "w-4-early"])
def test_write_channel_order(aw_delay, w_delay):
    dut = make_dut()

    async def testbench(ctx):
        bus = Master(ctx, dut)
        assert await bus.write(0x0C, 0xA5A5_0F0F, aw_delay=aw_delay, w_delay=w_delay) == Resp.OKAY
        assert ctx.get(dut.scale) == 0xA5A5_0F0F
        assert await bus.read(0x0C) == (0xA5A5_0F0F, Resp.OKAY)

    simulate(dut, testbench)


@pytest.mark.parametrize("first", ["aw", "w"])
def test_first_channel_is_held_until_the_other_arrives(first):
    dut = make_dut()

    async def testbench(ctx):
        b = dut.bus
        second = "w" if first == "aw" else "aw"
        ctx.set(b.awaddr, 0x10)
        ctx.set(b.wdata, 17)
        ctx.set(b.wstrb, 0xF)
        ctx.set(getattr(b, f"{first}valid"), 1)
        await ctx.tick()
        # Offer a different transfer on the first channel: it must not be accepted while
        # the first one waits for its partner.
        ctx.set(b.awaddr, 0x04)
        ctx.set(b.wdata, 99)
        for _ in range(4):
            assert not ctx.get(getattr(b, f"{first}ready")), f"{first} accepted twice"
            assert ctx.get(getattr(b, f"{second}ready")) and not ctx.get(b.bvalid)
            await ctx.tick()
            assert ctx.get(dut.shift) == 3
        ctx.set(getattr(b, f"{first}valid"), 0)
        ctx.set(b.awaddr if second == "aw" else b.wdata, 0x10 if second == "aw" else 17)
        ctx.set(getattr(b, f"{second}valid"), 1)
        await ctx.tick()
        ctx.set(getattr(b, f"{second}valid"), 0)
        await ctx.tick().until(b.bvalid)
        assert ctx.get(b.bresp) == Resp.OKAY
        assert ctx.get(dut.shift) == 17 and ctx.get(dut.m) == 1

    simulate(dut, testbench)


@pytest.mark.parametrize(("strb", "expected"), [
    (0b0001, 0x1111_11AA), (0b0010, 0x1111_BB11), (0b0100, 0x11CC_1111), (0b1000, 0xDD11_1111),
    (0b0101, 0x11CC_11AA), (0b1110, 0xDDCC_BB11), (0b0000, 0x1111_1111), (0b1111, 0xDDCC_BBAA),
])
def test_wstrb_byte_lanes(strb, expected):
    dut = make_dut()
    pulses = []

    async def testbench(ctx):
        bus = Master(ctx, dut)
        assert await bus.write(0x0C, 0x1111_1111) == Resp.OKAY
        assert await bus.write(0x0D, 0xDDCC_BBAA, strb) == Resp.OKAY  # low address bits ignored
        assert await bus.read(0x0C) == (expected, Resp.OKAY)
        # A 16-bit register keeps the lanes it has; a w1p register pulses only strobed lanes.
        assert await bus.write(0x04, 0xDDCC_BBAA, strb) == Resp.OKAY
        mask = strobe_mask(strb)
        assert await bus.read(0x04) == ((0x0001 & ~mask | 0xDDCC_BBAA & mask) & 0xFFFF, Resp.OKAY)
        assert await bus.write(0x20, 0xFFFF_FFFF, strb) == Resp.OKAY

    simulate(dut, testbench, pulses=pulses)
    assert [(name, value) for _, name, value in pulses] == ([("irq", 0xFF)] if strb & 1 else [])


def test_w1p_pulses_exactly_one_cycle():
    dut = make_dut()
    pulses = []

    async def testbench(ctx):
        bus = Master(ctx, dut)
        assert await bus.write(0x00, 0b101, b_delay=5) == Resp.OKAY
        assert await bus.read(0x00) == (0, Resp.OKAY)
        assert await bus.write(0x00, 0b010) == Resp.OKAY
        assert await bus.write(0x00, 0) == Resp.OKAY
        assert await bus.write(0x20, 0x80) == Resp.OKAY
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.ctrl) == 0 and ctx.get(dut.irq) == 0

    simulate(dut, testbench, pulses=pulses)
    assert [(name, value) for _, name, value in pulses] == [
        ("ctrl", 0b101), ("ctrl", 0b010), ("irq", 0x80)]
    cycles = [cycle for cycle, _, _ in pulses]
    assert all(b - a > 1 for a, b in zip(cycles, cycles[1:])), pulses


def test_back_pressure_holds_responses():
    dut = make_dut()

    async def testbench(ctx):
        bus = Master(ctx, dut)
        # _response checks, every stalled cycle, that valid and payload hold and that the
        # channel does not accept a new transaction meanwhile.
        assert await bus.write(0x04, 0x00AB, b_delay=6) == Resp.OKAY
        assert await bus.write(0x18, 0x00AB, b_delay=6) == Resp.SLVERR
        assert await bus.read(0x04, r_delay=6) == (0x00AB, Resp.OKAY)
        assert await bus.read(0x1C, r_delay=6) == (0, Resp.SLVERR)

    simulate(dut, testbench)


def test_unmapped_addresses_answer_slverr_and_change_nothing():
    dut = make_dut()
    pulses = []

    async def testbench(ctx):
        bus = Master(ctx, dut)
        for addr in UNMAPPED:
            assert await bus.write(addr, 0xFFFF_FFFF) == Resp.SLVERR, hex(addr)
            assert await bus.read(addr) == (0, Resp.SLVERR), hex(addr)
        assert (ctx.get(dut.m), ctx.get(dut.scale), ctx.get(dut.shift)) == (1, 0x0001_0000, 3)

    simulate(dut, testbench, pulses=pulses)
    assert pulses == []


def test_read_and_write_proceed_concurrently():
    dut = make_dut()
    written = list(range(1, 41))
    seen = []

    async def writer(ctx):
        bus = Master(ctx, dut)
        for value in written:
            assert await bus.write(0x0C, value) == Resp.OKAY

    async def reader(ctx):
        bus = Master(ctx, dut)
        while not seen or seen[-1] != written[-1]:
            data, resp = await bus.read(0x0C)
            assert resp == Resp.OKAY
            seen.append(data)

    simulate(dut, writer, reader)
    after = [value for value in seen if value != 0x0001_0000]  # the reset value comes first
    assert seen[:len(seen) - len(after)] == [0x0001_0000] * (len(seen) - len(after))
    assert after == sorted(after) and set(after) <= set(written)
    assert len(set(seen)) > len(written) // 2  # the reads really did interleave the writes


def test_no_combinational_path_from_inputs_to_outputs():
    dut = make_dut()

    async def testbench(ctx):
        bus = Master(ctx, dut, probe=random.Random(SEED))
        assert await bus.write(0x04, 0x55, aw_delay=2, b_delay=2) == Resp.OKAY
        assert await bus.write(0x00, 0x7, w_delay=2, b_early=True) == Resp.OKAY
        assert await bus.read(0x04, ar_delay=1, r_delay=2) == (0x55, Resp.OKAY)
        assert await bus.read(0x18, r_early=True) == (0, Resp.SLVERR)

    simulate(dut, testbench)


def test_random_transactions_against_the_model():
    rng = random.Random(SEED)
    dut = make_dut()
    model = RegisterModel(REGISTERS, ADDR_WIDTH)
    expected_pulses, pulses = [], []
    inputs = [reg for reg in REGISTERS if reg.access == "r"]

    async def testbench(ctx):
        bus = Master(ctx, dut)
        for step in range(300):
            where = f"step {step} (seed {SEED})"
            if rng.random() < 0.1:
                reg = rng.choice(inputs)
                value = rng.getrandbits(reg.width)
                ctx.set(getattr(dut, reg.name), value)
                model.inputs[reg.name] = value
            if rng.random() < 0.8:
                addr = rng.choice(REGISTERS).offset | rng.randrange(4)
            else:
                addr = rng.randrange(1 << ADDR_WIDTH)
            if rng.random() < 0.5:
                data, strb = rng.getrandbits(32), rng.choice([0xF, 0xF, rng.randrange(16)])
                want, fired = model.write(addr, data, strb)
                expected_pulses.extend(fired.items())
                got = await bus.write(addr, data, strb, aw_delay=rng.randrange(4),
                                      w_delay=rng.randrange(4), b_delay=rng.randrange(4),
                                      b_early=rng.random() < 0.5)
                assert got == want, f"{where}: write {data:#x}/{strb:#x} to {addr:#x}: " \
                                    f"bresp expected {want}, got {got}"
            else:
                want = model.read(addr)
                got = await bus.read(addr, ar_delay=rng.randrange(3), r_delay=rng.randrange(4),
                                     r_early=rng.random() < 0.5)
                assert got == want, f"{where}: read of {addr:#x}: expected (data, resp) " \
                                    f"{want}, got {got}"
            for name, value in model.values.items():
                got = ctx.get(getattr(dut, name))
                assert got == value, f"{where}: port {name}: expected {value:#x}, got {got:#x}"

    simulate(dut, testbench, pulses=pulses)
    assert [(name, value) for _, name, value in pulses] == expected_pulses, f"seed {SEED}"
    assert len(expected_pulses) > 10


# ------------------------------------------------------------------------------------------------
# Verilog and the cocotb cross-check


class FlatTop(wiring.Component):
    """Test fixture: a RegisterFile with the flat ``s_axil_*`` port names of an FPGA block
    design, clocked by ``aclk`` and reset by the active-low ``aresetn``."""

    def __init__(self, registers, *, addr_width):
        self._rf = RegisterFile(registers, addr_width=addr_width)
        members = {"aclk": In(1), "aresetn": In(1)}
        # The register file's own view: its "bus" member is In(axil.Signature), so the flows
        # seen through it are the slave's, as are those of the register ports.
        for name, member in self._rf.signature.members["bus"].signature.members.items():
            members[f"s_axil_{name}"] = member
        for name, member in self._rf.signature.members.items():
            if name != "bus":
                members[name] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        m.d.comb += [ClockSignal().eq(self.aclk), ResetSignal().eq(~self.aresetn)]
        m.submodules.regs = rf = self._rf
        ports = [(f"s_axil_{name}", getattr(rf.bus, name), member) for name, member
                 in rf.signature.members["bus"].signature.members.items()]
        ports += [(name, getattr(rf, name), member) for name, member
                  in rf.signature.members.items() if name != "bus"]
        for name, inner, member in ports:
            port = getattr(self, name)
            m.d.comb += inner.eq(port) if member.flow == In else port.eq(inner)
        return m


def flat_verilog():
    return verilog.convert(FlatTop(REGISTERS, addr_width=ADDR_WIDTH), name="axil_regs",
                           emit_src=False)


def test_verilog_has_flat_axi_lite_ports():
    text = flat_verilog()
    top = text[text.index("module axil_regs("):]
    top = top[:top.index("endmodule")]
    ports = re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", top, re.M)
    found = {name: (direction, int(msb or 0) + 1) for direction, msb, name in ports}
    expected = {"aclk": ("input", 1), "aresetn": ("input", 1),
                "s_axil_awaddr": ("input", ADDR_WIDTH), "s_axil_awready": ("output", 1),
                "s_axil_wdata": ("input", 32), "s_axil_wstrb": ("input", 4),
                "s_axil_bresp": ("output", 2), "s_axil_araddr": ("input", ADDR_WIDTH),
                "s_axil_rdata": ("output", 32), "s_axil_rready": ("input", 1),
                "m": ("output", 16), "status": ("input", 2), "ctrl": ("output", 3)}
    for name, want in expected.items():
        assert found.get(name) == want, name
    assert len([name for name in found if name.startswith("s_axil_")]) == 19
    assert set(found) == {"aclk", "aresetn", *(f"s_axil_{n}" for n in
                                              axil.Signature(addr_width=8).members),
                          *(reg.name for reg in REGISTERS)}


def _require(sim):
    require_simulator(sim)


@pytest.mark.sim
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_cocotb_axil_master_cross_check(sim, tmp_path):
    from cocotb_tools.runner import get_runner

    _require(sim)
    src = tmp_path / "axil_regs.v"
    src.write_text(flat_verilog())
    runner = get_runner(sim)
    build_args = ["-Wno-fatal"] if sim == "verilator" else []
    runner.build(sources=[src], hdl_toplevel="axil_regs", build_dir=tmp_path / "build",
                 timescale=("1ns", "1ps"), always=True, build_args=build_args)
    regmap = RegisterFile(REGISTERS, addr_width=ADDR_WIDTH).register_map()
    results = runner.test(hdl_toplevel="axil_regs", test_module="axil_tb",
                          test_dir=HERE / "cocotb", build_dir=tmp_path / "build",
                          timescale=("1ns", "1ps"), results_xml=str(tmp_path / "results.xml"),
                          extra_env={
                              "AXIL_REGMAP": json.dumps(regmap),
                              "AXIL_ADDR_WIDTH": str(ADDR_WIDTH),
                              "AXIL_SEED": str(SEED),
                              "PYTHONPATH": os.pathsep.join(
                                  [str(HERE / "cocotb"), str(HERE.parent),
                                   os.environ.get("PYTHONPATH", "")])})
    text = Path(results).read_text()
    assert text.count("<testcase") >= 4, text
    assert "<failure" not in text and "<error" not in text, text
