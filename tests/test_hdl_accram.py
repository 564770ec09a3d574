# amaranth: UnusedElaboratable=no
"""The accumulator RAM (:class:`hdl.accram.AccRam`): both targets against a Python dict.

Random writes and reads (mostly of words written before, some of never-written words, some
of the word written in the same cycle) go through the ``"generic"`` RAM in Amaranth's
simulator and through the ``"ecp5"`` RAM (DP16KD instances, simulated with
``hdl/vendor/ecp5/DP16KD.v``) on Icarus and Verilator, at depths from 16 to 16384 (every
DP16KD width: 18, 9, 4, 2, 1) and widths that leave the last block partly used. Each read's
word must arrive :attr:`~hdl.accram.AccRam.read_latency` = 3 cycles after its address, equal
to the dict's word before that cycle's write. A read of the word written in the same cycle
is the old word with ``"generic"``, unspecified with ``"ecp5"`` (X on Icarus).
"""

import random
import re
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from verilog_harness import ECP5_MODELS, cycle_rows, cycle_testbench, simulate, verilator_lint

from hdl.accram import DP16KD_SHAPES, AccRam, dp16kd_layout

DP16KD_MODEL = ECP5_MODELS / "DP16KD.v"
WAIVER = Path(__file__).resolve().parent.parent / "hdl" / "sparsemac.vlt"
#: Cycles from a read's address to its word (the property, checked in test_members).
LATENCY = 3

#: (depth, width): every DP16KD configuration (18 bits up to 1024 words, 9 up to 2048, 4 up
#: to 4096, 2 up to 8192, 1 up to 16384), 3 x 16 and 8 x 32 bits, and widths that leave the
#: last block partly used.
CONFIGS = ((16, 48), (512, 256), (1024, 48), (2048, 48), (4096, 20), (8192, 7), (16384, 5))
CYCLES = 400


def _name(depth, width):
    return f"accram_d{depth}_w{width}"


def _ops(depth, width, seed):
    """Per cycle ``(write address, write data, write enable, read address)``."""
    rng = random.Random(seed)
    pool = sorted({0, depth - 1, *(rng.randrange(depth) for _ in range(12))})
    written = []
    ops = []
    for i in range(CYCLES):
        waddr = rng.choice(pool) if rng.random() < 0.7 else rng.randrange(depth)
        wen = int(rng.random() < 0.6)
        data = rng.choice((0, (1 << width) - 1)) if rng.random() < 0.1 else \
            rng.getrandbits(width)
        r = rng.random()
        if r < 0.1:
            raddr = waddr                                 # the word written in this cycle
        elif r < 0.75 and written:
            raddr = rng.choice(written)
        else:
            raddr = rng.randrange(depth)
        if wen:
            written.append(waddr)
        if i in (CYCLES - 3, CYCLES - 4):                 # the last reads: the top word
            raddr = depth - 1
        ops.append((waddr, data, wen, raddr))
    return ops


def _expected(ops):
    """Per cycle: what ``read.data`` shows (``None``: not yet defined, or a same-cycle
    collision), and whether that read collided with the cycle's write."""
    words = {}
    shown = [None] * LATENCY
    collided = [False] * LATENCY
    for waddr, data, wen, raddr in ops:
        shown.append(words.get(raddr, 0))
        collided.append(bool(wen) and waddr == raddr)
        if wen:
            words[waddr] = data
    return shown[:len(ops)], collided[:len(ops)]


def _check(depth, width, ops, got, *, collision):
    """``collision``: what a same-cycle read shows: "old" (generic), "x" (the model on
    Icarus) or None (anything: Verilator has no X)."""
    want, collided = _expected(ops)
    seen = {"reads": 0, "collisions": 0, "top": 0}
    for i, (w, c, g) in enumerate(zip(want, collided, got)):
        if i < LATENCY:
            continue
        if c:
            seen["collisions"] += 1
            if collision == "old":
                assert g == w, (depth, width, i, "same-cycle read", g, w)
            elif collision == "x":
                assert g is None, (depth, width, i, "same-cycle read not X", g)
            continue
        assert g == w, (depth, width, i, g, w)
        seen["reads"] += 1
        seen["top"] += ops[i - LATENCY][3] == depth - 1
    assert seen["reads"] > CYCLES // 2 and seen["collisions"] > 10 and seen["top"], seen


