"""Processing element of the weight-stationary N:M sparse systolic array.

A PE holds, for one group of ``m`` consecutive inputs and one output channel, ``n`` int8
weights and their ``log2(m)``-bit positions in the group, in two banks (one in use, one being
loaded). Each cycle it takes the ``m`` activations of its group (already offset by the input
zero point, 9-bit signed), selects ``n`` of them by index, multiplies them by its weights and
adds the products to the partial sum from the PE above: ``m`` dense-equivalent MACs per
cycle with ``n`` multipliers. The bank used travels with the activations, so a new weight tile
takes effect as a wavefront, without stopping the array.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import Config
from .fanout import Fanout
from .multiplier import Multiplier

__all__ = ["PE", "activation_layout", "load_layout", "pe_latency", "booth_product", "booth_halves",
           "booth_digits",
           "ACT_WIDTH", "PRODUCT_WIDTH"]

#: An activation minus the input zero point: int8 - int8 spans [-255, 255].
ACT_WIDTH = 9
#: A product of such an activation and an int8 weight.
PRODUCT_WIDTH = ACT_WIDTH + 8


def booth_digits(w):
    """The radix-4 Booth digits of an int8 weight, as a 12-bit value: for each digit ``d_i``
    in {-2, -1, 0, 1, 2} (``w = sum_i d_i * 4^i``, from the pair of bits ``2i``, ``2i+1`` and
    the bit below), three flags at bits ``3i`` (zero), ``3i+1`` (double: ``|d_i| = 2``) and
    ``3i+2`` (negative). A pipelined PE registers these instead of the weight, so that the
    partial products start from decoded flip-flops."""
    bits = Cat(0, w)                            # w_{-1} = 0, then w_0 .. w_7
    flags = []
    for i in range(4):
        b0, b1, b2 = bits[2 * i], bits[2 * i + 1], bits[2 * i + 2]
        zero = (b0 & b1 & b2) | ~(b0 | b1 | b2)
        double = (b2 & ~b1 & ~b0) | (~b2 & b1 & b0)
        flags += [zero, double, b2 & ~zero]
    return Cat(*flags)


def booth_halves(a, neg, digits):
    """Two values whose sum is ``a * w`` modulo ``2^PRODUCT_WIDTH`` (``a`` signed
    ``ACT_WIDTH`` bits, ``neg`` its negation ``-a``, signed ``ACT_WIDTH + 1`` bits,
    ``digits`` = :func:`booth_digits` of the int8 ``w``), from radix-4 Booth partial products,
    as logic: no ``*``, so synthesis maps no DSP block.

    Each term is ``0``, ``±a`` or ``±2a``, exact: a negative digit selects ``neg`` (not the
    one's complement of ``a`` with a correction bit to add, which made each half two adds
    deep). The four terms are summed in two halves (digits 0 and 1, digits 2 and 3), each one
    adder deep, so that a pipelined PE can register them before the last add.
    """
    terms = []
    for i in range(4):
        zero, double, negative = digits[3 * i], digits[3 * i + 1], digits[3 * i + 2]
        value = Mux(negative, neg, a).as_signed()                   # signed(ACT_WIDTH + 1)
        term = Mux(zero, 0, Mux(double, value << 1, value))
        terms.append(term << (2 * i))
    return terms[0] + terms[1], terms[2] + terms[3]


def booth_product(a, w):
    """``a * w`` from :func:`booth_halves`, in one stage: exact, where the product fits
    ``PRODUCT_WIDTH`` bits (always)."""
    low, high = booth_halves(a, -a, booth_digits(w))
    return (low + high)[:PRODUCT_WIDTH].as_signed()


def _tree_sum(values):
    """The sum of ``values`` as a balanced tree of adds (depth ``ceil(log2(len))``)."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def activation_layout(m):
    """One group of ``m`` activations moving right, with the flags that travel with them."""
    return data.StructLayout({
        "valid": 1,
        "bank": 1,
        "data": data.ArrayLayout(signed(ACT_WIDTH), m),
    })


def pe_latency(config):
    """Cycles from activations on a PE's ``a_in`` to their partial sum on ``p_out``: 1; 5
    when pipelined (each slot's bank-selected index and weight registered, then the
    activation it names, then the product, then the sum of the slots' products, then the add
    to ``p_in``); 7 when pipelined with LUT multipliers (the activation's negation and the
    Booth product's two halves registered too)."""
    if not config.pipeline:
        return 1
    return 7 if config.mult == "lut" else 5


