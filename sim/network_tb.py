"""cocotb module of :class:`sim.network.Simulation`: a whole network on the RTL, in one test.

``SPARSEMAC_NETWORK`` names a JSON network job (:mod:`host.runtime` describes it and the
records written back).

Every weighted layer is lowered, packed and streamed through the RTL in one or more engine
runs, each checked by :meth:`sim.tb.TB.run_layer` (the scoreboard: RTL against the
transaction-level model fed from the input monitors, then against the golden GEMM rows); its
unpacked output, not the golden one, is the next layer's input. Pooling and flatten run here,
on the host side of the simulation, with the golden layer objects.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np

from golden_model.graph import IntGraph, QConv2d, QDense
from host.lowering import engine_batches, engine_sparse, golden_gemm, layer_name, lower
from host.packing import gemm_to_conv2d, unpack_output
from sim.bulk import testbench


@cocotb.test()
async def network(dut):
    job = json.loads(Path(os.environ["SPARSEMAC_NETWORK"]).read_text())
    _, tb = testbench(dut)
    await tb.start_clock()
    await tb.reset()
    seed = job["seed"]
    if job["stalls"]:
        tb.set_stalls("random", "random", seed)
    graph = IntGraph.load(job["graph"])
    with np.load(job["work"]) as f:
        golden = [f[f"golden{i}"] for i in range(len(graph.layers) + 1)]
    # Every layer reads the accelerator's (or the host's) outputs of the layers it is wired
    # to, never the golden ones.
    outs = [golden[0]]
    records, outputs = [], {}
    for i, (layer, wire) in enumerate(zip(graph.layers, graph.wiring())):
        name = layer_name(layer, i)
        t0 = time.perf_counter()
        args = [outs[j] for j in wire]
        if isinstance(layer, (QDense, QConv2d)):
            (x,) = args
            parts, out_shape = lower(tb.config, layer, x)
            want = golden_gemm(layer, golden[i + 1])
            sparse = engine_sparse(tb.config, layer)
            m, k, n = want.shape[0], layer.gemm_weights().shape[1], want.shape[1]
            runs, columns = [], []
            for p, part in enumerate(parts):
                pm, pk, pn = part.shape
                rows = []
                for (r0, r1), packets in engine_batches(tb.config, layer, part,
                                                        max_rows=job["max_rows"]):
                    label = (f"layer {name} ({pm}x{pk}x{pn} GEMM"
                             f"{f' {p + 1} of {len(parts)}' if len(parts) > 1 else ''}, "
                             f"{'N:M' if sparse else 'dense'}), rows {r0}..{r1 - 1}")
                    run_cycles, words = await tb.run_layer(
                        packets, want[r0:r1, part.lo:part.hi], label, seed)
                    rows.append(unpack_output(packets.plan, words))
                    runs.append({"gemm": [pm, pk, pn], "rows": [r0, r1], "cycles": run_cycles})
                columns.append(np.concatenate(rows))
            y = np.concatenate(columns, axis=1)
            y = y if out_shape is None else gemm_to_conv2d(y, out_shape)
            records.append({"name": name, "sparse": sparse, "gemm": [m, k, n], "parts": len(parts),
                            "runs": runs, "wall_s": time.perf_counter() - t0})
        else:
            y = layer.run(*args)                # host ops: TFLite's arithmetic, the hardware's
            records.append({"name": name, "wall_s": time.perf_counter() - t0})
        outputs[f"out{i}"] = y
        outs.append(y)
    await tb.finish()
    np.savez(job["outputs"], **outputs)
    Path(job["results"]).write_text(json.dumps(records))