def test_layout():
    assert [dp16kd_layout(1, d)[0] for d in (1, 16, 1024, 1025, 2048, 4096, 8192, 16384)] == \
        [18, 18, 18, 9, 9, 4, 2, 1]
    assert dp16kd_layout(96, 32) == (18, 6)          # a 2x3 array of 32-bit accumulators
    assert dp16kd_layout(48, 2048) == (9, 6)
    assert dp16kd_layout(5, 16384) == (1, 5)
    assert DP16KD_SHAPES[0] == (18, 1024) and DP16KD_SHAPES[-1] == (1, 16384)
    with pytest.raises(ValueError, match="depth"):
        dp16kd_layout(8, 16385)


@pytest.mark.parametrize("kwargs, error", [
    ({"width": 0, "depth": 16}, ValueError), ({"width": 8, "depth": 0}, ValueError),
    ({"width": 8.0, "depth": 16}, TypeError), ({"width": 8, "depth": "16"}, TypeError),
    ({"width": 8, "depth": 16, "target": "ice40"}, ValueError),
    ({"width": 8, "depth": 16, "target": None}, ValueError),
    ({"width": 8, "depth": 32768, "target": "ecp5"}, ValueError)])
def test_bad_parameters(kwargs, error):
    with pytest.raises(error):
        AccRam(**kwargs)


def test_members():
    ram = AccRam(width=48, depth=32768)               # generic: any depth
    assert (ram.width, ram.depth, ram.target, ram.read_latency) == (48, 32768, "generic",
                                                                     LATENCY)
    assert ram.blocks == len(ram.write.addr) == len(ram.read.addr) == 1
    assert len(ram.write.addr[0]) == len(ram.read.addr[0]) == 15
    assert len(ram.write.data) == len(ram.read.data) == 48 and len(ram.write.en) == 1
    assert AccRam(width=1, depth=1, target="ecp5").read_latency == LATENCY
    ecp5 = AccRam(width=96, depth=32, target="ecp5")  # a 2x3 array's accumulators: 6 blocks
    assert ecp5.blocks == dp16kd_layout(96, 32)[1] == 6
    assert len(ecp5.write.addr) == len(ecp5.read.addr) == len(ecp5.write.en) == 6
    assert len(ecp5.write.addr[0]) == len(ecp5.read.addr[5]) == 5


@pytest.mark.parametrize("depth, width", CONFIGS)
def test_verilog(depth, width):
    """The ecp5 Verilog instantiates the blocks (port B with its output register); the
    generic one none."""
    text = verilog.convert(AccRam(width=width, depth=depth, target="ecp5"), name="accram")
    data_width, blocks = dp16kd_layout(width, depth)
    assert len(re.findall(r"\bDP16KD\s*#", text)) == blocks
    assert text.count(f".DATA_WIDTH_B(32'd{data_width})") == blocks
    assert text.count('.REGMODE_B("OUTREG")') == blocks
    assert text.count('.REGMODE_A("NOREG")') == blocks
    generic = verilog.convert(AccRam(width=width, depth=depth), name="accram")
    assert "DP16KD" not in generic


def test_ecp5_address_copy_per_block():
    """Block k's write enable and both address buses come from copy k of the ports (each
    copy can then come from a register beside its block)."""
    ram = AccRam(width=40, depth=32, target="ecp5")           # 3 blocks of 18 bits, 5-bit address
    text = verilog.convert(ram, name="accram")
    abits, low = 5, 4
    for pin, port in (("WEA", "write__en"), ("ADA", "write__addr"), ("ADB", "read__addr")):
        got = re.findall(rf"\.{pin}{low if pin != 'WEA' else ''}\((\w+)\[(\d+)\]\)", text)
        stride = 1 if pin == "WEA" else abits
        assert got == [(port, str(k * stride)) for k in range(ram.blocks)], (pin, got)


@pytest.mark.parametrize("depth, width", CONFIGS)
def test_generic_amaranth(depth, width):
    ram = AccRam(width=width, depth=depth)
    ops = _ops(depth, width, seed=depth + width)
    got = []

    async def bench(ctx):
        for waddr, data, wen, raddr in ops:
            ctx.set(ram.write.addr[0], waddr)
            ctx.set(ram.write.data, data)
            ctx.set(ram.write.en, wen)
            ctx.set(ram.read.addr[0], raddr)
            got.append(ctx.get(ram.read.data))
            await ctx.tick()

    sim = Simulator(ram)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    _check(depth, width, ops, got, collision="old")


