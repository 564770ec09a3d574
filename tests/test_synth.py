"""Open-tool synthesis and place and route (sim/synth.py) on a small generated array."""

import json
import re
from pathlib import Path

import pytest

from explore import synth
from explore.synth import (
    DEVICES,
    NoFitError,
    ToolError,
    _critical_text,
    _overflow,
    fit,
    parse_critical_path,
    place_and_route,
    synthesize,
)
from hdl.config import Config
from hdl.generate import generate

COUNTER = """\
module counter(input clk, output [7:0] q);
  reg [7:0] r = 0;
  always @(posedge clk) r <= r + 1;
  assign q = r;
endmodule
"""


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    """The 2x2 2:4 array (16-row accumulator), generated once."""
    out = tmp_path_factory.mktemp("gen")
    generate(Config(rows=2, cols=2, n=2, m=4, acc_depth=16), out, "sparsemac")
    return out / "sparsemac.v"


@pytest.fixture(scope="module")
def ecp5(design, tmp_path_factory):
    return synthesize(design, "sparsemac", "ecp5", workdir=tmp_path_factory.mktemp("ecp5"))


def test_ecp5_resources(ecp5):
    assert ecp5["family"] == "ecp5" and ecp5["top"] == "sparsemac"
    assert ecp5["tool"].startswith("Yosys 0.")
    for key in ("LUT4", "FF", "MULT18X18D", "ALU54B", "DP16KD", "CCU2C", "TRELLIS_DPR16X4"):
        assert isinstance(ecp5[key], int), key
    # 4 PEs x 2 multipliers, plus the requantization multiplies of 2 columns, map to DSPs.
    assert ecp5["MULT18X18D"] > 8
    assert ecp5["LUT4"] > 0 and ecp5["FF"] > 0
    cells = ecp5["cells"]
    assert ecp5["FF"] == cells["TRELLIS_FF"]
    assert ecp5["LUT4"] == (cells["LUT4"] + 2 * cells.get("CCU2C", 0)
                            + 4 * cells.get("TRELLIS_DPR16X4", 0))
    assert ecp5["netlist"].endswith("sparsemac.json")
    assert fit(ecp5, "ecp5-25k") is None


def test_ecp5_place_and_route(ecp5, tmp_path):
    """The non-default options (the explore sweep test runs the defaults, speed 6, router1),
    and the critical path as figures: logic and routing add up to the total (each rounded to
    the picosecond), the path is the Fmax's (its delay is the clock period), and the slowest
    net is one of its routing hops."""
    result = place_and_route(ecp5["netlist"], "ecp5-25k", workdir=tmp_path, label="2x2 2:4",
                             speed=8, router="router2")
    assert result["fmax_mhz"] > 0 and result["speed"] == 8
    path = result["critical"]
    assert set(path) == {"from", "to", "ns", "logic_ns", "routing_ns", "logic_cells", "net",
                         "net_ns"}
    assert re.fullmatch(r"\S+\.\w+", path["from"]) and re.fullmatch(r"\S+\.\w+", path["to"])
    assert path["logic_ns"] > 0 and path["routing_ns"] > 0
    assert path["logic_ns"] + path["routing_ns"] == pytest.approx(path["ns"], abs=0.0015)
    assert path["ns"] == pytest.approx(1000 / result["fmax_mhz"], rel=0.02)
    assert path["net"] and 0 < path["net_ns"] <= path["routing_ns"]
    report = (tmp_path / "report.json").read_text()
    assert f'"net": "{path["net"]}"' in report
    assert result["critical_path"] == _critical_text(path)
    assert result["critical_path"].startswith(f"{path['from']} -> {path['to']} (")
    assert f"logic {path['logic_ns']:.2f} ns, routing {path['routing_ns']:.2f} ns" in (
        result["critical_path"])
    assert result["utilisation"]["MULT18X18D"] == {"used": ecp5["MULT18X18D"],
                                                   "available": 28}
    assert result["utilisation"]["TRELLIS_FF"]["used"] == ecp5["FF"]
    assert "nextpnr" in result["tool"]


