"""The I/O wrapper of explore/wrapper.py: its Verilog around a real generated array passes
Verilator's lint and Icarus, every input bit of the array is driven by its own chain register
and every output bit reaches ``dout`` on its own (an Icarus run around a stub of the array's
ports), and bad port lists are refused with clear messages. (The wrapped array placed and
routed on iCE40 is in tests/test_explore.py.)"""

import json
import re
import subprocess

import pytest
from conftest import require_simulator

from explore.wrapper import IO_PINS, cost, layout, wrap
from hdl.config import Config
from hdl.generate import generate

CONFIG = Config(rows=2, cols=2, n=1, m=1, acc_depth=16)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The 2x2 dense array's files (Verilog, manifest, waiver), generated once."""
    out = tmp_path_factory.mktemp("gen")
    generate(CONFIG, out, "sparsemac")
    return out


@pytest.fixture(scope="module")
def ports(generated):
    """The manifest's port list."""
    return json.loads((generated / "sparsemac.json").read_text())["ports"]


def test_layout_and_cost_of_a_real_manifest(ports):
    bits = layout(ports)
    widths = {p["name"]: p["width"] for p in ports}
    n_in = sum(p["width"] for p in ports if p["direction"] == "input" and p["name"] != "aclk")
    n_out = sum(p["width"] for p in ports if p["direction"] == "output")
    assert (n_in, n_out) == (179, 63)
    assert cost(ports) == {"FF": 242, "LUT": 63, "input_bits": 179, "output_bits": 63}
    # The manifest's order, least significant bit first; the clock is not in the chain.
    assert bits["inputs"][:3] == [("aresetn", 0), ("s_axis_act_tdata", 0),
                                  ("s_axis_act_tdata", 1)]
    assert bits["inputs"][-1] == ("s_axil_rready", 0)
    assert bits["outputs"][:2] == [("s_axis_act_tready", 0), ("s_axis_wgt_tready", 0)]
    assert bits["outputs"][-1] == ("irq", 0)
    for direction in ("inputs", "outputs"):
        seen = bits[direction]
        assert len(set(seen)) == len(seen)
        for name in {n for n, _ in seen}:
            assert sorted(b for n, b in seen if n == name) == list(range(widths[name]))
    text = wrap(ports)
    assert "module sparsemac_wrapped (" in text and "  sparsemac u_array (" in text
    for port in ports:   # every port connected once, to its slice
        assert len(re.findall(rf"\.{port['name']}\(", text)) == 1, port["name"]
    assert ".aclk(aclk)" in text and ".aresetn(chain[0])" in text
    assert ".s_axis_act_tdata(chain[16:1])" in text and ".irq(outs[62])" in text
    assert "chain <= {chain[177:0], din};" in text
    assert "sig <= {sig[61:0], 1'b0} ^ outs;" in text and "assign dout = sig[62];" in text


def test_wrapper_around_the_array_lints_and_compiles(generated, ports, tmp_path):
    require_simulator("verilator")
    require_simulator("iverilog")
    (tmp_path / "wrapped.v").write_text(wrap(ports))
    files = [str(generated / "sparsemac.v"), str(tmp_path / "wrapped.v")]
    verilator = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module",
                                "sparsemac_wrapped", str(generated / "sparsemac.vlt"), *files],
                               capture_output=True, text=True, timeout=300)
    assert verilator.returncode == 0 and "%Warning" not in verilator.stderr, verilator.stderr
    icarus = subprocess.run(["iverilog", "-s", "sparsemac_wrapped", "-o",
                             str(tmp_path / "a.out"), *files],
                            capture_output=True, text=True, timeout=300)
    assert icarus.returncode == 0, icarus.stderr


def _stub(ports):
    """A module ``stub`` with the array's ports: its inputs gathered (in the wrapper's order)
    into ``in_bits``, its outputs driven from the testbench's ``tb.out_bits``."""
    bits = layout(ports)
    widths = {p["name"]: p["width"] for p in ports}

    def bit(name, b):
        return name if widths[name] == 1 else f"{name}[{b}]"

    lines = [f"module stub({', '.join(p['name'] for p in ports)});"]
    for p in ports:
        width = "" if p["width"] == 1 else f" [{p['width'] - 1}:0]"
        lines.append(f"  {p['direction']} wire{width} {p['name']};")
    gathered = ", ".join(bit(name, b) for name, b in reversed(bits["inputs"]))
    lines.append(f"  wire [{len(bits['inputs']) - 1}:0] in_bits = {{{gathered}}};")
    for k, (name, b) in enumerate(bits["outputs"]):
        lines.append(f"  assign {bit(name, b)} = tb.out_bits[{k}];")
    return "\n".join([*lines, "endmodule", ""])