# --- ecp5, through the DP16KD model ----------------------------------------------------------

def _testbench(tmp):
    """One Verilog testbench holding an ecp5 AccRam of every CONFIG (one build per simulator).
    Cycle i: inputs at 10 i, ``read.data`` printed at 10 i + 4, rising edge at 10 i + 5."""
    sources, body, outs, applies = [], [], [], []
    ops = {}
    for depth, width in CONFIGS:
        name = _name(depth, width)
        ram = AccRam(width=width, depth=depth, target="ecp5")
        abits, blocks = len(ram.write.addr[0]), ram.blocks
        (tmp / f"{name}.v").write_text(verilog.convert(ram, name=name))
        sources.append(tmp / f"{name}.v")
        ops[name] = _ops(depth, width, seed=depth + width)
        vbits = width + 2 * abits + 1
        words = (data | waddr << width | wen << (width + abits) | raddr << (width + abits + 1)
                 for waddr, data, wen, raddr in ops[name])
        (tmp / f"{name}.hex").write_text("".join(f"{w:x}\n" for w in words))
        body.append(f"""    reg [{vbits - 1}:0] vec_{name} [0:{CYCLES - 1}];
    reg [{vbits - 1}:0] v_{name} = {vbits}'d0;
    wire [{width - 1}:0] rd_{name};
    initial $readmemh("{tmp / name}.hex", vec_{name});
    {name} dut_{name} (.clk(clk), .rst(1'b0), .write__data(v_{name}[{width - 1}:0]),
        .write__addr({{{blocks}{{v_{name}[{width + abits - 1}:{width}]}}}}),
        .write__en({{{blocks}{{v_{name}[{width + abits}]}}}}),
        .read__addr({{{blocks}{{v_{name}[{vbits - 1}:{width + abits + 1}]}}}}),
        .read__data(rd_{name}));
""")
        outs.append(f"rd_{name}")
        applies.append(f"v_{name} = vec_{name}[i];")
    (tmp / "tb.v").write_text(cycle_testbench("".join(body), CYCLES, outs,
                                              apply=" ".join(applies)))
    return sources, ops


def _parse(stdout):
    """{name: [word or None (any X) per cycle]}."""
    rows = cycle_rows(stdout, CYCLES)
    return {_name(*c): [None if re.search("[xXzZ]", r[k]) else int(r[k], 16)
                        for r in rows] for k, c in enumerate(CONFIGS)}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("accram")
    sources, ops = _testbench(tmp)
    return tmp, sources, ops


def _check_all(results, ops, *, collision):
    for depth, width in CONFIGS:
        name = _name(depth, width)
        _check(depth, width, ops[name], results[name], collision=collision)


@pytest.mark.sim
def test_ecp5_icarus(bench):
    tmp, sources, ops = bench
    out = simulate("icarus", tmp, [tmp / "tb.v", *sources, DP16KD_MODEL], timeout=300)
    _check_all(_parse(out), ops, collision="x")


@pytest.mark.sim
def test_ecp5_verilator(bench):
    tmp, sources, ops = bench
    out = simulate("verilator", tmp, [tmp / "tb.v", *sources, DP16KD_MODEL],
                   verilator_options=("--timescale", "1ns/1ps"), timeout=300)
    _check_all(_parse(out), ops, collision=None)


@pytest.mark.sim
def test_ecp5_lint_clean(tmp_path):
    """The ecp5 RAM with the model: ``verilator --lint-only -Wall`` with the shipped waiver
    (the generated Verilog has no `timescale, the model has one: ``--timescale``)."""
    for depth, width in ((1024, 48), (16384, 5)):
        path = tmp_path / f"{_name(depth, width)}.v"
        path.write_text(verilog.convert(AccRam(width=width, depth=depth, target="ecp5"),
                                        name=_name(depth, width)))
        verilator_lint("--timescale", "1ns/1ps", "--top-module", _name(depth, width), WAIVER,
                       path, DP16KD_MODEL)
