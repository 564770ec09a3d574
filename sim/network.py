"""The cocotb simulation of the generated RTL as a backend of the runtime (:mod:`host.runtime`).

:class:`Simulation` builds the array of a configuration for a simulator (one build per
simulator and configuration, cached under ``build_root``) and runs a network job in one
simulation (``sim/network_tb.py``: every engine run goes through the testbench's scoreboard,
the RTL against the transaction-level model fed from the input monitors, then against the
golden GEMM rows). :func:`run_network` is :func:`host.runtime.run_network` on it.
"""

import shutil
import tempfile
import time
from pathlib import Path

from hdl.config import Config
from host.runtime import run_network as run_on

from . import runner

__all__ = ["Simulation", "run_network", "DIGITS_CONFIG"]

#: The array of the measured figures (README): 8x8 PEs, 2:4.
DIGITS_CONFIG = Config(rows=8, cols=8, n=2, m=4)


class Simulation:
    """A runtime backend: the RTL of ``config`` on simulator ``sim``.

    ``build_root`` keeps the builds (reused while the Verilog is unchanged); without one, a
    temporary folder is used and removed by :meth:`close`. ``quiet``: build and simulation
    logs go to files in the build directory.
    """

    def __init__(self, sim="verilator", config=None, *, build_root=None, quiet=True):
        config = DIGITS_CONFIG if config is None else config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a hdl.config.Config, not {config!r}")
        self.name, self.config, self.quiet = sim, config, quiet
        self._tmp = None if build_root is not None else tempfile.mkdtemp(
            prefix="sparsemac-network-")
        self._root = Path(build_root if build_root is not None else self._tmp)
        self._built = None

    def prepare(self, say):
        """Build the simulation (or reuse the cached build); returns the seconds it took."""
        say(f"building {runner.config_id(self.config)} for {self.name}")
        t0 = time.perf_counter()
        self._built = runner.build(self.name, self.config, self._root, quiet=self.quiet)
        return time.perf_counter() - t0

    def execute(self, job):
        """Run the network job ``job`` (a JSON file, :mod:`host.runtime`) in one simulation; a
        failure raises :class:`sim.runner.SimulationFailed` with cocotb's message."""
        runner.run(self._built, "network_tb", quiet=self.quiet,
                   env={"SPARSEMAC_NETWORK": str(job)})

    def close(self):
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_network(graph, x, *, sim="verilator", config=None, build_root=None, quiet=True,
                **options):
    """:func:`host.runtime.run_network` of ``graph`` on a :class:`Simulation` of ``config``
    (default :data:`DIGITS_CONFIG`, 8x8 2:4); ``options`` as that function's (``images``,
    ``quantized``, ``max_rows``, ``stalls``, ``seed``, ``progress``).

    Raises :class:`host.runtime.NetworkMismatch` when a layer differs from the golden model,
    :class:`sim.runner.SimulationFailed` when the simulation fails (e.g. the scoreboard found
    the RTL and the transaction-level model disagreeing).
    """
    with Simulation(sim, config, build_root=build_root, quiet=quiet) as backend:
        return run_on(graph, x, backend, **options)
