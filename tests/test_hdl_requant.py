# amaranth: UnusedElaboratable=no
"""Tests of ``hdl.requant.Requant`` in the Amaranth simulator against ``golden_model.requantize``.

Every output beat is compared bit for bit with the golden model applied per lane to
``wrap_int32(acc + bias)``, under seeded random input idles and output backpressure, for both
rounding modes; plus extremes, exact ties, the latency, the tag and parameter validation.

The ``"ecp5"`` target (``MULT18X18D`` instances, which Amaranth's simulator cannot run) is
simulated as Verilog with the primitive's model, on Icarus and Verilator: the inputs of a
generic run, cycle by cycle, must give the same outputs on every cycle, and its results are
checked against the golden model too.
"""

import itertools
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator
from test_hdl_multiplier import ecp5_instances
from verilog_harness import SIMULATORS, component_ports, record_ports, run_verilog

import golden_model
from hdl.requant import Requant

INT32_MIN = golden_model.INT32_MIN
INT32_MAX = golden_model.INT32_MAX
LANES = 4
TAG_WIDTH = 4
ROUNDINGS = ("double", "single")


# -- stimulus and reference ------------------------------------------------------------------

def _random_consts(rng, n):
    """Zero points and clamp bounds in [-128, 127], act_min <= zp <= act_max (the golden
    model's contract), a quarter of them ReLU-style (act_min = zp), a quarter unclamped."""
    zp = rng.integers(-128, 128, n)
    act_min = rng.integers(-128, zp + 1)
    act_max = rng.integers(zp, 128)
    kind = rng.integers(0, 4, n)
    act_min = np.where(kind == 0, zp, act_min)
    act_min = np.where(kind == 1, -128, act_min)
    act_max = np.where(kind == 1, 127, act_max)
    return zp, act_min, act_max


def _random_beats(rng, n, lanes=LANES, tag_width=TAG_WIDTH):
    """``n`` beats mixing realistic, full-range, raw-parameter and exact-tie lanes."""
    shape = (n, lanes)
    # Realistic multipliers from TFLite's QuantizeMultiplier of reals in 1e-9..1e2: shifts
    # from -29 to +7.
    mult, shift = golden_model.quantize_multiplier(10.0 ** rng.uniform(-9, 2, shape))
    mult, shift = mult.astype(np.int64), shift.astype(np.int64)
    real = mult * 2.0 ** (shift - 31)
    # x = acc + bias: mostly aimed so that the result lands near the int8 range.
    with np.errstate(divide="ignore"):
        aimed = np.round(rng.uniform(-400, 400, shape) / real)
    aimed = np.clip(np.nan_to_num(aimed, posinf=INT32_MAX, neginf=INT32_MIN),
                    INT32_MIN, INT32_MAX).astype(np.int64)
    full = rng.integers(INT32_MIN, INT32_MAX + 1, shape)
    x = np.where(rng.random(shape) < 0.7, aimed, full)

    category = rng.integers(0, 8, shape)
    # Raw parameters: any multiplier in [0, 2^31) (log-uniform), any shift in [-31, 30], and
    # accumulators of every magnitude (so x << left wraps in double rounding).
    raw = category == 0
    raw_mult = np.floor(2.0 ** rng.uniform(0, 31, shape)).astype(np.int64) - 1
    mult = np.where(raw, raw_mult, mult)
    shift = np.where(raw, rng.integers(-31, 31, shape), shift)
    x = np.where(raw, full >> rng.integers(0, 32, shape), x)
    # Exact ties: multiplier 2^30 (one half), shift -k, x = odd * 2^(k + d): the result is
    # odd / 2^(2 - d), exactly .5 for d = 0 (a tie in RoundingDivideByPOT, or in the doubling
    # high multiply when k = 0) and .25 / .75 otherwise.
    tie = category == 1
    k = rng.integers(0, 32, shape)
    d = rng.integers(-1, 1, shape)
    e = np.maximum(k + d, 0)
    odd = 2 * rng.integers(-256, 256, shape) + 1
    tie_x = np.clip(odd << e, INT32_MIN, INT32_MAX)
    tie_x = np.where(tie_x == (odd << e), tie_x, odd)       # keep it odd if it overflowed
    mult = np.where(tie, 1 << 30, mult)
    shift = np.where(tie, -k, shift)
    x = np.where(tie, tie_x, x)

    # The bias: zero, small or anything; acc = wrap(x - bias), so acc + bias wraps back to x.
    bias_kind = rng.integers(0, 3, shape)
    bias = np.select([bias_kind == 0, bias_kind == 1],
                     [0, rng.integers(-1 << 20, 1 << 20, shape)],
                     rng.integers(INT32_MIN, INT32_MAX + 1, shape))
    acc = golden_model.wrap_int32(x - bias).astype(np.int64)
    zp, act_min, act_max = _random_consts(rng, n)
    return dict(acc=acc, bias=bias, multiplier=mult, shift=shift, zp=zp, act_min=act_min,
                act_max=act_max, tag=rng.integers(0, 1 << tag_width, n))


