# amaranth: UnusedElaboratable=no
"""The engine's blocks alone in the Amaranth simulator: loop counters, loader bank states and
framing, credits of the output FIFO, the delay line, the zero-point stage, the parameter banks
and the accumulator's forwarding."""

import random

import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from hdl.accumulator import Accumulator
from hdl.config import Config
from hdl.delay import Delay
from hdl.layout import LayerConfig, qp_layout, qparam_layout, wgt_layout
from hdl.loader import TIMER_WIDTH, BankState, Loader
from hdl.loop import Constants, Nest
from hdl.output import Output
from hdl.parambank import ParamBank
from hdl.zeropoint import ZeroPoint

pytestmark = pytest.mark.filterwarnings("error")

CFG = Config(rows=2, cols=3, n=2, m=4, acc_depth=16)


def simulate(top, bench):
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


class with_constants(Elaboratable):
    """``block`` (with ``start``, ``start_consts``, ``consts``) and the layer constants it
    needs, decoded a cycle ahead from ``layer`` and registered on ``start``, as the engine
    does; ``start``, ``step`` and the block's other members are reached through it."""

    def __init__(self, block):
        self.block = block
        self.layer = Signal(LayerConfig)

    def __getattr__(self, name):
        return getattr(self.block, name)

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = block = self.block
        start_consts = Signal(Constants)
        consts = Signal(Constants)
        m.d.sync += start_consts.load(self.layer)
        with m.If(block.start):
            m.d.sync += consts.eq(start_consts)
        m.d.comb += [block.start_consts.eq(start_consts), block.consts.eq(consts)]
        return m


def layer(m_rows, m_block, k_tiles=1, n_tiles=1):
    return LayerConfig.const({"m_rows": m_rows, "m_block": m_block, "k_tiles": k_tiles,
                              "n_tiles": n_tiles})


async def start(ctx, dut, geometry):
    """Start ``geometry`` on ``dut`` (a :class:`with_constants`): the layer a cycle before
    ``start``, as the engine requires."""
    ctx.set(dut.layer, layer(*geometry))
    await ctx.tick()
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)


# -- loop.Nest -------------------------------------------------------------------------------

def expected_passes(m_rows, m_block, k_tiles, n_tiles, per_pass):
    """``(first_kt, last_kt, block rows, last)`` of every step of the layer loop."""
    blocks = [min(m_block, m_rows - b) for b in range(0, m_rows, m_block)]
    kts = range(k_tiles) if per_pass else [0]
    steps = [(kt == 0, kt == kts[-1], rows) for _ in range(n_tiles) for rows in blocks
             for kt in kts]
    return [(*s, i == len(steps) - 1) for i, s in enumerate(steps)]


@pytest.mark.parametrize("spaced, hold", [(False, 2), (False, 0), (True, 1), (True, 3)])
@pytest.mark.parametrize("per_pass", [True, False])
@pytest.mark.parametrize("geometry", [(1, 1, 1, 1), (5, 2, 3, 2), (4, 2, 1, 1), (7, 7, 2, 3),
                                      (9, 4, 1, 2), (3, 1, 2, 1), (2, 1, 1, 2), (6, 5, 2, 1),
                                      (11, 3, 1, 2), (10, 2, 1, 1)])
def test_nest_walks_the_layer_loop(geometry, per_pass, spaced, hold):
    """Every step's flags and block length, the counters held ``hold`` cycles between steps
    and after ``start`` (0: a step every cycle, as one-row m-blocks do; ``spaced`` steps are
    at least two cycles apart); before each step, ``next_len_m1`` and ``next_len_zero`` name
    the block length the step loads, and ``next_first_kt``, ``next_last_kt`` and
    ``next_last`` the flags it loads."""
    dut = with_constants(Nest(per_pass=per_pass, spaced=spaced))
    want = expected_passes(*geometry, per_pass)
    # After the layer's last step the loop starts over (the first block of the next N tile).
    lengths = [rows for _, _, rows, _ in want] + [want[0][2]]

    async def bench(ctx):
        await start(ctx, dut, geometry)
        for i, step in enumerate(want):
            for _ in range(hold + 1):           # the counters hold until the next step
                got = (ctx.get(dut.first_kt), ctx.get(dut.last_kt),
                       ctx.get(dut.block_len_m1) + 1, ctx.get(dut.last))
                assert got == step, f"step {i} of {geometry}: expected {step}, got {got}"
                nxt = ctx.get(dut.next_len_m1)
                assert (nxt + 1, ctx.get(dut.next_len_zero)) == (lengths[i + 1], nxt == 0), i
                if i + 1 < len(want):
                    flags = (ctx.get(dut.next_first_kt), ctx.get(dut.next_last_kt),
                             ctx.get(dut.next_last))
                    assert flags == (*want[i + 1][:2], want[i + 1][3]), i
                if _ < hold:
                    await ctx.tick()
            ctx.set(dut.step, 1)
            await ctx.tick()
            ctx.set(dut.step, 0)

    simulate(dut, bench)


