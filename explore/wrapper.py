"""An I/O wrapper for placing and routing the array on a device without out-of-context mode.

The array has far more port bits than a package has pins (a 2x2 dense array: 179 input and
63 output bits besides the clock; the iCE40UP5K's SG48 package has 39 I/O pins, the
iCE40HX8K's CT256 206), and nextpnr-ice40, unlike nextpnr-ecp5, has no ``--out-of-context``
mode that leaves the ports unplaced. :func:`wrap` writes a Verilog top level that keeps every
port of the array inside the device:

* **inputs**: one shift chain of registers, fed from the pin ``din``; chain register ``k``
  drives input bit ``k`` of the array (the ports in the manifest's order, least significant
  bit first; the clock excepted; :func:`layout`). Every input bit has a register of its own,
  so synthesis cannot tie two inputs together or to a constant.
* **outputs**: a multiple-input signature register (MISR): register ``k`` takes output bit
  ``k`` XOR register ``k - 1`` on every clock, and the last one drives the pin ``dout``. A
  change of any one output bit reaches ``dout`` (each bit has a register of its own, so no
  two can cancel), so synthesis must keep all the logic behind every output bit.
* the clock pin is the array's clock (``aclk``), which nextpnr puts on a global buffer.

Three pins in all, each registered (``din`` into the first chain register, ``dout`` from the
last MISR register), so no pad path is a register-to-register path of the Fmax. Inside, an
input bit's path starts at a chain register, as it would at an upstream register, and an
output bit's path gains at most one 2-input XOR before its MISR register.

The wrapper's own cells (:func:`cost`): one flip-flop per input bit and per output bit, and
at most one LUT per output bit (the XOR: none where the output is a constant, and Yosys
often merges it into the LUT driving the output). A 2x2 dense array: 242 flip-flops and at
most 63 LUTs. What the wrapped design costs over the array alone, as the sweep measures it,
is usually smaller still: an array register that samples an input bit on every clock has the
same input as the next chain register, and synthesis merges the two (1x1 dense on
ice40-hx8k: 47 LUTs and 149 flip-flops more than the array's 5381 LUTs and 2416
flip-flops). The LUT difference also carries how differently synthesis maps the array in
the two contexts, a few LUTs either way (59 LUTs for 55 output bits, on a later design).
"""

import re

__all__ = ["wrap", "layout", "cost", "IO_PINS"]

#: The wrapper's pins besides the clock: the serial input and the signature output.
IO_PINS = ("din", "dout")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_ports(ports, clock):
    """The ports as (name, direction, width) after checking them (the manifest's ``ports``)."""
    if not isinstance(ports, (list, tuple)):
        raise TypeError(f"ports must be a list of the manifest's port dicts, not "
                        f"{type(ports).__name__}")
    out, seen = [], set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            raise TypeError(f"ports[{i}] must be a dict with name, direction and width, not "
                            f"{type(port).__name__}")
        missing = [k for k in ("name", "direction", "width") if k not in port]
        if missing:
            raise ValueError(f"ports[{i}] must have name, direction and width, not "
                             f"{sorted(port)} (missing {', '.join(missing)})")
        name, direction, width = port["name"], port["direction"], port["width"]
        if not isinstance(name, str) or not _IDENT.match(name):
            raise ValueError(f"ports[{i}]: name must be a Verilog identifier, not {name!r}")
        if name in IO_PINS:
            raise ValueError(f"ports[{i}]: name {name!r} is one of the wrapper's own pins")
        if name in seen:
            raise ValueError(f"ports[{i}]: name {name!r} appears twice")
        seen.add(name)
        if direction not in ("input", "output"):
            raise ValueError(f"ports[{i}] ({name}): direction must be 'input' or 'output', "
                             f"not {direction!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"ports[{i}] ({name}): width must be a positive integer, not "
                             f"{width!r}")
        out.append((name, direction, width))
    clocks = [p for p in out if p[0] == clock]
    if not clocks or clocks[0][1:] != ("input", 1):
        raise ValueError(f"ports must have the clock {clock!r} as a 1-bit input")
    if not any(d == "input" for n, d, _ in out if n != clock):
        raise ValueError("ports must have at least one input besides the clock")
    if not any(d == "output" for _, d, _ in out):
        raise ValueError("ports must have at least one output")
    return out