def _extreme_beats(rng, lanes=LANES):
    """Every combination of extreme accumulators, biases, multipliers and shifts."""
    combos = np.array(list(itertools.product(
        [INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX],       # acc
        [INT32_MIN, -INT32_MAX, 0, INT32_MAX],                 # bias
        [0, 1, 3, (1 << 30) - 1, 1 << 30, INT32_MAX],          # multiplier
        [-31, -30, -1, 0, 1, 29, 30],                          # shift
    )), dtype=np.int64)
    combos = combos[rng.permutation(len(combos))]
    combos = np.concatenate([combos, combos[:-len(combos) % lanes]])   # whole beats
    n = len(combos) // lanes
    acc, bias, mult, shift = (combos[:, col].reshape(n, lanes) for col in range(4))
    zp, act_min, act_max = _random_consts(rng, n)
    return dict(acc=acc, bias=bias, multiplier=mult, shift=shift, zp=zp, act_min=act_min,
                act_max=act_max, tag=rng.integers(0, 1 << TAG_WIDTH, n))


def _concat(*beat_sets):
    return {key: np.concatenate([beats[key] for beats in beat_sets]) for key in beat_sets[0]}


def _reference(beats, rounding):
    """The golden model per beat: ``requantize(wrap_int32(acc + bias), ...)``, int8 values."""
    x = golden_model.wrap_int32(beats["acc"].astype(np.int64) + beats["bias"])
    out = np.empty(x.shape, dtype=np.int8)
    for n in range(len(x)):
        out[n] = golden_model.requantize(
            x[n], beats["multiplier"][n], beats["shift"][n], zero_point=int(beats["zp"][n]),
            qmin=int(beats["act_min"][n]), qmax=int(beats["act_max"][n]), rounding=rounding)
    return out


# -- simulation ------------------------------------------------------------------------------

def _set_beat(ctx, dut, beats, n):
    ctx.set(dut.i.payload, {
        "acc": beats["acc"][n].tolist(), "bias": beats["bias"][n].tolist(),
        "multiplier": beats["multiplier"][n].tolist(), "shift": beats["shift"][n].tolist(),
        "tag": int(beats["tag"][n]),
    })
    ctx.set(dut.out_zp, int(beats["zp"][n]))
    ctx.set(dut.act_min, int(beats["act_min"][n]))
    ctx.set(dut.act_max, int(beats["act_max"][n]))


def _set_garbage(ctx, dut, rng):
    """Random payload and constants while no beat is offered: they must be ignored."""
    ctx.set(dut.i.payload.as_value(), int(rng.integers(0, 1 << 62)))
    for port in (dut.out_zp, dut.act_min, dut.act_max):
        ctx.set(port, int(rng.integers(-256, 256)))