def test_nest_rejects_a_non_bool():
    with pytest.raises(TypeError, match=r"per_pass must be a bool, not 1"):
        Nest(per_pass=1)
    with pytest.raises(TypeError, match=r"spaced must be a bool, not 'yes'"):
        Nest(per_pass=True, spaced="yes")


# -- loader.Loader ---------------------------------------------------------------------------

def qp_loader(load_to_use=0, drain=5, beats=3):
    return Loader(qp_layout(), beats=beats, per_pass=False, load_to_use=load_to_use,
                  drain=drain)


async def send(ctx, dut, lasts, *, data=0):
    """Transfers one beat per ``last`` flag on ``dut.i`` (waiting for ready); returns the
    cycle count spent and the ``w`` port and ``framing_error`` seen at each transfer."""
    seen = []
    for last in lasts:
        ctx.set(dut.i.payload, {"data": {"bias": data, "multiplier": 0, "shift": 0},
                                "last": last})
        ctx.set(dut.i.valid, 1)
        while not ctx.get(dut.i.ready):
            await ctx.tick()
        seen.append((ctx.get(dut.w.valid), ctx.get(dut.w.bank), ctx.get(dut.w.index),
                     ctx.get(dut.framing_error)))
        await ctx.tick()
    ctx.set(dut.i.valid, 0)
    return seen


def states(ctx, dut):
    return [ctx.get(dut.state[b]) for b in range(2)]


