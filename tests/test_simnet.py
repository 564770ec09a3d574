"""The simulation-only netlist (sim.simnet) is the generated design, bit- and cycle-exact.

- Side by side: the generated Verilog and its simulation netlist (the Icarus form, and the
  Yosys-only form used for Verilator) run in one Icarus simulation under the same random
  stimulus on every input (random valid/ready, AXI4-Lite writes to the layer registers and
  START, resets, X data during the first reset); every output port is compared with !==
  after every clock edge. The stimulus is checked to have done something (words in and
  out, register writes, finished layers).
- The check can fail: a netlist with one bit flipped in one statement, or one reset value
  changed, is caught.
- The rewrite itself: dependency order, combinational cycles left as continuous assigns,
  inlining by size cast, the ports unchanged.
"""

import json
import re
import subprocess

import pytest
from conftest import require_simulator

from hdl.config import Config
from hdl.generate import generate
from sim import runner, simnet

CONFIGS = [
    Config(rows=2, cols=3, n=2, m=4, acc_depth=32),
    Config(rows=3, cols=2, n=1, m=4, acc_depth=16, acc_width=16, pipeline=True,
           rounding="single"),
    Config(rows=2, cols=2, n=1, m=1, acc_depth=16),
    Config(rows=2, cols=4, n=2, m=8, acc_depth=16, mult="lut"),
]
CYCLES = 20_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """config id -> (Verilog text, manifest, folder)."""
    root = tmp_path_factory.mktemp("simnet")
    out = {}
    for cfg in CONFIGS:
        folder = root / runner.config_id(cfg)
        generate(cfg, folder, "sparsemac")
        out[runner.config_id(cfg)] = ((folder / "sparsemac.v").read_text(),
                                      json.loads((folder / "sparsemac.json").read_text()),
                                      folder)
    return out


def _ports(text, top="sparsemac"):
    """(name, direction, width) of ``top``'s ports, in header order."""
    module = re.search(rf"^module {top}\((.*?)\);(.*?)^endmodule", text, re.S | re.M)
    names = [n.strip() for n in module.group(1).replace("\n", " ").split(",")]
    decls = {m.group(3): (m.group(1), int(m.group(2) or 0) + 1) for m in re.finditer(
        r"^  (input|output) (?:\[(\d+):0\] )?(\S+);", module.group(2), re.M)}
    return [(n, *decls[n]) for n in names]


@pytest.mark.sim
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=runner.config_id)
def test_equivalent(cfg, simulator, generated):
    require_simulator("iverilog")
    text, manifest, folder = generated[runner.config_id(cfg)]
    new = simnet.simulation_netlist(text, workdir=folder / f"y_{simulator}",
                                    simulator=simulator)
    assert _ports(new) == _ports(text)
    assert new.count("\nmodule ") + new.startswith("module ") == 1     # one flat module
    if simulator == "icarus":
        assert "always @* begin" in new and "assign" not in new.split("always @* begin")[1]
    result = simnet.check_equivalence(text, new, manifest, workdir=folder / f"eq_{simulator}",
                                      cycles=CYCLES, seed=7)
    assert result["cycles"] == CYCLES
    assert result["mismatches"] == 0, result["first"]
    # The stimulus did something: words in and out, register writes, layers that ended
    # (most in a fault, as its streams do not know a layer's length, then a drain: 60-90
    # results and 1,200-1,500 input words in 20,000 cycles on these arrays).
    assert result["out_words"] > 30 and result["in_words"] > 600, result
    assert result["axil_writes"] > 50 and result["irqs"] >= 10, result


def _mutate_comb(text, pattern):
    """Flip the lowest bit of the first statement of the combinational block whose target
    matches ``pattern``."""
    lines = text.split("\n")
    start = lines.index("  always @* begin")
    for i in range(start + 2, len(lines)):
        lhs, _, rhs = lines[i].partition(" = ")
        if re.search(pattern, lhs):
            lines[i] = f"{lhs} = ({rhs.rstrip(';')}) ^ 1'b1;"
            return "\n".join(lines)
    raise AssertionError(f"no statement assigns {pattern}")