def load_layout(config):
    """Weights for one PE: ``n`` values and their positions, and the bank to write."""
    return data.StructLayout({
        "en": 1,
        "bank": 1,
        "w": data.ArrayLayout(signed(8), config.n),
        "idx": data.ArrayLayout(max(config.index_bits, 1), config.n),
    })


class PE(wiring.Component):
    """One processing element.

    Parameters
    ----------
    config : Config
        ``n``, ``m``, ``acc_width``, ``pipeline``, ``mult`` and ``target`` are used. With
        ``mult="dsp"`` a product is ``a * w`` for the ``"generic"`` target and one ECP5
        ``MULT18X18D`` (a :class:`~hdl.multiplier.Multiplier`) holding the pipeline's operand
        and product registers for ``"ecp5"``; with ``mult="lut"`` it is :func:`booth_product`
        for either target.

    Members
    -------
    a_in : In(activation_layout(m))
        Activations from the left; ``bank`` selects the weight bank, ``valid`` is carried only.
    a_out : Out(activation_layout(m))
        ``a_in`` one cycle later, to the PE on the right.
    p_in : In(signed(acc_width))
        Partial sum from the PE above (0 for the top row), for the activations that were on
        ``a_in`` ``latency - 1`` cycles earlier (the PE above has the same latency).
    p_out : Out(signed(acc_width))
        ``p_in + sum_j a[idx_j] * w_j``, wrapping modulo ``2^acc_width``, registered; it
        belongs to the activations that were on ``a_in`` ``latency`` cycles earlier.
    load : In(load_layout(config))
        When ``en``, the weights and indices are written into bank ``bank``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`Config`.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        self._config = config
        super().__init__({
            "a_in": In(activation_layout(config.m)),
            "a_out": Out(activation_layout(config.m)),
            "p_in": In(signed(config.acc_width)),
            "p_out": Out(signed(config.acc_width)),
            "load": In(load_layout(config)),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from activations on ``a_in`` to their partial sum on ``p_out``."""
        return pe_latency(self._config)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        # Every register of a PE is data without reset: the grid's valid flags travel beside
        # it (hdl/array.py), and a reset reaching every PE is a high fan-out net.
        a_out = Signal(self.a_out.shape(), name="a_reg", reset_less=True)
        m.d.sync += [a_out.valid.eq(self.a_in.valid), a_out.data.eq(self.a_in.data)]
        # The bank flag is the same in every PE of an anti-diagonal (it enters each row's skew
        # at once), so synthesis merges those registers into one that reaches across the array
        # (the 8x8 array's critical net); each PE keeps its own (hdl.fanout.Fanout).
        m.submodules.bank_reg = bank_reg = Fanout(1, copies=1, target=cfg.target)
        m.d.comb += [bank_reg.d.eq(self.a_in.bank), self.a_out.eq(a_out),
                     self.a_out.bank.eq(bank_reg.q[0])]

        bank_w = [Signal(data.ArrayLayout(signed(8), cfg.n), name=f"w{b}", reset_less=True)
                  for b in range(2)]
        bank_i = [Signal(data.ArrayLayout(max(cfg.index_bits, 1), cfg.n), name=f"idx{b}",
                         reset_less=True) for b in range(2)]
        for b in range(2):
            with m.If(self.load.en & (self.load.bank == b)):
                m.d.sync += [bank_w[b].eq(self.load.w), bank_i[b].eq(self.load.idx)]

        sel = self.a_in.bank
        products = []
        # Select the bank's weight and index of every slot, then the activation it names.
        # Pipelined, the selected index and weight are registered first (beside `a_reg`, which
        # holds the same activations a cycle later), so the activation multiplexer starts from
        # flip-flops, not from the bank flag's route through the index multiplexer.
        for j in range(cfg.n):
            w = Signal(signed(8), name=f"weight{j}")
            idx = Signal(max(cfg.index_bits, 1), name=f"index{j}")
            with m.If(sel):
                m.d.comb += [w.eq(bank_w[1][j]), idx.eq(bank_i[1][j])]
            with m.Else():
                m.d.comb += [w.eq(bank_w[0][j]), idx.eq(bank_i[0][j])]
            if cfg.pipeline:
                idx_r = Signal.like(idx, name=f"index{j}_r", reset_less=True)
                m.d.sync += idx_r.eq(idx)
                group, idx = a_out.data, idx_r
            else:
                group = self.a_in.data
            a = Signal(signed(ACT_WIDTH), name=f"act{j}")
            m.d.comb += a.eq(group[idx] if cfg.sparse else group[j])
            if cfg.mult == "dsp" and cfg.target == "ecp5":
                # One MULT18X18D, with the pipeline's operand and product registers inside it
                # (never stalled: always enabled); the weight waits a cycle beside `a_out`.
                mult = Multiplier(target=cfg.target, a_shape=signed(ACT_WIDTH),
                                  b_shape=signed(8), input_registers=cfg.pipeline,
                                  output_register=cfg.pipeline)
                m.submodules[f"mult{j}"] = mult
                w_op = w
                if cfg.pipeline:
                    w_op = Signal(signed(8), name=f"weight{j}_d", reset_less=True)
                    m.d.sync += w_op.eq(w)
                prod = Signal(signed(PRODUCT_WIDTH), name=f"prod{j}")
                m.d.comb += [mult.a.eq(a), mult.b.eq(w_op), mult.en.eq(1), prod.eq(mult.p)]
                products.append(prod)
                continue
            multiply = booth_product if cfg.mult == "lut" else (lambda x, y: x * y)
            # A product is data (`valid` travels beside it): without reset, as in the DSP block
            # of the "ecp5" target, so that both targets hold the same values on every cycle.
            prod = Signal(signed(PRODUCT_WIDTH), name=f"prod{j}", reset_less=True)
            if cfg.pipeline:
                # Register the selected operands, then the product: the multiplier (a DSP
                # block on an FPGA) sits alone between two registers; in logic, its two
                # halves are registered before their sum.
                a_r = Signal(signed(ACT_WIDTH), name=f"act{j}_r", reset_less=True)
                m.d.sync += a_r.eq(a)
                if cfg.mult == "lut":
                    # The weight registered as its decoded Booth digits (beside the index, the
                    # activation, then its negation); the activation negated in a stage of its
                    # own, so that no carry chain follows the activation multiplexer (an 8x8
                    # 2:4 array's longest PE path when one did: 7.3 ns at speed 6), and the
                    # Booth terms select from registers.
                    digits = [Signal(12, name=f"weight{j}_digits_{k}", reset_less=True)
                              for k in ("d", "r", "rr")]
                    a_rr = Signal(signed(ACT_WIDTH), name=f"act{j}_rr", reset_less=True)
                    neg_r = Signal(signed(ACT_WIDTH + 1), name=f"act{j}_neg_r", reset_less=True)
                    halves = [Signal(signed(PRODUCT_WIDTH), name=f"prod{j}_{half}",
                                     reset_less=True) for half in ("low", "high")]
                    m.d.sync += [digits[0].eq(booth_digits(w)), digits[1].eq(digits[0]),
                                 digits[2].eq(digits[1]), a_rr.eq(a_r), neg_r.eq(-a_r)]
                    m.d.sync += [h.eq(v) for h, v in
                                 zip(halves, booth_halves(a_rr, neg_r, digits[2]))]
                    m.d.sync += prod.eq(halves[0] + halves[1])
                else:
                    w_d = Signal(signed(8), name=f"weight{j}_d", reset_less=True)
                    w_r = Signal(signed(8), name=f"weight{j}_r", reset_less=True)
                    m.d.sync += [w_d.eq(w), w_r.eq(w_d), prod.eq(multiply(a_r, w_r))]
            else:
                m.d.comb += prod.eq(multiply(a, w))
            products.append(prod)
        if cfg.pipeline:
            # The slots' products are summed and registered before the add to `p_in`, so that
            # each stage holds one carry chain.
            local = Signal(signed(PRODUCT_WIDTH + (cfg.n - 1).bit_length()), name="p_local",
                           reset_less=True)
            m.d.sync += local.eq(_tree_sum(products))
            total = self.p_in + local
        else:
            total = self.p_in
            for prod in products:
                total = total + prod
        p_out = Signal(self.p_out.shape(), name="p_reg", reset_less=True)
        m.d.sync += p_out.eq(total)
        m.d.comb += self.p_out.eq(p_out)
        return m