@pytest.mark.parametrize("load_to_use", [0, 1, 2, 5])
def test_loader_bank_cycle(load_to_use):
    """FREE -> LOADING -> LOADED -> (usable after load_to_use) -> INUSE -> DRAINING -> FREE
    after drain, banks in turn; a beat past the layer's last packet is taken and discarded
    (``overrun``) while the layer runs, and none is taken while idle."""
    drain = 4
    dut = with_constants(qp_loader(load_to_use, drain))
    F, LOADING, LOADED, INUSE, DRAINING = (BankState.FREE, BankState.LOADING, BankState.LOADED,
                                            BankState.INUSE, BankState.DRAINING)

    async def bench(ctx):
        assert not ctx.get(dut.i.ready), "ready before a layer runs"
        ctx.set(dut.busy, 1)
        await start(ctx, dut, (3, 1))                    # 3 blocks: 3 packets
        assert ctx.get(dut.i.ready) and states(ctx, dut) == [F, F]
        seen = await send(ctx, dut, [0])
        assert seen == [(1, 0, 0, 0)] and states(ctx, dut) == [LOADING, F]
        seen = await send(ctx, dut, [0, 1])
        assert seen == [(1, 0, 1, 0), (1, 0, 2, 0)] and states(ctx, dut) == [LOADED, F]
        # usable: load_to_use cycles after the cycle that follows the last transfer
        for _ in range(load_to_use):
            assert not ctx.get(dut.banks.usable)
            await ctx.tick()
        assert ctx.get(dut.banks.usable) and ctx.get(dut.banks.bank) == 0
        seen = await send(ctx, dut, [0, 0, 1])           # the next packet: bank 1
        assert [s[1] for s in seen] == [1, 1, 1] and states(ctx, dut) == [LOADED, LOADED]
        assert not ctx.get(dut.i.ready), "no FREE bank"
        ctx.set(dut.banks.take, 1)
        await ctx.tick()
        ctx.set(dut.banks.take, 0)
        assert states(ctx, dut) == [INUSE, LOADED] and not ctx.get(dut.banks.usable)
        ctx.set(dut.banks.release, 1)
        await ctx.tick()
        ctx.set(dut.banks.release, 0)
        assert states(ctx, dut) == [DRAINING, LOADED] and ctx.get(dut.banks.bank) == 1
        ctx.set(dut.i.valid, 1)
        for cycle in range(drain + 1):
            assert states(ctx, dut)[0] == DRAINING and not ctx.get(dut.i.ready), cycle
            await ctx.tick()
        assert states(ctx, dut)[0] == F and ctx.get(dut.i.ready)
        await send(ctx, dut, [0, 0, 1])                   # the layer's last packet
        assert states(ctx, dut) == [LOADED, LOADED]
        ctx.set(dut.banks.take, 1)
        ctx.set(dut.banks.release, 1)                     # a one-beat pass
        await ctx.tick()
        ctx.set(dut.banks.take, 0)
        ctx.set(dut.banks.release, 0)
        assert states(ctx, dut) == [LOADED, DRAINING]
        ctx.set(dut.i.valid, 1)
        for _ in range(drain + 4):                        # past the last packet: discarded
            assert ctx.get(dut.i.ready) and ctx.get(dut.overrun)
            assert not ctx.get(dut.w.valid) and not ctx.get(dut.framing_error)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        assert states(ctx, dut) == [LOADED, F] and not ctx.get(dut.overrun)
        ctx.set(dut.busy, 0)
        ctx.set(dut.i.valid, 1)
        assert not ctx.get(dut.i.ready) and not ctx.get(dut.overrun), "taken while idle"
        ctx.set(dut.busy, 1)
        await start(ctx, dut, (1, 1))                     # a new layer: all FREE
        assert states(ctx, dut) == [F, F] and ctx.get(dut.banks.bank) == 0

    simulate(dut, bench)


@pytest.mark.parametrize("beats", [1, 2, 3])
def test_loader_ends_the_layer_on_back_to_back_packets(beats):
    """Two packets sent without a gap into the two free banks (the second's last beat as
    early as the packet length allows): the loader counts both, takes nothing more as data
    (every later beat is an overrun) and finishes with both banks LOADED, whatever the
    packet length (the loop steps a cycle after a packet when packets have two beats or
    more, in the same cycle with one)."""
    dut = with_constants(qp_loader(beats=beats))

    async def bench(ctx):
        ctx.set(dut.busy, 1)
        await start(ctx, dut, (2, 1))                    # 2 blocks: 2 packets
        seen = await send(ctx, dut, [0] * (beats - 1) + [1] + [0] * (beats - 1) + [1])
        assert [s[:3] for s in seen] == [(1, b, i) for b in range(2) for i in range(beats)]
        assert states(ctx, dut) == [BankState.LOADED, BankState.LOADED]
        ctx.set(dut.i.valid, 1)
        for _ in range(3):
            assert ctx.get(dut.i.ready) and ctx.get(dut.overrun) and not ctx.get(dut.w.valid)
            await ctx.tick()

    simulate(dut, bench)


def test_loader_flags_framing_errors_and_uses_the_data_as_counted():
    dut = with_constants(qp_loader(beats=3))

    async def bench(ctx):
        ctx.set(dut.busy, 1)
        await start(ctx, dut, (2, 1))
        seen = await send(ctx, dut, [0, 1, 0])           # last one beat early, then missing
        assert [s[3] for s in seen] == [0, 1, 1]
        assert states(ctx, dut)[0] == BankState.LOADED
        seen = await send(ctx, dut, [0, 0, 1])
        assert [s[3] for s in seen] == [0, 0, 0] and [s[1] for s in seen] == [1, 1, 1]
        assert not ctx.get(dut.framing_error)

    simulate(dut, bench)


