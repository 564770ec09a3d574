"""The bulk testbench: whole layers played by the simulator, Python woken a few times a layer.

:class:`BulkTB` drives the player wrapper of :mod:`sim.player` (build it with
:mod:`sim.bulk_runner`). Per layer it writes the three input streams to files, sets the word
counts, pulses ``load`` (the simulator reads the files in one go), configures the layer
through cocotbext-axi's AXI4-Lite master, starts it, raises ``run`` and waits for ``done``
with one trigger (and a timeout that names the stream that stalled). The capture comes back as
one file; the scoreboard is :class:`sim.tb.TB`'s: :class:`sim.model.EngineModel` computes the
expected words from the words that were sent (all of them, as the counters confirm) and the
registers written, the output is compared in order (``tdata`` and ``tlast``) and its unpacked
result against the golden model's.
"""

import os
import time
from pathlib import Path

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from hdl.layout import word_bits
from hdl.top import tdata_width
from host.packing import unpack_output
from sim import player
from sim.model import EngineModel
from sim.tb import (
    CLOCK_NS,
    STALLS,
    TB,
    TIMEOUT_FACTOR,
    TIMEOUT_SLACK,
    LayerRegisters,
    Mismatch,
    Timeout,
    compare_words,
    config_from_env,
)

__all__ = ["BulkTB", "STALL_SETTINGS", "Timeout", "testbench"]

#: What each of :data:`sim.tb.STALLS` means on the player: ``(mode, period, probability/256)``.
#: As in :func:`sim.tb.stall_generator`: one idle cycle in 4, or about 30 % idle cycles.
STALL_SETTINGS = {"none": ("none", 0, 0), "periodic": ("periodic", 4, 0),
                  "random": ("random", 0, 77)}


def testbench(dut):
    """``(driver, testbench)`` for ``dut``: ``("bulk", BulkTB)`` on a player build,
    ``("axi", sim.tb.TB)`` on the accelerator alone."""
    if hasattr(dut, "load"):
        return "bulk", BulkTB(dut)
    return "axi", TB(dut)


def _idle_fraction(kind):
    mode, period, prob = STALL_SETTINGS[kind]
    return {"none": 0.0, "periodic": 1 / max(period, 1), "random": prob / 256}[mode]


