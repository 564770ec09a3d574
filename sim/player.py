"""A simulation-only Verilog wrapper that plays whole layers into the accelerator.

The cocotbext-axi testbench (:mod:`sim.tb`) wakes Python on every clock edge. The *player*
wrapper keeps the per-cycle work in the simulator: it instantiates the generated top level
and, around it,

- one word memory per input stream (``act``, ``wgt``, ``qp``; ``tlast`` stored above
  ``tdata``), filled in one go by ``$fread`` from a file when ``load`` is high at a clock edge;
- one player per input stream that presents the words in order on ``tvalid``/``tdata``/
  ``tlast`` (``tvalid`` never waits for ``tready``; a word holds until it is taken), with idle
  cycles: none, one in every ``idle_period``, or random (probability ``idle_prob / 256`` per
  cycle, from a seeded xorshift32 generator per stream);
- the same three modes on ``m_axis_out_tready`` (``bp_*``);
- a capture memory of every output word, written in one go by ``$writememh`` the cycle after
  ``out_words`` words were taken, when ``done`` rises;
- counters: the cycle of the first input transfer and of the last output transfer (a layer
  takes ``last_cycle - first_cycle + 1`` cycles, as :class:`sim.tb.TB` counts them) and the
  words transferred on every stream;
- an AXI4-Lite register slice per channel, so that nothing from outside reaches the
  accelerator without a register (see :func:`player_verilog` for why).

Ports of the wrapper (``<name>``; Python sets the control inputs once per layer):

============================  ===  ========================================================
``aclk``, ``aresetn``         in   clock, active-low synchronous reset (the accelerator's
                                   own reset follows one cycle later)
``fast``                      in   only with ``clock_ns``: run on the wrapper's own clock
``s_axil_*``, ``irq``              the accelerator's AXI4-Lite slave (through the register
                                   slices: a transfer every other cycle) and interrupt
``load``                      in   at a rising edge: read the input files, clear players,
                                   counters and ``done``, reseed the stall generators
``run``                       in   while high the players present words (raise it after
                                   START)
``act_words`` ...             in   32 bits: ``act_words``, ``wgt_words``, ``qp_words`` to
                                   play, ``out_words`` to capture
``idle_mode``, ``bp_mode``    in   2 bits: 0 none, 1 periodic, 2 random (:data:`MODES`)
``idle_period``, ``bp_period`` in  16 bits: every ``period``-th cycle is idle (>= 2)
``idle_prob``, ``bp_prob``    in   8 bits: idle with probability ``prob / 256``
``seed``                      in   32 bits; each generator starts from its own mix of it
``load_error``                out  3 bits (``qp``, ``wgt``, ``act``): file missing or short
``done``                      out  ``out_words`` words captured, the capture file written
``started``                   out  an input word was transferred since ``load`` or reset
``cycle``                     out  32-bit cycle counter (cleared by reset)
``first_cycle``               out  ``cycle`` at the first input transfer since ``load`` or
                                   reset
``last_cycle``                out  ``cycle`` at the latest output transfer
``act_sent`` ... ``out_count`` out words transferred since ``load`` or reset on each stream
============================  ===  ========================================================

Files (:data:`FILES`, relative to the simulator's working folder): an input file holds its
words back to back, each big-endian in :func:`word_bytes` bytes (``$fread``'s order), with
``tlast`` as the bit above ``tdata``; the capture file has one hexadecimal word per line.

The Verilog is Verilog-2005 that Icarus Verilog 11 and Verilator 5 both accept; only the
optional own clock uses a delay (Verilator then builds with ``--timing``). The ports carry
``/*verilator public_flat_rw*/``, so a Verilator build may drop ``--public-flat-rw``.
"""

import operator

__all__ = ["player_verilog", "word_bytes", "check_depths", "MODES", "FILES", "STREAMS", "NAME",
           "DEFAULT_DEPTHS"]

#: Name of the generated wrapper module.
NAME = "sparsemac_player"
#: Input streams, in the order of their generator seeds.
STREAMS = ("act", "wgt", "qp")
#: Stall modes and their codes on ``idle_mode`` / ``bp_mode``.
MODES = {"none": 0, "periodic": 1, "random": 2}
#: The files the player reads (per input stream) and writes (``out``).
FILES = {"act": "bulk_act.bin", "wgt": "bulk_wgt.bin", "qp": "bulk_qp.bin",
         "out": "bulk_out.hex"}
