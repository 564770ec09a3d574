"""The cocotb simulation of the generated RTL as a backend of the runtime (:mod:`host.runtime`).

:class:`Simulation` builds the array of a configuration for a simulator (one build per
simulator, configuration and driver, cached under ``build_root``) and runs a network job in
one simulation (``sim/network_tb.py``: every engine run goes through the testbench's
scoreboard, the RTL against the transaction-level model fed from the words that went in, then
against the golden GEMM rows). The ``bulk`` driver (the default) plays every engine run from
the simulator's memories (:mod:`sim.player`), sized to the largest run of the job; ``axi``
drives the streams from Python with cocotbext-axi. :func:`run_network` is
:func:`host.runtime.run_network` on it.
"""

import shutil
import tempfile
import time
from pathlib import Path

from common.checks import check_choice
from hdl.config import Config
from host.runtime import run_network as run_on

from . import bulk_runner, player, runner

__all__ = ["Simulation", "run_network", "DIGITS_CONFIG", "DRIVERS"]

#: How the simulation drives the streams (:class:`Simulation`).
DRIVERS = ("bulk", "axi")

#: The array of the measured figures (README): 8x8 PEs, 2:4.
DIGITS_CONFIG = Config(rows=8, cols=8, n=2, m=4)


class Simulation:
    """A runtime backend: the RTL of ``config`` on simulator ``sim``.

    ``build_root`` keeps the builds (reused while the Verilog is unchanged); without one, a
    temporary folder is used and removed by :meth:`close`. ``quiet``: build and simulation
    logs go to files in the build directory. ``driver``: one of :data:`DRIVERS`.
    ``min_depths``: the least words per player memory (``bulk``; larger when a job needs
    more), so that jobs of different sizes share one build.
    """

    def __init__(self, sim="verilator", config=None, *, build_root=None, quiet=True,
                 driver="bulk", min_depths=None):
        config = DIGITS_CONFIG if config is None else config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a hdl.config.Config, not {config!r}")
        self.driver = check_choice(driver, "driver", DRIVERS)
        self.min_depths = player.check_depths(min_depths)
        self.name, self.config, self.quiet = sim, config, quiet
        self._tmp = None if build_root is not None else tempfile.mkdtemp(
            prefix="sparsemac-network-")
        self._root = Path(build_root if build_root is not None else self._tmp)
        self._built = None

    def prepare(self, say, words=None):
        """Build the simulation (or reuse the cached build) for engine runs of at most
        ``words`` words per stream; returns the seconds it took."""
        say(f"building {runner.config_id(self.config)} for {self.name} ({self.driver})")
        t0 = time.perf_counter()
        if self.driver == "bulk":
            words = words or {}
            depths = {name: max(least, 1 << (words.get(name, 1) - 1).bit_length())
                      for name, least in self.min_depths.items()}
            self._built = bulk_runner.build(self.name, self.config, self._root, depths=depths,
                                            quiet=self.quiet, internal_clock=True)
        else:
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
                driver="bulk", min_depths=None, **options):
    """:func:`host.runtime.run_network` of ``graph`` on a :class:`Simulation` of ``config``
    (default :data:`DIGITS_CONFIG`, 8x8 2:4) with ``driver``; ``options`` as that function's
    (``images``, ``quantized``, ``max_rows``, ``stalls``, ``seed``, ``progress``).

    Raises :class:`host.runtime.NetworkMismatch` when a layer differs from the golden model,
    :class:`sim.runner.SimulationFailed` when the simulation fails (e.g. the scoreboard found
    the RTL and the transaction-level model disagreeing).
    """
    with Simulation(sim, config, build_root=build_root, quiet=quiet, driver=driver,
                    min_depths=min_depths) as backend:
        return run_on(graph, x, backend, **options)
