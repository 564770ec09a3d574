# amaranth: UnusedElaboratable=no
"""hdl.guard.Guard alone in the Amaranth simulator: pass-through, stream errors, the drain,
the watchdog, the closing word of an aborted output packet, ABORT and START."""

import random

import pytest
from amaranth.sim import Simulator

from hdl.config import Config
from hdl.guard import DRAIN_QUIET, Errors, Guard

pytestmark = pytest.mark.filterwarnings("error")

CFG = Config(rows=2, cols=2, n=2, m=4, acc_depth=16)
INPUTS = ("act", "wgt", "qp")
NO_ERRORS = {name: 0 for name, _ in Errors}


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def ports(dut, name):
    """``(into the guard, out of the guard)`` of a stream."""
    if name == "out":
        return dut.out_i, dut.out
    return getattr(dut, name), getattr(dut, f"{name}_o")


def errors(ctx, dut):
    return {name: ctx.get(getattr(dut.errors, name)) for name in NO_ERRORS}


def out_side(ctx, dut):
    """``(out.valid, out_i.ready, out's data as an int, out's last)``."""
    return (ctx.get(dut.out.valid), ctx.get(dut.out_i.ready),
            ctx.get(dut.out.payload.data.as_value()), ctx.get(dut.out.payload.last))


async def pulse(ctx, signal, value=1):
    ctx.set(signal, value)
    await ctx.tick()
    ctx.set(signal, 0)


async def ticks_until(ctx, cond, limit=4 * DRAIN_QUIET):
    """Clock edges until ``cond()`` holds (0 if it already does)."""
    n = 0
    while not cond():
        assert n < limit, "condition never reached"
        await ctx.tick()
        n += 1
    return n


def test_passes_streams_through_without_latency():
    """Payload, valid and ready of act, wgt, qp and out pass in the same cycle both ways;
    latency is 0; reset, draining and errors stay 0."""
    dut = Guard(CFG)
    assert dut.latency == 0
    rng = random.Random(1)

    async def bench(ctx):
        ctx.set(dut.busy, 1)
        for cycle in range(8):
            for name in (*INPUTS, "out"):
                i, o = ports(dut, name)
                word = rng.getrandbits(len(i.payload.as_value()))
                valid, ready = cycle & 1, (cycle >> 1) & 1
                ctx.set(i.payload.as_value(), word)
                ctx.set(i.valid, valid)
                ctx.set(o.ready, ready)
                assert ctx.get(o.payload.as_value()) == word, name
                assert (ctx.get(o.valid), ctx.get(i.ready)) == (valid, ready), name
            assert (ctx.get(dut.reset), ctx.get(dut.draining)) == (0, 0)
            assert errors(ctx, dut) == NO_ERRORS
            await ctx.tick()

    simulate(dut, bench)


@pytest.mark.parametrize("name", INPUTS)
def test_stream_error_while_busy_resets_and_drains(name):
    """A stream error pulse while busy sets exactly its error bit; reset is high the next
    cycle for one cycle, draining rises with it, and while draining the inputs are taken and
    not passed on. While not busy the same pulse does nothing."""
    dut = Guard(CFG)

    async def bench(ctx):
        await pulse(ctx, dut.stream_error, {name: 1})            # busy low: ignored
        for _ in range(4):
            assert (ctx.get(dut.reset), ctx.get(dut.draining)) == (0, 0)
            assert errors(ctx, dut) == NO_ERRORS
            await ctx.tick()
        ctx.set(dut.busy, 1)
        ctx.set(dut.stream_error, {name: 1})
        assert (ctx.get(dut.reset), ctx.get(dut.draining)) == (0, 0)
        await ctx.tick()
        ctx.set(dut.stream_error, {name: 0})
        for i in INPUTS:                                         # offered, engine not ready
            ctx.set(getattr(dut, i).valid, 1)
        for cycle in range(5):
            assert ctx.get(dut.reset) == (cycle == 0)
            assert ctx.get(dut.draining) == 1
            assert errors(ctx, dut) == {**NO_ERRORS, name: 1}
            for i in INPUTS:
                assert ctx.get(getattr(dut, i).ready) == 1, i
                assert ctx.get(getattr(dut, f"{i}_o").valid) == 0, i
            await ctx.tick()

    simulate(dut, bench)


