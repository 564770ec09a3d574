"""The generated top level on Icarus and Verilator, driven only through its AXI ports."""

import json
import os
from pathlib import Path

import pytest

from hdl.config import Config
from hdl.generate import generate
from conftest import require_simulator
from sim import toolchain

HERE = Path(__file__).parent

TOP_CONFIGS = [Config(rows=2, cols=3, n=2, m=4, acc_depth=16),
               Config(rows=3, cols=2, n=1, m=4, acc_depth=16, pipeline=True)]


@pytest.mark.sim
@pytest.mark.parametrize("cfg", TOP_CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}_{c.sparsity}")
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_top_through_axi(sim, cfg, tmp_path):
    from cocotb_tools.runner import get_runner  # noqa: PLC0415

    require_simulator(sim)
    generate(cfg, tmp_path, "sparsemac")
    runner = get_runner(sim)
    build_args = ["-Wno-fatal"] if sim == "verilator" else []
    runner.build(sources=[tmp_path / "sparsemac.v"], hdl_toplevel="sparsemac",
                 build_dir=tmp_path / "build", timescale=("1ns", "1ps"), always=True,
                 build_args=build_args, waves=os.environ.get("WAVES") == "1")
    config = {k: v for k, v in cfg.as_dict().items() if k != "sparsity"}
    results = runner.test(
        hdl_toplevel="sparsemac", test_module="top_tb", test_dir=HERE / "cocotb",
        build_dir=tmp_path / "build", timescale=("1ns", "1ps"),
        results_xml=str(tmp_path / "results.xml"), waves=os.environ.get("WAVES") == "1",
        extra_env={"SPARSEMAC_CONFIG": json.dumps(config),
                   "PYTHONPATH": os.pathsep.join([str(HERE / "cocotb"), str(HERE.parent),
                                                  os.environ.get("PYTHONPATH", "")])})
    text = Path(results).read_text()
    assert "<testcase" in text
    assert "<failure" not in text and "<error" not in text, text[:3000]
