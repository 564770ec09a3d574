# amaranth: UnusedElaboratable=no
"""``hdl.multiplier.Multiplier`` against exact products, in both targets.

The generic target runs in the Amaranth simulator; the ECP5 target (one ``MULT18X18D``
instance, which Amaranth's simulator cannot run) is converted to Verilog and simulated with
the primitive's model (``hdl/vendor/ecp5/MULT18X18D.v``) on Icarus and on Verilator. Both see
the same operands, every register combination, operand shapes from 18x18 signed down to those
the requantizer and the PEs use, random and extreme operands and a clock enable held low for
stretches; both are compared with exact products and with a cycle model of the registers.

The Verilog runs through :func:`verilog_harness.run_verilog` (open-loop simulation of converted
components with the ECP5 models), which ``test_hdl_requant.py`` and ``test_hdl_pe.py`` use too,
with :func:`verilog_harness.record_ports`: they record a generic unit's ports and replay its
inputs into the ECP5 unit, whose outputs must match on every cycle. They also use
:func:`ecp5_instances`.
"""

import random
import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, signed, unsigned
from amaranth.sim import Simulator
from verilog_harness import SIMULATORS, run_verilog

from hdl.multiplier import Multiplier

#: Operand shapes: the full 18x18 signed, the requantizer's four partial products (x_lo
#: unsigned 16, x_hi signed 16, m_lo unsigned 16, m_hi unsigned 15), the PE's product (an
#: activation minus its zero point, signed 9, by an int8 weight), and the widest unsigned.
SHAPES = (
    (signed(18), signed(18)),
    (unsigned(16), unsigned(16)),
    (unsigned(16), unsigned(15)),
    (signed(16), unsigned(16)),
    (signed(16), unsigned(15)),
    (signed(9), signed(8)),
    (unsigned(17), signed(18)),
)
#: (input_registers, output_register)
REGISTERS = ((False, False), (True, False), (False, True), (True, True))
STEADY = 250            # cycles with the enable high (exact-product check)
RANDOM = 250            # then a random enable, low in stretches
HOLDS = range(STEADY + 10, STEADY + RANDOM - 10, 29)   # the enable low for HOLD cycles from here
HOLD = 6


def _limits(shape):
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def _extremes(shape):
    lo, hi = _limits(shape)
    return sorted({lo, hi, 0, 1, lo + 1, hi - 1} | ({-1} if shape.signed else set()))


def _stimulus(seed=5):
    """Per cycle: ``en`` and, per shape, operands ``a``, ``b``; extremes 40% of the time."""
    rng = random.Random(seed)
    cycles = []
    for i in range(STEADY + RANDOM):
        en = 1 if i < STEADY else int(rng.random() < 0.7)
        if any(0 <= i - start < HOLD for start in HOLDS):
            en = 0
        ops = []
        for a_shape, b_shape in SHAPES:
            pair = []
            for shape in (a_shape, b_shape):
                if rng.random() < 0.4:
                    pair.append(rng.choice(_extremes(shape)))
                else:
                    pair.append(rng.randint(*_limits(shape)))
            ops.append(tuple(pair))
        cycles.append((en, ops))
    return cycles


def _reference(stimulus, k, input_registers, output_register):
    """The product seen before each clock edge, by a cycle model of the registers (start at 0,
    load while ``en``)."""
    a_r = b_r = p_r = 0
    out = []
    for en, ops in stimulus:
        a, b = ops[k]
        if input_registers:
            a, b = a_r, b_r
        product = a * b
        out.append(p_r if output_register else product)
        if en:
            a_r, b_r = ops[k]
            p_r = product
    return out


def _cases():
    return [(k, regs) for k in range(len(SHAPES)) for regs in REGISTERS]


def _dut(target, k, regs):
    a_shape, b_shape = SHAPES[k]
    return Multiplier(target=target, a_shape=a_shape, b_shape=b_shape,
                      input_registers=regs[0], output_register=regs[1])


def _check(results, stimulus):
    """``results[(k, regs)]``: the signed product seen before every clock edge."""
    for (k, regs), got in results.items():
        latency = sum(regs)
        case = f"{SHAPES[k]} registers {regs}"
        # Exact products of the operands presented `latency` cycles earlier (enable high).
        for i in range(latency, STEADY):
            a, b = stimulus[i - latency][1][k]
            assert got[i] == a * b, (case, i, a, b, got[i])
        # Every cycle, random enable included, against the cycle model of the registers.
        want = _reference(stimulus, k, *regs)
        bad = [i for i in range(len(got)) if got[i] != want[i]]
        assert not bad, (case, bad[:5], [(got[i], want[i]) for i in bad[:5]])
        if latency:
            for start in HOLDS:    # the enable low: every register, hence p, holds
                held = got[start + 1:start + HOLD + 1]
                assert held == [got[start + 1]] * HOLD, (case, start, held)
    # The stimulus covered every extreme of every shape, in both operands.
    for k, shapes in enumerate(SHAPES):
        for side, shape in enumerate(shapes):
            seen = {ops[k][side] for _, ops in stimulus[:STEADY]}
            assert set(_extremes(shape)) <= seen, (shape, set(_extremes(shape)) - seen)


def _signed(value, shape):
    return value - (1 << shape.width) if shape.signed and value >> (shape.width - 1) else value


