"""The Verilog lint gate: Verilator ``--lint-only -Wall`` (with the shipped waiver) and an Icarus
compile of every configuration the test suite generates. ``python -m sim.lint`` (``make lint``)
runs it; ``tests/test_hdl_generate.py`` holds every configuration to it."""

import subprocess
import sys
import tempfile
from pathlib import Path

from hdl.config import Config
from hdl.generate import generate, sim_models_name

from . import toolchain

__all__ = ["LINT_CONFIGS", "lint", "config_name"]

#: Every configuration the test suite generates.
LINT_CONFIGS = (
    Config(rows=2, cols=3, n=2, m=4, acc_depth=16),
    Config(rows=3, cols=2, n=1, m=4, acc_depth=16, pipeline=True),
    Config(rows=2, cols=2, n=1, m=1, acc_depth=16),
    Config(rows=2, cols=2, n=2, m=4, acc_depth=16, rounding="single"),
    Config(rows=2, cols=3, n=2, m=8, acc_width=20),
    Config(rows=4, cols=4, n=4, m=4),
    Config(rows=8, cols=8, n=2, m=4),
    Config(rows=8, cols=8, n=2, m=4, mult="lut", pipeline=True),
    Config(rows=16, cols=16, n=2, m=4),
    Config(rows=1, cols=1, n=1, m=2, acc_width=16, acc_depth=16),
    Config(rows=2, cols=3, n=2, m=4, acc_depth=16, target="ecp5"),
    Config(rows=2, cols=2, n=1, m=4, acc_width=20, pipeline=True, target="ecp5"),
    Config(rows=2, cols=2, n=2, m=4, rounding="single", mult="lut", pipeline=True,
           acc_depth=4096, target="ecp5"),
)


def config_name(c):
    return (f"{c.rows}x{c.cols}_{c.sparsity}_acc{c.acc_width}_{c.rounding}"
            f"{'_pipe' if c.pipeline else ''}_{c.mult}"
            f"{'' if c.target == 'generic' else '_' + c.target}")


def lint(config, workdir):
    """Generate ``config`` into ``workdir`` and lint it; returns the problems found (Verilator
    warnings or errors, Icarus errors) as text, empty when clean."""
    toolchain.activate()
    workdir = Path(workdir)
    generate(config, workdir, "accel")
    models = sim_models_name(config, "accel")
    sources = [str(workdir / "accel.v")] + ([str(workdir / models)] if models else [])
    problems = []
    # The models carry a `timescale and the generated Verilog none: give it the same one.
    verilator = subprocess.run(["verilator", "--lint-only", "-Wall", "--timescale", "1ns/1ps",
                                "--top-module", "accel",
                                str(workdir / "accel.vlt"), *sources],
                               capture_output=True, text=True)
    if verilator.returncode != 0 or "%Warning" in verilator.stderr:
        problems.append(verilator.stderr.strip() or f"verilator exited {verilator.returncode}")
    icarus = subprocess.run(["iverilog", "-s", "accel", "-o", str(workdir / "a.out"), *sources],
                            capture_output=True, text=True)
    if icarus.returncode != 0:
        problems.append(icarus.stderr.strip() or f"iverilog exited {icarus.returncode}")
    return "\n".join(problems)


def main():
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sparsemac-lint-") as tmp:
        for config in LINT_CONFIGS:
            problems = lint(config, Path(tmp) / config_name(config))
            print(f"{config_name(config)}: {'clean' if not problems else 'PROBLEMS'}")
            if problems:
                print(problems[:3000])
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
