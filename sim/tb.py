"""The cocotb testbench of the generated accelerator: drivers, monitors and a scoreboard.

``TB`` owns the clock, the reset, cocotbext-axi drivers (three AXI4-Stream sources, an
AXI4-Lite master), monitors on every input stream and the output sink. The scoreboard is fed
from the input monitors: :class:`sim.model.EngineModel` turns the words actually transferred
into the DUT (and the registers written) into expected results, which an in-order checker
compares with the output, naming the first mismatch.
"""

import itertools
import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, Timer, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamMonitor,
    AxiStreamSink,
    AxiStreamSource,
)

from hdl.config import Config
from hdl.top import REGISTERS
from host.packing import unpack_output
from sim.model import EngineModel, decode_out

__all__ = ["TB", "Mismatch", "stall_generator", "STALLS", "CLOCK_NS", "REG"]

REG = {r.name: r.offset for r in REGISTERS}
CLOCK_NS = 10
STALLS = ("none", "periodic", "random")


def stall_generator(kind, seed):
    """Pause generator for cocotbext-axi: ``None``, 1 cycle in 4, or seeded 30 % random."""
    if kind == "none":
        return None
    if kind == "periodic":
        return itertools.cycle([0, 0, 0, 1])
    if kind == "random":
        rng = random.Random(seed)
        return (rng.random() < 0.3 for _ in itertools.count())
    raise ValueError(f"stall must be one of {', '.join(STALLS)}, not {kind!r}")


def config_from_env():
    return Config(**json.loads(os.environ["SPARSEMAC_CONFIG"]))


class Mismatch(AssertionError):
    pass


class Timeout(Mismatch):
    """A layer did not complete; the message names the streams that stalled."""


#: A layer times out after this many times the cycles its words take (at the stalls' rates),
#: plus :data:`TIMEOUT_SLACK` cycles for the pipeline and the register writes.
TIMEOUT_FACTOR = 4.0
TIMEOUT_SLACK = 20_000


#: The fraction of cycles :func:`stall_generator` holds a stream, per mode.
_IDLE = {None: 0.0, "none": 0.0, "periodic": 0.25, "random": 0.3}


def stall_rate(idle, backpressure):
    """The fraction of cycles a stream moves under the ``idle`` and ``backpressure`` modes
    of :func:`stall_generator`."""
    return (1 - _IDLE[idle]) * (1 - _IDLE[backpressure])


def compare_words(config, regs, want, got, label, seed):
    """Raise :class:`Mismatch` naming the first output word of ``got`` that differs from
    ``want`` (its n-tile, row and column, expected and got), or a difference in length."""
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            wv, gv = decode_out(config, w), decode_out(config, g)
            c = int(np.argmax(wv != gv))
            raise Mismatch(f"{label}: first mismatch at output word {i} (n-tile "
                           f"{i // regs['m_rows']}, row {i % regs['m_rows']}), column {c}:"
                           f" expected {int(wv[c])}, got {int(gv[c])} (seed {seed})")
    if len(got) != len(want):
        raise Mismatch(f"{label}: expected {len(want)} output words, got {len(got)} "
                       f"(seed {seed})")


class LayerRegisters:
    """The AXI4-Lite verbs both testbenches share (:class:`TB` and
    :class:`sim.bulk.BulkTB`): a layer's registers, and START. Needs ``self.axil`` (an
    AxiLiteMaster) and ``self.regs`` (what was written, for the scoreboard)."""

    async def configure(self, layer):
        for name in ("m_rows", "m_block", "k_tiles", "n_tiles", "in_zp", "out_zp",
                     "act_min", "act_max"):
            await self.axil.write_dword(REG[name], layer[name] & 0xFFFFFFFF)
            self.regs[name] = layer[name]

    async def start(self):
        await self.axil.write_dword(REG["ctrl"], 1)


