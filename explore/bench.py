"""``sparsemac bench``: throughput of the generated arrays, measured in RTL cycles, and how fast
the simulators run them.

For each array configuration the workload runs once with N:M weights and once in the dense
fallback on the same array; cycles are counted in the simulation from the first input transfer
to the last output transfer, with every stream ready. Utilization is the dense-equivalent MACs
per cycle achieved over the mode's peak; the speedup is dense cycles over N:M cycles on the
same array and layer.

Two drivers (:data:`DRIVERS`):

``bulk`` (the default)
    The player wrapper (:mod:`sim.player`, :class:`sim.bulk.BulkTB`): the layer is written to
    the simulator's memories in one go and played by the HDL, with the wrapper's own clock, so
    Python wakes a few times per layer. The layer is a long stream (:func:`bulk_workload`),
    played several times on Verilator; ``sim_cycles_per_s`` is the simulated cycles over the
    seconds spent simulating. Verilator models are profile-guided builds
    (:data:`sim.bulk_runner.PGO_USE`; ``pgo=False``, ``sparsemac bench --no-pgo``: plain ones).
``axi``
    cocotbext-axi drives every stream from Python, clock edge by clock edge (:mod:`sim.tb`):
    the independent check of the stream handshakes, and the rate it costs.

The two drivers count the same cycles (``tests/test_sim_bulk.py``).
"""

import json
import tempfile
from pathlib import Path

from common.checks import check_choice
from hdl.config import Config
from host.packing import plan_layer
from sim import bulk_runner, player, runner

from .sweep import parse_workload

__all__ = ["run_bench", "format_table", "BENCH_CONFIGS", "DRIVERS", "bulk_workload",
           "depths_for", "layer_config"]

DRIVERS = ("bulk", "axi")

#: The arrays measured: 8x8 2:4 and 1:4 with --quick, also 2:8 and a 16x16 otherwise.
BENCH_CONFIGS = {
    "quick": [Config(rows=8, cols=8, n=2, m=4, acc_depth=256),
              Config(rows=8, cols=8, n=1, m=4, acc_depth=256)],
    "full": [Config(rows=8, cols=8, n=2, m=4, acc_depth=256),
             Config(rows=8, cols=8, n=1, m=4, acc_depth=256),
             Config(rows=8, cols=8, n=2, m=8, acc_depth=256),
             Config(rows=16, cols=16, n=2, m=4, acc_depth=256)],
}

#: Rows of the bulk driver's layer, and how many times it is played, per simulator: several
#: million cycles on Verilator; Icarus runs a few thousand cycles a second.
BULK_ROWS = {"verilator": 4096, "icarus": 1024}
BULK_REPEAT = {"verilator": 7, "icarus": 0}


def workload(config, m=256):
    """One long-stream layer: ``m`` rows, k = 4 N:M K tiles, n = 4 N tiles."""
    return {"m": m, "k": 4 * config.k_tile_sparse, "n": 4 * config.cols}


def bulk_workload(config, sim):
    """The bulk driver's workload on ``sim``: :func:`workload` with :data:`BULK_ROWS` rows,
    played ``1 + BULK_REPEAT`` times, N:M and dense."""
    wl = workload(config, BULK_ROWS[sim])
    return [{**wl, "sparse": sparse, "seed": 100, "repeat": BULK_REPEAT[sim]}
            for sparse in ((False, True) if config.sparse else (False,))]


def depths_for(config, workloads):
    """The player memory depths that hold every workload's words (powers of two, at least the
    defaults)."""
    need = dict(player.DEFAULT_DEPTHS)
    for wl in workloads:
        plan = plan_layer(config, wl["m"], wl["k"], wl["n"], sparse=wl["sparse"])
        for name, count in plan.words.items():
            need[name] = max(need[name], 1 << (count - 1).bit_length())
    return need


def _record(config, sim, driver, m, k, n, sparse, cycles, dense_cycles, rate, wall, pgo=False):
    peak = config.peak_macs_sparse if sparse else config.peak_macs_dense
    macs = m * k * n
    return {
        "config": {"rows": config.rows, "cols": config.cols, "sparsity": config.sparsity},
        "workload": {"m": m, "k": k, "n": n},
        "mode": config.sparsity if sparse else "dense",
        "cycles": cycles,
        "dense_equiv_macs": macs,
        "peak_macs_per_cycle": peak,
        "utilization": macs / (cycles * peak),
        "speedup_vs_dense": dense_cycles / cycles if sparse and dense_cycles else None,
        "sim": sim,
        "driver": driver,
        "pgo": pgo,
        "sim_cycles_per_s": rate,
        "wall_s": wall,
    }


def _measure_axi(sim, config, root, progress, pgo):
    built = runner.build(sim, config, root, quiet=True)
    wls = [{**workload(config), "sparse": sparse, "seed": 100} for sparse in (False, True)]
    out = built.directory / "bench.json"
    progress(f"measuring {runner.config_id(config)} on {sim} (axi)")
    runner.run(built, "bench_tb", quiet=True, env={"SPARSEMAC_WORKLOADS": json.dumps(wls),
                                                  "SPARSEMAC_BENCH_OUT": str(out)})
    return [{**r, "rate": r["sim_cycles"] / r["wall_s"]} for r in json.loads(out.read_text())]


def _measure_bulk(sim, config, root, progress, pgo):
    wls = bulk_workload(config, sim)
    progress(f"measuring {runner.config_id(config)} on {sim} (bulk)")
    _, records = bulk_runner.measure(sim, config, root, wls, depths=depths_for(config, wls),
                                     internal_clock=True, pgo=pgo)
    return [{**r, "rate": r["sim_cycles_per_s"], "wall_s": r["prepare_s"] + r["wall_s"]}
            for r in records]