@pytest.mark.sim
def test_a_mutation_is_caught(generated):
    require_simulator("iverilog")
    cfg = CONFIGS[0]
    text, manifest, folder = generated[runner.config_id(cfg)]
    new = simnet.simulation_netlist(text, workdir=folder / "y_mut")
    mutants = {
        # The PE's partial sum (its low bit flipped): every bit of it reaches an output (the
        # first statement of a PE may set a bit nothing reads, such as its unused valid flag).
        "array": _mutate_comb(new, r"engine\.array\.pe_0_0\.p_reg"),
        "requant": _mutate_comb(new, r"engine\.requant"),
        "reset value": new.replace("\\engine.cycles  <= 32'd0;", "\\engine.cycles  <= 32'd1;",
                                   1),
    }
    assert mutants["reset value"] != new
    plain = simnet.simulation_netlist(text, workdir=folder / "y_mut_v", simulator="verilator")
    # An assign of the Yosys netlist: the first one whose right side is an addition.
    m = re.search(r"^  assign (.*) = (.* \+ .*);$", plain, re.M)
    mutants["assign"] = plain.replace(m.group(0), f"  assign {m.group(1)} = ({m.group(2)}) "
                                                  "^ 1'b1;", 1)
    for name, mutant in mutants.items():
        result = simnet.check_equivalence(text, mutant, manifest, workdir=folder / "eq_mut",
                                          cycles=CYCLES, seed=7, stop_on_mismatch=True)
        assert result["mismatches"] > 0, f"the {name} mutation went unnoticed"
        assert result["cycles"] < CYCLES, result       # it stopped at the first one
        assert result["first"][0].startswith("SIMNET_MISMATCH ")


NETLIST = """module t(a, b, clk, y, z);
  input [3:0] a;
  wire [3:0] a;
  input [3:0] b;
  wire [3:0] b;
  input clk;
  wire clk;
  output [4:0] y;
  wire [4:0] y;
  output [3:0] z;
  reg [3:0] z = 4'h0;
  wire [4:0] _0_;
  wire [4:0] _1_;
  wire [7:0] loop;
  always @(posedge clk)
    if (!a[0]) z <= 4'h0;
    else z <= _1_[3:0];
  assign y = _0_ + 1'h1;
  assign _1_ = { loop[0], loop[7:4] } + b;
  assign _0_ = a + b;
  assign loop[7:4] = loop[3:0] ^ a;
  assign loop[3:0] = { loop[6:4], b[0] };
endmodule
"""


def test_procedural_rewrite():
    out = simnet.procedural(NETLIST)
    comb = out.split("  always @* begin\n")[1].split("\n  end")[0].split("\n")
    # dependency order; _0_ (one reader) is computed inside y's statement with its width
    assert comb[0].strip() == f"if ({simnet.KICK}) begin end"
    assert "  wire [4:0] _0_;" not in out and "  reg [4:0] y;" in out
    assert "y = $unsigned(5'(a + b)) + 1'h1;" in out
    # _1_ is read by the flip-flop only: computed there, through its select
    assert "z <= $unsigned(4'($unsigned(5'({ loop[0], loop[7:4] } + b))));" in out
    # loop[7:4] and loop[3:0] feed each other at the bit level: left as continuous assigns
    assert "  assign loop[7:4] = loop[3:0] ^ a;" in out
    assert "  assign loop[3:0] = { loop[6:4], b[0] };" in out
    assert f"  initial #0 {simnet.KICK} = 1'b1;" in out
    assert len(comb) == 2


def test_procedural_rejects_what_it_does_not_know():
    with pytest.raises(simnet.SimnetError, match="one module"):
        simnet.procedural(NETLIST + NETLIST.replace("module t(", "module u("))
    with pytest.raises(simnet.SimnetError, match="already uses"):
        simnet.procedural(NETLIST.replace("loop", simnet.KICK))
    with pytest.raises(ValueError, match="simulator"):
        simnet.simulation_netlist("", workdir=".", simulator="xcelium")


def test_compact_concats():
    assert simnet.compact_concats(r"{ \a [3], \a [3], \a [3], b[1:0] }") == \
        r"{ {3{\a [3]}}, b[1:0] }"
    assert simnet.compact_concats("{ x, y }") == "{ x, y }"


@pytest.mark.sim
def test_verilator_lints_the_netlists(generated):
    require_simulator("verilator")
    text, _, folder = generated[runner.config_id(CONFIGS[0])]
    for simulator in ("verilator", "icarus"):
        path = folder / f"lint_{simulator}.v"
        path.write_text(simnet.simulation_netlist(text, workdir=folder / f"y_l{simulator}",
                                                  simulator=simulator))
        proc = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "-Wno-WIDTH",
                               "-Wno-CASEOVERLAP", "-Wno-STMTDLY", "--top-module",
                               "sparsemac", str(path)], capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