class TB(LayerRegisters):
    def __init__(self, dut, config=None):
        self.dut = dut
        self.config = config or config_from_env()
        self.model = EngineModel(self.config)
        clk, rst = dut.aclk, dut.aresetn
        kw = {"reset_active_level": False}
        self.src = {name: AxiStreamSource(AxiStreamBus.from_prefix(dut, f"s_axis_{name}"), clk,
                                          rst, **kw) for name in ("act", "wgt", "qp")}
        self.mon = {name: AxiStreamMonitor(AxiStreamBus.from_prefix(dut, f"s_axis_{name}"),
                                           clk, rst, **kw) for name in ("act", "wgt", "qp")}
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_out"), clk, rst, **kw)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), clk, rst, **kw)
        self.width = {name: len(getattr(dut, f"s_axis_{name}_tdata")) // 8
                      for name in ("act", "wgt", "qp")}
        self.out_bytes = len(dut.m_axis_out_tdata) // 8
        self.checked = 0                  # output values compared so far
        self.regs = {}
        self._stalls = (None, None)       # the idle and backpressure modes (set_stalls)
        self.timeout_factor = TIMEOUT_FACTOR
        self._progress = {}               # input words seen so far in the current layer

    def set_stalls(self, idle, backpressure, seed):
        self._stalls = (idle, backpressure)
        for i, src in enumerate(self.src.values()):
            src.set_pause_generator(stall_generator(idle, seed + i))
        self.sink.set_pause_generator(stall_generator(backpressure, seed + 7))

    async def start_clock(self):
        # Drive reset and the clock low before the first edge: Icarus starts at X.
        self.dut.aresetn.value = 0
        self.dut.aclk.value = 0
        await Timer(1, unit="ns")
        Clock(self.dut.aclk, CLOCK_NS, unit="ns").start()

    async def reset(self, cycles=5):
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, cycles)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)
        for mon in self.mon.values():       # nothing seen before the reset counts
            while not mon.empty():
                mon.recv_nowait()
        while not self.sink.empty():
            self.sink.recv_nowait()

    def send(self, packets):
        """Queue every input frame of a layer (one per pass, tile and parameter packet)."""
        self.send_words(self.streams(packets))

    @staticmethod
    def streams(packets):
        """``{stream: [(word, last), ...]}`` of a layer's packets (to send, or to edit)."""
        return {name: list(zip(getattr(packets, name), getattr(packets, f"{name}_last")))
                for name in ("act", "wgt", "qp")}

    def send_words(self, streams):
        """Queue each stream's words, a frame ending at every ``last`` (and at the end)."""
        for name, words in streams.items():
            frame, width = bytearray(), self.width[name]
            for i, (word, last) in enumerate(words):
                frame += int(word).to_bytes(width, "little")
                if last or i == len(words) - 1:
                    self.src[name].send_nowait(AxiStreamFrame(bytes(frame)))
                    frame = bytearray()

    async def _monitored_words(self, name, count):
        words, first = [], None
        width = self.width[name]
        self._progress[name] = 0
        while len(words) < count:
            frame = await self.mon[name].recv()
            first = frame.sim_time_start if first is None else first
            data = bytes(frame.tdata)
            words += [int.from_bytes(data[i:i + width], "little")
                      for i in range(0, len(data), width)]
            self._progress[name] = len(words)
        return words, first

    def _stalled(self, counts, label, seed, limit):
        """A :class:`Timeout` naming, per input stream, the word it stopped at and its
        handshake, or the output frame that never ended."""
        dut = self.dut
        parts = []
        for name, count in counts.items():
            got = self._progress.get(name, 0)
            valid = getattr(dut, f"s_axis_{name}_tvalid").value
            ready = getattr(dut, f"s_axis_{name}_tready").value
            if got < count:
                parts.append(f"{name} stream stalled at word {got} of {count} "
                             f"(tvalid={valid}, tready={ready})")
        if not parts:
            parts.append("every input word was taken but the output frame did not end "
                         f"(tvalid={dut.m_axis_out_tvalid.value}, "
                         f"tready={dut.m_axis_out_tready.value})")
        return Timeout(f"{label}: no completion within {limit} cycles: {'; '.join(parts)} "
                       f"(seed {seed})")

    async def _within(self, coro, deadline, counts, label, seed, limit):
        """``await coro`` until the simulated time ``deadline`` (ns), else :meth:`_stalled`."""
        left = max(round(deadline - get_sim_time("ns")), CLOCK_NS)   # whole ns: exact steps
        try:
            return await with_timeout(coro, left, "ns")
        except SimTimeoutError:
            raise self._stalled(counts, label, seed, limit) from None

    async def check_layer(self, label, seed):
        """Expected results from the monitored inputs; the output frame compared in order.

        Returns ``(cycles from the first input transfer to the last output transfer, words)``.
        """
        regs = self.regs
        blocks = -(-regs["m_rows"] // regs["m_block"])
        counts = {"act": regs["n_tiles"] * regs["k_tiles"] * regs["m_rows"],
                  "wgt": regs["n_tiles"] * blocks * regs["k_tiles"] * self.config.rows,
                  "qp": regs["n_tiles"] * blocks * self.config.cols}
        limit = int(self.timeout_factor * (sum(counts.values()) + regs["n_tiles"] * regs["m_rows"])
                    / stall_rate(*self._stalls)) + TIMEOUT_SLACK
        deadline = get_sim_time("ns") + limit * CLOCK_NS
        # The three input streams are monitored at once, so that a stall report gives each
        # one's progress.
        tasks = {name: cocotb.start_soon(self._monitored_words(name, count))
                 for name, count in counts.items()}
        seen, starts = {}, []
        try:
            for name, task in tasks.items():
                seen[name], t0 = await self._within(task, deadline, counts, label, seed, limit)
                starts.append(t0)
        finally:
            for task in tasks.values():
                if not task.done():
                    task.cancel()
        want, _ = self.model.expected(regs, seen["act"], seen["wgt"], seen["qp"])
        frame = await self._within(self.sink.recv(), deadline, counts, label, seed, limit)
        data = bytes(frame.tdata)
        got = [int.from_bytes(data[i:i + self.out_bytes], "little")
               for i in range(0, len(data), self.out_bytes)]
        compare_words(self.config, regs, want, got, label, seed)
        self.checked += len(want) * self.config.cols
        cycles = round((frame.sim_time_end - min(starts)) / (CLOCK_NS * 1000)) + 1
        return cycles, got

    async def run_layer(self, packets, want, label, seed):
        """Configure, start and stream one layer, check it against the model (in order) and
        its unpacked result against ``want`` (the golden model's); returns
        ``(cycles, output words)``."""
        await self.configure(packets.layer)
        await self.start()
        self.send(packets)
        cycles, words = await self.check_layer(label, seed)
        got = unpack_output(packets.plan, words)
        if not np.array_equal(got, want):
            i = tuple(int(v) for v in np.argwhere(got != want)[0])
            raise Mismatch(f"{label}: model and golden_model disagree at {i}: golden "
                           f"{want[i]}, RTL and model {got[i]} (seed {seed})")
        return cycles, words

    async def reset_during(self, packets, after):
        """Start ``packets``' layer and reset it part-way: ``after="inputs"``, 300 cycles
        after the start; ``"outputs"``, once the first result has been transferred (or 4000
        cycles). Whatever was still queued is dropped."""
        await self.configure(packets.layer)
        await self.start()
        self.send(packets)
        t0 = self.now_cycles()
        for _ in range(4000):
            await RisingEdge(self.dut.aclk)
            if after == "outputs" and int(self.dut.m_axis_out_tvalid.value) and int(
                    self.dut.m_axis_out_tready.value):
                break
            if after == "inputs" and self.now_cycles() - t0 > 300:
                break
        for src in self.src.values():
            src.clear()
        await self.reset()

    def outputs_pending(self):
        """Whether an output word arrived that no layer check has taken."""
        return not self.sink.empty()

    async def finish(self, cycles=200):
        """The end of a test: ``cycles`` more, then no output frame may be left unchecked."""
        await ClockCycles(self.dut.aclk, cycles)
        if self.outputs_pending():
            raise Mismatch(f"{self.sink.count()} output frame(s) arrived after the test's last "
                           "layer")

    def now_cycles(self):
        return get_sim_time("ns") / CLOCK_NS