def test_loader_writes_the_payload_fields():
    dut = Loader(wgt_layout(CFG), beats=CFG.rows, per_pass=True, load_to_use=2, drain=3)
    assert list(dut.w.shape().members) == ["valid", "bank", "index", "w", "idx"]
    dut = with_constants(qp_loader())

    async def bench(ctx):
        ctx.set(dut.busy, 1)
        await start(ctx, dut, (1, 1))
        ctx.set(dut.i.payload, {"data": {"bias": -5, "multiplier": 7, "shift": -3}, "last": 0})
        ctx.set(dut.i.valid, 1)
        assert ctx.get(dut.w.data) == {"bias": -5, "multiplier": 7, "shift": -3}

    simulate(dut, bench)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"payload": 8}, TypeError, r"payload must be a data.StructLayout, not 8"),
    ({"payload": qparam_layout()}, ValueError, r"payload must have a 1-bit 'last' field"),
    ({"beats": 0}, ValueError, r"beats must be at least 1, not 0"),
    ({"beats": "3"}, TypeError, r"beats must be an integer, not '3'"),
    ({"per_pass": None}, TypeError, r"per_pass must be a bool, not None"),
    ({"load_to_use": -1}, ValueError, r"load_to_use must be between 0 and 256, not -1"),
    ({"drain": 1 << TIMER_WIDTH}, ValueError,
     rf"drain must be between 0 and {(1 << TIMER_WIDTH) - 1}, not {1 << TIMER_WIDTH}"),
])
def test_loader_validates_its_parameters(kwargs, error, message):
    args = {"payload": qp_layout(), "beats": 3, "per_pass": False, "load_to_use": 0,
            "drain": 5, **kwargs}
    with pytest.raises(error, match=message):
        Loader(args.pop("payload"), **args)


# -- output.Output ---------------------------------------------------------------------------

def test_output_credits_and_latency():
    """``depth`` reservations in a row, one a cycle, and no more room; a word through the
    FIFO in ``latency`` cycles; room again once two words are sent (the count at most
    ``depth - 2``: a word kept for a reservation the counter sees a cycle late), two cycles
    after the second send."""
    depth = 4
    dut = Output(CFG, depth=depth)

    async def bench(ctx):
        assert ctx.get(dut.credit.room)
        for _ in range(depth):
            assert ctx.get(dut.credit.room)
            ctx.set(dut.credit.reserve, 1)
            await ctx.tick()
        ctx.set(dut.credit.reserve, 0)
        assert not ctx.get(dut.credit.room), "room with every word reserved"
        for word in ([1, -2, 3], [4, 5, -6]):
            ctx.set(dut.i.payload, {"data": word, "tag": word[0] == 4})
            ctx.set(dut.i.valid, 1)
            assert ctx.get(dut.i.ready)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(dut.latency - 2):
            assert not ctx.get(dut.o.valid)
            await ctx.tick()
        ctx.set(dut.o.ready, 1)
        for word, last in (([1, -2, 3], 0), ([4, 5, -6], 1)):
            assert ctx.get(dut.o.valid)
            assert ctx.get(dut.o.payload) == {"data": word, "last": last}
            assert not ctx.get(dut.credit.room)
            await ctx.tick()
        ctx.set(dut.o.ready, 0)
        assert not ctx.get(dut.o.valid)
        assert not ctx.get(dut.credit.room), "room before the counter saw the sends"
        await ctx.tick()
        assert ctx.get(dut.credit.room)

    simulate(dut, bench)


@pytest.mark.parametrize("depth", [4, 8, 16])
def test_output_credits_on_random_traffic(depth):
    """Reservations only with room (as the scheduler makes them), each reserved word written
    into the FIFO three cycles later, a consumer ready at random: ``room`` is exactly the
    reference count's (reservations and sends counted a cycle late, room while the count
    after the cycle is at most ``depth - 2``), and the FIFO always takes the word. (Not at
    depth 2: Amaranth's SyncFIFOBuffered then holds one word before its output register, and
    a second word right behind the first into an empty FIFO is refused for a cycle; the
    engine's FIFO is at least 32 deep and its words come more than a dozen cycles after
    their reservation.)"""
    rng = random.Random(depth)
    dut = Output(CFG, depth=depth)
    seen = {"full": 0, "sent": 0}

    async def bench(ctx):
        count, room, reserved, sent = 0, True, False, False
        pending = [0, 0, 0]                     # words due into the FIFO, by cycle
        for _ in range(3000):
            assert ctx.get(dut.credit.room) == room
            reserve = room and rng.random() < 0.7
            ctx.set(dut.credit.reserve, reserve)
            ctx.set(dut.o.ready, rng.random() < 0.4)
            push = pending.pop(0)
            pending.append(int(reserve))
            ctx.set(dut.i.valid, push)
            ctx.set(dut.i.payload, {"data": [0, 0, 0], "tag": 0})
            if push:
                assert ctx.get(dut.i.ready), "the FIFO refused a reserved word"
            send = ctx.get(dut.o.valid) and ctx.get(dut.o.ready)
            seen["full"] += not room
            seen["sent"] += send
            # the DUT's registers after this cycle: the count from the last cycle's events
            count += reserved - sent
            room = count <= depth - 2
            reserved, sent = reserve, send
            await ctx.tick()

    simulate(dut, bench)
    assert seen["full"] > 100 and seen["sent"] > 500, seen