def test_drain_ends_drain_quiet_cycles_after_the_last_valid_input():
    """The drain lasts until no input has been valid for DRAIN_QUIET cycles in a row: a valid
    input (or ABORT) restarts the count, and draining falls exactly DRAIN_QUIET edges after
    it."""
    dut = Guard(CFG)

    async def bench(ctx):
        await pulse(ctx, dut.abort)
        assert ctx.get(dut.draining) == 1
        ctx.set(dut.act.valid, 1)
        for _ in range(6):
            await ctx.tick()
            assert ctx.get(dut.draining) == 1
        ctx.set(dut.act.valid, 0)
        await ctx.tick().repeat(100)                             # part of the quiet count
        await pulse(ctx, dut.qp.valid)                           # restarts it
        assert await ticks_until(ctx, lambda: not ctx.get(dut.draining)) == DRAIN_QUIET
        await pulse(ctx, dut.abort)                              # a second drain ...
        await ctx.tick().repeat(100)
        await pulse(ctx, dut.abort)                              # ... restarted by ABORT
        assert await ticks_until(ctx, lambda: not ctx.get(dut.draining)) == DRAIN_QUIET

    simulate(dut, bench)


def test_watchdog_fires_after_its_limit_without_transfers():
    """With only offers (valid without ready, ready without valid): watchdog 0 never fires
    (1000 busy cycles), nor does busy low (1000 cycles, and it clears the count); busy high
    with watchdog 5 raises the watchdog bit and reset on exactly the 6th clock edge (the 5th
    idle cycle ends on the 5th; the guard acts on it a cycle later)."""
    dut = Guard(CFG)

    async def bench(ctx):
        ctx.set(dut.act.valid, 1)
        ctx.set(dut.out.ready, 1)
        for busy, watchdog in [(1, 0), (0, 5)]:
            ctx.set(dut.busy, busy)
            ctx.set(dut.watchdog, watchdog)
            for _ in range(1000):
                await ctx.tick()
                assert (ctx.get(dut.reset), ctx.get(dut.draining)) == (0, 0)
        assert errors(ctx, dut) == NO_ERRORS
        ctx.set(dut.busy, 1)
        assert await ticks_until(ctx, lambda: ctx.get(dut.reset)) == 6
        assert errors(ctx, dut) == {**NO_ERRORS, "watchdog": 1}
        assert ctx.get(dut.draining) == 1

    simulate(dut, bench)


def test_watchdog_matches_its_count_on_random_traffic():
    """Random busy cycles, transfers and limits (0 to 7, changed now and then): ``reset``
    rises exactly when a reference count says the watchdog expired: ``left`` reloaded with
    ``watchdog - 1`` (modulo 2^32) while idle, on a transfer, on a reset or while the limit
    read a cycle before was 0, else counted down to 0; expiry when busy, without a transfer,
    armed, at ``left == 0``, the counter seeing busy and the transfers a cycle late (so
    ``reset`` rises two cycles after the last idle cycle, whatever the cycle between
    brings)."""
    rng = random.Random(7)
    dut = Guard(CFG)
    seen = {"expired": 0, "cycles": 0}

    async def bench(ctx):
        left, armed, fired, idle = 0, False, False, False
        watchdog = 3
        ctx.set(dut.out.ready, 1)
        for _ in range(4000):
            if rng.random() < 0.01:
                watchdog = rng.choice([0, 1, 2, 3, 4, 7])
            busy = rng.random() < 0.9
            ctx.set(dut.watchdog, watchdog)
            ctx.set(dut.busy, busy)
            for name in INPUTS:
                i, o = ports(dut, name)
                ctx.set(i.valid, rng.random() < 0.1)
                ctx.set(o.ready, rng.random() < 0.5)
            ctx.set(dut.out_i.valid, rng.random() < 0.05)
            progress = any(ctx.get(o.valid) and ctx.get(o.ready)
                           for _, o in (ports(dut, name) for name in (*INPUTS, "out")))
            reset = ctx.get(dut.reset)
            assert reset == fired, seen
            expired = idle and armed and left == 0
            if not idle or reset or not armed:
                left = (watchdog - 1) % 2 ** 32
            elif left:
                left -= 1
            armed, fired, idle = watchdog != 0, expired, busy and not progress
            seen["expired"] += expired
            seen["cycles"] += 1
            await ctx.tick()

    simulate(dut, bench)
    assert seen["expired"] > 50, seen


@pytest.mark.parametrize("name", (*INPUTS, "out"))
def test_transfer_restarts_the_watchdog(name):
    """A transfer on any stream (into ``*_o`` or out of ``out``) restarts the count."""
    dut = Guard(CFG)
    i, o = ports(dut, name)

    async def bench(ctx):
        ctx.set(dut.watchdog, 5)
        ctx.set(dut.busy, 1)
        await ctx.tick().repeat(4)                               # one short of firing
        ctx.set(i.valid, 1)
        ctx.set(o.ready, 1)
        await ctx.tick()
        ctx.set(i.valid, 0)
        assert await ticks_until(ctx, lambda: ctx.get(dut.reset)) == 6
        assert errors(ctx, dut) == {**NO_ERRORS, "watchdog": 1}

    simulate(dut, bench)


