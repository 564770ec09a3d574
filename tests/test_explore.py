"""sparsemac explore: a short real sweep (synthesis, place and route, model, outputs), the
Ray executor on a local Ray instance, and clear failures that do not stop the sweep."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from explore import sweep as explore
from explore.workload import Gemm, Network

pytestmark = pytest.mark.filterwarnings(
    # Ray's own modules warn on import under newer Python packaging; not our code.
    "ignore::DeprecationWarning:ray.*", "ignore::DeprecationWarning:pkg_resources.*")

POINTS = [explore.Point(2, 2, "2:4", "ecp5-25k"),
          explore.Point(2, 2, "2:4", "ice40-up5k")]   # 16 DSPs > 8: no fit
GEMM = Gemm(64, 32, 16)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("explore_cache")


@pytest.fixture(scope="module")
def sweep(cache):
    return explore.run_sweep(POINTS, GEMM, jobs=2, cache_dir=cache, progress=False)


def test_sweep_records(sweep):
    ok, nofit = sweep
    assert ok["status"] == "ok" and ok["error"] is None and ok["speed"] == 6
    # Placed out of context, with its critical path as figures (tests/test_synth.py checks
    # the parser): the path of the Fmax, logic and routing adding up to it.
    assert ok["io"] == "out-of-context"
    assert ok["wrapper_luts"] is None and ok["wrapper_ffs"] is None
    assert ok["critical_ns"] == pytest.approx(1000 / ok["fmax_mhz"], rel=0.02)
    assert ok["critical_logic_ns"] + ok["critical_routing_ns"] == pytest.approx(
        ok["critical_ns"], abs=0.0015)
    assert ok["critical_from"] and ok["critical_to"] and ok["critical_net"]
    assert 0 < ok["critical_net_ns"] <= ok["critical_routing_ns"]
    assert ok["critical_path"].startswith(f"{ok['critical_from']} -> {ok['critical_to']} (")
    assert not {"io", "critical_ns", "fmax_mhz"} & nofit.keys()
    assert ok["fmax_mhz"] > 10 and ok["luts"] > 0 and ok["dsps"] > 0
    assert ok["cycles_sparse"] > 0 and ok["cycles_dense"] > ok["cycles_sparse"]
    assert ok["gops_sparse"] == pytest.approx(2 * 64 * 32 * 16 * ok["fmax_mhz"] * 1e6
                                              / ok["cycles_sparse"] / 1e9)
    assert ok["clock"] == "fmax" and ok["clock_mhz"] == ok["fmax_mhz"]
    assert ok["workload"] == "64x32x16" and ok["workload_kind"] == "gemm"
    assert nofit["status"] == "no-fit"
    assert nofit["error"].startswith("does not fit ice40-up5k: needs ")
    assert "fmax_mhz" not in nofit


def test_cache_is_keyed_by_point_and_tools(sweep, cache):
    again = explore.run_sweep(POINTS, GEMM, jobs=1, cache_dir=cache, progress=False)
    assert [r["cached"] for r in again] == [True, True]
    assert again[0]["fmax_mhz"] == sweep[0]["fmax_mhz"]
    assert len(list(cache.glob("*.json"))) == 2
    versions = explore.tool_versions()
    for other in (explore.Point(2, 2, "2:4", "ecp5-25k", router="router2"),
                  explore.Point(2, 2, "2:4", "ecp5-25k", pnr=False),
                  explore.Point(2, 4, "2:4", "ecp5-25k")):
        assert explore._key(other, versions) != explore._key(POINTS[0], versions)
    # The hardware does not depend on the workload: another one reuses the cached point,
    # its figures computed anew.
    other = explore.run_sweep(POINTS[:1], Gemm(64, 32, 32), jobs=1, cache_dir=cache,
                              progress=False)[0]
    assert other["cached"] and other["workload"] == "64x32x32"
    assert other["cycles_sparse"] > again[0]["cycles_sparse"]
    # An edited generator (its sources' digest) never reuses a cached result.
    assert versions["sources"] == explore.tool_versions()["sources"]
    edited = {**versions, "sources": "0" * 16}
    assert explore._key(POINTS[0], edited) != explore._key(POINTS[0], versions)


def test_a_malformed_cache_entry_is_computed_again(sweep, cache, tmp_path, capfd):
    """An empty, truncated or edited cache entry does not stop the sweep: it is named on
    stderr and ignored; a sweep then computes the point again (the no-fit point: synthesis
    only) and rewrites the entry."""
    import shutil

    for content in ("", "{", "[1, 2]", '{"rows": 2}'):
        (tmp_path / "entry.json").write_text(content)
        assert explore._read_cached(tmp_path / "entry.json") is None
        assert "ignoring the cache entry" in capfd.readouterr().err
    mine = tmp_path / "cache"
    shutil.copytree(cache, mine)
    entry = mine / f"{explore._key(POINTS[1], explore.tool_versions())}.json"
    entry.write_text("{")
    rec = explore.run_sweep(POINTS[1:], GEMM, jobs=1, cache_dir=mine, progress=False)[0]
    assert not rec["cached"] and rec["status"] == "no-fit"
    assert f"ignoring the cache entry {str(entry)!r}" in capfd.readouterr().err
    assert json.loads(entry.read_text())["status"] == "no-fit"


def test_outputs(sweep, tmp_path):
    paths = explore.write_outputs(sweep, tmp_path)
    assert {p.name for p in paths} == {"sweep.json", "sweep.csv", "sweep.md", "pareto.png",
                                       "efficiency_fmax.png"}
    assert json.loads((tmp_path / "sweep.json").read_text())[0]["device"] == "ecp5-25k"
    csv_lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("workload,rows,cols,sparsity,mult,target,device,speed,status")
    assert len(csv_lines) == 3
    row = dict(zip(csv_lines[0].split(","), csv_lines[1].split(",")))
    assert row["speed"] == "6"
    peak = sweep[0]["peak_macs_per_cycle"]
    # The CSV's precision: one decimal from 10 up, three below (a tie such as 271.25 rounds
    # half to even, as Python's formatting does).
    luts, dsps = sweep[0]["luts"] / peak, sweep[0]["dsps"] / peak
    assert row["luts_per_mac"] == (f"{luts:.1f}" if luts >= 10 else f"{luts:.3f}")
    assert row["dsps_per_mac"] == (f"{dsps:.1f}" if dsps >= 10 else f"{dsps:.3f}")
    assert row["io"] == "out-of-context" and row["critical_net"] == sweep[0]["critical_net"]
    assert float(row["critical_ns"]) == pytest.approx(sweep[0]["critical_ns"], abs=0.0005)
    assert csv_lines[0].endswith(",critical_from,critical_to,error")
    saved = json.loads((tmp_path / "sweep.json").read_text())[0]
    assert {k: saved[k] for k in explore.PLACED_FIELDS} == {
        k: sweep[0][k] for k in explore.PLACED_FIELDS}
    md = (tmp_path / "sweep.md").read_text()
    assert "Failed points:" in md and "does not fit ice40-up5k" in md
    # The table leaves out the long critical-path fields and the wrapper's cost (CSV, JSON).
    header = md.splitlines()[0]
    assert header == "| " + " | ".join(explore.MD_COLUMNS) + " |"
    assert "| io |" in header and "critical" not in header and "wrapper" not in header
    assert sweep[0]["critical_from"] not in md
    for png in ("pareto.png", "efficiency_fmax.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cached_record_from_before_the_critical_path_fields(sweep, tmp_path):
    """A placed record cached before ``io`` and the critical-path fields existed loads: they
    are None (``io`` out of context: the only way ECP5 was placed), and the outputs have
    empty cells for them."""
    old = {k: v for k, v in sweep[0].items() if k not in explore.PLACED_FIELDS}
    old["critical_path"] = "a.Q -> b.D (9.90 ns, 3 logic cells)"
    (tmp_path / "old.json").write_text(json.dumps(old))
    rec = explore._read_cached(tmp_path / "old.json")
    assert rec["cached"] and rec["io"] == "out-of-context"
    assert rec["critical_path"] == "a.Q -> b.D (9.90 ns, 3 logic cells)"
    assert all(rec[k] is None for k in explore.PLACED_FIELDS if k not in ("io", "critical_path"))
    explore.write_outputs([rec], tmp_path / "out")
    header, row = (tmp_path / "out" / "sweep.csv").read_text().splitlines()
    row = dict(zip(header.split(","), row.split(",")))
    assert row["io"] == "out-of-context" and row["fmax_mhz"] != ""
    assert row["critical_ns"] == row["critical_from"] == row["wrapper_luts"] == ""


def test_outputs_when_every_point_failed(sweep, tmp_path):
    """Plots are still written (and say so) when nothing was placed and routed."""
    paths = explore.write_outputs([sweep[1]], tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert "does not fit ice40-up5k" in (tmp_path / "sweep.md").read_text()


def test_ray_executor_on_a_local_instance(sweep, cache):
    """The same sweep on Ray: the cached point comes back from a Ray worker, and a point whose
    tools time out is reported in one line while the sweep goes on."""
    slow = explore.Point(3, 3, "1:4", "ecp5-25k")
    records = explore.run_sweep([POINTS[0], slow], GEMM, executor="ray", jobs=2, cache_dir=cache,
                                timeout=1, progress=False)
    assert records[0]["cached"] and records[0]["fmax_mhz"] == sweep[0]["fmax_mhz"]
    assert records[1]["status"] == "error"
    assert "timed out" in records[1]["error"] and "\n" not in records[1]["error"]


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A ShuffleNet stage (grouped convs, Concat, Add) as an ONNX file and compressed 2:4."""
    import numpy as np
    import onnx

    from explore import zoo
    from sparsemac.importer import compress

    tmp = tmp_path_factory.mktemp("workload")
    model = zoo.build("shufflenet_unit", input_size=32, num_classes=10, seed=1, batch=None)
    onnx.save(model, tmp / "shufflenet.onnx")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    graph = compress(model, sparsity="2:4", x_calib=x).graph
    graph.save(tmp / "graph")
    return tmp, graph


