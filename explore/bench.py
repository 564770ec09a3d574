"""``sparsemac bench``: throughput of the generated arrays, measured in RTL cycles.

For each array configuration and each workload the layer runs once with N:M weights and once
in the dense fallback on the same array; cycles are counted in the simulation from the first
input transfer to the last output transfer, with every stream ready. Utilization is the
dense-equivalent MACs per cycle achieved over the mode's peak; the speedup is dense cycles
over N:M cycles on the same array and layer.
"""

import json
import tempfile
from pathlib import Path

from hdl.config import Config
from sim import runner

__all__ = ["run_bench", "format_table", "BENCH_CONFIGS"]

#: (configuration, workloads): long streams, m >= 256, k and n at least 4x the array.
BENCH_CONFIGS = {
    "quick": [Config(rows=4, cols=4, n=2, m=4, acc_depth=256),
              Config(rows=4, cols=4, n=1, m=4, acc_depth=256)],
    "full": [Config(rows=8, cols=8, n=2, m=4, acc_depth=256),
             Config(rows=8, cols=8, n=1, m=4, acc_depth=256),
             Config(rows=8, cols=8, n=2, m=8, acc_depth=256)],
}


def workloads(config):
    """One long-stream layer: m = 256, k = 4 N:M K tiles, n = 4 N tiles."""
    return [{"m": 256, "k": 4 * config.k_tile_sparse, "n": 4 * config.cols}]


def run_bench(sim="verilator", quick=False, root=None, progress=print):
    """Build and measure every configuration; returns the list of run records."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="sparsemac-bench-") as tmp:
        root = Path(root or tmp)
        for config in BENCH_CONFIGS["quick" if quick else "full"]:
            progress(f"building {runner.config_id(config)} for {sim}")
            built = runner.build(sim, config, root, quiet=True)
            wls = []
            for i, wl in enumerate(workloads(config)):
                for sparse in (False, True):
                    wls.append({**wl, "sparse": sparse, "seed": 100 + i})
            out = built.directory / "bench.json"
            progress(f"measuring {runner.config_id(config)} on {sim}")
            runner.run(built, "bench_tb", quiet=True,
                       env={"SPARSEMAC_WORKLOADS": json.dumps(wls),
                            "SPARSEMAC_BENCH_OUT": str(out)})
            measured = json.loads(out.read_text())
            dense = {(r["m"], r["k"], r["n"]): r["cycles"] for r in measured if not r["sparse"]}
            for r in measured:
                peak = config.peak_macs_sparse if r["sparse"] else config.peak_macs_dense
                macs = r["m"] * r["k"] * r["n"]
                key = (r["m"], r["k"], r["n"])
                runs.append({
                    "config": {"rows": config.rows, "cols": config.cols,
                               "sparsity": config.sparsity},
                    "workload": {"m": r["m"], "k": r["k"], "n": r["n"]},
                    "mode": config.sparsity if r["sparse"] else "dense",
                    "cycles": r["cycles"],
                    "dense_equiv_macs": macs,
                    "peak_macs_per_cycle": peak,
                    "utilization": macs / (r["cycles"] * peak),
                    "speedup_vs_dense": dense[key] / r["cycles"] if r["sparse"] else None,
                    "sim": sim,
                    "sim_cycles_per_s": r["sim_cycles"] / r["wall_s"],
                })
    return runs


def format_table(runs):
    lines = ["| array | layer m x k x n | mode | cycles | dense-eq MACs | peak MAC/cycle | "
             "utilization | speedup vs dense | simulator | sim cycles/s |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in runs:
        c, w = r["config"], r["workload"]
        speed = "-" if r["speedup_vs_dense"] is None else f"{r['speedup_vs_dense']:.2f}x"
        lines.append(f"| {c['rows']}x{c['cols']} {c['sparsity']} | {w['m']}x{w['k']}x{w['n']} "
                     f"| {r['mode']} | {r['cycles']} | {r['dense_equiv_macs']} | "
                     f"{r['peak_macs_per_cycle']} | {r['utilization']:.3f} | {speed} | "
                     f"{r['sim']} | {r['sim_cycles_per_s']:.0f} |")
    return "\n".join(lines)