#: Words per memory unless the build asks for others.
DEFAULT_DEPTHS = {"act": 1 << 16, "wgt": 1 << 14, "qp": 1 << 12, "out": 1 << 16}
#: Odd constants that make each stream's generator start from its own state.
_SEED_MIX = (0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35, 0x27D4EB2F)


def _ports(manifest):
    ports = {p["name"]: (p["direction"], int(p["width"])) for p in manifest["ports"]}
    need = {"aclk", "aresetn", "irq", "m_axis_out_tdata", "m_axis_out_tvalid",
            "m_axis_out_tready", "m_axis_out_tlast"}
    for s in STREAMS:
        need |= {f"s_axis_{s}_{f}" for f in ("tdata", "tvalid", "tready", "tlast")}
    missing = sorted(need - set(ports))
    if missing:
        raise ValueError(f"the manifest lacks ports {', '.join(missing)}")
    return ports


def _decl(direction, width, name):
    return f"  {direction} wire {_range(width)}{name} /*verilator public_flat_rw*/"


def check_depths(depths):
    """``depths`` (a dict, or None) completed with :data:`DEFAULT_DEPTHS` and validated."""
    out = dict(DEFAULT_DEPTHS)
    for key, value in (depths or {}).items():
        if key not in out:
            raise ValueError(f"depths has keys {', '.join(out)}, not {key!r}")
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"Depth of {key} must be an integer, not {value!r}") from None
        if not 1 <= value <= 1 << 30:
            raise ValueError(f"Depth of {key} must be between 1 and 2^30 words, not {value}")
        out[key] = value
    return out


def word_bytes(width):
    """Bytes of one word of a stream with ``width`` tdata bits in the player's files."""
    return (width + 1 + 7) // 8


def _source(s, width, depth, seed_mix):
    """One input stream: memory, stall generator and player (Verilog text)."""
    nbytes = word_bytes(width)
    return f"""
  // ---- {s}: {depth} words of {width} bits + tlast
  reg  [{width}:0] {s}_mem [0:{depth - 1}];
  reg  [31:0] {s}_next;                    // index of the next word to present
  reg  [31:0] {s}_rng;                     // xorshift32 state of the idle generator
  reg  [15:0] {s}_cnt;                     // position in the idle period
  reg         {s}_bad;                     // the file was missing or short
  integer     {s}_fd, {s}_got;
  reg         {s}_valid /*verilator public_flat_rw*/;
  reg         {s}_last;
  reg  [{width - 1}:0] {s}_data;
  wire        {s}_ready /*verilator public_flat_rw*/;
  wire [31:0] {s}_x1 = {s}_rng ^ ({s}_rng << 13);
  wire [31:0] {s}_x2 = {s}_x1 ^ ({s}_x1 >> 17);
  wire [31:0] {s}_x3 = {s}_x2 ^ ({s}_x2 << 5);
  wire        {s}_pause = idle_mode_q == 2'd1 ? {s}_cnt == idle_period_q - 16'd1
                        : idle_mode_q == 2'd2 ? {s}_rng[31:24] < idle_prob_q : 1'b0;
  wire        {s}_fire = {s}_valid & {s}_ready;
  wire [31:0] {s}_seed = seed ^ 32'h{seed_mix:08x};
  always @(posedge clk) begin
    if (!aresetn || load) begin
      {s}_valid <= 1'b0;
      {s}_rng <= {s}_seed == 32'd0 ? 32'd1 : {s}_seed;
      {s}_cnt <= 16'd0;
      {s}_next <= 32'd0;
      {s}_sent <= 32'd0;
      if (load) begin
        {s}_bad <= 1'b0;
        if ({s}_words != 32'd0) begin
          {s}_fd = $fopen("{FILES[s]}", "rb");
          if ({s}_fd == 0) begin
            {s}_bad <= 1'b1;
          end else begin
            {s}_got = $fread({s}_mem, {s}_fd, 0, {s}_words);
            $fclose({s}_fd);
            if ({s}_got != {s}_words * {nbytes}) {s}_bad <= 1'b1;
          end
        end
      end
    end else begin
      // Each generator runs only in its own mode: nothing changes per cycle without stalls.
      if (idle_mode_q == 2'd2) {s}_rng <= {s}_x3;
      if (idle_mode_q == 2'd1)
        {s}_cnt <= {s}_cnt == idle_period_q - 16'd1 ? 16'd0 : {s}_cnt + 16'd1;
      if ({s}_fire) {s}_sent <= {s}_sent + 32'd1;
      if (!{s}_valid || {s}_ready) begin
        if (run && {s}_next < {s}_words && !{s}_pause) begin
          {{{s}_last, {s}_data}} <= {s}_mem[{s}_next];
          {s}_valid <= 1'b1;
          {s}_next <= {s}_next + 32'd1;
        end else begin
          {s}_valid <= 1'b0;
        end
      end
    end
  end
"""