def test_network_workload(sweep, cache, network):
    """A network on the cached point: per-inference cycles of the graph and of its dense
    twin (graph_estimate), inferences/s at Fmax, per 1,000 LUTs and per DSP block."""
    from host.perf import graph_estimate

    _, graph = network
    rec = explore.run_sweep(POINTS[:1], Network("shufflenet", {"*": graph}), jobs=1,
                            cache_dir=cache, progress=False)[0]
    assert rec["cached"] and rec["workload"] == "shufflenet" and rec["workload_kind"] == "network"
    config = POINTS[0].config()
    est, twin = graph_estimate(config, graph), graph_estimate(config, graph, dense=True)
    assert (rec["cycles_sparse"], rec["cycles_dense"]) == (est.cycles, twin.cycles)
    fmax = sweep[0]["fmax_mhz"]
    assert rec["inferences_s"] == pytest.approx(fmax * 1e6 / est.cycles)
    assert rec["inferences_s_dense"] == pytest.approx(fmax * 1e6 / twin.cycles)
    assert rec["inferences_s_per_klut"] == pytest.approx(rec["inferences_s"] / rec["luts"] * 1e3)
    assert rec["inferences_s_per_dsp"] == pytest.approx(rec["inferences_s"] / rec["dsps"])
    assert rec["gops_sparse"] == pytest.approx(2 * est.macs * fmax * 1e6 / est.cycles / 1e9)