MULTIPLIER = """\
module mult(input clk, input [15:0] a, input [15:0] b, output reg [31:0] p);
  always @(posedge clk) p <= a * b;
endmodule
"""


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_synthesis_without_autoname_maps_the_same_cells(design, ecp5, family, tmp_path):
    """``names=False`` skips only ``autoname``: same cells, a netlist nextpnr can read."""
    named = ecp5 if family == "ecp5" else synthesize(design, "sparsemac", family,
                                                     workdir=tmp_path / "named")
    plain = synthesize(design, "sparsemac", family, workdir=tmp_path / "plain", names=False)
    assert plain["cells"] == named["cells"]
    log = (tmp_path / "plain" / "yosys.log").read_text()
    assert "Executing AUTONAME pass" not in log and "Executing CHECK pass" in log
    netlist = json.loads(Path(plain["netlist"]).read_text())
    assert "sparsemac" in netlist["modules"]
    if family == "ecp5":
        assert "Executing AUTONAME pass" in (Path(named["netlist"]).parent
                                             / "yosys.log").read_text()


def test_a_device_without_dsp_blocks_gets_lut_multipliers(tmp_path):
    """synth_ice40 -dsp maps a multiplier to SB_MAC16 whatever the part; the HX8K has none,
    so synthesized for it, the multiplier is LUTs."""
    (tmp_path / "mult.v").write_text(MULTIPLIER)
    family = synthesize(tmp_path / "mult.v", "mult", "ice40", workdir=tmp_path / "a")
    up5k = synthesize(tmp_path / "mult.v", "mult", "ice40", workdir=tmp_path / "b",
                      device="ice40-up5k")
    hx8k = synthesize(tmp_path / "mult.v", "mult", "ice40", workdir=tmp_path / "c",
                      device="ice40-hx8k")
    assert family["SB_MAC16"] == up5k["SB_MAC16"] == 1
    assert hx8k["SB_MAC16"] == 0 and hx8k["LUT"] > 100 + up5k["LUT"]
    assert fit(hx8k, "ice40-hx8k") is None


def test_ice40_and_xilinx(design, tmp_path):
    ice40 = synthesize(design, "sparsemac", "ice40", workdir=tmp_path / "ice40")
    assert {"LUT", "FF", "SB_MAC16", "BRAM"} <= ice40.keys()
    assert ice40["LUT"] > 0 and ice40["FF"] > 0 and ice40["SB_MAC16"] > 0
    assert ice40["netlist"].endswith("sparsemac.json")
    xilinx = synthesize(design, "sparsemac", "xilinx", workdir=tmp_path / "xilinx")
    assert {"LUT", "FF", "DSP48E1", "BRAM"} <= xilinx.keys()
    assert xilinx["LUT"] > 0 and xilinx["FF"] > 0 and xilinx["DSP48E1"] > 0
    assert xilinx["netlist"] is None
    assert not any(name.startswith("sparsemac") for name in xilinx["cells"])


def test_ice40_place_and_route(tmp_path):
    (tmp_path / "counter.v").write_text(COUNTER)
    res = synthesize(tmp_path / "counter.v", "counter", "ice40", workdir=tmp_path / "syn")
    assert fit(res, "ice40-up5k") is None
    result = place_and_route(res["netlist"], "ice40-up5k", workdir=tmp_path / "pnr",
                             clock="clk")
    assert result["fmax_mhz"] > 0
    assert result["utilisation"]["ICESTORM_LC"]["used"] > 0
    # The clock is named after its pad and global buffer; its register-to-register path.
    assert result["critical"]["ns"] == pytest.approx(1000 / result["fmax_mhz"], rel=0.02)
    assert result["critical"]["from"].startswith("r_")


WIDE = """\
module wide(input clk, output [47:0] q);
  reg [47:0] r = 0;
  always @(posedge clk) r <= r + 1;
  assign q = r;
endmodule
"""