def _range(width):
    return f"[{width - 1}:0] " if width > 1 else ""


#: AXI4-Lite channels: name, and whether it runs towards the accelerator.
_AXIL_CHANNELS = (("aw", True), ("w", True), ("ar", True), ("b", False), ("r", False))
_AXIL_FIELDS = ("valid", "ready", "addr", "prot", "data", "strb", "resp")


def _axil_slice(axil):
    """AXI4-Lite register slices between the wrapper's ports and the accelerator's: one
    register per channel, ``ready`` from that register only (a transfer every other cycle).

    Returns ``(Verilog text, port connections of the accelerator)``.
    """
    fields = {p.removeprefix("s_axil_"): w for p, _, w in axil}
    text, conns = [], []
    for ch, to_dut in _AXIL_CHANNELS:
        sigs = {f: w for f, w in fields.items()
                if f.startswith(ch) and f[len(ch):] in _AXIL_FIELDS}
        valid, ready = f"{ch}valid", f"{ch}ready"
        if valid not in sigs or ready not in sigs:
            raise ValueError(f"the manifest's AXI4-Lite port lacks {valid}/{ready}")
        payload = [f for f in sigs if f not in (valid, ready)]
        src = "s_axil_" if to_dut else "dut_"
        take = "".join(f" sl_{f} <= {src}{f};" for f in payload)
        text.append(f"  reg         sl_{valid};\n")
        text += [f"  reg  {_range(sigs[f])}sl_{f};\n" for f in payload]
        if to_dut:
            # valid and payload registered; the wrapper's ready is "the register is empty"
            text.append(f"  wire        dut_{ready};\n"
                        f"  assign s_axil_{ready} = !sl_{valid};\n"
                        f"  always @(posedge clk)\n"
                        f"    if (!aresetn) sl_{valid} <= 1'b0;\n"
                        f"    else if (!sl_{valid}) begin sl_{valid} <= s_axil_{valid};{take}"
                        f" end\n"
                        f"    else if (dut_{ready}) sl_{valid} <= 1'b0;\n")
            conns += [f".s_axil_{valid}(sl_{valid})", f".s_axil_{ready}(dut_{ready})"]
            conns += [f".s_axil_{f}(sl_{f})" for f in payload]
        else:
            # the accelerator's response registered; its ready is "the register is empty"
            text.append(f"  wire        dut_{valid};\n")
            text += [f"  wire {_range(sigs[f])}dut_{f};\n  assign s_axil_{f} = sl_{f};\n"
                     for f in payload]
            text.append(f"  assign s_axil_{valid} = sl_{valid};\n"
                        f"  always @(posedge clk)\n"
                        f"    if (!aresetn) sl_{valid} <= 1'b0;\n"
                        f"    else if (!sl_{valid}) begin sl_{valid} <= dut_{valid};{take}"
                        f" end\n"
                        f"    else if (s_axil_{ready}) sl_{valid} <= 1'b0;\n")
            conns += [f".s_axil_{valid}(dut_{valid})", f".s_axil_{ready}(!sl_{valid})"]
            conns += [f".s_axil_{f}(dut_{f})" for f in payload]
    covered = {c[len(".s_axil_"):c.index("(")] for c in conns}
    unknown = sorted(set(fields) - covered)
    if unknown:
        raise ValueError(f"AXI4-Lite ports the register slices do not know: {unknown}")
    return "".join(text), conns


