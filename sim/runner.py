"""Build a generated accelerator for a simulator and run cocotb testbenches on it.

One build directory per (simulator, configuration), reused while the Verilog is unchanged
and shared by processes: a build holds the folder's lock (:func:`build_lock`), and each run
works in a folder of its own (``sim/run-*``, removed afterwards), so that several processes
can build and run the same configuration at once. The configuration reaches the testbench as
JSON in ``SPARSEMAC_CONFIG``. ``WAVES=1`` in the environment records waveforms in the run's
folder (``sim/run-*/sparsemac.fst`` on Icarus), which is then kept.
"""

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from hdl.config import Config
from hdl.generate import generate, sim_models_name

from . import toolchain

__all__ = ["SimulationFailed", "Build", "build", "run", "config_id", "build_lock", "TOPLEVEL"]

TOPLEVEL = "sparsemac"


class Build:
    """A design built for one simulator: what :func:`run` needs.

    Members
    -------
    sim, config, directory
        The simulator, the configuration and the build folder.
    toplevel : str
        The HDL top level the testbench drives (the accelerator, or the player wrapper of
        :mod:`sim.bulk_runner` around it).
    env : dict
        Environment the testbench reads besides the configuration (e.g. the player's
        memory depths).
    label : str
        How failures name the build (simulator and configuration).
    """

    def __init__(self, sim, config, directory, runner, *, toplevel=TOPLEVEL, env=None,
                 label=None):
        self.sim, self.config, self.directory, self._runner = sim, config, directory, runner
        self.toplevel, self.env = toplevel, dict(env or {})
        self.label = label or f"{sim} ({config_id(config)})"


class SimulationFailed(AssertionError):
    """A cocotb test failed; the message carries cocotb's own failure text."""


def config_id(config):
    """A short name for a configuration, used for build folders and test ids."""
    c = config
    return (f"{c.rows}x{c.cols}_{c.sparsity.replace(':', 'of')}_acc{c.acc_width}_{c.rounding}"
            f"{'_pipe' if c.pipeline else ''}_d{c.acc_depth}{'_lut' if c.mult == 'lut' else ''}"
            f"{'' if c.target == 'generic' else '_' + c.target}")


def _waves():
    return os.environ.get("WAVES", "0") not in ("", "0")


@contextlib.contextmanager
def build_lock(build_dir):
    """Hold ``build_dir``'s lock (an exclusive ``flock`` on ``build_dir/.lock``) while a
    process generates and compiles in it; another process building the same folder waits, then
    finds it up to date."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build(sim, config, root, *, quiet=False):
    """Generate the Verilog of ``config`` under ``root`` and build it for ``sim``.

    Returns a :class:`Build`. With ``quiet`` the build log goes to ``<build>/build.log``.
    """
    from cocotb_tools.runner import get_runner  # noqa: PLC0415 (heavy import, only here)

    if not isinstance(config, Config):
        raise TypeError(f"config must be a hdl.config.Config, not {config!r}")
    if sim not in toolchain.SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(toolchain.SIMULATORS)}, not {sim!r}")
    toolchain.activate()
    build_dir = Path(root) / f"{sim}_{config_id(config)}"
    runner = get_runner(sim)
    with build_lock(build_dir):
        src = build_dir / f"{TOPLEVEL}.v"
        old = src.read_bytes() if src.exists() else None
        generate(config, build_dir / "rtl", TOPLEVEL)
        new = (build_dir / "rtl" / f"{TOPLEVEL}.v").read_bytes()
        if new != old:
            src.write_bytes(new)
        # Simulation builds do not stop on lint warnings: the lint gate is its own test.
        build_args = ["-Wno-fatal", "-O2"] if sim == "verilator" else []
        models = sim_models_name(config, TOPLEVEL)
        sources = [src] + ([build_dir / "rtl" / models] if models else [])
        runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=build_dir / "sim",
                     timescale=("1ns", "1ps"), always=new != old, build_args=build_args,
                     waves=_waves(), log_file=build_dir / "build.log" if quiet else None)
    return Build(sim, config, build_dir, runner)


def run(built, test_module, *, testcase=None, env=None, seed=None, quiet=False):
    """Run ``test_module`` (the name of a cocotb module of this package, e.g.
    ``"regression_tb"``) on a :class:`Build`; raise on failure.

    Returns the path of cocotb's results XML. With ``quiet`` the simulator's log goes to
    ``<build>/<test_module>.log`` instead of the terminal.
    """
    toolchain.activate()
    sim, config, build_dir, runner = built.sim, built.config, built.directory, built._runner
    config_json = json.dumps({k: v for k, v in config.as_dict().items() if k != "sparsity"})
    results = build_dir / f"results_{test_module}_{testcase or 'all'}.xml"
    extra = {"SPARSEMAC_CONFIG": config_json, "SPARSEMAC_SIM": sim, **built.env}
    extra.update(env or {})
    results.unlink(missing_ok=True)            # a stale file must not speak for this run
    # The simulator's working folder: the run's own (stream files, waveforms).
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=build_dir / "sim"))
    try:
        # The testbench modules are imported as sim.<name>, like any module of the package.
        runner.test(hdl_toplevel=built.toplevel, test_module=f"sim.{test_module}",
                    testcase=testcase, test_dir=run_dir, build_dir=build_dir / "sim",
                    timescale=("1ns", "1ps"),
                    results_xml=str(results), waves=_waves(), seed=seed, extra_env=extra,
                    log_file=build_dir / f"{test_module}.log" if quiet else None)
    except SystemExit as exc:
        # Under pytest, cocotb's runner exits when a test failed; the XML says which.
        if not results.exists():
            raise SimulationFailed(f"{test_module} on {built.label}: the "
                                   f"simulator exited with {exc.code} and wrote no "
                                   f"results") from None
    finally:
        if not _waves():
            shutil.rmtree(run_dir, ignore_errors=True)
    if not results.exists():
        raise SimulationFailed(f"{test_module} on {built.label}: no results")
    text = results.read_text()
    if "<testcase" not in text:
        raise SimulationFailed(f"{test_module}: no test ran on {sim}")
    failures = re.findall(r'<(?:failure|error)[^>]*message="([^"]*)"', text)
    if failures or "<failure" in text or "<error" in text:
        detail = "; ".join(failures) or text[:2000]
        raise SimulationFailed(f"{test_module} on {built.label}: {detail}")
    return results
