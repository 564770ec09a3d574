"""The bulk simulation path (sim.player wrapper, sim.bulk.BulkTB) on Icarus and Verilator.

- The two paths agree: the same layers, no stalls, run through the cocotbext-axi testbench on
  the plain build and through the player on the player build (cocotb clock, and the
  wrapper's own clock), give identical output words and identical cycle counts per layer;
  so does a profile-guided Verilator build (what ``sparsemac bench`` measures).
- Stalls on the player slow a layer and change no word; a layer that cannot complete fails
  with the stalled stream named. (The regression, tests/sim_regression.py, runs the bulk
  path under every idle x backpressure combination.)
- The wrapper's Verilog is lint-clean (Verilator -Wall, Icarus) and its generator rejects
  bad parameters with clear messages.
"""

import json
import subprocess

import pytest
from conftest import require_simulator

from hdl.config import Config
from hdl.generate import generate
from sim import bulk_runner, player, runner, toolchain

CONFIGS = [
    Config(rows=2, cols=3, n=2, m=4, acc_depth=32),
    Config(rows=3, cols=2, n=1, m=4, acc_depth=16, acc_width=16, pipeline=True,
           rounding="single"),
]
CLOCKS = {"cocotb": False, "fast": True}


@pytest.fixture(scope="module")
def build_root(sim_build_root):
    return sim_build_root


def _records(built, run, name):
    path = built.directory / f"{name}.json"
    path.unlink(missing_ok=True)
    run(built, "paths_tb", env={"SPARSEMAC_RECORD": str(path)}, quiet=True)
    return json.loads(path.read_text())


@pytest.mark.sim
@pytest.mark.parametrize("cfg", CONFIGS, ids=runner.config_id)
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_paths_agree(sim, cfg, build_root):
    require_simulator(sim)
    plain = _records(runner.build(sim, cfg, build_root, quiet=True), runner.run, "paths")
    assert plain["path"] == "cocotbext-axi" and plain["checked"] > 0
    # The wrapper's own clock (what every bulk run uses) on both arrays; the cocotb clock on
    # the first (it drives the same wrapper, edge by edge from Python).
    clocks = CLOCKS if cfg == CONFIGS[0] else {"fast": True}
    for clock, internal in clocks.items():
        built = bulk_runner.build(sim, cfg, build_root, quiet=True, internal_clock=internal)
        bulk = _records(built, runner.run, "paths")
        assert bulk["path"] == "bulk" and bulk["checked"] == plain["checked"]
        assert len(bulk["layers"]) == len(plain["layers"])
        for a, b in zip(plain["layers"], bulk["layers"]):
            assert a["label"] == b["label"]
            assert a["words"] == b["words"], f"{sim}, {clock} clock, {a['label']}: words differ"
            assert a["cycles"] == b["cycles"], (
                f"{sim}, {clock} clock, {a['label']}: {a['cycles']} cycles with cocotbext-axi, "
                f"{b['cycles']} with the player")


@pytest.mark.sim
def test_profile_guided_build(build_root):
    """A profile-guided Verilator build: trained (a profile recorded), compiled from that
    profile, it gives the cocotbext-axi path's words and cycles; built again, it is reused
    as it is."""
    require_simulator("verilator")
    cfg = CONFIGS[0]
    plain = _records(runner.build("verilator", cfg, build_root, quiet=True), runner.run,
                     "paths")
    built = bulk_runner.build("verilator", cfg, build_root, quiet=True, internal_clock=True,
                              pgo=True)
    sim_dir = built.directory / "sim"
    assert sorted(p.name for p in sim_dir.glob("Vtop*.gcda")), \
        "the training run recorded no profile"
    stamp = json.loads((built.directory / "build_args.json").read_text())
    assert stamp[-len(bulk_runner.PGO_USE):] == bulk_runner.PGO_USE
    assert "-fprofile-use" in (sim_dir / "Vtop.mk").read_text()
    pgo = _records(built, runner.run, "paths")
    assert pgo["checked"] == plain["checked"] > 0
    assert [(a["words"], a["cycles"]) for a in pgo["layers"]] == \
        [(a["words"], a["cycles"]) for a in plain["layers"]]
    exe = sim_dir / bulk_runner.TOPLEVEL
    before = exe.stat().st_mtime_ns
    again = bulk_runner.build("verilator", cfg, build_root, quiet=True, internal_clock=True,
                              pgo=True)
    assert again.directory == built.directory and exe.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="a profile-guided build needs verilator, not 'icarus'"):
        bulk_runner.build("icarus", cfg, build_root, pgo=True)


@pytest.mark.sim
@pytest.mark.parametrize("clock", CLOCKS)
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_player_stalls_and_timeouts(sim, clock, build_root):
    """Stalls slow a layer down and change no word; a layer that cannot complete times out
    naming the stream the accelerator waits on (sim/bulk_tb.py)."""
    require_simulator(sim)
    built = bulk_runner.build(sim, CONFIGS[0], build_root, quiet=True,
                              internal_clock=CLOCKS[clock])
    results = runner.run(built, "bulk_tb", quiet=True).read_text()
    assert results.count("<testcase") == 3          # measure is skipped without workloads


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    out = tmp_path_factory.mktemp("player_rtl")
    generate(CONFIGS[0], out, "sparsemac")
    return out, json.loads((out / "sparsemac.json").read_text())


def test_player_rejects_bad_parameters(manifest):
    _, m = manifest
    with pytest.raises(TypeError, match="Depth of act must be an integer, not 1.5"):
        player.player_verilog(m, depths={"act": 1.5})
    with pytest.raises(ValueError, match="Depth of out must be between 1 and 2\\^30 words, not 0"):
        player.player_verilog(m, depths={"out": 0})
    with pytest.raises(ValueError, match="depths has keys act, wgt, qp, out, not 'foo'"):
        player.player_verilog(m, depths={"foo": 4})
    with pytest.raises(ValueError, match="Clock period must be an even number of ns, not 5"):
        player.player_verilog(m, clock_ns=5)
    broken = {**m, "ports": [p for p in m["ports"] if p["name"] != "s_axis_wgt_tlast"]}
    with pytest.raises(ValueError, match="the manifest lacks ports s_axis_wgt_tlast"):
        player.player_verilog(broken)


@pytest.mark.sim
@pytest.mark.parametrize("clock_ns", [None, 10])
def test_player_lint(manifest, clock_ns, tmp_path):
    require_simulator("both")
    rtl, m = manifest
    wrapper = tmp_path / f"{player.NAME}.v"
    wrapper.write_text(player.player_verilog(m, clock_ns=clock_ns))
    timing = [] if clock_ns is None else ["--timing"]
    # No waiver: the shipped one covers the generated Verilog; the wrapper needs none.
    lint = subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-fatal", *timing,
                           "--top-module", player.NAME, str(rtl / "sparsemac.v"), str(wrapper)],
                          capture_output=True, text=True)
    ours = [line for line in lint.stderr.splitlines()
            if line.startswith("%") and f"{player.NAME}.v:" in line]
    assert lint.returncode == 0 and not ours, "\n".join(ours) or lint.stderr[-3000:]
    icarus = subprocess.run(["iverilog", "-o", str(tmp_path / "a.out"), str(rtl / "sparsemac.v"),
                             str(wrapper)], capture_output=True, text=True)
    assert icarus.returncode == 0, icarus.stderr[-3000:]