class BulkTB(LayerRegisters):
    """Clock, reset, AXI4-Lite master and scoreboard of a player build.

    Parameters
    ----------
    dut : cocotb handle of ``sparsemac_player``
    config : hdl.config.Config, optional
        Defaults to the one in ``SPARSEMAC_CONFIG``.
    depths : dict, optional
        The player's memory depths (defaults to ``SPARSEMAC_BULK_DEPTHS``).
    folder : path, optional
        Where the stream files go: the simulator's working folder (the default), where the
        wrapper's ``$fread`` looks for them.
    fast : bool, optional
        The wrapper has its own clock (built with ``clock_ns``): while a layer streams, the
        cocotb clock stops and the wrapper's runs, so no edge calls into the simulator's
        VPI. Defaults to ``SPARSEMAC_BULK_CLOCK == "fast"``.

    Members
    -------
    checked : int
        Output values compared so far.
    timeout_factor : float
        A layer times out after ``timeout_factor`` times the cycles all its words would take
        one at a time at the stall rates set, plus 20 000 cycles.
    last : dict
        Counters of the last layer: ``first_cycle``, ``last_cycle``, ``sim_cycles`` (cycles
        from ``run`` to ``done``), ``wall`` (seconds per phase).
    """

    def __init__(self, dut, config=None, *, depths=None, folder=None, fast=None):
        from sim.bulk_runner import environ_depths  # noqa: PLC0415 (avoids an import cycle)

        self.dut = dut
        self.config = config or config_from_env()
        self.model = EngineModel(self.config)
        self.depths = player.check_depths(depths) if depths else environ_depths()
        self.folder = Path(folder or os.getcwd())
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        bits = word_bits(self.config)
        self.width = {name: tdata_width(bits[name]) for name in player.STREAMS}
        self.out_width = tdata_width(bits["out"])
        self.checked = 0
        self.timeout_factor = TIMEOUT_FACTOR
        self.regs = {}
        self.last = {}
        self._stalls = ("none", "none", 1)
        self.fast = fast if fast is not None else (
            os.environ.get("SPARSEMAC_BULK_CLOCK", "cocotb") == "fast")
        self._clock = None
        self._layers = 0
        self._expect_out = None
        self._after_reset = 0
        self._set_mode("idle", "none")
        self._set_mode("bp", "none")
        dut.seed.value = 1
        dut.load.value = 0
        dut.run.value = 0
        for name in (*player.STREAMS, "out"):
            getattr(dut, f"{name}_words").value = 0

    # -- the same verbs as sim.tb.TB ------------------------------------------------------

    async def start_clock(self):
        """Start cocotb's clock on ``aclk`` (the testbench's; a ``fast`` build runs its own
        only while a layer streams)."""
        # Drive reset and the clock low before the first edge: Icarus starts at X.
        self.dut.aresetn.value = 0
        self.dut.aclk.value = 0
        if self.fast:
            self.dut.fast.value = 0
        await Timer(1, unit="ns")
        self._clock = Clock(self.dut.aclk, CLOCK_NS, unit="ns")
        self._clock.start()

    async def reset(self, cycles=5):
        """Reset the wrapper and the accelerator (between layers)."""
        self.dut.aresetn.value = 0
        self.dut.run.value = 0
        await ClockCycles(self.dut.aclk, cycles)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)
        self._expect_out = None
        self._after_reset = int(self.dut.out_count.value)

    def _set_mode(self, side, kind):
        if kind not in STALLS:
            raise ValueError(f"stall must be one of {', '.join(STALLS)}, not {kind!r}")
        mode, period, prob = STALL_SETTINGS[kind]
        getattr(self.dut, f"{side}_mode").value = player.MODES[mode]
        getattr(self.dut, f"{side}_period").value = period
        getattr(self.dut, f"{side}_prob").value = prob

    def set_stalls(self, idle, backpressure, seed):
        """Idle cycles on every input stream and backpressure on the output, each one of
        :data:`sim.tb.STALLS`; ``seed`` moves the random ones (each layer reseeds the
        generators from it and the layer's number)."""
        self._set_mode("idle", idle)
        self._set_mode("bp", backpressure)
        self._stalls = (idle, backpressure, int(seed))

    # -- the bulk path -------------------------------------------------------------------

    def _counts(self, packets):
        counts = {name: len(getattr(packets, name)) for name in player.STREAMS}
        counts["out"] = packets.plan.n_tiles * packets.plan.m
        for name, count in counts.items():
            if count > self.depths[name]:
                raise ValueError(f"the layer has {count} {name} words but the player's "
                                 f"{name} memory holds {self.depths[name]}: build with "
                                 f"depths={{'{name}': {1 << (count - 1).bit_length()}}} "
                                 "or more")
        return counts

    def write_streams(self, packets):
        """Write the layer's input words to the player's files: per word, ``tlast`` above
        ``tdata``, big-endian in :func:`sim.player.word_bytes` bytes (``$fread``'s order)."""
        for name in player.STREAMS:
            width = self.width[name]
            n = player.word_bytes(width)
            words = getattr(packets, name)
            lasts = getattr(packets, f"{name}_last")
            data = b"".join(((int(bool(t)) << width) | int(w)).to_bytes(n, "big")
                            for w, t in zip(words, lasts))
            (self.folder / player.FILES[name]).write_bytes(data)

    def read_capture(self, count):
        """The ``count`` captured output words and their ``tlast`` flags."""
        path = self.folder / player.FILES["out"]
        words, lasts = [], []
        mask = (1 << self.out_width) - 1
        for line in path.read_text().split("\n"):
            line = line.strip()
            if not line or line.startswith(("//", "@")):
                continue
            try:
                v = int(line, 16)
            except ValueError:
                raise Mismatch(f"output word {len(words)} has unknown bits: {line}") from None
            words.append(v & mask)
            lasts.append(bool(v >> self.out_width))
        if len(words) != count:
            raise Mismatch(f"the capture file holds {len(words)} words, expected {count}")
        return words, lasts

    async def load(self, packets, counts):
        """Write the files, set the counts and the seed (``seed`` of :meth:`set_stalls` mixed
        with the number of layers played so far); one ``load`` edge reads the files in."""
        dut = self.dut
        self.write_streams(packets)
        _, _, seed = self._stalls
        dut.seed.value = (seed * 0x9E3779B1 + self._layers) & 0xFFFFFFFF
        for name, count in counts.items():
            getattr(dut, f"{name}_words").value = count
        dut.load.value = 1
        await RisingEdge(dut.aclk)
        dut.load.value = 0
        await RisingEdge(dut.aclk)           # the files are read at the edge before this one
        bad = int(dut.load_error.value)
        if bad:
            names = [s for i, s in enumerate(player.STREAMS) if bad >> i & 1]
            raise ValueError(f"the player could not read {', '.join(names)} from "
                             f"{self.folder} (missing or short file)")

    def _timeout_cycles(self, counts):
        idle, bp, _ = self._stalls
        rate = (1 - _idle_fraction(idle)) * (1 - _idle_fraction(bp))
        return int(self.timeout_factor * sum(counts.values()) / rate) + TIMEOUT_SLACK

    def _stalled(self, counts, label, seed, limit):
        """A :class:`Timeout` naming, per stream, where it stopped and its handshake."""
        dut = self.dut
        parts = []
        for name in player.STREAMS:
            sent = int(getattr(dut, f"{name}_sent").value)
            valid = getattr(dut, f"{name}_valid").value
            ready = getattr(dut, f"{name}_ready").value
            if sent < counts[name]:
                parts.append(f"{name} stream stalled at word {sent} of {counts[name]} "
                             f"(tvalid={valid}, tready={ready})")
            elif str(ready) == "1":
                parts.append(f"{name}: all {counts[name]} words sent, tready=1")
        got = int(dut.out_count.value)
        if got < counts["out"]:
            parts.append(f"output stream stalled at word {got} of {counts['out']}")
        what = "; ".join(parts) or "every stream completed but done did not rise"
        return Timeout(f"{label}: no completion within {limit} cycles: {what} (seed {seed})")

    async def play(self, packets, label, seed):
        """Load, configure, start and run one layer to completion; returns ``(word counts
        per stream, cycles)``. :meth:`run_layer` then checks the capture."""
        dut = self.dut
        counts = self._counts(packets)
        if self._expect_out is not None and int(dut.out_count.value) != self._expect_out:
            raise Mismatch(f"{label}: {int(dut.out_count.value) - self._expect_out} output "
                           "words arrived after the previous layer had completed "
                           f"(seed {seed})")
        wall = {}
        t0 = time.perf_counter()
        await self.load(packets, counts)
        t1 = time.perf_counter()
        await self.configure(packets.layer)
        await self.start()
        dut.run.value = 1
        await RisingEdge(dut.aclk)
        c0 = int(dut.cycle.value)
        t2, k2 = time.perf_counter(), time.process_time()
        limit = self._timeout_cycles(counts)
        done = RisingEdge(dut.done)
        if self.fast:
            # Hand the design over to the wrapper's clock while aclk is low; done stops it
            # right after a rising edge, and aclk restarts low.
            await FallingEdge(dut.aclk)
            self._clock.stop()
            dut.fast.value = 1
        fired = await First(done, Timer(limit * CLOCK_NS, unit="ns"))
        if self.fast:
            dut.fast.value = 0
            self._clock.start(start_high=False)
        t3, k3 = time.perf_counter(), time.process_time()
        dut.run.value = 0
        if fired is not done:
            raise self._stalled(counts, label, seed, limit)
        self._layers += 1
        sent = {name: int(getattr(dut, f"{name}_sent").value) for name in player.STREAMS}
        for name in player.STREAMS:
            if sent[name] != counts[name]:
                raise Mismatch(f"{label}: the layer completed with {sent[name]} of "
                               f"{counts[name]} {name} words taken (seed {seed})")
        got_out = int(dut.out_count.value)
        if got_out != counts["out"]:
            raise Mismatch(f"{label}: {got_out} output words captured, expected "
                           f"{counts['out']} (seed {seed})")
        self._expect_out = got_out
        first, last = int(dut.first_cycle.value), int(dut.last_cycle.value)
        wall.update(load=t1 - t0, configure=t2 - t1, simulate=t3 - t2, simulate_cpu=k3 - k2)
        self.last = {"first_cycle": first, "last_cycle": last, "wall": wall,
                     "sim_cycles": int(dut.cycle.value) - c0}
        return counts, last - first + 1

    def check(self, packets, words, lasts, label, seed):
        """Compare the captured words with the model's, computed from the words sent."""
        regs = self.regs
        want, want_lasts = self.model.expected(regs, packets.act, packets.wgt, packets.qp)
        compare_words(self.config, regs, want, words, label, seed)
        if lasts != want_lasts:
            i = next(i for i, (a, b) in enumerate(zip(want_lasts, lasts)) if a != b)
            raise Mismatch(f"{label}: tlast of output word {i} is {int(lasts[i])}, expected "
                           f"{int(want_lasts[i])} (seed {seed})")
        self.checked += len(want) * self.config.cols

    async def reset_during(self, packets, after):
        """Start ``packets``' layer and reset it part-way (as :meth:`sim.tb.TB.reset_during`):
        ``after="inputs"``, 300 cycles after the start; ``"outputs"``, once the first result
        has been captured (or 4000 cycles). The aclk of cocotb's clock runs throughout."""
        dut = self.dut
        counts = self._counts(packets)
        await self.load(packets, counts)
        await self.configure(packets.layer)
        await self.start()
        dut.run.value = 1
        c0 = int(dut.cycle.value)
        for _ in range(4000):
            await RisingEdge(dut.aclk)
            if after == "outputs" and int(dut.out_count.value) > 0:
                break
            if after == "inputs" and int(dut.cycle.value) - c0 > 300:
                break
        await self.reset()

    def outputs_pending(self):
        """Whether an output word arrived since the last reset or layer."""
        seen = int(self.dut.out_count.value)
        return seen != (self._after_reset if self._expect_out is None else self._expect_out)

    async def finish(self, cycles=200):
        """The end of a test: ``cycles`` more, then no output word may have arrived after the
        last layer's."""
        await ClockCycles(self.dut.aclk, cycles)
        if self.outputs_pending():
            raise Mismatch("output words arrived after the test's last layer")

    async def run_layer(self, packets, want, label, seed):
        """Play one layer, check it against the model (in order) and its unpacked result
        against ``want`` (the golden model's); returns ``(cycles, output words)``.

        ``cycles`` runs from the first input transfer to the last output transfer, both
        included, as :meth:`sim.tb.TB.run_layer` counts them.
        """
        counts, cycles = await self.play(packets, label, seed)
        t0 = time.perf_counter()
        words, lasts = self.read_capture(counts["out"])
        self.check(packets, words, lasts, label, seed)
        got = unpack_output(packets.plan, words)
        if not np.array_equal(got, want):
            i = tuple(int(v) for v in np.argwhere(got != want)[0])
            raise Mismatch(f"{label}: model and golden_model disagree at {i}: golden "
                           f"{want[i]}, RTL and model {got[i]} (seed {seed})")
        self.last["wall"]["check"] = time.perf_counter() - t0
        return cycles, words
