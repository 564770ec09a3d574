"""sparsemac bench --quick --json: the fields, and the cycle-count targets (deterministic:
cycles are counted in the simulation, not timed)."""

import json
import subprocess
import sys

import pytest
from conftest import require_simulator

FIELDS = {"config", "workload", "mode", "cycles", "dense_equiv_macs", "peak_macs_per_cycle",
          "utilization", "speedup_vs_dense", "sim", "driver", "pgo", "sim_cycles_per_s", "wall_s"}


@pytest.mark.sim
def test_bench_quick_json(tmp_path):
    require_simulator("both")
    out = tmp_path / "bench.json"
    # Plain builds: the profile-guided one (the default) is built and checked in
    # tests/test_sim_bulk.py, and chosen by default below (test_bench_builds_profile_guided).
    r = subprocess.run([sys.executable, "-m", "sparsemac.cli", "bench", "--quick", "--no-pgo",
                        "--json", str(out)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads(out.read_text())
    assert len(runs) == 4
    for run in runs:
        assert set(run) == FIELDS
        assert set(run["config"]) == {"rows", "cols", "sparsity"}
        assert set(run["workload"]) == {"m", "k", "n"}
        w, c = run["workload"], run["config"]
        assert run["dense_equiv_macs"] == w["m"] * w["k"] * w["n"]
        assert run["utilization"] == pytest.approx(
            run["dense_equiv_macs"] / (run["cycles"] * run["peak_macs_per_cycle"]))
        assert run["sim"] == "verilator" and run["sim_cycles_per_s"] > 0
        assert run["driver"] == "bulk" and run["pgo"] is False
        # long streams: m >= 256, k and n at least 4x the array
        assert w["m"] >= 256 and w["n"] >= 4 * c["cols"]
        assert run["utilization"] >= 0.95, run
        if run["mode"] == "dense":
            assert run["speedup_vs_dense"] is None
    speedups = {r["config"]["sparsity"]: r["speedup_vs_dense"] for r in runs
                if r["mode"] != "dense"}
    assert speedups["2:4"] >= 1.9 and speedups["1:4"] >= 3.6, speedups
    assert "| array | layer m x k x n | mode |" in r.stdout
    # The performance model agrees with the RTL's cycles on every workload (within 2 %).
    from hdl.config import Config
    from host.perf import layer_cycles

    for run in runs:
        c, w = run["config"], run["workload"]
        cfg = Config.from_sparsity(c["rows"], c["cols"], c["sparsity"], acc_depth=256)
        est = layer_cycles(cfg, w["m"], w["k"], w["n"], sparse=run["mode"] != "dense")
        assert abs(est.cycles - run["cycles"]) <= 0.02 * run["cycles"], (est.cycles, run)


@pytest.mark.parametrize("sim, driver, asked, built", [
    ("verilator", "bulk", True, True), ("verilator", "bulk", False, False),
    ("icarus", "bulk", True, False), ("verilator", "axi", True, False)])
def test_bench_builds_profile_guided(monkeypatch, tmp_path, sim, driver, asked, built):
    """``sparsemac bench`` measures profile-guided Verilator models of the bulk driver unless
    told not to (``--no-pgo``); the records say which."""
    from explore import bench

    seen = []

    def fake_measure(sim_, config, root, wls, **kwargs):
        seen.append(kwargs.get("pgo", False))
        return None, [{**wl, "cycles": 1000, "sim_cycles_per_s": 1e6, "prepare_s": 0.1,
                       "wall_s": 1.0} for wl in wls]

    def fake_axi(sim_, config, root, progress, pgo):
        seen.append(pgo)
        return [{**bench.workload(config), "sparse": sp, "cycles": 1000, "rate": 1e4,
                 "wall_s": 1.0} for sp in (False, True)]

    monkeypatch.setattr(bench.bulk_runner, "measure", fake_measure)
    monkeypatch.setattr(bench, "_measure_axi", fake_axi)
    runs = bench.run_bench(sim=sim, quick=True, root=tmp_path, progress=lambda m: None,
                           driver=driver, pgo=asked)
    assert seen and all(p is built for p in seen) and all(r["pgo"] is built for r in runs)
    assert ("bulk (pgo)" in bench.format_table(runs)) is built


def test_table_gives_the_ratio_of_the_drivers():
    """``--driver both``: the bulk driver's rate over the axi driver's, per array and mode."""
    from explore.bench import _record, format_table
    from hdl.config import Config

    cfg = Config(rows=8, cols=8, n=2, m=4, acc_depth=256)
    runs = [_record(cfg, "icarus", driver, 256, 128, 32, sparse, cycles, 8234, rate, 1.0)
            for driver, sparse, cycles, rate in [("axi", False, 8234, 250.0),
                                                 ("axi", True, 4138, 200.0),
                                                 ("bulk", False, 8234, 5250.0),
                                                 ("bulk", True, 4138, 4100.0)]]
    table = format_table(runs)
    assert table.endswith("bulk over axi, simulated cycles/s on icarus: 8x8 2:4 dense: 21.0x, "
                          "8x8 2:4 2:4: 20.5x")
    assert "bulk over axi" not in format_table(runs[2:])