@pytest.mark.parametrize("depth, error, message", [
    (3, ValueError, r"depth must be a power of two, not 3"),
    (1, ValueError, r"depth must be at least 2, not 1"),
    (4.0, TypeError, r"depth must be an integer, not 4.0"),
])
def test_output_validates_its_depth(depth, error, message):
    with pytest.raises(error, match=message):
        Output(CFG, depth=depth)


# -- delay.Delay, zeropoint.ZeroPoint, parambank.ParamBank -------------------------------------

@pytest.mark.parametrize("cycles", [0, 1, 4])
def test_delay_line(cycles):
    dut = Delay(8, cycles)
    assert dut.latency == cycles
    seen = []

    async def bench(ctx):
        for v in range(1, 10):
            ctx.set(dut.i, v)
            seen.append(ctx.get(dut.o))
            await ctx.tick()

    top = Module()
    top.domains.sync = ClockDomain()            # also with no register in the line
    top.submodules.delay = dut
    simulate(top, bench)
    assert seen == [0] * cycles + list(range(1, 10 - cycles))


@pytest.mark.parametrize("cycles, error, message", [
    (-1, ValueError, r"cycles must be at least 0, not -1"),
    (True, TypeError, r"cycles must be an integer, not True"),
])
def test_delay_validates_cycles(cycles, error, message):
    with pytest.raises(error, match=message):
        Delay(8, cycles)


def test_zero_point_stage():
    dut = ZeroPoint(CFG)
    x = [[127, -128, 0, 5], [-1, 2, -3, 4]]

    async def bench(ctx):
        ctx.set(dut.zp, -128)
        for _ in range(CFG.rows):                # the per-row copies of the zero point
            await ctx.tick()
        ctx.set(dut.i, {"valid": 1, "bank": 1, "data": x})
        for _ in range(dut.latency):
            await ctx.tick()
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.bank) == 1
        assert ctx.get(dut.o.data) == [[v + 128 for v in row] for row in x]

    simulate(dut, bench)


def test_param_bank_write_and_read():
    dut = ParamBank(lanes=3)
    p = {"bias": -7, "multiplier": 12345, "shift": 4}
    zero = {"bias": 0, "multiplier": 0, "shift": 0}

    async def bench(ctx):
        ctx.set(dut.w, {"valid": 1, "bank": 1, "index": 2, "data": p})
        ctx.set(dut.bank, 1)
        await ctx.tick()
        ctx.set(dut.w.valid, 0)
        for _ in range(dut.write_latency - 1):
            assert ctx.get(dut.data[2]) == zero
            await ctx.tick()
        assert ctx.get(dut.data) == [zero, zero, p]
        ctx.set(dut.bank, 0)                  # the select is registered: bank 1 one more cycle
        assert ctx.get(dut.data) == [zero, zero, p]
        for _ in range(dut.select_latency):
            await ctx.tick()
        assert ctx.get(dut.data) == [zero, zero, zero]

    simulate(dut, bench)


@pytest.mark.parametrize("lanes", [1, 2, 3, 8])
def test_param_bank_takes_what_a_qp_loader_writes(lanes):
    loader = Loader(qp_layout(), beats=lanes, per_pass=False, load_to_use=0, drain=5)
    assert loader.w.shape() == ParamBank.write_layout(lanes)
    assert ParamBank.write_layout(lanes)["index"].width >= 1


