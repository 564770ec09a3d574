# amaranth: UnusedElaboratable=no
"""sparsemac generate: lint-clean Verilog on both simulators' front ends, a manifest whose
figures follow from the parameters, byte-identical output, and clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import require_simulator

import golden_model as gm
from hdl.config import Config
from hdl.generate import generate
from host.packing import pack_layer
from sim.lint import LINT_CONFIGS, config_name, lint


@pytest.mark.sim
@pytest.mark.parametrize("cfg", LINT_CONFIGS, ids=config_name)
def test_generated_verilog_is_lint_clean_and_compiles(cfg, tmp_path):
    require_simulator("verilator")
    require_simulator("iverilog")
    problems = lint(cfg, tmp_path)
    assert not problems, problems[:3000]


def test_same_parameters_give_byte_identical_files(tmp_path):
    cfg = Config(rows=2, cols=2, n=1, m=4, acc_depth=16)
    a = generate(cfg, tmp_path / "a", "x")
    b = generate(cfg, tmp_path / "b", "x")
    for fa, fb in zip(a, b):
        assert fa.name == fb.name
        assert fa.read_bytes() == fb.read_bytes()
        assert str(tmp_path).encode() not in fa.read_bytes()


def test_manifest_figures_follow_from_the_parameters(tmp_path):
    cfg = Config(rows=4, cols=3, n=2, m=8)
    generate(cfg, tmp_path, "acc")
    man = json.loads((tmp_path / "acc.json").read_text())
    assert man["parameters"] == {"rows": 4, "cols": 3, "n": 2, "m": 8, "acc_width": 32,
                                 "rounding": "double", "pipeline": False, "acc_depth": 512,
                                 "mult": "dsp", "target": "generic", "sparsity": "2:8"}
    assert man["target"] == "generic" and man["sim_models"] is None
    assert man["peak_macs_per_cycle"] == {"sparse": 4 * 3 * 8, "dense": 4 * 3 * 2}
    assert man["multipliers"]["array"] == 4 * 3 * 2
    assert man["tile"] == {"k_sparse": 32, "k_dense": 8, "n": 3, "max_m_block": 512}
    ports = {p["name"]: p for p in man["ports"]}
    # weights: 3 columns x 2 x (8 + 3 index bits) = 66 bits -> 72-bit TDATA
    assert ports["s_axis_wgt_tdata"]["width"] == 72
    assert ports["s_axis_act_tdata"]["width"] == 4 * 8 * 8
    assert ports["m_axis_out_tdata"]["width"] == 3 * 8
    assert ports["s_axis_qp_tdata"]["width"] == 72
    assert ports["aresetn"]["direction"] == "input" and ports["irq"]["direction"] == "output"
    for name in ("s_axil_awaddr", "s_axil_rdata", "s_axis_act_tready", "m_axis_out_tlast"):
        assert name in ports
    assert {r["name"] for r in man["axi_lite"]["registers"]} >= {"ctrl", "status", "m_rows"}
    assert man["latency_cycles"]["result"] > man["latency_cycles"]["array"] > 0
    core = (tmp_path / "acc.core").read_text()
    assert core.startswith("CAPI=2:\n") and "- acc.v" in core and "toplevel: acc" in core


def test_ecp5_target_ships_the_primitives_models(tmp_path):
    """With ``target="ecp5"`` the Verilog instantiates DP16KD and MULT18X18D (and nothing
    generic does), the models come beside it in one file, and the core lists them for
    simulation and lint, never for synthesis (the default target)."""
    cfg = Config(rows=2, cols=3, n=2, m=4, acc_depth=32, target="ecp5")
    written = generate(cfg, tmp_path / "e", "acc")
    assert sorted(p.name for p in written) == ["acc.core", "acc.json", "acc.v",
                                               "acc.vlt", "acc_ecp5_models.v"]
    text = (tmp_path / "e" / "acc.v").read_text()
    assert "DP16KD" in text and "MULT18X18D" in text
    models = (tmp_path / "e" / "acc_ecp5_models.v").read_text()
    for module in ("MULT18X18D", "DP16KD"):
        assert f"module {module}(" in models
        assert f"module {module}(" not in text
    man = json.loads((tmp_path / "e" / "acc.json").read_text())
    assert man["target"] == "ecp5" and man["sim_models"] == "acc_ecp5_models.v"
    core = (tmp_path / "e" / "acc.core").read_text()
    default = core[core.index("  default:"):core.index("  lint:")]
    assert "sim_models" not in default
    assert "filesets: [rtl, lint_waivers, sim_models]" in core
    assert "  sim:\n    <<: *default\n    filesets: [rtl, sim_models]" in core
    generic = generate(Config(rows=2, cols=3, n=2, m=4, acc_depth=32), tmp_path / "g", "acc")
    text = (tmp_path / "g" / "acc.v").read_text()
    assert len(generic) == 4 and "DP16KD" not in text and "MULT18X18D" not in text


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sparsemac.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_generate_writes_the_four_files(tmp_path):
    out = tmp_path / "gen"
    r = run_cli("generate", "--rows", "2", "--cols", "2", "--sparsity", "1:4",
                "--name", "acc", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["acc.core", "acc.json", "acc.v", "acc.vlt"]


@pytest.mark.parametrize("args, message", [
    (["--rows", "0", "--cols", "2", "--sparsity", "2:4"], "rows must be between 1 and 64, not 0"),
    (["--rows", "2", "--cols", "2", "--sparsity", "3:2"], "N must be at most M (2), not 3"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:6"],
     "M must be a power of two in {1, 2, 4, 8, 16}, not 6"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--acc-width", "12"],
     "acc_width must be between 16 and 32, not 12"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--rounding", "up"],
     "rounding must be one of 'double', 'single', not 'up'"),
    (["--rows", "2", "--cols", "2", "--sparsity", "half"],
     "sparsity must be 'N:M' (e.g. '2:4') or 'dense', not 'half'"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--name", "9x"],
     "Name must be a Verilog identifier (letters, digits, _), not '9x'"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--acc-depth", "100"],
     "acc_depth must be a power of two, not 100"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--target", "xc7"],
     "target must be one of 'generic', 'ecp5', not 'xc7'"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--target", "ecp5", "--acc-depth",
      "32768"], "acc_depth must be at most 16384 with target ecp5 (a DP16KD block holds "
                "16384 x 1 bits), not 32768"),
])
def test_cli_generate_bad_parameters(tmp_path, args, message):
    out = tmp_path / "gen"
    r = run_cli("generate", *args, "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"sparsemac: error: {message}"]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []          # no temporary left behind either


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"rows": 2.0, "cols": 2}, TypeError, "rows must be an integer, not 2.0"),
    ({"rows": 2, "cols": 65}, ValueError, "cols must be between 1 and 64, not 65"),
    ({"rows": 2, "cols": 2, "n": 0}, ValueError, "N must be at least 1, not 0"),
    ({"rows": 2, "cols": 2, "pipeline": 1}, TypeError, "pipeline must be a bool, not 1"),
    ({"rows": 2, "cols": 2, "acc_width": 33}, ValueError,
     "acc_width must be between 16 and 32, not 33"),
    ({"rows": 2, "cols": 2, "acc_depth": 8}, ValueError,
     "acc_depth must be between 16 and 65536, not 8"),
    ({"rows": 2, "cols": 2, "mult": "dsp48"}, ValueError,
     "mult must be one of 'dsp', 'lut', not 'dsp48'"),
    ({"rows": 2, "cols": 2, "target": "ECP5"}, ValueError,
     "target must be one of 'generic', 'ecp5', not 'ECP5'"),
    ({"rows": 2, "cols": 2, "target": "ecp5", "acc_depth": 65536}, ValueError,
     "acc_depth must be at most 16384 with target ecp5 (a DP16KD block holds 16384 x 1 bits), "
     "not 65536"),
])
def test_config_validation(kwargs, exc, message):
    with pytest.raises(exc, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}$"):
        Config(**kwargs)


def test_weights_that_are_not_n_m_are_refused_in_sparse_mode():
    cfg = Config(rows=2, cols=2, n=2, m=4)
    x = np.zeros((3, 8), np.int8)
    w = np.array([[1, 2, 3, 0, 0, 0, 0, 0], [0] * 8], np.int8)
    q = gm.quantize_multiplier(np.array([0.1, 0.1]))
    with pytest.raises(ValueError, match=r"weights are not 2:4 along axis 1: group 0 of row "
                                         r"\(0,\) has 3 non-zeros"):
        pack_layer(cfg, x, w, np.zeros(2, np.int32), *q, sparse=True)
    # The same weights run in the dense fallback.
    assert pack_layer(cfg, x, w, np.zeros(2, np.int32), *q, sparse=False).plan.k_tiles == 2


def test_the_readme_register_map_is_the_generated_one():
    """Every register of hdl.top.REGISTERS is in the README's table at its offset, and the
    table has no other; STATUS names its bits in hdl.top.STATUS's order."""
    from pathlib import Path

    from hdl.top import REGISTERS, STATUS

    text = (Path(__file__).parents[1] / "README.md").read_text()
    table = text[text.index("### Registers"):text.index("### Faults")]
    documented = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) > 2 and cells[0].startswith("0x"):
            offsets, names = cells[0].split(", "), cells[1].split(", ")
            documented.update({n.lower(): int(o, 16) for o, n in zip(offsets, names, strict=True)})
    assert documented == {r.name: r.offset for r in REGISTERS}
    status_row = next(r for r in table.splitlines() if "| STATUS |" in r)
    bits = [f"bit {i} {name.upper()}" for i, name in enumerate(STATUS)]
    positions = [status_row.index(b) for b in bits]
    assert positions == sorted(positions), status_row