#: The smallest array the generator makes, on the iCE40 without DSP blocks: 1x1 dense (a
#: 2x2 dense array needs 9696 of the HX8K's 7680 LUTs with its multipliers in logic).
ICE40_POINT = explore.Point(1, 1, "dense", "ice40-hx8k", acc_depth=16)


@pytest.fixture(scope="module")
def ice40(cache):
    return explore.run_sweep([ICE40_POINT], GEMM, jobs=1, cache_dir=cache, progress=False)[0]


def test_ice40_point_placed_inside_the_io_wrapper(ice40, tmp_path):
    """The array placed and routed on iCE40 inside explore.wrapper's three-pin top level:
    an Fmax; the resources the array's own, its multipliers in LUTs (the HX8K has no DSP
    block); the wrapper's cost within its own cells, and not negative, which it would be if
    the wrapper let synthesis remove logic of the array."""
    from explore.wrapper import cost
    from hdl.generate import generate

    rec = ice40
    assert rec["status"] == "ok" and rec["error"] is None, rec["error"]
    assert rec["io"] == "wrapped" and rec["clock"] == "fmax" and rec["speed"] is None
    assert rec["fmax_mhz"] > 10 and rec["clock_mhz"] == rec["fmax_mhz"]
    assert rec["dsps"] == 0 and rec["resources"]["SB_MAC16"] == 0
    assert rec["luts"] == rec["resources"]["LUT"] > 1000
    generate(ICE40_POINT.config(), tmp_path, "sparsemac")
    bound = cost(json.loads((tmp_path / "sparsemac.json").read_text())["ports"])
    # The wrapper's LUTs are measured as wrapped minus alone, and synthesis maps the array a
    # few LUTs differently in the two contexts (59 against the wrapper's 55 output bits, on
    # the design of the timing work): the upper bound allows 1 % of the array for that.
    assert 0 <= rec["wrapper_luts"] <= bound["LUT"] + 0.01 * rec["luts"]
    assert 0 < rec["wrapper_ffs"] <= bound["FF"]
    assert rec["critical_ns"] == pytest.approx(1000 / rec["fmax_mhz"], rel=0.02)
    assert rec["critical_logic_ns"] + rec["critical_routing_ns"] == pytest.approx(
        rec["critical_ns"], abs=0.0015)
    assert rec["critical_from"].startswith("u_array.")   # inside the array, not at a pin
    assert rec["critical_to"] and rec["critical_net"]
    assert rec["cycles_dense"] > 0 and rec["gops_dense"] > 0


