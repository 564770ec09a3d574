"""Small Verilog testbenches for the tests: write them, build and run them, read what they print.

The ECP5 primitives' models (``hdl/vendor/ecp5``) and the components that instantiate them
cannot run in Amaranth's simulator, so their tests simulate Verilog on Icarus and Verilator.
This module is the one copy of that job: :func:`simulate` builds and runs a set of files,
:func:`cycle_testbench` and :func:`cycle_rows` write and read a testbench that prints one row
a clock cycle, and :func:`run_verilog` drives converted components open loop with them.
"""

import re
import subprocess
import textwrap
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.lib.wiring import In
from conftest import require_simulator

#: The behavioural models of the ECP5 primitives.
ECP5_MODELS = Path(__file__).resolve().parent.parent / "hdl" / "vendor" / "ecp5"
#: What :func:`run_verilog` simulates the components with: the multiplier's model.
MODELS = (ECP5_MODELS / "MULT18X18D.v",)
SIMULATORS = ("icarus", "verilator")
#: Seconds a build may take (Verilator compiles C++: minutes for the larger testbenches).
BUILD_TIMEOUT = 900


# --- building and running ---------------------------------------------------------------------

def _build_commands(sim, workdir, files, top, language, verilator_options):
    """``(build command, run command)`` of ``files`` with top module ``top`` on ``sim``."""
    files = [str(f) for f in files]
    if sim == "icarus":
        vvp = str(workdir / f"{top}.vvp")
        generation = [f"-g{language}"] if language else []
        return (["iverilog", *generation, "-s", top, "-o", vvp, *files],
                ["vvp", "-n", vvp])
    if sim == "verilator":
        # --binary --timing: a self-running executable that honours the testbench's delays;
        # -fcoroutines: the C++20 coroutines --timing needs, on compilers that gate them.
        # -Wno-fatal -Wno-lint: warnings (the models', Amaranth's output's) do not stop a build.
        return (["verilator", "--binary", "--timing", "-CFLAGS", "-fcoroutines", "-Wno-fatal",
                 "-Wno-lint", *verilator_options, "--top-module", top,
                 "-Mdir", str(workdir / "obj"), "-o", top, *files],
                [str(workdir / "obj" / top)])
    raise ValueError(f"sim must be one of {SIMULATORS}, not {sim!r}")


