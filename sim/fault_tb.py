"""cocotb tests of fault reporting and recovery, through the AXI ports only.

Each test sends a layer with one fault injected into its streams (on each input stream: a
packet short or long, a misplaced ``tlast``, a packet past the layer's last; a missing weight
tile or parameter packet; ABORT in the middle; registers START refuses), then checks, as a
driver would:

- STATUS once the accelerator is idle again: exactly the error bits of that fault, no DONE,
  ``irq`` high (errors raise it by default);
- the drain: every word of the faulty layer was taken (the sources are idle);
- the output packet: what came out before the abort is a prefix of the layer's expected
  results, closed by one zero word with ``tlast``;
- the recovery: the next, well-formed layer is bit-exact (TB scoreboard and golden model),
  and its STATUS is DONE only, without a reset in between.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from hdl.top import STATUS
from sim.layers import make_layer
from sim.tb import REG, TB, Mismatch

SEED = int(os.environ.get("SPARSEMAC_SEED", "1"))
#: The watchdog of these tests: far above any gap of a well-formed layer under the stalls.
WATCHDOG = 3000
#: The longest any wait of these tests may take (the watchdog, a drain, a whole layer).
WAIT_CYCLES = 40_000
#: STATUS bit masks by name.
BIT = {name: 1 << i for i, name in enumerate(STATUS)}


def _status_names(value):
    return [name for name, bit in BIT.items() if value & bit] or ["none"]


class FaultTB(TB):
    """:class:`sim.tb.TB` with the verbs of a faulty layer: STATUS, the wait for idle, the
    checks after an abort."""

    async def status(self):
        return await self.axil.read_dword(REG["status"])

    async def wait_idle(self, label, cycles=None):
        """Poll STATUS until BUSY falls (within ``cycles``, :data:`WAIT_CYCLES` by default);
        return it."""
        cycles = WAIT_CYCLES if cycles is None else cycles
        t0 = self.now_cycles()
        while True:
            status = await self.status()
            if not status & BIT["busy"]:
                return status
            if self.now_cycles() - t0 > cycles:
                raise Mismatch(f"{label}: still busy after {cycles} cycles, STATUS "
                               f"{status:#x} ({', '.join(_status_names(status))})")

    def forget_inputs(self):
        """Drop what the input monitors saw (the faulty layer's words)."""
        for mon in self.mon.values():
            while not mon.empty():
                mon.recv_nowait()

    async def faulty_layer(self, packets, streams, label, *, expect, abort_after=None):
        """Run a layer with ``streams`` (edited), wait until idle, and check STATUS against
        the names ``expect``, the drain and the closed output packet. ``abort_after``: write
        ABORT once that many output words went out."""
        await self.configure(packets.layer)
        await self.start()
        self.send_words(streams)
        if abort_after is not None:
            taken, t0 = 0, self.now_cycles()
            while taken < abort_after:
                await RisingEdge(self.dut.aclk)
                taken += int(self.dut.m_axis_out_tvalid.value) & int(
                    self.dut.m_axis_out_tready.value)
                if self.now_cycles() - t0 > WAIT_CYCLES:
                    raise Mismatch(f"{label}: {taken} of {abort_after} output words within "
                                   f"{WAIT_CYCLES} cycles: nothing to abort")
            await self.axil.write_dword(REG["ctrl"], 2)
        status = await self.wait_idle(label)
        want = sum(BIT[name] for name in expect)
        if status != want:
            raise Mismatch(f"{label}: STATUS {status:#x} ({', '.join(_status_names(status))})"
                           f", expected {want:#x} ({', '.join(expect) or 'none'})")
        assert int(self.dut.irq.value) == (1 if expect else 0), f"{label}: irq"
        for name, src in self.src.items():
            assert src.empty() and src.idle(), f"{label}: {name} words left after the drain"
        self.forget_inputs()
        return await self.check_closed_output(packets, label)

    async def check_closed_output(self, packets, label):
        """No output, or a prefix of the expected words and one zero word with tlast.
        Returns the number of words before the closing one (``None``: no output)."""
        if self.sink.empty():
            return None
        frame = self.sink.recv_nowait()
        data = bytes(frame.tdata)
        got = [int.from_bytes(data[i:i + self.out_bytes], "little")
               for i in range(0, len(data), self.out_bytes)]
        want, _ = self.model.expected(packets.layer, packets.act, packets.wgt, packets.qp)
        assert got[-1] == 0, f"{label}: the closing word is {got[-1]:#x}, not 0"
        assert len(got) - 1 < len(want), f"{label}: {len(got)} words in an aborted packet"
        assert got[:-1] == want[:len(got) - 1], f"{label}: the words before the abort differ"
        assert self.sink.empty(), f"{label}: more than one output packet"
        return len(got) - 1

    async def good_layer(self, rng, shape, label):
        """A well-formed layer: bit-exact, and STATUS DONE only."""
        p, want = make_layer(self.config, rng, *shape[:3], sparse=shape[3])
        await self.run_layer(p, want, label, SEED)
        status = await self.status()
        assert status == BIT["done"], f"{label}: STATUS {status:#x}, expected DONE only"


def _shape(cfg):
    """Two m-blocks, two K tiles, two N tiles (N:M on a sparse array)."""
    k_tile = cfg.k_tile_sparse if cfg.sparse else cfg.k_tile_dense
    return (cfg.acc_depth + 3, 2 * k_tile, 2 * cfg.cols, cfg.sparse)


def _first_end(words):
    """Index of the first packet's last word."""
    return next(i for i, (_, last) in enumerate(words) if last)


def _faults(cfg, rng):
    """``(name, edit, expected STATUS names)`` for every input stream and kind of framing
    fault, and the missing packets the watchdog finds; each edit changes the streams in
    place (the first packet of a stream is a pass of ``act``, a tile of ``wgt``, a parameter
    packet of ``qp``)."""
    word = lambda: int(rng.integers(0, 256))          # noqa: E731 (fits every stream)

    def short(name):                       # its last word dropped, tlast one word early
        def edit(s):
            end = _first_end(s[name])
            del s[name][end]
            s[name][end - 1] = (s[name][end - 1][0], True)
        return edit

    def long(name):                        # one word more before its tlast
        def edit(s):
            s[name].insert(_first_end(s[name]), (word(), False))
        return edit

    def misplaced(name):                   # tlast on its first word instead of its last
        def edit(s):
            end = _first_end(s[name])
            s[name][0] = (s[name][0][0], True)
            s[name][end] = (s[name][end][0], False)
        return edit

    def extra_packet(name):                # a well-framed packet past the layer's last
        def edit(s):
            length = _first_end(s[name]) + 1
            s[name] += [(word(), i == length - 1) for i in range(length)]
        return edit

    def missing_last(name, length):        # the layer's last packet never comes
        def edit(s):
            del s[name][-length:]
        return edit

    faults = []
    for name in ("act", "wgt", "qp"):
        expect = ["error", f"{name}_error"]
        faults += [(f"a short {name} packet", short(name), expect),
                   (f"a long {name} packet", long(name), expect),
                   (f"a misplaced {name} tlast", misplaced(name), expect),
                   (f"an extra {name} packet", extra_packet(name), expect)]
    faults += [("a missing wgt tile", missing_last("wgt", cfg.rows), ["error", "watchdog"]),
               ("a missing qp packet", missing_last("qp", cfg.cols), ["error", "watchdog"])]
    return faults


async def _setup(dut, seed):
    tb = FaultTB(dut)
    await tb.start_clock()
    await tb.reset()
    tb.set_stalls("random", "random", seed)
    await tb.axil.write_dword(REG["watchdog"], WATCHDOG)
    return tb, np.random.default_rng(seed)


@cocotb.test()
async def each_stream_fault_is_reported_and_recovered(dut):
    """Every framing fault on every input stream (short, long, misplaced tlast, an extra
    packet) and missing packets (the watchdog): the error bit, irq, the drain, the closed
    output packet, then a well-formed layer bit-exact without a reset."""
    tb, rng = await _setup(dut, SEED + 11)
    shape = _shape(tb.config)
    for name, edit, expect in _faults(tb.config, rng):
        p, _ = make_layer(tb.config, rng, *shape[:3], sparse=shape[3])
        streams = tb.streams(p)
        edit(streams)
        words = await tb.faulty_layer(p, streams, name, expect=expect)
        dut._log.info("%s: STATUS %s; %s; recovered", name, ", ".join(expect),
                      "no output" if words is None else
                      f"the output packet closed after {words} words")
        await tb.good_layer(rng, shape, f"the layer after {name}")
    await tb.finish()


@cocotb.test()
async def abort_in_the_middle_of_a_layer(dut):
    """ABORT once results are coming out: no error bit, no DONE, irq low; the output packet
    closed after a correct prefix; the rest of the inputs drained; the next layer bit-exact."""
    tb, rng = await _setup(dut, SEED + 12)
    shape = _shape(tb.config)
    p, _ = make_layer(tb.config, rng, *shape[:3], sparse=shape[3])
    words = await tb.faulty_layer(p, tb.streams(p), "ABORT", expect=[], abort_after=3)
    assert words is not None and words >= 3, f"ABORT: output packet closed after {words}"
    await tb.good_layer(rng, shape, "the layer after ABORT")
    await tb.finish()


@cocotb.test()
async def refused_start_and_irq_enable(dut):
    """A START with M_BLOCK above acc_depth is refused (CONFIG_ERROR, irq); with the error
    interrupt disabled irq stays low; the next START clears it and the layer is bit-exact.
    An idle ABORT only drains."""
    tb, rng = await _setup(dut, SEED + 13)
    cfg = tb.config
    shape = _shape(cfg)
    p, _ = make_layer(cfg, rng, *shape[:3], sparse=shape[3])
    await tb.configure({**p.layer, "m_block": cfg.acc_depth + 1})
    await tb.start()
    status = await tb.wait_idle("refused START")
    assert status == BIT["config_error"] | BIT["error"], f"STATUS {status:#x}"
    await ClockCycles(dut.aclk, 2)
    assert int(dut.irq.value) == 1
    await tb.axil.write_dword(REG["irq_enable"], 0b01)
    await ClockCycles(dut.aclk, 2)
    assert int(dut.irq.value) == 0, "irq with the error interrupt disabled"
    await tb.axil.write_dword(REG["irq_enable"], 0b11)
    await tb.axil.write_dword(REG["ctrl"], 2)               # ABORT while idle
    assert await tb.status() & BIT["draining"], "ABORT did not drain"
    status = await tb.wait_idle("idle ABORT")
    assert status == BIT["config_error"] | BIT["error"], f"STATUS {status:#x} after ABORT"
    await tb.good_layer(rng, shape, "the layer after a refused START")
    assert int(dut.irq.value) == 1, "irq on DONE"
    await tb.finish()
