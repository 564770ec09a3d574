// Behavioural simulation model of the Lattice ECP5 fabric flip-flop TRELLIS_FF, as Yosys's
// ECP5 flow names it (the cell nextpnr-ecp5 packs into a slice).
//
// The generator instantiates it only where a register must stay one of several copies:
// synthesis merges identical registers (Yosys's opt_merge does), and the copies exist to
// split a high fan-out (hdl/fanout.py). Yosys knows the cell, so synthesis never reads this
// file; simulators and lint do. Same module name and port names (CLK, LSR, CE, DI, M, Q) and
// parameter names and defaults as Yosys's own (share/ecp5/cells_ff.vh).
//
// Modelled: a rising-edge flip-flop (CLKMUX "CLK"), clock enable CE (CEMUX "CE") or none
// (CEMUX "1"), synchronous set/reset by LSR (LSRMUX "LSR", SRMODE "LSR_OVER_CE": LSR wins
// over CE) to 0 (REGSET "RESET") or 1 (REGSET "SET"); the power-up value is the reset value.
// Not modelled (an error at time 0, "ERROR: TRELLIS_FF model ..."): inverted clock, CE or LSR,
// SRMODE "ASYNC", LSRMODE "PRLD" (M is ignored). GSR is accepted and ignored.
//
// Verilog-2005; `verilator --lint-only -Wall` clean.
`timescale 1ns / 1ps
module TRELLIS_FF(CLK, LSR, CE, DI, M, Q);
    /* verilator lint_off UNUSEDPARAM */
    parameter GSR = "ENABLED";
    /* verilator lint_on UNUSEDPARAM */
    parameter [127:0] CEMUX = "1";
    parameter CLKMUX = "CLK";
    parameter LSRMUX = "LSR";
    parameter SRMODE = "LSR_OVER_CE";
    parameter REGSET = "RESET";
    parameter [127:0] LSRMODE = "LSR";
    input CLK, LSR, CE, DI;
    /* verilator lint_off UNUSEDSIGNAL */
    input M;
    /* verilator lint_on UNUSEDSIGNAL */
    output reg Q;

    localparam SRVAL = (REGSET == "SET") ? 1'b1 : 1'b0;
    wire enable = (CEMUX == "1") ? 1'b1 : CE;

    initial begin
        Q = SRVAL;
        if (CLKMUX != "CLK" || LSRMUX != "LSR" || SRMODE != "LSR_OVER_CE" || LSRMODE != "LSR"
                || (CEMUX != "1" && CEMUX != "CE") || (REGSET != "SET" && REGSET != "RESET")) begin
            $display("ERROR: TRELLIS_FF model: unsupported parameters (CLKMUX %0s, LSRMUX %0s, SRMODE %0s, CEMUX %0s, REGSET %0s)",
                     CLKMUX, LSRMUX, SRMODE, CEMUX, REGSET);
            $finish;
        end
    end

    always @(posedge CLK)
        if (LSR)
            Q <= SRVAL;
        else if (enable)
            Q <= DI;
endmodule
