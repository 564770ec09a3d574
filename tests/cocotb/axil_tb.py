"""cocotb cross-check of hdl.axil.RegisterFile through cocotbext-axi's AXI4-Lite master.

The DUT is the flat wrapper of ``tests/test_hdl_axil.py`` (``s_axil_*`` ports, ``aclk``,
active-low ``aresetn``, one port per register). The register map arrives as JSON in
``AXIL_REGMAP`` (``RegisterFile.register_map()``), the address width in ``AXIL_ADDR_WIDTH``
and the seed in ``AXIL_SEED``.
"""

import itertools
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

REGMAP = json.loads(os.environ["AXIL_REGMAP"])
ADDR_WIDTH = int(os.environ["AXIL_ADDR_WIDTH"])
SEED = int(os.environ.get("AXIL_SEED", "1"))


class Model:
    """The register file, one access at a time: ``write(addr, data, strb)``, ``read(addr)``."""

    def __init__(self, regmap):
        self.by_word = {reg["offset"] >> 2: reg for reg in regmap}
        self.values = {reg["name"]: reg["reset"] for reg in regmap if reg["access"] == "rw"}
        self.inputs = {reg["name"]: 0 for reg in regmap if reg["access"] == "r"}

    def write(self, addr, data, strb):
        """``(resp, {w1p name: pulse})``."""
        reg = self.by_word.get(addr >> 2)
        if reg is None:
            return AxiResp.SLVERR, {}
        lanes = sum(0xFF << (8 * lane) for lane in range(4) if strb >> lane & 1)
        mask = lanes & ((1 << reg["width"]) - 1)
        if reg["access"] == "rw":
            name = reg["name"]
            self.values[name] = (self.values[name] & ~mask) | (data & mask)
        elif reg["access"] == "w1p" and data & mask:
            return AxiResp.OKAY, {reg["name"]: data & mask}
        return AxiResp.OKAY, {}

    def read(self, addr):
        """``(data, resp)``."""
        reg = self.by_word.get(addr >> 2)
        if reg is None:
            return 0, AxiResp.SLVERR
        if reg["access"] == "rw":
            return self.values[reg["name"]], AxiResp.OKAY
        if reg["access"] == "r":
            return self.inputs[reg["name"]], AxiResp.OKAY
        return 0, AxiResp.OKAY


class TB:
    """Clock, reset, the AXI4-Lite master, a monitor of the pulse ports and the model."""

    def __init__(self, dut, *, seed=SEED):
        self.dut = dut
        self.seed = seed
        self.rng = random.Random(seed)
        self.model = Model(REGMAP)
        self.pulses = []  # (cycle, name, value) for every cycle a w1p port is nonzero
        self.cycle = 0
        self.clock = None
        # Reset and inputs are driven before the clock starts. On Icarus (4-state), a first
        # edge with aresetn still X loads X into the flops; cocotbext-axi 0.1.28 tests the
        # sampled handshake signals with bool(), and cocotb 2.x raises ValueError on bool() of
        # an X Logic ("Cannot convert Logic('X') to bool").
        for name in self.model.inputs:
            getattr(dut, name).value = 0
        dut.aresetn.value = 0
        dut.aclk.value = 0
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)

    def set_idle_generator(self, generator=None):
        """Pause the master's AW, W and AR channels (``generator()`` per channel)."""
        if generator is not None:
            self.axil.write_if.aw_channel.set_pause_generator(generator())
            self.axil.write_if.w_channel.set_pause_generator(generator())
            self.axil.read_if.ar_channel.set_pause_generator(generator())

    def set_backpressure_generator(self, generator=None):
        """Hold ``bready`` and ``rready`` low (``generator()`` per channel)."""
        if generator is not None:
            self.axil.write_if.b_channel.set_pause_generator(generator())
            self.axil.read_if.r_channel.set_pause_generator(generator())

    async def _watch_pulses(self):
        names = [reg["name"] for reg in REGMAP if reg["access"] == "w1p"]
        while True:
            await RisingEdge(self.dut.aclk)
            await ReadOnly()
            self.cycle += 1
            for name in names:
                value = int(getattr(self.dut, name).value)
                if value:
                    self.pulses.append((self.cycle, name, value))

    async def reset(self):
        """Start the clock (first call), hold ``aresetn`` low 3 cycles, start the pulse monitor."""
        self.dut.aresetn.value = 0
        if self.clock is None:
            await Timer(1, unit="ns")
            self.clock = Clock(self.dut.aclk, 10, unit="ns")
            self.clock.start()
            cocotb.start_soon(self._watch_pulses())
        await ClockCycles(self.dut.aclk, 3)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)

    def set_input(self, name, value):
        getattr(self.dut, name).value = value
        self.model.inputs[name] = value

    async def write(self, addr, data, strb=0xF):
        """Write the strobed bytes of ``data`` (a 32-bit word) at word ``addr``; check bresp,
        the stored ports and the pulses against the model."""
        first = (strb & -strb).bit_length() - 1
        last = strb.bit_length()
        if strb == 0 or strb != (1 << last) - (1 << first):
            raise ValueError(f"cocotbext-axi writes contiguous byte ranges, not wstrb {strb:#x}")
        payload = data.to_bytes(4, "little")[first:last]
        want, fired = self.model.write(addr, data, strb)
        before = len(self.pulses)
        resp = await self.axil.write(addr + first, payload)
        where = f"write {payload.hex()} at {addr + first:#x} (seed {self.seed})"
        assert resp.resp == want, f"{where}: expected {want!r}, got {resp.resp!r}"
        await ClockCycles(self.dut.aclk, 2)
        await ReadOnly()
        got = [(name, value) for _, name, value in self.pulses[before:]]
        assert got == list(fired.items()), f"{where}: pulses expected {fired}, got {got}"
        for name, value in self.model.values.items():
            port = int(getattr(self.dut, name).value)
            assert port == value, f"{where}: port {name}: expected {value:#x}, got {port:#x}"
        await RisingEdge(self.dut.aclk)

    async def read(self, addr):
        """Read the word at ``addr``; check data and rresp against the model."""
        want = self.model.read(addr)
        resp = await self.axil.read(addr, 4)
        got = (int.from_bytes(resp.data, "little"), resp.resp)
        assert got == want, f"read of {addr:#x} (seed {self.seed}): expected {want}, got {got}"
        return got