def _fake_synthesize(sizes, seen, names_seen=None):
    """A stand-in for explore.synth.synthesize giving ``sizes[top]`` (LUTs, FFs); the
    ``names`` of each call join ``names_seen``."""
    names_seen = [] if names_seen is None else names_seen

    def synthesize(verilog, top, family, *, workdir, timeout, label, device, names=True):
        seen.append((top, device, Path(verilog).read_text()))
        names_seen.append(names)
        luts, ffs = sizes[top]
        keys = {"ecp5": ("LUT4", "MULT18X18D", "DP16KD"), "ice40": ("LUT", "SB_MAC16", "BRAM")}
        lut, dsp, ram = keys[family]
        return {"family": family, "top": top, lut: luts, "FF": ffs, dsp: 0, ram: 0,
                "cells": {}, "tool": "fake", "netlist": str(Path(workdir) / f"{top}.json")}
    return synthesize


@pytest.mark.parametrize("device, sizes, message", [
    # nextpnr's count after packing (NoFitError): the LUTs fit, the packed cells do not.
    ("ecp5-25k", {"sparsemac": (24000, 9000)},
     "does not fit ecp5-25k after packing: needs 24500 of 24288 TRELLIS_COMB"),
    # The array fits the HX8K; with the wrapper around it, it does not.
    ("ice40-hx8k", {"sparsemac": (7640, 2000), "sparsemac_wrapped": (7700, 2150)},
     "does not fit ice40-hx8k: needs 7700 of 7680 LUT with the I/O wrapper (60 LUTs, 150 FFs "
     "of it)"),
])
def test_no_fit_found_after_synthesis(monkeypatch, device, sizes, message):
    """Both are no-fit points (cached, like every no-fit), not tool errors."""
    from explore import synth

    seen = []

    def place_and_route(netlist, device, **kwargs):
        assert device.startswith("ecp5"), "the wrapped design does not fit: no place and route"
        raise synth.NoFitError(message)

    monkeypatch.setattr(synth, "synthesize", _fake_synthesize(sizes, seen))
    monkeypatch.setattr(synth, "place_and_route", place_and_route)
    rec = explore.evaluate(explore.Point(1, 1, "dense", device, acc_depth=16))
    assert (rec["status"], rec["error"]) == ("no-fit", message)
    assert [(top, dev) for top, dev, _ in seen] == [(top, device) for top in sizes]
    assert rec["io"] == ("wrapped" if device.startswith("ice40") else "out-of-context")
    if device.startswith("ice40"):
        assert (rec["wrapper_luts"], rec["wrapper_ffs"]) == (60, 150)
        # The array's Verilog and the wrapper in one file.
        text = seen[1][2]
        assert "module sparsemac(" in text and "module sparsemac_wrapped (" in text


@pytest.mark.parametrize("pnr", [True, False])
def test_only_a_synthesis_only_point_skips_autoname(monkeypatch, pnr):
    """Net names serve nextpnr's reports: a point without place and route synthesizes without
    ``autoname`` (which the WebAssembly Yosys cannot finish on a 16x16 2:4 array)."""
    from explore import synth

    seen, names = [], []
    monkeypatch.setattr(synth, "synthesize",
                        _fake_synthesize({"sparsemac": (24000, 9000)}, seen, names))
    monkeypatch.setattr(synth, "place_and_route", lambda *a, **k: (_ for _ in ()).throw(
        synth.NoFitError("stop here")))
    explore.evaluate(explore.Point(1, 1, "dense", "ecp5-25k", acc_depth=16, pnr=pnr))
    assert names == [pnr]