def test_more_ports_than_pins_is_a_no_fit(tmp_path):
    """49 pins on the UP5K's 39 (what an unwrapped array meets on iCE40): nextpnr's own
    count, as a NoFitError (a ToolError)."""
    (tmp_path / "wide.v").write_text(WIDE)
    res = synthesize(tmp_path / "wide.v", "wide", "ice40", workdir=tmp_path / "syn")
    assert fit(res, "ice40-up5k") is None
    with pytest.raises(NoFitError, match=r"^does not fit ice40-up5k after packing: needs 49 "
                                         r"of 39 SB_IO$"):
        place_and_route(res["netlist"], "ice40-up5k", workdir=tmp_path / "pnr", clock="clk")
    assert issubclass(NoFitError, ToolError)


def test_overflow_in_nextpnrs_log():
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:    6527/   5280   123%\n"
           "Info: \t        ICESTORM_RAM:       6/     30    20%\n"
           "Info: \t        ICESTORM_DSP:       8/      8   100%\n")
    assert _overflow(log, "ice40-up5k") == ("does not fit ice40-up5k after packing: needs "
                                            "6527 of 5280 ICESTORM_LC")
    assert _overflow(log.replace("6527", "5280"), "ice40-up5k") is None
    assert _overflow("ERROR: something else\n", "ice40-up5k") is None


def _hop(kind, start, end, delay, net=None):
    hop = {"type": kind, "delay": delay,
           "from": {"cell": start[0], "port": start[1], "loc": [1, 2]},
           "to": {"cell": end[0], "port": end[1], "loc": [3, 4]}}
    return hop if net is None else {**hop, "net": net}


#: A report of nextpnr's shape: an input path first, then the clock's own path.
REPORT = {
    "fmax": {"aclk": {"achieved": 172.4, "constraint": 150}},
    "critical_paths": [
        {"from": "<async>", "to": "posedge aclk", "path": [
            _hop("source", ("pad", "O"), ("pad", "O"), 0.2),
            _hop("routing", ("pad", "O"), ("r0", "D"), 2.1, net="din"),
            _hop("setup", ("r0", "D"), ("r0", "D"), 0.13)]},
        {"from": "posedge aclk", "to": "posedge aclk", "path": [
            _hop("clk-to-q", ("sel_reg", "Q"), ("sel_reg", "Q"), 0.52),
            _hop("routing", ("sel_reg", "Q"), ("lut1", "A"), 1.25, net="sel"),
            _hop("logic", ("lut1", "A"), ("lut1", "Z"), 0.4),
            _hop("routing", ("lut1", "Z"), ("lut2", "B"), 3.5, net="bank_mux"),
            _hop("logic", ("lut2", "B"), ("lut2", "Z"), 0.4),
            _hop("routing", ("lut2", "Z"), ("acc", "D"), 0.0, net="acc_d"),
            _hop("setup", ("acc", "D"), ("acc", "D"), 0.13)]},
    ],
}