def test_generic_in_amaranth_simulator():
    stimulus = _stimulus()
    m = Module()
    duts = {}
    for k, regs in _cases():
        duts[(k, regs)] = dut = _dut("generic", k, regs)
        m.submodules[f"mult_{k}_{int(regs[0])}{int(regs[1])}"] = dut
    results = {case: [] for case in duts}

    async def bench(ctx):
        for en, ops in stimulus:
            for (k, _), dut in duts.items():
                ctx.set(dut.en, en)
                ctx.set(dut.a, ops[k][0])
                ctx.set(dut.b, ops[k][1])
            for case, dut in duts.items():
                results[case].append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    _check(results, stimulus)


@pytest.mark.sim
@pytest.mark.parametrize("sim", SIMULATORS)
def test_ecp5_with_the_model(sim, tmp_path):
    stimulus = _stimulus()
    cases = _cases()
    duts = []
    for k, regs in cases:
        vectors = [{"a": ops[k][0], "b": ops[k][1], "en": en} for en, ops in stimulus]
        duts.append((_dut("ecp5", k, regs), vectors))
    outputs = run_verilog(sim, tmp_path, duts)
    assert len(ecp5_instances((tmp_path / "duts.v").read_text())) == len(cases)
    results = {}
    for (k, regs), (dut, _), out in zip(cases, duts, outputs):
        results[(k, regs)] = [_signed(cycle["p"], dut.p.shape()) for cycle in out]
    _check(results, stimulus)


def ecp5_instances(text):
    """``[({parameter: value}, {pin: connection})]`` of every MULT18X18D instance in the
    Verilog ``text`` (string parameters only)."""
    found = []
    for params, pins in re.findall(r"MULT18X18D #\((.*?)\)\s*\S+\s*\((.*?)\);", text, re.S):
        found.append((dict(re.findall(r"\.(\w+)\(\"(\w+)\"\)", params)),
                      dict(re.findall(r"\.(\w+)\(([^()]*)\)", pins))))
    return found


@pytest.mark.parametrize("regs", REGISTERS)
def test_ecp5_instance(regs):
    """One MULT18X18D with the registers asked for, signed operands, every data pin and output
    connected; the clock, enable and reset pins and the shift-chain inputs open unless used
    (nextpnr cannot route a constant to a DSP block's clock pins)."""
    dut = Multiplier(target="ecp5", a_shape=unsigned(16), b_shape=signed(9),
                     input_registers=regs[0], output_register=regs[1])
    assert dut.latency == sum(regs)
    text = verilog.convert(dut, name="mul")
    (params, pins), = ecp5_instances(text)
    reg = lambda on: "CLK0" if on else "NONE"  # noqa: E731
    assert params == {"REG_INPUTA_CLK": reg(regs[0]), "REG_INPUTB_CLK": reg(regs[0]),
                      "REG_PIPELINE_CLK": "NONE", "REG_OUTPUT_CLK": reg(regs[1])}
    control = {f"{kind}{i}" for kind in ("CLK", "CE", "RST") for i in range(4)}
    chains = {f"SRI{ab}{i}" for ab in "AB" for i in range(18)}
    used = {"CLK0", "CE0"} if any(regs) else set()
    assert set(pins) & (control | chains) == used
    assert len(pins) == 233 - len(control | chains) + len(used)
    assert pins["SIGNEDA"] == pins["SIGNEDB"] == "1'h1"
    if any(regs):
        assert (pins["CLK0"], pins["CE0"]) == ("clk", "en")
    assert [pins[f"A{i}"] for i in range(16, 18)] == ["1'h0"] * 2           # zero-extended
    assert {pins[f"B{i}"] for i in range(8, 18)} == {"b[8]"}                # sign-extended
    assert " * " not in text


def test_generic_verilog_is_portable():
    text = verilog.convert(Multiplier(input_registers=True, output_register=True), name="mul")
    assert "MULT18X18D" not in text and " * " in text


def test_properties():
    dut = Multiplier(target="ecp5", a_shape=signed(9), b_shape=signed(8), output_register=True)
    assert (dut.target, dut.input_registers, dut.output_register, dut.latency) == \
        ("ecp5", False, True, 1)
    assert dut.p.shape() == signed(17)
    assert Multiplier().p.shape() == signed(36) and Multiplier().latency == 0
    assert Multiplier(a_shape=unsigned(16), b_shape=unsigned(15)).p.shape() == unsigned(31)
    assert Multiplier(a_shape=signed(16), b_shape=unsigned(16)).p.shape() == signed(32)
    assert Multiplier(input_registers=True, output_register=True).latency == 2
    for name in ("target", "input_registers", "output_register", "latency"):
        with pytest.raises(AttributeError):
            setattr(dut, name, 1)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(target="xilinx"), ValueError, "target must be one of 'generic', 'ecp5', not 'xilinx'"),
    (dict(a_shape=signed(19)), ValueError,
     "a_shape must fit an 18-bit signed operand (signed(1) to signed(18) or unsigned(1) to "
     "unsigned(17)), not signed(19)"),
    (dict(b_shape=unsigned(18)), ValueError,
     "b_shape must fit an 18-bit signed operand (signed(1) to signed(18) or unsigned(1) to "
     "unsigned(17)), not unsigned(18)"),
    (dict(b_shape=unsigned(0)), ValueError,
     "b_shape must fit an 18-bit signed operand (signed(1) to signed(18) or unsigned(1) to "
     "unsigned(17)), not unsigned(0)"),
    (dict(a_shape="x"), TypeError, "a_shape must be a shape, not 'x'"),
    (dict(input_registers=1), TypeError, "input_registers must be a bool, not 1"),
    (dict(output_register=None), TypeError, "output_register must be a bool, not None"),
])
def test_parameter_validation(kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        Multiplier(**kwargs)