def _measure_layer(layer):
    """The measurement of one given layer ``(m, k, n, sparse)``, played once (bulk driver)."""
    m, k, n, sparse = layer

    def measure(sim, config, root, progress, pgo):
        wls = [{"m": m, "k": k, "n": n, "sparse": sparse, "seed": 100, "repeat": 0}]
        progress(f"measuring {m}x{k}x{n} {'N:M' if sparse else 'dense'} on "
                 f"{runner.config_id(config)} ({sim}, bulk)")
        _, records = bulk_runner.measure(sim, config, root, wls,
                                         depths=depths_for(config, wls), internal_clock=True,
                                         pgo=pgo)
        return [{**r, "rate": r["sim_cycles_per_s"], "wall_s": r["prepare_s"] + r["wall_s"]}
                for r in records]
    return measure


def layer_config(array, sparsity, workload):
    """The array and layer of ``sparsemac bench --layer``: ``array`` ``"RxC"``, ``sparsity``
    ``"N:M"`` or ``"dense"``, ``workload`` ``"MxKxN"``. Returns ``(Config, (m, k, n,
    sparse))``; a ValueError names a bad value."""
    parts = str(array).lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"Array must be RxC (e.g. 16x16), not {array!r}")
    gemm = parse_workload(workload)
    m, k, n = gemm.m, gemm.k, gemm.n
    config = Config.from_sparsity(int(parts[0]), int(parts[1]), sparsity, acc_depth=256)
    plan_layer(config, m, k, n, sparse=config.sparse)      # the layer fits the array
    return config, (m, k, n, config.sparse)


def run_bench(sim="verilator", quick=False, root=None, progress=print, driver="bulk",
              layer=None, pgo=True):
    """Build and measure every configuration; returns the list of run records.

    ``layer``: ``(Config, (m, k, n, sparse))`` from :func:`layer_config`: measure that
    one layer on that array instead (bulk driver only). ``pgo``: the bulk driver's Verilator
    models are profile-guided builds (each record's ``pgo`` says whether it ran on one)."""
    check_choice(driver, "driver", (*DRIVERS, "both"))
    if driver == "both":
        if layer is not None:
            raise ValueError("A single --layer is measured with the bulk driver only")
        return [run for d in ("axi", "bulk")
                for run in run_bench(sim, quick, root, progress, d, pgo=pgo)]
    measure = _measure_bulk if driver == "bulk" else _measure_axi
    configs = BENCH_CONFIGS["quick" if quick else "full"]
    if layer is not None:
        if driver != "bulk":
            raise ValueError("A single --layer is measured with the bulk driver only")
        configs, measure = [layer[0]], _measure_layer(layer[1])
    pgo = bool(pgo) and sim == "verilator" and driver == "bulk"
    runs = []
    with tempfile.TemporaryDirectory(prefix="sparsemac-bench-") as tmp:
        root = Path(root or tmp)
        for config in configs:
            progress(f"building {runner.config_id(config)} for {sim} ({driver})")
            measured = measure(sim, config, root, progress, pgo)
            dense = {(r["m"], r["k"], r["n"]): r["cycles"] for r in measured if not r["sparse"]}
            for r in measured:
                runs.append(_record(config, sim, driver, r["m"], r["k"], r["n"], r["sparse"],
                                    r["cycles"], dense.get((r["m"], r["k"], r["n"])),
                                    r["rate"], r["wall_s"], pgo))
    return runs


def format_table(runs):
    lines = ["| array | layer m x k x n | mode | cycles | dense-eq MACs | peak MAC/cycle | "
             "utilization | speedup vs dense | simulator | driver | sim cycles/s | wall s |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for r in runs:
        c, w = r["config"], r["workload"]
        speed = "-" if r["speedup_vs_dense"] is None else f"{r['speedup_vs_dense']:.2f}x"
        driver = r["driver"] + (" (pgo)" if r.get("pgo") else "")
        lines.append(f"| {c['rows']}x{c['cols']} {c['sparsity']} | {w['m']}x{w['k']}x{w['n']} "
                     f"| {r['mode']} | {r['cycles']} | {r['dense_equiv_macs']} | "
                     f"{r['peak_macs_per_cycle']} | {r['utilization']:.3f} | {speed} | "
                     f"{r['sim']} | {driver} | {r['sim_cycles_per_s']:.0f} | "
                     f"{r['wall_s']:.1f} |")
    return "\n".join(lines + _driver_ratios(runs))


def _driver_ratios(runs):
    """With both drivers in ``runs``: the bulk driver's simulated cycles/s over the axi
    driver's, per array and mode (the same simulator, the same run of the command)."""
    rate = {}
    for r in runs:
        key = (r["sim"], r["config"]["rows"], r["config"]["cols"], r["config"]["sparsity"],
               r["mode"])
        rate.setdefault(key, {})[r["driver"]] = r["sim_cycles_per_s"]
    pairs = [(key, d["bulk"] / d["axi"]) for key, d in rate.items() if len(d) == 2]
    if not pairs:
        return []
    parts = [f"{rows}x{cols} {sp} {mode}: {ratio:.1f}x"
             for (_, rows, cols, sp, mode), ratio in pairs]
    return ["", f"bulk over axi, simulated cycles/s on {pairs[0][0][0]}: " + ", ".join(parts)]