def test_parse_critical_path():
    """The clock's register-to-register path (not the first, an input path), its logic
    (clock-to-Q, LUTs, setup) and routing, and its slowest net."""
    path = parse_critical_path(REPORT, "aclk")
    assert path == {"from": "sel_reg.Q", "to": "acc.D", "ns": 6.2, "logic_ns": 1.45,
                    "routing_ns": 4.75, "logic_cells": 2, "net": "bank_mux", "net_ns": 3.5}
    assert _critical_text(path) == ("sel_reg.Q -> acc.D (6.20 ns, 2 logic cells; logic "
                                    "1.45 ns, routing 4.75 ns, largest net bank_mux 3.50 ns)")
    # Without a clock (or one the report does not have), the report's first path.
    first = {"from": "pad.O", "to": "r0.D", "ns": 2.43, "logic_ns": 0.33, "routing_ns": 2.1,
             "logic_cells": 0, "net": "din", "net_ns": 2.1}
    assert parse_critical_path(REPORT) == first
    assert parse_critical_path(REPORT, "clk") == first
    # A path of logic only has no slowest net.
    alone = {"critical_paths": [{"path": [_hop("logic", ("a", "A"), ("a", "Z"), 0.5)]}]}
    assert parse_critical_path(alone) == {"from": "a.A", "to": "a.Z", "ns": 0.5,
                                          "logic_ns": 0.5, "routing_ns": 0, "logic_cells": 1,
                                          "net": None, "net_ns": None}
    assert _critical_text(parse_critical_path(alone)) == (
        "a.A -> a.Z (0.50 ns, 1 logic cells; logic 0.50 ns, routing 0.00 ns)")
    assert parse_critical_path({"fmax": {}}) is None
    assert parse_critical_path({"critical_paths": []}) is None
    assert _critical_text(None) is None
    with pytest.raises(ValueError, match="^A critical path must have at least one hop, not "
                                         "none$"):
        parse_critical_path({"critical_paths": [{"path": []}]})
    bad = {"critical_paths": [{"path": [{**_hop("logic", ("a", "A"), ("a", "Z"), 0.5),
                                         "delay": None}]}]}
    with pytest.raises(ValueError, match="^Hop 0 of the critical path must have a numeric "
                                         "delay, not None$"):
        parse_critical_path(bad)


#: How nextpnr names the bels behind each capacity of DEVICES.
BELS = {"ecp5": {"LUT4": "TRELLIS_COMB", "FF": "TRELLIS_FF", "MULT18X18D": "MULT18X18D",
                 "DP16KD": "DP16KD"},
        "ice40": {"LUT": "ICESTORM_LC", "FF": "ICESTORM_LC", "SB_MAC16": "ICESTORM_DSP",
                  "BRAM": "ICESTORM_RAM"}}


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_device_capacities_match_nextpnr(device, tmp_path):
    """Every capacity that fit() checks is the device's bel count in nextpnr's database."""
    family = DEVICES[device]["family"]
    (tmp_path / "counter.v").write_text(COUNTER)
    res = synthesize(tmp_path / "counter.v", "counter", family, workdir=tmp_path / "syn")
    result = place_and_route(res["netlist"], device, workdir=tmp_path / "pnr", clock="clk")
    want = {key: result["available"].get(bel, 0) for key, bel in BELS[family].items()}
    assert DEVICES[device]["capacity"] == want


def test_fit_messages():
    ecp5 = {"family": "ecp5", "LUT4": 30123, "FF": 99999, "MULT18X18D": 10, "DP16KD": 0}
    assert fit(ecp5, "ecp5-25k") == "does not fit ecp5-25k: needs 30123 of 24288 LUT4"
    assert fit(ecp5, "ecp5-45k") == "does not fit ecp5-45k: needs 99999 of 43848 FF"
    assert fit({**ecp5, "FF": 1, "MULT18X18D": 160}, "ecp5-85k") == (
        "does not fit ecp5-85k: needs 160 of 156 MULT18X18D")
    assert fit({**ecp5, "FF": 1, "DP16KD": 209}, "ecp5-85k") == (
        "does not fit ecp5-85k: needs 209 of 208 DP16KD")
    assert fit({**ecp5, "FF": 1, "DP16KD": 208}, "ecp5-85k") is None
    ice40 = {"family": "ice40", "LUT": 100, "FF": 100, "SB_MAC16": 1, "BRAM": 2}
    assert fit(ice40, "ice40-up5k") is None
    assert fit(ice40, "ice40-hx8k") == "does not fit ice40-hx8k: needs 1 of 0 SB_MAC16"
    with pytest.raises(ValueError, match="Resources are for ice40, not for ecp5-25k"):
        fit(ice40, "ecp5-25k")


