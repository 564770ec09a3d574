"""cocotb testbench of the generated top level, through its AXI ports only.

The layer parameters go in through AXI4-Lite, the data as AXI4-Stream frames (one frame per
pass, tile and parameter packet, so TLAST marks their ends), and the results come back as one
frame per layer; the golden model gives the expected int8 outputs.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotbext.axi import (
    AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource,
)

import golden_model as gm
from hdl.config import Config
from hdl.packing import pack_layer, unpack_output
from hdl.top import REGISTERS

REG = {r.name: r.offset for r in REGISTERS}


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.config = Config(**json.loads(os.environ["SPARSEMAC_CONFIG"]))
        self.act = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_act"), dut.aclk,
                                   dut.aresetn, reset_active_level=False)
        self.wgt = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_wgt"), dut.aclk,
                                   dut.aresetn, reset_active_level=False)
        self.qp = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_qp"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        self.out = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_out"), dut.aclk,
                                 dut.aresetn, reset_active_level=False)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)

    async def reset(self):
        # Drive reset and the clock low before the first edge: Icarus starts at X.
        self.dut.aresetn.value = 0
        self.dut.aclk.value = 0
        await Timer(1, unit="ns")
        Clock(self.dut.aclk, 10, unit="ns").start()
        await ClockCycles(self.dut.aclk, 5)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)

    @staticmethod
    def _frames(words, lasts, width):
        frames, cur = [], bytearray()
        for w, last in zip(words, lasts):
            cur += int(w).to_bytes(width // 8, "little")
            if last:
                frames.append(AxiStreamFrame(bytes(cur)))
                cur = bytearray()
        assert not cur
        return frames

    async def run_layer(self, p):
        for name in ("m_rows", "m_block", "k_tiles", "n_tiles"):
            await self.axil.write_dword(REG[name], p.layer[name])
        for name in ("in_zp", "out_zp", "act_min", "act_max"):
            await self.axil.write_dword(REG[name], p.layer[name] & 0xFF)
        await self.axil.write_dword(REG["ctrl"], 1)
        for src, key in ((self.act, "act"), (self.wgt, "wgt"), (self.qp, "qp")):
            width = len(getattr(self.dut, f"s_axis_{key}_tdata"))
            for frame in self._frames(getattr(p, key), getattr(p, f"{key}_last"), width):
                await src.send(frame)
        frame = await self.out.recv()
        status = await self.axil.read_dword(REG["status"])
        cycles = await self.axil.read_dword(REG["cycles"])
        nbytes = len(self.dut.m_axis_out_tdata) // 8
        data = bytes(frame.tdata)
        words = [int.from_bytes(data[i:i + nbytes], "little")
                 for i in range(0, len(data), nbytes)]
        return unpack_output(p.plan, words), status, cycles


def make_layer(cfg, rng, m, k, n, sparse):
    x = rng.integers(-128, 128, (m, k)).astype(np.int8)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    if sparse:
        w = gm.sparsify_n_m(w, cfg.n, cfg.m, axis=1)
    bias = rng.integers(-50000, 50000, n).astype(np.int32)
    mult, shift = gm.quantize_multiplier(10.0 ** rng.uniform(-5, -2, n))
    q = {"in_zp": int(rng.integers(-128, 128)), "out_zp": int(rng.integers(-10, 10))}
    q["act_min"], q["act_max"] = q["out_zp"], 127                      # fused ReLU
    want = gm.qlinear(x, w, bias, x_zero_point=q["in_zp"], multiplier=mult, shift=shift,
                      out_zero_point=q["out_zp"], qmin=q["act_min"], qmax=q["act_max"],
                      rounding=cfg.rounding, acc_bits=cfg.acc_width)
    return pack_layer(cfg, x, w, bias, mult, shift, sparse=sparse, **q), want


@cocotb.test()
async def layers_through_axi_ports(dut):
    tb = TB(dut)
    await tb.reset()
    seed = int(os.environ.get("SPARSEMAC_SEED", "1"))
    rng = np.random.default_rng(seed)
    cfg = tb.config
    info = await tb.axil.read_dword(REG["info"])
    assert info == cfg.rows | (cfg.cols << 8) | (cfg.n << 16) | (cfg.m << 20), hex(info)
    shapes = [(23, 3 * cfg.k_tile_sparse + 5, 2 * cfg.cols + 1, True),
              (7, 2 * cfg.k_tile_dense + 1, cfg.cols, False)]
    for i, (m, k, n, sparse) in enumerate(shapes):
        p, want = make_layer(cfg, rng, m, k, n, sparse)
        got, status, cycles = await tb.run_layer(p)
        mismatch = np.argwhere(got != want)
        assert not mismatch.size, (
            f"layer {i} ({m}x{k}x{n}, {'sparse' if sparse else 'dense'}), seed {seed}: first "
            f"mismatch at {tuple(mismatch[0])}: expected {want[tuple(mismatch[0])]}, "
            f"got {got[tuple(mismatch[0])]}")
        assert status & 0b1110 == 0b0010, f"STATUS {status:#x}: expected DONE only"
        assert int(dut.irq.value) == 1
        assert cycles >= len(p.act)
    await RisingEdge(dut.aclk)