def _decode(dut, value):
    """Output payload (as an int) to (int8 lanes, tag)."""
    lanes = [((value >> (8 * k)) & 0xFF) for k in range(dut.lanes)]
    return [v - 256 if v >= 128 else v for v in lanes], value >> (8 * dut.lanes)


def _simulate(dut, beats, *, seed, idle=0.0, stall=0.0, trace=None):
    """Stream ``beats`` through ``dut`` with seeded random idles / backpressure.

    Returns the output lanes (n, lanes) and tags (n,), in arrival order. Also checks the stream
    rule that a stalled output holds its payload. With a list ``trace``, every port of every
    cycle is appended to it (:func:`verilog_harness.record_ports`).
    """
    n_beats = len(beats["acc"])
    results = []
    rng_in = np.random.default_rng([seed, 1])
    rng_out = np.random.default_rng([seed, 2])

    async def producer(ctx):
        for n in range(n_beats):
            while rng_in.random() < idle:
                ctx.set(dut.i.valid, 0)
                _set_garbage(ctx, dut, rng_in)
                await ctx.tick()
            _set_beat(ctx, dut, beats, n)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        held = None
        while len(results) < n_beats:
            ready = bool(rng_out.random() >= stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid,
                                                          dut.o.payload.as_value())
            if held is not None:
                assert valid and payload == held, "o.valid or o.payload changed while stalled"
            held = None
            if valid and ready:
                results.append(payload)
            elif valid:
                held = payload

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if trace is not None:
        record_ports(sim, dut, trace)
    sim.run()
    return _decode_all(dut, results)


def _decode_all(dut, results):
    decoded = [_decode(dut, value) for value in results]
    return (np.array([lanes for lanes, _ in decoded], dtype=np.int64),
            np.array([tag for _, tag in decoded], dtype=np.int64))


def _check(dut, beats, got, tags, seed):
    expected = _reference(beats, dut.rounding)
    mismatch = np.argwhere(got != expected)
    if len(mismatch):
        n, lane = mismatch[0]
        raise AssertionError(
            f"{len(mismatch)} mismatches ({dut.rounding} rounding, seed {seed}); first: beat "
            f"{n} lane {lane}: acc={beats['acc'][n, lane]} bias={beats['bias'][n, lane]} "
            f"multiplier={beats['multiplier'][n, lane]} shift={beats['shift'][n, lane]} "
            f"zp={beats['zp'][n]} act_min={beats['act_min'][n]} act_max={beats['act_max'][n]}: "
            f"expected {expected[n, lane]}, got {got[n, lane]}")
    if dut.tag_width:
        np.testing.assert_array_equal(tags, beats["tag"], err_msg=f"tag, seed {seed}")


# -- tests -----------------------------------------------------------------------------------

@pytest.mark.sim
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_random_stream_matches_golden(rounding):
    """A few thousand random beats (and every extreme combination) under random idles and
    backpressure, bit for bit against the golden model, tags passed through in order."""
    seed = {"double": 2024, "single": 7}[rounding]
    rng = np.random.default_rng(seed)
    beats = _concat(_extreme_beats(rng), _random_beats(rng, 4000))
    dut = Requant(lanes=LANES, rounding=rounding, tag_width=TAG_WIDTH)
    got, tags = _simulate(dut, beats, seed=seed, idle=0.3, stall=0.3)
    assert got.shape == beats["acc"].shape
    _check(dut, beats, got, tags, seed)


