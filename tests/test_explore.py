"""sparsemac explore: a short real sweep (synthesis, place and route, model, outputs), the
Ray executor on a local Ray instance, and clear failures that do not stop the sweep."""

import json
import subprocess
import sys

import pytest

from explore import sweep as explore

pytestmark = pytest.mark.filterwarnings(
    # Ray's own modules warn on import under newer Python packaging; not our code.
    "ignore::DeprecationWarning:ray.*", "ignore::DeprecationWarning:pkg_resources.*")

POINTS = [explore.Point(2, 2, "2:4", "ecp5-25k", (64, 32, 16)),
          explore.Point(2, 2, "2:4", "ice40-up5k", (64, 32, 16))]   # 16 DSPs > 8: no fit


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("explore_cache")


@pytest.fixture(scope="module")
def sweep(cache):
    return explore.run_sweep(POINTS, jobs=2, cache_dir=cache, progress=False)


def test_sweep_records(sweep):
    ok, nofit = sweep
    assert ok["status"] == "ok" and ok["error"] is None and ok["speed"] == 6
    assert ok["fmax_mhz"] > 10 and ok["luts"] > 0 and ok["dsps"] > 0
    assert ok["cycles_sparse"] > 0 and ok["cycles_dense"] > ok["cycles_sparse"]
    assert ok["gops_sparse"] == pytest.approx(2 * 64 * 32 * 16 * ok["fmax_mhz"] * 1e6
                                              / ok["cycles_sparse"] / 1e9)
    assert nofit["status"] == "no-fit"
    assert nofit["error"].startswith("does not fit ice40-up5k: needs ")
    assert "fmax_mhz" not in nofit


def test_cache_is_keyed_by_point_and_tools(sweep, cache):
    again = explore.run_sweep(POINTS, jobs=1, cache_dir=cache, progress=False)
    assert [r["cached"] for r in again] == [True, True]
    assert again[0]["fmax_mhz"] == sweep[0]["fmax_mhz"]
    assert len(list(cache.glob("*.json"))) == 2
    other = explore.Point(2, 2, "2:4", "ecp5-25k", (64, 32, 32))
    versions = explore.tool_versions()
    assert explore._key(other, versions) != explore._key(POINTS[0], versions)
    # An edited generator (its sources' digest) never reuses a cached result.
    assert versions["sources"] == explore.tool_versions()["sources"]
    edited = {**versions, "sources": "0" * 16}
    assert explore._key(POINTS[0], edited) != explore._key(POINTS[0], versions)


def test_outputs(sweep, tmp_path):
    paths = explore.write_outputs(sweep, tmp_path)
    assert {p.name for p in paths} == {"sweep.json", "sweep.csv", "sweep.md", "pareto.png",
                                       "efficiency_fmax.png"}
    assert json.loads((tmp_path / "sweep.json").read_text())[0]["device"] == "ecp5-25k"
    csv_lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("rows,cols,sparsity,mult,device,speed,status")
    assert len(csv_lines) == 3
    row = dict(zip(csv_lines[0].split(","), csv_lines[1].split(",")))
    assert row["speed"] == "6"
    peak = sweep[0]["peak_macs_per_cycle"]
    assert float(row["luts_per_mac"]) == pytest.approx(sweep[0]["luts"] / peak, abs=0.05)
    assert float(row["dsps_per_mac"]) == pytest.approx(sweep[0]["dsps"] / peak, abs=0.0005)
    md = (tmp_path / "sweep.md").read_text()
    assert "Failed points:" in md and "does not fit ice40-up5k" in md
    for png in ("pareto.png", "efficiency_fmax.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_outputs_when_every_point_failed(sweep, tmp_path):
    """Plots are still written (and say so) when nothing was placed and routed."""
    paths = explore.write_outputs([sweep[1]], tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert "does not fit ice40-up5k" in (tmp_path / "sweep.md").read_text()


def test_ray_executor_on_a_local_instance(sweep, cache):
    """The same sweep on Ray: the cached point comes back from a Ray worker, and a point whose
    tools time out is reported in one line while the sweep goes on."""
    slow = explore.Point(3, 3, "1:4", "ecp5-25k", (64, 32, 16))
    records = explore.run_sweep([POINTS[0], slow], executor="ray", jobs=2, cache_dir=cache,
                                timeout=1, progress=False)
    assert records[0]["cached"] and records[0]["fmax_mhz"] == sweep[0]["fmax_mhz"]
    assert records[1]["status"] == "error"
    assert "timed out" in records[1]["error"] and "\n" not in records[1]["error"]


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
     "Workload must be MxKxN with positive integers (e.g. 256x128x64), not '64x32'"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
      "--speed", "9"],
     "Speed grade must be one of 6, 7, 8, not 9"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ice40-up5k",
      "--speed", "8"],
     "Device 'ice40-up5k' has no speed grades, not 8"),
    (["--rows", "2", "--cols", "2", "--sparsity", "2:4", "--device", "ecp5-25k",
      "--router", "router3"],
     "router must be one of 'router1', 'router2', not 'router3'"),
])
def test_cli_bad_input(tmp_path, args, message):
    r = run_cli(*args, "--out", str(tmp_path / "out"), "--no-cache")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"sparsemac: error: {message}"]
    assert not (tmp_path / "out").exists()
