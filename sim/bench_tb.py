"""cocotb module of ``sparsemac bench``: time whole layers on the RTL, results checked.

Workloads come as JSON in ``SPARSEMAC_WORKLOADS`` (``m``, ``k``, ``n``, ``sparse``, ``seed``);
for each, the cycles from the first input transfer to the last output transfer (no stalls on
any stream) and the wall-clock seconds of the simulation go to ``SPARSEMAC_BENCH_OUT``.
"""

import json
import os
import time

import cocotb
import numpy as np

from sim.layers import make_layer
from sim.tb import TB


@cocotb.test()
async def measure(dut):
    tb = TB(dut)
    await tb.start_clock()
    await tb.reset()
    results = []
    for wl in json.loads(os.environ["SPARSEMAC_WORKLOADS"]):
        rng = np.random.default_rng(wl["seed"])
        p, want = make_layer(tb.config, rng, wl["m"], wl["k"], wl["n"], sparse=wl["sparse"])
        t0, c0 = time.perf_counter(), tb.now_cycles()
        cycles, _ = await tb.run_layer(p, want, f"bench {wl}", wl["seed"])
        wall = time.perf_counter() - t0
        results.append({**wl, "cycles": cycles, "sim_cycles": tb.now_cycles() - c0,
                        "wall_s": wall, "beats": len(p.act)})
    await tb.finish()
    with open(os.environ["SPARSEMAC_BENCH_OUT"], "w") as f:
        json.dump(results, f)