def layout(ports, *, clock="aclk"):
    """Where every port bit goes: ``{"inputs": [(port, bit), ...], "outputs": [...]}``.

    ``inputs[k]`` is driven by shift-chain register ``k`` (``din`` enters at 0);
    ``outputs[k]`` feeds MISR register ``k`` (``dout`` is the last one).
    """
    checked = _check_ports(ports, clock)
    bits = {"input": [], "output": []}
    for name, direction, width in checked:
        if name != clock:
            bits[direction] += [(name, b) for b in range(width)]
    return {"inputs": bits["input"], "outputs": bits["output"]}


def cost(ports, *, clock="aclk"):
    """The wrapper's own resources: ``{"FF": input bits + output bits, "LUT": output bits}``
    (the LUTs an upper bound: see the module docstring), and the bit counts."""
    bits = layout(ports, clock=clock)
    n_in, n_out = len(bits["inputs"]), len(bits["outputs"])
    return {"FF": n_in + n_out, "LUT": n_out, "input_bits": n_in, "output_bits": n_out}


def _shift(reg, width, new):
    """``reg <= {reg[width-2:0], new}`` (``reg <= new`` for one bit)."""
    return f"{reg} <= {new};" if width == 1 else f"{reg} <= {{{reg}[{width - 2}:0], {new}}};"


def wrap(ports, *, module="sparsemac", top=None, clock="aclk"):
    """Verilog text of a top level ``top`` (default ``MODULE_wrapped``) with the pins
    ``clock``, ``din`` and ``dout`` around one instance ``u_array`` of ``module``, whose port
    list ``ports`` is the manifest's (:func:`hdl.generate.manifest`: dicts with ``name``,
    ``direction`` ``"input"``/``"output"`` and ``width``). See the module docstring.

    The text holds the wrapper only: give synthesis the array's Verilog too.
    """
    if not isinstance(module, str) or not _IDENT.match(module):
        raise ValueError(f"module must be a Verilog identifier, not {module!r}")
    top = f"{module}_wrapped" if top is None else top
    if not isinstance(top, str) or not _IDENT.match(top) or top == module:
        raise ValueError(f"top must be a Verilog identifier other than {module!r}, not {top!r}")
    checked = _check_ports(ports, clock)
    bits = layout(ports, clock=clock)
    n_in, n_out = len(bits["inputs"]), len(bits["outputs"])
    # sig[0] <= outs[0]; sig[k] <= sig[k - 1] ^ outs[k]
    misr = "sig <= outs;" if n_out == 1 else f"sig <= {{sig[{n_out - 2}:0], 1'b0}} ^ outs;"
    lines = [
        f"// I/O wrapper of {module} for place and route without out-of-context mode",
        "// (explore/wrapper.py): every input bit from a shift chain fed by din, every output",
        f"// bit into a signature register (MISR) read at dout. {n_in} input bits, "
        f"{n_out} output bits.",
        "",
        f"module {top} (",
        f"  input  wire {clock},",
        "  input  wire din,",
        "  output wire dout",
        ");",
        f"  reg  [{n_in - 1}:0] chain = {{{n_in}{{1'b0}}}};",
        f"  reg  [{n_out - 1}:0] sig = {{{n_out}{{1'b0}}}};",
        f"  wire [{n_out - 1}:0] outs;",
        "",
        f"  always @(posedge {clock}) begin",
        f"    {_shift('chain', n_in, 'din')}",
        f"    {misr}",
        "  end",
        "",
        f"  assign dout = sig[{n_out - 1}];",
        "",
        f"  {module} u_array (",
    ]
    offsets = {"input": 0, "output": 0}
    connections = []
    for name, direction, width in checked:
        if name == clock:
            connections.append(f"    .{name}({clock})")
            continue
        vector = "chain" if direction == "input" else "outs"
        lo = offsets[direction]
        offsets[direction] += width
        select = f"{vector}[{lo}]" if width == 1 else f"{vector}[{lo + width - 1}:{lo}]"
        connections.append(f"    .{name}({select})")
    lines.append(",\n".join(connections))
    lines += ["  );", "endmodule", ""]
    return "\n".join(lines)
