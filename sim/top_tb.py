"""cocotb test of the generated top level through its AXI ports only, as a driver would see
it: the INFO register, STATUS after each layer (DONE, no error), ``irq``, and the layers'
results (checked by the TB's scoreboard and against the golden model)."""

import os

import cocotb
import numpy as np

from sim.layers import make_layer
from sim.tb import REG, TB


@cocotb.test()
async def layers_through_axi_ports(dut):
    tb = TB(dut)
    await tb.start_clock()
    await tb.reset()
    seed = int(os.environ.get("SPARSEMAC_SEED", "1"))
    rng = np.random.default_rng(seed)
    cfg = tb.config
    info = await tb.axil.read_dword(REG["info"])
    assert info == cfg.rows | (cfg.cols << 8) | (cfg.n << 16) | (cfg.m << 20), hex(info)
    shapes = [(23, 3 * cfg.k_tile_sparse + 5, 2 * cfg.cols + 1, cfg.sparse),
              (7, 2 * cfg.k_tile_dense + 1, cfg.cols, False)]
    for i, (m, k, n, sparse) in enumerate(shapes):
        p, want = make_layer(cfg, rng, m, k, n, sparse=sparse)
        label = f"layer {i} ({m}x{k}x{n}, {'sparse' if sparse else 'dense'})"
        await tb.run_layer(p, want, label, seed)
        status = await tb.axil.read_dword(REG["status"])
        cycles = await tb.axil.read_dword(REG["cycles"])
        assert status & 0b1110 == 0b0010, f"{label}: STATUS {status:#x}: expected DONE only"
        assert int(dut.irq.value) == 1
        assert cycles >= len(p.act)
    await tb.finish()