def test_synthesis_only_point(cache):
    """Without place and route the clock is the target, marked as assumed; no Fmax."""
    point = explore.Point(2, 2, "2:4", "ecp5-25k", freq_mhz=120.0, pnr=False)
    rec = explore.run_sweep([point], GEMM, jobs=1, cache_dir=cache, progress=False)[0]
    assert rec["status"] == "ok" and rec["luts"] > 0 and "fmax_mhz" not in rec
    assert (rec["clock"], rec["clock_mhz"]) == ("assumed", 120.0)
    assert rec["gops_sparse"] == pytest.approx(2 * 64 * 32 * 16 * 120e6 / rec["cycles_sparse"]
                                               / 1e9)
    assert point.label.endswith("(synthesis only)")


@pytest.mark.parametrize("kind", ["onnx", "folder"])
def test_cli_network_workload(kind, cache, sweep, network, tmp_path):
    """``--workload MODEL.onnx`` (compressed for the array's 2:4) and ``--workload FOLDER``
    on the cached 2x2 point: outputs with the network's figures, exit 0."""
    folder, graph = network
    target = folder / ("shufflenet.onnx" if kind == "onnx" else "graph")
    r = run_cli("--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
                "--workload", str(target), "--cache", str(cache), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    (rec,) = json.loads((tmp_path / "o" / "sweep.json").read_text())
    assert rec["cached"] and rec["workload"] == target.name and rec["inferences_s"] > 0
    if kind == "folder":
        from host.perf import graph_estimate

        assert rec["cycles_sparse"] == graph_estimate(POINTS[0].config(), graph).cycles
    assert "inferences_s_per_klut" in (tmp_path / "o" / "sweep.csv").read_text()


def test_cli_every_point_failed(cache, sweep, tmp_path):
    r = run_cli("--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ice40-up5k",
                "--cache", str(cache), "--out", str(tmp_path / "o"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "sparsemac: error: explore: every point " \
                                               "failed (1)"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sparsemac.cli", "explore", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-12k"],
     "device must be one of 'ecp5-25k', 'ecp5-45k', 'ecp5-85k', 'ice40-up5k', 'ice40-hx8k', "
     "not 'ecp5-12k'"),
    (["--rows", "2,x", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k"],
     "Rows must be a comma-separated list of values, not '2,x' ('x')"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:5", "--device", "ecp5-25k"],
     "M must be a power of two in {1, 2, 4, 8, 16}, not 5"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
      "--workload", "64x32"],
     "Workload must be MxKxN with positive integers (e.g. 256x128x64), an ONNX model or a "
     "graph folder, not '64x32' (no such file or folder)"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
      "--workload", "0x32x16"],
     "Workload must be MxKxN with positive integers (e.g. 256x128x64), not '0x32x16'"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
      "--freq", "-5"], "explore: --freq must be a positive number of MHz, not -5"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
      "--speed", "9"],
     "Speed grade must be one of 6, 7, 8, not 9"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ice40-up5k",
      "--speed", "8"],
     "Device 'ice40-up5k' has no speed grades, not 8"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
      "--router", "router3"],
     "router must be one of 'router1', 'router2', not 'router3'"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
      "--target", "xc7"], "target must be one of 'generic', 'ecp5', not 'xc7'"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ice40-hx8k",
      "--target", "ecp5"],
     "target ecp5 instantiates ECP5 primitives: device must be an ECP5, not 'ice40-hx8k'"),
])
def test_cli_bad_input(tmp_path, args, message):
    r = run_cli(*args, "--out", str(tmp_path / "out"), "--no-cache")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"sparsemac: error: {message}"]
    assert not (tmp_path / "out").exists()


def test_a_failed_synthesis_only_point_keeps_the_model_figures(tmp_path):
    """Synthesis stopped (here by its time limit): the point is an error, but the
    performance model needs no synthesis, so its cycles and its figures at the assumed clock
    are there; those per LUT and per DSP are not."""
    point = explore.Point(2, 2, "2:4", "ecp5-25k", freq_mhz=120.0, pnr=False)
    rec = explore.run_sweep([point], GEMM, jobs=1, cache_dir=tmp_path, progress=False,
                            timeout=0.5)[0]
    assert rec["status"] == "error" and "yosys" in rec["error"], rec["error"]
    assert (rec["clock"], rec["clock_mhz"]) == ("assumed", 120.0)
    assert rec["gops_sparse"] == pytest.approx(2 * 64 * 32 * 16 * 120e6 / rec["cycles_sparse"]
                                               / 1e9)
    assert rec.get("luts") is None and rec.get("dsps") is None
    explore.write_outputs([rec], tmp_path / "out")              # the table takes such a row
    assert "| error |" in (tmp_path / "out" / "sweep.md").read_text()
