"""Open-tool synthesis and place and route (sim/synth.py) on a small generated array."""

import re

import pytest

from explore.synth import DEVICES, ToolError, fit, place_and_route, synthesize
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
    """The non-default options (the explore sweep test runs the defaults, speed 6, router1)."""
    result = place_and_route(ecp5["netlist"], "ecp5-25k", workdir=tmp_path, label="2x2 2:4",
                             speed=8, router="router2")
    assert result["fmax_mhz"] > 0 and result["speed"] == 8
    assert " -> " in result["critical_path"]
    assert result["utilisation"]["MULT18X18D"] == {"used": ecp5["MULT18X18D"],
                                                   "available": 28}
    assert result["utilisation"]["TRELLIS_FF"]["used"] == ecp5["FF"]
    assert "nextpnr" in result["tool"]


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
    with pytest.raises(ValueError, match=re.escape(
            "Family must be one of ecp5, ice40, xilinx, not 'gowin'")):
        synthesize(tmp_path / "x.v", "x", "gowin", workdir=tmp_path)


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