@pytest.mark.sim
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_every_result_around_the_clamp_bounds(rounding):
    """A multiplier of 2^30 with shift 1 (a factor of 1) and with shift 0 (a factor of 1/2, so
    both roundings see every integer before halving, ties included) over accumulators in
    [-600, 600]: every result just below, on and just above each clamp bound, whose compares
    the last stage makes against the bounds moved by the zero point."""
    rng = np.random.default_rng(11)
    sweep = np.arange(-600, -600 + -(-1201 // LANES) * LANES).reshape(-1, LANES)
    zp, act_min, act_max = _random_consts(rng, 4)
    consts = [(0, -128, 127), (-128, -128, 127), (127, -128, 127), (-7, -7, 90),
              *zip(zp, act_min, act_max)]
    acc = np.concatenate([sweep] * 2 * len(consts))
    shift = np.concatenate([np.full_like(sweep, s) for _ in consts for s in (1, 0)])
    zp, act_min, act_max = (np.repeat([c[i] for c in consts], 2 * len(sweep)) for i in range(3))
    n = len(acc)
    beats = dict(acc=acc, bias=np.zeros_like(acc), multiplier=np.full_like(acc, 1 << 30),
                 shift=shift, zp=zp, act_min=act_min, act_max=act_max,
                 tag=rng.integers(0, 1 << TAG_WIDTH, n))
    dut = Requant(lanes=LANES, rounding=rounding, tag_width=TAG_WIDTH)
    got, tags = _simulate(dut, beats, seed=11)
    _check(dut, beats, got, tags, 11)
    assert (got == act_min[:, None]).any() and (got == act_max[:, None]).any()


@pytest.mark.sim
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_ecp5_matches_generic_and_golden(rounding, sim, tmp_path):
    """The ECP5 unit, fed on every cycle what a generic one was fed under random idles and
    backpressure (every extreme combination and random beats), gives the same ``o`` and
    ``i.ready`` on every cycle (so the same latency), and results bit-exact with the golden
    model."""
    seed = {"double": 31, "single": 32}[rounding]
    rng = np.random.default_rng(seed)
    beats = _concat(_extreme_beats(rng), _random_beats(rng, 600))
    generic = Requant(lanes=LANES, rounding=rounding, tag_width=TAG_WIDTH)
    trace = []
    got, tags = _simulate(generic, beats, seed=seed, idle=0.3, stall=0.3, trace=trace)
    _check(generic, beats, got, tags, seed)

    ecp5 = Requant(lanes=LANES, rounding=rounding, tag_width=TAG_WIDTH, target="ecp5")
    inputs, outputs = component_ports(ecp5)
    stimulus = [{name: cycle[name] for name, _ in inputs} for cycle in trace]
    (out,) = run_verilog(sim, tmp_path, [(ecp5, stimulus)])
    for cycle, (want, have) in enumerate(zip(trace, out)):
        want = {name: want[name] for name, _ in outputs}
        assert have == want, f"cycle {cycle}: ecp5 {have}, generic {want}"
    transfers = [c["o__payload"] for c, i in zip(out, stimulus)
                 if c["o__valid"] and i["o__ready"]]
    got, tags = _decode_all(ecp5, transfers)
    assert got.shape == beats["acc"].shape
    _check(ecp5, beats, got, tags, seed)


def test_stimulus_reaches_the_interesting_cases():
    """The random stimulus is not all saturated, and does reach ties and both shift signs."""
    rng = np.random.default_rng(2024)
    beats = _concat(_extreme_beats(rng), _random_beats(rng, 4000))
    for rounding in ROUNDINGS:
        out = _reference(beats, rounding)
        inside = (out > beats["act_min"][:, None]) & (out < beats["act_max"][:, None])
        assert inside.mean() > 0.25
    assert (beats["shift"] == -31).any() and (beats["shift"] == 30).any()
    assert (beats["shift"] > 0).mean() > 0.05 and (beats["multiplier"] == 0).any()
    x = golden_model.wrap_int32(beats["acc"] + beats["bias"]).astype(np.int64)
    for extreme in (INT32_MIN, INT32_MAX):
        assert (beats["acc"] == extreme).any() and (beats["bias"] == extreme).any()
    # Exact ties with multiplier 2^30, shift -k: x * 2^(-k-1) = n + 1/2. In double rounding
    # the doubling high multiply gives x / 2 exactly (x even), then RoundingDivideByPOT ties;
    # in single rounding the one rounding ties.
    k = np.clip(-beats["shift"], 0, 62)
    half = (beats["multiplier"] == 1 << 30) & (k >= 1) & (x % 2 == 0)
    ties = half & ((x >> k) % 2 == 1) & (x % (1 << k) == 0)
    assert ties.sum() > 100 and (ties & (x < 0)).sum() > 50


@pytest.mark.sim
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_latency_and_throughput(rounding):
    """A lone beat appears after exactly ``latency`` cycles; back-to-back beats stream one per
    cycle with ``i.ready`` held high while ``o.ready`` is high."""
    dut = Requant(lanes=2, rounding=rounding)
    rng = np.random.default_rng(3)
    beats = _random_beats(rng, 20, lanes=2, tag_width=1)
    expected = _reference(beats, rounding)
    arrivals = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(3)
        assert not ctx.get(dut.o.valid)
        # A lone beat.
        _set_beat(ctx, dut, beats, 0)
        ctx.set(dut.i.valid, 1)
        assert ctx.get(dut.i.ready)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        cycles = 1
        while not ctx.get(dut.o.valid):
            await ctx.tick()
            cycles += 1
            assert cycles <= 50
        assert cycles == dut.latency
        assert list(ctx.get(dut.o.payload.data)) == expected[0].tolist()
        await ctx.tick()
        assert not ctx.get(dut.o.valid)
        # Back to back: one beat per cycle in, then one per cycle out.
        for n in range(1, 20):
            _set_beat(ctx, dut, beats, n)
            ctx.set(dut.i.valid, 1)
            assert ctx.get(dut.i.ready)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(dut.latency):
            await ctx.tick()

    async def monitor(ctx):
        cycle = 0
        async for _, _, valid, lanes in ctx.tick().sample(dut.o.valid, dut.o.payload.data):
            cycle += 1
            if valid:
                arrivals.append((cycle, list(lanes)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert [lanes for _, lanes in arrivals] == expected.tolist()
    cycles = [cycle for cycle, _ in arrivals[1:]]
    assert cycles == list(range(cycles[0], cycles[0] + 19))


@pytest.mark.sim
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_without_stalls_ready_is_ignored(rounding):
    """``stalls=False`` (the engine's use): ``i.ready`` is always high, ``o.ready`` is not
    looked at, and every beat's result is on ``o`` exactly ``latency`` cycles after its
    transfer, bit-exact, whatever ``o.ready`` does."""
    dut = Requant(lanes=2, rounding=rounding, stalls=False)
    assert not dut.stalls and Requant(lanes=2).stalls
    rng = np.random.default_rng(29)
    beats = _random_beats(rng, 200, lanes=2, tag_width=1)
    expected = _reference(beats, rounding)
    sent, seen = [], []

    async def testbench(ctx):
        cycle = 0
        for n in range(200):
            while rng.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.o.ready, int(rng.random() < 0.5))
                await ctx.tick()
                cycle += 1
            _set_beat(ctx, dut, beats, n)
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.o.ready, int(rng.random() < 0.5))
            assert ctx.get(dut.i.ready)
            sent.append(cycle)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(dut.latency + 2)

    async def monitor(ctx):
        cycle = 0
        async for _, _, valid, lanes in ctx.tick().sample(dut.o.valid, dut.o.payload.data):
            cycle += 1
            if valid:
                seen.append((cycle, list(lanes)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert [lanes for _, lanes in seen] == expected.tolist()
    # Set before edge c + 1 (its transfer), valid after edge c + latency, so sampled at the
    # edge after: c + latency + 1, for every beat.
    assert [cycle for cycle, _ in seen] == [c + dut.latency + 1 for c in sent]


@pytest.mark.sim
def test_stall_holds_and_tag_width_zero():
    """With a 0-bit tag the unit still works; a long output stall loses and reorders nothing."""
    dut = Requant(lanes=1, rounding="double", tag_width=0)
    assert dut.o.payload.tag.shape() == unsigned(0)
    rng = np.random.default_rng(11)
    beats = _random_beats(rng, 60, lanes=1, tag_width=0)
    got, _ = _simulate(dut, beats, seed=11, idle=0.1, stall=0.8)
    _check(dut, beats, got, None, 11)


def test_signature():
    dut = Requant(lanes=3, rounding="single", tag_width=2)
    assert dut.i.payload.shape() == data.StructLayout({
        "acc": data.ArrayLayout(signed(32), 3),
        "bias": data.ArrayLayout(signed(32), 3),
        "multiplier": data.ArrayLayout(unsigned(31), 3),
        "shift": data.ArrayLayout(signed(6), 3),
        "tag": unsigned(2),
    })
    assert dut.o.payload.shape() == data.StructLayout({
        "data": data.ArrayLayout(signed(8), 3),
        "tag": unsigned(2),
    })
    for port in (dut.out_zp, dut.act_min, dut.act_max):
        assert port.shape() == signed(9)
    assert (dut.lanes, dut.rounding, dut.tag_width, dut.target) == (3, "single", 2, "generic")
    assert Requant(lanes=1).rounding == "double" and Requant(lanes=1).tag_width == 1
    for rounding in ROUNDINGS:
        assert (Requant(lanes=1, rounding=rounding, target="ecp5").latency
                == Requant(lanes=1, rounding=rounding).latency)
    assert Requant(lanes=1).latency > Requant(lanes=1, rounding="single").latency > 0
    lanes = Requant(lanes=np.int64(2)).lanes
    assert lanes == 2 and type(lanes) is int
    with pytest.raises(TypeError, match=r"stalls must be a bool, not 0"):
        Requant(lanes=1, stalls=0)
    for name in ("lanes", "rounding", "tag_width", "latency", "target", "stalls"):
        with pytest.raises(AttributeError):
            setattr(dut, name, 1)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(lanes=0), ValueError, "lanes must be at least 1, not 0"),
    (dict(lanes=-2), ValueError, "lanes must be at least 1, not -2"),
    (dict(lanes="4"), TypeError, "lanes must be an integer, not '4'"),
    (dict(lanes=2.0), TypeError, "lanes must be an integer, not 2.0"),
    (dict(lanes=True), TypeError, "lanes must be an integer, not True"),
    (dict(lanes=1, rounding="up"), ValueError,
     "rounding must be one of 'double', 'single', not 'up'"),
    (dict(lanes=1, rounding=None), ValueError,
     "rounding must be one of 'double', 'single', not None"),
    (dict(lanes=1, tag_width=-1), ValueError, "tag_width must be at least 0, not -1"),
    (dict(lanes=1, tag_width=1.5), TypeError, "tag_width must be an integer, not 1.5"),
    (dict(lanes=1, target="ice40"), ValueError,
     "target must be one of 'generic', 'ecp5', not 'ice40'"),
])
def test_parameter_validation(kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        Requant(**kwargs)


@pytest.mark.parametrize("target", ["generic", "ecp5"])
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_verilog_convert(rounding, target):
    """Four MULT18X18D per lane with ECP5, each with input and output registers, enabled with
    the pipeline; none in the generic Verilog."""
    text = verilog.convert(Requant(lanes=2, rounding=rounding, target=target), name="requant")
    assert "module requant" in text
    instances = ecp5_instances(text)
    assert len(instances) == (8 if target == "ecp5" else 0)
    assert ("MULT18X18D" in text) == (target == "ecp5")
    for params, pins in instances:
        assert params == {"REG_INPUTA_CLK": "CLK0", "REG_INPUTB_CLK": "CLK0",
                          "REG_PIPELINE_CLK": "NONE", "REG_OUTPUT_CLK": "CLK0"}
        assert (pins["CE0"], pins["CLK0"]) == ("en", "clk")