def player_verilog(manifest, *, depths=None, name=NAME, clock_ns=None):
    """The player wrapper (Verilog text) around the top level that ``manifest`` describes.

    Parameters
    ----------
    manifest : dict
        The JSON manifest :func:`hdl.generate.generate` writes beside the Verilog (its
        ``name`` is the instantiated module; its ``ports`` give every width).
    depths : dict, optional
        Words per memory, keys ``act``, ``wgt``, ``qp``, ``out`` (:data:`DEFAULT_DEPTHS`).
    name : str
        Module name of the wrapper.
    clock_ns : int, optional
        Add a clock of this period (an even number of ns, the build's timescale being 1 ns)
        generated inside the wrapper, and an input ``fast``: while ``fast`` is high and
        ``done`` low the design runs on that clock, with no simulator callback per edge
        (Verilator then needs ``--timing``); otherwise on ``aclk``. Hand over only while
        ``aclk`` is low (see :meth:`sim.bulk.BulkTB.play`). By default the design always
        runs on ``aclk``.

    Nothing from the wrapper's inputs reaches the accelerator without a register: Verilator
    evaluates the logic fed by top-level inputs on every change of any input, twice a cycle
    with cocotb's clock, which for the accelerator's next-state logic (all of it depends on
    its reset) nearly doubled the cost of a cycle.

    Raises
    ------
    TypeError, ValueError
        If a depth or the clock period is not a suitable integer, or the manifest lacks a
        stream or AXI4-Lite port.
    """
    ports = _ports(manifest)
    depths = check_depths(depths)
    dut = manifest["name"]
    width = {s: ports[f"s_axis_{s}_tdata"][1] for s in STREAMS}
    out_w = ports["m_axis_out_tdata"][1]
    axil = [(p, d, w) for p, (d, w) in ports.items() if p.startswith("s_axil_")]

    if clock_ns is not None:
        clock_ns = operator.index(clock_ns)
        if clock_ns < 2 or clock_ns % 2:
            raise ValueError(f"Clock period must be an even number of ns, not {clock_ns}")
    decls = [_decl("input", 1, "aclk"), _decl("input", 1, "aresetn")]
    if clock_ns is not None:
        decls.append(_decl("input", 1, "fast"))
    decls += [_decl(d, w, p) for p, d, w in axil]
    decls.append(_decl("output", 1, "irq"))
    decls += [_decl("input", 1, "load"), _decl("input", 1, "run")]
    decls += [_decl("input", 32, f"{s}_words") for s in (*STREAMS, "out")]
    for side in ("idle", "bp"):
        decls += [_decl("input", 2, f"{side}_mode"), _decl("input", 16, f"{side}_period"),
                  _decl("input", 8, f"{side}_prob")]
    decls += [_decl("input", 32, "seed")]
    decls.append(_decl("output", 3, "load_error"))
    regs = ["done", "started", "cycle", "first_cycle", "last_cycle",
            *(f"{s}_sent" for s in STREAMS), "out_count"]
    decls += [_decl("output", 1 if r in ("done", "started") else 32, r).replace(
        "wire", "reg ") for r in regs]

    conns = [".aclk(clk)", ".aresetn(dut_aresetn)", ".irq(irq)"]
    axil_slice, axil_conns = _axil_slice(axil)
    conns += axil_conns
    for s in STREAMS:
        conns += [f".s_axis_{s}_tdata({s}_data)", f".s_axis_{s}_tvalid({s}_valid)",
                  f".s_axis_{s}_tready({s}_ready)", f".s_axis_{s}_tlast({s}_last)"]
    conns += [".m_axis_out_tdata(out_data)", ".m_axis_out_tvalid(out_valid)",
              ".m_axis_out_tready(out_ready)", ".m_axis_out_tlast(out_last)"]

    if clock_ns is None:
        clock = "  wire        clk = aclk;\n"
    else:
        clock = ("  // The design's clock: aclk, or while fast (and not done) a clock generated\n"
                 "  // here, which costs no simulator callback per edge. Both are low at a\n"
                 "  // hand-over; done stops the fast clock right after its rising edge.\n"
                 "  // One time step per cycle: the rising edge, and the fall in the NBA\n"
                 "  // region with the flip-flops' updates (nothing here uses negedge), so\n"
                 "  // the simulator's loop turns once a cycle, not twice (13 % on Verilator).\n"
                 "  reg         fclk;\n"
                 "  initial fclk = 1'b0;\n"
                 "  wire        free = fast & !done;\n"
                 f"  always #{clock_ns} if (free) begin fclk = 1'b1; fclk <= 1'b0; end\n"
                 "  wire        clk = free ? fclk : aclk;\n")
    body = "".join(_source(s, width[s], depths[s], _SEED_MIX[i])
                   for i, s in enumerate(STREAMS))
    text = f"""// Simulation only: plays stream words from memories into {dut} and captures its
// output (generated by sim/player.py; never part of the shipped Verilog).
// File handles are plain variables of the clocked processes that read the files.
/* verilator lint_off BLKSEQ */
module {name} (
{(","+chr(10)).join(decls)}
);
{clock}
  // Nothing from outside reaches the accelerator without a register: Verilator evaluates the
  // logic fed by top-level inputs whenever any input changes (the clock included), so its
  // reset comes one cycle after ours, the stall settings are sampled, and AXI4-Lite goes
  // through register slices.
  reg         dut_aresetn;
  reg  [1:0]  idle_mode_q, bp_mode_q;
  reg  [15:0] idle_period_q, bp_period_q;
  reg  [7:0]  idle_prob_q, bp_prob_q;
  always @(posedge clk) begin
    dut_aresetn <= aresetn;
    idle_mode_q <= idle_mode;
    idle_period_q <= idle_period;
    idle_prob_q <= idle_prob;
    bp_mode_q <= bp_mode;
    bp_period_q <= bp_period;
    bp_prob_q <= bp_prob;
  end
{body}
  // ---- out: backpressure generator and capture of {depths['out']} words of {out_w} bits + tlast
  reg  [{out_w}:0] out_mem [0:{depths['out'] - 1}];
  reg  [31:0] out_rng;
  reg  [15:0] out_cnt;
  wire [{out_w - 1}:0] out_data;
  wire        out_valid, out_last;
  wire [31:0] out_x1 = out_rng ^ (out_rng << 13);
  wire [31:0] out_x2 = out_x1 ^ (out_x1 >> 17);
  wire [31:0] out_x3 = out_x2 ^ (out_x2 << 5);
  wire        out_pause = bp_mode_q == 2'd1 ? out_cnt == bp_period_q - 16'd1
                        : bp_mode_q == 2'd2 ? out_rng[31:24] < bp_prob_q : 1'b0;
  wire        out_ready = dut_aresetn & !out_pause;
  wire        out_fire = out_valid & out_ready;
  wire [31:0] out_seed = seed ^ 32'h{_SEED_MIX[3]:08x};
  wire        in_fire = act_fire | wgt_fire | qp_fire;
  assign load_error = {{qp_bad, wgt_bad, act_bad}};
  // ---- AXI4-Lite: a register slice per channel (the accelerator sees registers only)
{axil_slice}  always @(posedge clk) begin
    if (!aresetn) begin
      cycle <= 32'd0;
    end else begin
      cycle <= cycle + 32'd1;
    end
    if (!aresetn || load) begin
      out_rng <= out_seed == 32'd0 ? 32'd1 : out_seed;
      out_cnt <= 16'd0;
      out_count <= 32'd0;
      done <= 1'b0;
      started <= 1'b0;
      first_cycle <= 32'd0;
      last_cycle <= 32'd0;
    end else begin
      if (bp_mode_q == 2'd2) out_rng <= out_x3;
      if (bp_mode_q == 2'd1)
        out_cnt <= out_cnt == bp_period_q - 16'd1 ? 16'd0 : out_cnt + 16'd1;
      if (in_fire && !started) begin
        started <= 1'b1;
        first_cycle <= cycle;
      end
      if (out_fire) begin
        if (out_count < {depths['out']}) out_mem[out_count] <= {{out_last, out_data}};
        out_count <= out_count + 32'd1;
        last_cycle <= cycle;
      end
      if (run && !done && out_words != 32'd0 && out_count >= out_words) begin
        $writememh("{FILES['out']}", out_mem, 0, out_words - 32'd1);
        done <= 1'b1;
      end
    end
  end

  {dut} dut (
    {(","+chr(10)+"    ").join(conns)}
  );
endmodule
/* verilator lint_on BLKSEQ */
"""
    return text