def test_unknown_names(tmp_path):
    names = ", ".join(DEVICES)
    message = f"Device must be one of {names}, not 'ecp5-12k'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit({"LUT4": 1}, "ecp5-12k")
    with pytest.raises(ValueError, match=re.escape(message)):
        place_and_route(tmp_path / "x.json", "ecp5-12k", workdir=tmp_path)
    with pytest.raises(ValueError, match="^Speed grade must be one of 6, 7, 8, not 5$"):
        place_and_route(tmp_path / "x.json", "ecp5-25k", workdir=tmp_path, speed=5)
    with pytest.raises(ValueError, match="^Device 'ice40-up5k' has no speed grades, not 8$"):
        place_and_route(tmp_path / "x.json", "ice40-up5k", workdir=tmp_path, speed=8)
    with pytest.raises(ValueError, match="^Router must be one of router1, router2, not 'r3'$"):
        place_and_route(tmp_path / "x.json", "ecp5-25k", workdir=tmp_path, router="r3")
    for bad in ("strong", (40,), (40, 0), (40.0, 4), [40, 4], (True, 4)):
        with pytest.raises(ValueError, match=re.escape(
                "Placer timing must be 'auto', None or two positive integers (weight, "
                f"exponent), not {bad!r}")):
            place_and_route(tmp_path / "x.json", "ecp5-25k", workdir=tmp_path,
                            placer_timing=bad)
    with pytest.raises(ValueError, match=re.escape(
            "Family must be one of ecp5, ice40, xilinx, not 'gowin'")):
        synthesize(tmp_path / "x.v", "x", "gowin", workdir=tmp_path)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        synthesize(tmp_path / "x.v", "x", "ecp5", workdir=tmp_path, device="ecp5-12k")
    with pytest.raises(ValueError, match="^Device 'ecp5-25k' is ecp5, not ice40$"):
        synthesize(tmp_path / "x.v", "x", "ice40", workdir=tmp_path, device="ecp5-25k")


def test_tool_errors(tmp_path):
    (tmp_path / "broken.v").write_text("module broken(input a, output b);\n  assign b = ;\n"
                                       "endmodule\n")
    with pytest.raises(ToolError) as info:
        synthesize(tmp_path / "broken.v", "broken", "ecp5", workdir=tmp_path / "a",
                   label="broken 1x1")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("yosys on broken 1x1 failed (exit 1): broken.v:2: ERROR: ")
    assert "syntax error" in text
    (tmp_path / "ok.v").write_text(COUNTER)
    with pytest.raises(ToolError, match=r"^yosys on counter timed out after 0\.001 s$"):
        synthesize(tmp_path / "ok.v", "counter", "ice40", workdir=tmp_path / "b",
                   timeout=0.001)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ToolError, match=r"^nextpnr-ecp5 on bad\.json failed"):
        place_and_route(tmp_path / "bad.json", "ecp5-25k", workdir=tmp_path / "c")


@pytest.mark.parametrize("device, placer_timing, expected", [
    ("ecp5-25k", "auto", ["--placer-heap-timingweight", "40", "--placer-heap-critexp", "4"]),
    ("ecp5-25k", None, []),
    ("ecp5-25k", (20, 3), ["--placer-heap-timingweight", "20", "--placer-heap-critexp", "3"]),
    ("ice40-up5k", "auto", []),
])
def test_place_and_route_passes_the_placer_timing(monkeypatch, tmp_path, device,
                                                  placer_timing, expected):
    """ECP5 places with the stronger timing weight by default (PLACER_TIMING), iCE40 with
    nextpnr's own; None gives nextpnr's own everywhere, a pair is passed as given."""
    seen = {}

    class Stop(Exception):
        pass

    def run(tool, args, **kwargs):
        seen["args"] = args
        raise Stop

    monkeypatch.setattr(synth, "_run", run)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(Stop):
        place_and_route(tmp_path / "x.json", device, workdir=tmp_path / "pnr",
                        placer_timing=placer_timing)
    args = seen["args"]
    flags = [a for i, a in enumerate(args) if a.startswith("--placer-heap")
             or (i and args[i - 1].startswith("--placer-heap"))]
    assert flags == expected