TESTBENCH = """\
module tb;
  localparam NI = {n_in}, NO = {n_out};
  reg aclk = 0, din = 0;
  reg [NO-1:0] out_bits = 0;
  wire dout;
  integer t, k;
  wrapped dut(.aclk(aclk), .din(din), .dout(dout));
  task tick; begin #1 aclk = 1; #1 aclk = 0; end endtask
  initial begin
    // Inputs: one 1 walks down the chain: cycle t, only the array's input bit t is 1.
    for (t = 0; t < NI; t = t + 1) tick;
    din = 1; tick; din = 0;
    for (t = 0; t < NI; t = t + 1) begin
      $display("in %0d %b", t, dut.u_array.in_bits);
      tick;
    end
    // Outputs: output bit k high for one clock; dout watched for NO clocks after it.
    for (k = 0; k < NO; k = k + 1) begin
      out_bits = 0;
      for (t = 0; t < NO; t = t + 1) tick;
      out_bits[k] = 1; tick; out_bits = 0;
      $write("out %0d ", k);
      for (t = 0; t < NO; t = t + 1) begin $write("%b", dout); tick; end
      $display("");
    end
    $finish;
  end
endmodule
"""


def test_every_input_bit_has_its_register_and_every_output_bit_reaches_dout(ports, tmp_path):
    """Around a stub of the array: a single 1 shifted in through ``din`` reaches input bit
    ``t`` of the array (and no other) on the ``t``-th clock after it entered, and a pulse on
    output bit ``k`` alone shows at ``dout`` exactly ``NO - 1 - k`` clocks later, once: a
    change of any one output bit changes what the wrapper puts out."""
    require_simulator("iverilog")
    n_in, n_out = cost(ports)["input_bits"], cost(ports)["output_bits"]
    (tmp_path / "tb.v").write_text(_stub(ports) + wrap(ports, module="stub", top="wrapped")
                                   + TESTBENCH.format(n_in=n_in, n_out=n_out))
    build = subprocess.run(["iverilog", "-o", str(tmp_path / "tb.vvp"), "-s", "tb",
                            str(tmp_path / "tb.v")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    run = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    seen_in, seen_out = {}, {}
    for line in run.stdout.splitlines():
        kind, index, value = (line.split() + ["", "", ""])[:3]
        if kind in ("in", "out"):
            (seen_in if kind == "in" else seen_out)[int(index)] = value
    assert sorted(seen_in) == list(range(n_in)) and sorted(seen_out) == list(range(n_out))
    for t, value in seen_in.items():   # in_bits printed most significant bit first
        assert value == "".join("1" if b == t else "0" for b in reversed(range(n_in))), t
    for k, value in seen_out.items():  # dout on the NO clocks after the pulse's clock
        assert value == "".join("1" if c == n_out - 1 - k else "0" for c in range(n_out)), k


def _port(name, direction="input", width=1):
    return {"name": name, "direction": direction, "width": width}


GOOD = [_port("aclk"), _port("a", width=4), _port("y", "output", 2)]


def test_a_tiny_port_list():
    """One-bit chain and signature: the shift statements without a part-select."""
    text = wrap([_port("aclk"), _port("a"), _port("y", "output")], module="m", top="w")
    assert "chain <= din;" in text and "sig <= outs;" in text
    assert ".a(chain[0])" in text and ".y(outs[0])" in text and "assign dout = sig[0];" in text
    assert layout(GOOD) == {"inputs": [("a", b) for b in range(4)],
                            "outputs": [("y", 0), ("y", 1)]}
    assert cost(GOOD, clock="aclk") == {"FF": 6, "LUT": 2, "input_bits": 4, "output_bits": 2}
    assert IO_PINS == ("din", "dout")


@pytest.mark.parametrize("ports, kwargs, exc, message", [
    ({"aclk": 1}, {}, TypeError, "ports must be a list of the manifest's port dicts, not dict"),
    ([*GOOD, "x"], {}, TypeError,
     "ports[3] must be a dict with name, direction and width, not str"),
    ([*GOOD, {"name": "x"}], {}, ValueError,
     "ports[3] must have name, direction and width, not ['name'] (missing direction, width)"),
    ([*GOOD, _port("x y")], {}, ValueError,
     "ports[3]: name must be a Verilog identifier, not 'x y'"),
    ([*GOOD, _port("din")], {}, ValueError,
     "ports[3]: name 'din' is one of the wrapper's own pins"),
    ([*GOOD, _port("a")], {}, ValueError, "ports[3]: name 'a' appears twice"),
    ([*GOOD, _port("x", "inout")], {}, ValueError,
     "ports[3] (x): direction must be 'input' or 'output', not 'inout'"),
    ([*GOOD, _port("x", width=0)], {}, ValueError,
     "ports[3] (x): width must be a positive integer, not 0"),
    ([*GOOD, _port("x", width=True)], {}, ValueError,
     "ports[3] (x): width must be a positive integer, not True"),
    (GOOD[1:], {}, ValueError, "ports must have the clock 'aclk' as a 1-bit input"),
    ([_port("aclk", width=2), *GOOD[1:]], {}, ValueError,
     "ports must have the clock 'aclk' as a 1-bit input"),
    (GOOD, {"clock": "clk"}, ValueError, "ports must have the clock 'clk' as a 1-bit input"),
    ([GOOD[0], GOOD[2]], {}, ValueError,
     "ports must have at least one input besides the clock"),
    (GOOD[:2], {}, ValueError, "ports must have at least one output"),
    (GOOD, {"module": "9x"}, ValueError, "module must be a Verilog identifier, not '9x'"),
    (GOOD, {"module": "m", "top": "m"}, ValueError,
     "top must be a Verilog identifier other than 'm', not 'm'"),
])
def test_bad_port_lists(ports, kwargs, exc, message):
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        wrap(ports, **kwargs)
