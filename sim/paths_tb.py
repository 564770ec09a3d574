"""cocotb module run on both the plain build (``sparsemac``, :class:`sim.tb.TB`) and the
player build (``sparsemac_player``, :class:`sim.bulk.BulkTB`): the same random layers, no
stalls, each checked by its testbench; per layer the cycle count and the output words go to
``SPARSEMAC_RECORD`` (JSON) so that a test can compare the two paths.

``SPARSEMAC_SEED`` picks the layers, ``SPARSEMAC_SCALE`` multiplies their number.
"""

import json
import os

import cocotb
import numpy as np

from sim.layers import make_layer, shapes

SEED = int(os.environ.get("SPARSEMAC_SEED", "1"))
SCALE = max(1, int(os.environ.get("SPARSEMAC_SCALE", "1")))


def testbench(dut):
    """:class:`sim.bulk.BulkTB` on a player build, :class:`sim.tb.TB` otherwise."""
    if hasattr(dut, "load"):
        from sim.bulk import BulkTB  # noqa: PLC0415 (only the player build has its ports)

        return "bulk", BulkTB(dut)
    from sim.tb import TB  # noqa: PLC0415

    return "cocotbext-axi", TB(dut)


@cocotb.test()
async def record_layers(dut):
    path, tb = testbench(dut)
    await tb.start_clock()
    await tb.reset()
    tb.set_stalls("none", "none", SEED)
    rng = np.random.default_rng(SEED)
    layers = []
    for i, (m, k, n, sparse) in enumerate(shapes(tb.config, 3 * SCALE, rng)):
        p, want = make_layer(tb.config, rng, m, k, n, sparse=sparse, relu=i % 2 == 0)
        label = f"layer {i} ({m}x{k}x{n}, {'N:M' if sparse else 'dense'})"
        cycles, words = await tb.run_layer(p, want, label, SEED)
        layers.append({"label": label, "cycles": cycles, "words": [f"{w:x}" for w in words]})
    await tb.finish()
    with open(os.environ["SPARSEMAC_RECORD"], "w") as f:
        json.dump({"path": path, "checked": tb.checked, "layers": layers}, f)
