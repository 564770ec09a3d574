"""sparsemac bench --quick --json: the fields, and the cycle-count targets (deterministic:
cycles are counted in the simulation, not timed)."""

import json
import subprocess
import sys

import pytest
from conftest import require_simulator

FIELDS = {"config", "workload", "mode", "cycles", "dense_equiv_macs", "peak_macs_per_cycle",
          "utilization", "speedup_vs_dense", "sim", "driver", "sim_cycles_per_s", "wall_s"}


@pytest.mark.sim
def test_bench_quick_json(tmp_path):
    require_simulator("both")
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "sparsemac.cli", "bench", "--quick", "--json",
                        str(out)], capture_output=True, text=True, timeout=1200)
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
        assert run["driver"] == "bulk"
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