def test_param_bank_validates_lanes():
    with pytest.raises(ValueError, match=r"lanes must be at least 1, not 0"):
        ParamBank(lanes=0)
    with pytest.raises(TypeError, match=r"lanes must be an integer, not 'x'"):
        ParamBank(lanes="x")
    with pytest.raises(ValueError, match=r"target must be one of 'generic', 'ecp5', not 'gw'"):
        ParamBank(lanes=2, target="gw")


# -- accumulator.Accumulator -----------------------------------------------------------------

async def _drive_accumulator(ctx, dut, beats):
    """Put ``beats`` (``(sideband, partial sums)``, or None for a bubble) on the accumulator,
    one a cycle: each sideband :attr:`~hdl.accumulator.Accumulator.side_lead` cycles before
    its partial sums. Returns after the edge that takes the last partial sums."""
    lead = dut.side_lead
    for t in range(len(beats) + lead):
        beat = beats[t] if t < len(beats) else None
        ctx.set(dut.side, beat[0] if beat else {"valid": 0})
        if t >= lead and beats[t - lead]:
            ctx.set(dut.psum, beats[t - lead][1])
        await ctx.tick()
    ctx.set(dut.side.valid, 0)


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("bubbles", [0, 0.3])
def test_accumulator_sums_passes_of_short_blocks(rows, bubbles):
    """Passes of a block of ``rows`` rows back to back (and with random bubbles): a row's read
    misses the writes of the up to four beats before it, of which those of the same row must
    be forwarded (from the sum one, two, three or four beats ahead); every row's total is
    exact."""
    import random
    rng = random.Random(rows * 10 + int(bubbles * 10))
    dut = Accumulator(CFG)
    passes = 4
    base = rng.randrange(0, CFG.acc_depth - rows)
    psums = [[[rng.randrange(-2**20, 2**20) for _ in range(CFG.cols)] for _ in range(rows)]
             for _ in range(passes)]
    want = [[sum(psums[k][r][c] for k in range(passes)) for c in range(CFG.cols)]
            for r in range(rows)]
    got = []

    beats = []
    for k in range(passes):
        for r in range(rows):
            while rng.random() < bubbles:
                beats.append(None)
            last = k == passes - 1
            beats.append(({"valid": 1, "addr": base + r, "first": k == 0, "last": last,
                           "eol": last and r == rows - 1, "gbank": 0}, psums[k][r]))

    async def bench(ctx):
        ctx.set(dut.params, [{"bias": 0, "multiplier": 1, "shift": 0}] * CFG.cols)
        await _drive_accumulator(ctx, dut, beats)
        await ctx.tick().repeat(dut.latency + 1)

    async def monitor(ctx):
        async for _, _, valid, acc in ctx.tick().sample(dut.o.valid, dut.o.payload.acc):
            if valid:
                got.append(list(acc))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert got == want


def test_accumulator_forwards_back_to_back_passes_of_a_one_row_block():
    """Four passes of a one-row block on consecutive cycles: each read misses the writes of
    the beats before, which must be forwarded."""
    dut = Accumulator(CFG)
    psums = [[1, 2, 3], [10, 20, 30], [100, 200, 300], [-1000, 0, 1000]]
    p = {"bias": 9, "multiplier": 1, "shift": 0}

    beats = [({"valid": 1, "addr": 5, "first": i == 0, "last": i == len(psums) - 1,
               "eol": i == len(psums) - 1, "gbank": 0}, ps) for i, ps in enumerate(psums)]

    async def bench(ctx):
        ctx.set(dut.params, [p] * CFG.cols)
        await _drive_accumulator(ctx, dut, beats)
        for _ in range(dut.latency - 1):
            assert not ctx.get(dut.o.valid)
            await ctx.tick()
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload.tag)
        assert ctx.get(dut.o.payload.acc) == [sum(col) for col in zip(*psums, strict=True)]
        assert ctx.get(dut.o.payload.bias) == [9] * CFG.cols
        await ctx.tick()
        assert not ctx.get(dut.o.valid)

    simulate(dut, bench)