def test_abort_closes_an_open_output_packet():
    """Two out words with last=0, then ABORT: out presents one word of zeros with last=1 from
    the next cycle, out_i is not ready meanwhile, and draining holds until the word is taken
    (long after the input drain); then the engine's words pass again."""
    dut = Guard(CFG)

    async def bench(ctx):
        ctx.set(dut.busy, 1)
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.out_i.valid, 1)
        for k in (1, 2):
            ctx.set(dut.out_i.payload, {"data": [k, -k], "last": 0})
            assert (ctx.get(dut.out.valid), ctx.get(dut.out_i.ready)) == (1, 1)
            await ctx.tick()
        ctx.set(dut.out.ready, 0)                                # the engine offers more
        ctx.set(dut.out_i.payload, {"data": [3, -3], "last": 0})
        await pulse(ctx, dut.abort)
        for _ in range(DRAIN_QUIET + 50):
            assert (out_side(ctx, dut), ctx.get(dut.draining)) == ((1, 0, 0, 1), 1)
            await ctx.tick()
        ctx.set(dut.out.ready, 1)                                # the closing word goes
        assert out_side(ctx, dut) == (1, 0, 0, 1)
        await ctx.tick()
        assert ctx.get(dut.draining) == 0                        # then the engine's word
        assert out_side(ctx, dut) == (1, 1, 0xFD03, 0)
        ctx.set(dut.out_i.valid, 0)
        for _ in range(5):
            await ctx.tick()
            assert (ctx.get(dut.draining), ctx.get(dut.out.valid)) == (0, 0)

    simulate(dut, bench)


@pytest.mark.parametrize("words, together", [([], 0), ([0, 1], 0), ([0, 0, 1], 1)],
                         ids=["none", "ended", "ended_with_abort"])
def test_abort_without_an_open_output_packet_adds_no_word(words, together):
    """No word out, or a packet that ended with last=1 (before ABORT or in its cycle): ABORT
    drains for DRAIN_QUIET cycles and out presents nothing (the engine's words held back)."""
    dut = Guard(CFG)

    async def bench(ctx):
        ctx.set(dut.busy, 1)
        ctx.set(dut.out.ready, 1)
        for k, last in enumerate(words):
            ctx.set(dut.out_i.valid, 1)
            ctx.set(dut.out_i.payload, {"data": [5, 6], "last": last})
            if not (together and k == len(words) - 1):
                await ctx.tick()
                ctx.set(dut.out_i.valid, 0)
        await pulse(ctx, dut.abort)
        ctx.set(dut.out_i.valid, 1)                              # offered during the drain
        ctx.set(dut.out_i.payload, {"data": [7, 8], "last": 0})
        for _ in range(DRAIN_QUIET):
            assert (ctx.get(dut.draining), *out_side(ctx, dut)[:2]) == (1, 0, 0)
            await ctx.tick()
        assert ctx.get(dut.draining) == 0

    simulate(dut, bench)


def test_abort_sets_no_error_and_start_clears_errors():
    """ABORT alone resets for one cycle and drains with no error bit; an error bit stays set
    past the drain until START clears it; a refused START sets only ``config``."""
    dut = Guard(CFG)

    async def bench(ctx):
        ctx.set(dut.busy, 1)
        await pulse(ctx, dut.abort)
        assert (ctx.get(dut.reset), ctx.get(dut.draining)) == (1, 1)
        assert errors(ctx, dut) == NO_ERRORS
        await ctx.tick()
        assert (ctx.get(dut.reset), ctx.get(dut.draining)) == (0, 1)
        await ctx.tick().repeat(2 * DRAIN_QUIET)
        await pulse(ctx, dut.stream_error, {"wgt": 1})
        ctx.set(dut.busy, 0)
        await ctx.tick().repeat(2 * DRAIN_QUIET)
        assert (ctx.get(dut.draining), errors(ctx, dut)) == (0, {**NO_ERRORS, "wgt": 1})
        await pulse(ctx, dut.start)
        assert errors(ctx, dut) == NO_ERRORS
        ctx.set(dut.refused, 1)                                  # a refused START: config
        await pulse(ctx, dut.start)
        assert errors(ctx, dut) == {**NO_ERRORS, "config": 1}

    simulate(dut, bench)