def simulate(sim, workdir, files, *, top="tb", language=None, verilator_options=(),
             timeout=600):
    """Build ``files`` on a simulator and run the simulation; skip if the simulator is missing.

    Parameters
    ----------
    sim : str
        ``"icarus"`` (``iverilog``, then ``vvp``) or ``"verilator"`` (``--binary``).
    workdir : path-like
        Where the build goes (``<top>.vvp``, or Verilator's ``obj/``); the simulation runs
        there, so relative file names in the testbench (``$readmemh``) are relative to it.
    files : iterable of path-like
        The Verilog sources: testbench, designs, models.
    top : str
        The top module.
    language : str, optional
        Icarus's language generation (``"2005"`` passes ``-g2005``); None: Icarus's default.
        Verilator ignores it.
    verilator_options : sequence of str
        More Verilator options (``--timescale 1ns/1ps``, ``-Wno-style``...).
    timeout : float
        Seconds the simulation may run.

    Returns
    -------
    str
        What the simulation printed. A failed build or run fails the test with the tail of
        what the tool printed.
    """
    require_simulator(sim)
    workdir = Path(workdir)
    build, run = _build_commands(sim, workdir, files, top, language, verilator_options)
    done = subprocess.run(build, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert done.returncode == 0, f"{sim} build failed:\n{done.stderr[-3000:]}"
    done = subprocess.run(run, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{sim} run failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def verilator_lint(*args):
    """Assert that ``verilator --lint-only -Wall`` with ``args`` (options, then files) passes
    without a warning; skip if Verilator is missing."""
    require_simulator("verilator")
    run = subprocess.run(["verilator", "--lint-only", "-Wall", *map(str, args)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr


# --- a testbench printing one row a cycle -----------------------------------------------------

#: One cycle after its inputs: the outputs printed at 4 ns, the rising edge at 5, the falling
#: edge at 10 (when the next cycle's inputs come).
EDGES = """#4 {display};
#1 clk = 1'b1;
#5 clk = 1'b0;"""


def cycle_testbench(declarations, cycles, outputs, *, apply, setup="", radix="h", step=EDGES):
    """Verilog text of ``module tb``: a clock ``clk``, ``declarations``, and a loop over cycles
    that prints a row a cycle, then ``DONE``.

    Parameters
    ----------
    declarations : str
        Registers, wires and instances, each line indented by four spaces.
    cycles : int
        How many cycles the loop runs (``i`` from 0).
    outputs : sequence of str
        The expressions a row shows, after the cycle number.
    apply : str
        Statements that give cycle ``i`` its inputs, at its start (``v = vec[i];``).
    setup : str
        Statements before the loop (``$readmemh(...)``).
    radix : str
        How the outputs are printed: ``"h"`` (hexadecimal) or ``"b"`` (binary).
    step : str
        The rest of a cycle, with ``{display}`` where the row is printed; by default
        :data:`EDGES`.
    """
    fmt = " ".join(["%0d"] + [f"%{radix}"] * len(outputs))
    display = f'$display("{fmt}", i, {", ".join(outputs)})'
    loop = "\n".join(filter(None, (setup, f"for (i = 0; i < {cycles}; i = i + 1) begin")))
    body = textwrap.indent("\n".join((apply, step.format(display=display))), " " * 12)
    return f"""`timescale 1ns / 1ps
module tb;
    reg clk = 1'b0;
    integer i;
{declarations.rstrip()}
    initial begin
{textwrap.indent(loop, " " * 8)}
{body}
        end
        $display("DONE");
        $finish;
    end
endmodule
"""


def cycle_rows(stdout, cycles):
    """The rows a :func:`cycle_testbench` printed: per cycle, its fields after the cycle number.

    Asserts that the run got to ``DONE`` without an ``ERROR`` (the models print one where
    they are asked for what they do not model) and printed cycles 0 to ``cycles - 1`` in order.
    """
    lines = stdout.splitlines()
    assert "DONE" in lines and "ERROR" not in stdout, stdout[-3000:]
    rows = [line.split() for line in lines if re.match(r"^\d+ ", line)]
    assert [int(r[0]) for r in rows] == list(range(cycles))
    return [row[1:] for row in rows]


# --- open-loop Verilog simulation of converted components -------------------------------------

def component_ports(dut):
    """``(inputs, outputs)`` of a component: lists of ``(Verilog port name, Value)``, the
    names :func:`amaranth.back.verilog.convert` gives them (``i__payload``...), 0-bit ports
    left out."""
    inputs, outputs = [], []
    for path, member, value in dut.signature.flatten(dut):
        value = Value.cast(value)
        if len(value):
            (inputs if member.flow == In else outputs).append(("__".join(map(str, path)),
                                                               value))
    return inputs, outputs


def record_ports(sim, dut, trace):
    """Append to ``trace``, at every clock edge of ``sim``, every port of ``dut`` just before
    the edge (``{name: unsigned bit pattern}``): the inputs to replay, the outputs to match."""
    inputs, outputs = component_ports(dut)
    ports = inputs + outputs

    async def recorder(ctx):
        async for _, _, *values in ctx.tick().sample(*(value for _, value in ports)):
            trace.append({name: int(v) & ((1 << len(value)) - 1)
                          for (name, value), v in zip(ports, values)})

    sim.add_testbench(recorder, background=True)


def _instances(duts):
    """Convert every component (as ``dut0``, ``dut1``...) and wire it into a testbench.

    Returns the Verilog of the components, the testbench's declarations, the input fields
    ``(k, port, bits)`` in the order they pack into a vector word (the first at bit 0), and
    the outputs ``(k, port)`` in the order a row shows them.
    """
    texts, body, fields, shown = [], [], [], []
    offset = 0
    for k, (dut, _) in enumerate(duts):
        name = f"dut{k}"
        text = verilog.convert(dut, name=name)
        texts.append(text)
        header = re.search(rf"\bmodule {name}\((.*?)\);", text, re.S).group(1)
        module_ports = {p.strip() for p in header.split(",")}
        inputs, outputs = component_ports(dut)
        conns = [f".{p}({v})" for p, v in (("clk", "clk"), ("rst", "1'b0"))
                 if p in module_ports]
        for port, value in inputs:
            conns.append(f".{port}(v[{offset + len(value) - 1}:{offset}])")
            fields.append((k, port, len(value)))
            offset += len(value)
        for port, value in outputs:
            body.append(f"    wire [{len(value) - 1}:0] {name}_{port};")
            conns.append(f".{port}({name}_{port})")
            shown.append((k, port))
        body.append(f"    {name} {name}_i (" + ", ".join(conns) + ");")
    return "\n".join(texts), body, fields, shown


def _vector_words(duts, fields, cycles):
    """Per cycle, every component's inputs packed into one word (``fields`` order)."""
    words = []
    for cycle in range(cycles):
        word = 0
        shift = 0
        for k, port, bits in fields:
            stimulus = duts[k][1]
            value = stimulus[cycle].get(port, 0) if cycle < len(stimulus) else 0
            word |= (value & ((1 << bits) - 1)) << shift
            shift += bits
        words.append(word)
    return words


def run_verilog(sim, workdir, duts, *, sources=MODELS):
    """Simulate components as Verilog, each driven open loop by its own stimulus.

    ``duts`` is a list of ``(component, stimulus)``, the stimulus a list over cycles of
    ``{input name: value}`` (missing inputs are 0, ``rst`` is held at 0). One testbench holds
    every component (converted as ``dut0``, ``dut1``...) and ``sources`` (the primitives'
    models), all on one clock, for as many cycles as the longest stimulus. Returns, per
    component, its outputs of every cycle just before the clock edge: ``{name: unsigned}``.
    """
    require_simulator(sim)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cycles = max(len(stimulus) for _, stimulus in duts)
    texts, body, fields, shown = _instances(duts)
    width = max(sum(bits for _, _, bits in fields), 1)
    digits = -(-width // 4)
    words = _vector_words(duts, fields, cycles)
    (workdir / "vectors.hex").write_text("".join(f"{w:0{digits}x}\n" for w in words))
    (workdir / "duts.v").write_text(texts)
    declarations = "\n".join([f"    reg [{width - 1}:0] vec [0:{cycles - 1}];",
                              f"    reg [{width - 1}:0] v = {width}'d0;", *body])
    (workdir / "tb.v").write_text(cycle_testbench(
        declarations, cycles, [f"dut{k}_{port}" for k, port in shown], apply="v = vec[i];",
        setup=f'$readmemh("{workdir / "vectors.hex"}", vec);'))
    # Icarus with Verilog-2005: there the registers' initial values (`reg x = 0;`) are
    # assignments at time 0 that wake the `always @*` blocks reading them (Yosys's Verilog
    # counts on it); with -g2012 they are not events, and such a block stays x until an input
    # changes.
    out = simulate(sim, workdir, [workdir / "tb.v", workdir / "duts.v", *sources],
                   language="2005", verilator_options=("-Wno-style",))
    results = [[{} for _ in range(cycles)] for _ in duts]
    for cycle, row in enumerate(cycle_rows(out, cycles)):
        for (k, port), text in zip(shown, row):
            results[k][cycle][port] = int(text, 16)    # an x or z fails here
    return results