def cycle_pause():
    return itertools.cycle([1, 1, 1, 0])


_STREAMS = itertools.count()


def random_pause():
    rng = random.Random(SEED * 1000 + next(_STREAMS))  # a different stream per channel
    return iter(lambda: rng.random() < 0.4, None)


@cocotb.test()
@cocotb.parametrize(idle=[None, cycle_pause, random_pause],
                    backpressure=[None, cycle_pause, random_pause])
async def every_register_writes_and_reads_back(dut, idle, backpressure):
    tb = TB(dut)
    tb.set_idle_generator(idle)
    tb.set_backpressure_generator(backpressure)
    await tb.reset()
    for reg in REGMAP:  # reset values first
        await tb.read(reg["offset"])
    for reg in REGMAP:
        if reg["access"] == "r":
            tb.set_input(reg["name"], tb.rng.getrandbits(reg["width"]))
        await tb.write(reg["offset"], tb.rng.getrandbits(32))
        data, resp = await tb.read(reg["offset"])
        assert resp == AxiResp.OKAY
        if reg["access"] == "w1p":
            assert data == 0
    for reg in REGMAP:  # all ones, then all zeros
        await tb.write(reg["offset"], 0xFFFF_FFFF)
        await tb.read(reg["offset"])
        await tb.write(reg["offset"], 0)
        await tb.read(reg["offset"])


@cocotb.test()
async def partial_writes_honour_wstrb(dut):
    tb = TB(dut)
    await tb.reset()
    wide = next(reg["offset"] for reg in REGMAP if reg["access"] == "rw" and reg["width"] == 32)
    for strb in (0b0001, 0b0010, 0b0100, 0b1000, 0b0011, 0b0110, 0b1100, 0b1110, 0b0111):
        await tb.write(wide, 0x1111_1111)
        await tb.write(wide, 0xDDCC_BBAA, strb)
        await tb.read(wide)
    # Byte writes through the master's own helpers, and a byte read at an odd address.
    await tb.axil.write_byte(wide + 2, 0x5A)
    tb.model.write(wide, 0x5A << 16, 0b0100)
    await tb.read(wide)
    assert await tb.axil.read_byte(wide + 2) == 0x5A
    pulse = next(reg for reg in REGMAP if reg["access"] == "w1p" and reg["width"] > 1)
    await tb.write(pulse["offset"], 0xFFFF_FFFF, 0b0010)  # no implemented bit strobed: no pulse
    await tb.write(pulse["offset"], 0xFFFF_FFFF, 0b0001)


@cocotb.test()
async def unmapped_addresses_answer_slverr(dut):
    tb = TB(dut)
    await tb.reset()
    mapped = {reg["offset"] for reg in REGMAP}
    holes = [addr for addr in range(0, 1 << ADDR_WIDTH, 4) if addr not in mapped]
    for addr in holes[:3] + holes[-2:]:
        await tb.write(addr, 0xFFFF_FFFF)
        assert await tb.read(addr) == (0, AxiResp.SLVERR)
    for reg in REGMAP:  # nothing changed
        await tb.read(reg["offset"])


@cocotb.test()
async def random_transactions_against_the_model(dut):
    tb = TB(dut)
    tb.set_idle_generator(random_pause)
    tb.set_backpressure_generator(random_pause)
    await tb.reset()
    inputs = [reg for reg in REGMAP if reg["access"] == "r"]
    for _ in range(150):
        if tb.rng.random() < 0.1:
            reg = tb.rng.choice(inputs)
            tb.set_input(reg["name"], tb.rng.getrandbits(reg["width"]))
        if tb.rng.random() < 0.85:
            addr = tb.rng.choice(REGMAP)["offset"]
        else:
            addr = tb.rng.randrange(0, 1 << ADDR_WIDTH, 4)
        if tb.rng.random() < 0.5:
            first = tb.rng.randrange(4)
            last = tb.rng.randrange(first, 4) if tb.rng.random() < 0.3 else 3
            strb = sum(1 << i for i in range(first, last + 1))
            await tb.write(addr, tb.rng.getrandbits(32), strb)
        else:
            await tb.read(addr)
    cycles = [cycle for cycle, _, _ in tb.pulses]
    assert all(b - a > 1 for a, b in zip(cycles, cycles[1:])), "a pulse lasted more than a cycle"
