"""Requantization unit: int32 accumulators to int8 codes, bit-exact with ``golden_model``.

:class:`Requant` is a stateless, fully pipelined, per-lane implementation of TFLite's integer
requantization (``golden_model.requantize``), in gemmlowp double rounding or
``TFLITE_SINGLE_ROUNDING``, with the bias add in front and the output zero point and the
activation clamp behind::

    out = clamp(MultiplyByQuantizedMultiplier(wrap32(acc + bias), multiplier, shift) + out_zp,
                act_min, act_max)
"""


from amaranth.hdl import C, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from common import REQUANT_ROUNDINGS
from common.checks import check_bool, check_choice, check_int

from .config import TARGETS
from .fanout import Fanout
from .multiplier import Multiplier

__all__ = ["Requant"]



# Width to which the rounded result is saturated before the zero point and clamp stage. The
# clamp bounds and the zero point are int8 codes, so only results in [-255, 255] (double
# rounding) or pre-rounding values in [-511, 510] (single rounding, see ``_single``) can
# escape the clamp; saturating to 11 bits keeps every clamp decision and shortens the
# final adder and comparators to 12 bits.
_SAT_WIDTH = 11


def _saturate(value, width):
    """``value`` (signed) clamped to ``width`` signed bits, from its high bits (no carry chain)."""
    high = value[width - 1:]
    fits = ~high.any() | high.all()
    return Mux(fits, value[:width].as_signed(),
               Mux(value[-1], -(1 << (width - 1)), (1 << (width - 1)) - 1))


#: Pipeline registers of each rounding mode (see :attr:`Requant.latency`).
LATENCY = {"double": 14, "single": 10}


class Requant(wiring.Component):
    """Per-lane requantization, int32 accumulator to int8, fully pipelined.

    Each lane computes, bit for bit as ``golden_model.requantize`` (``rounding`` selects the
    mode) of ``golden_model.wrap_int32(acc + bias)``::

        x   = wrap32(acc + bias)
        y   = MultiplyByQuantizedMultiplier(x, multiplier, shift)
        out = clamp(y + out_zp, act_min, act_max)

    The unit is stateless: a beat is accepted every cycle in which :py:`i.ready` is high, and
    results leave in order, :attr:`latency` cycles later when :py:`o` is not stalled. All
    stages advance together whenever the output register is empty or being transferred, so
    :py:`i.ready` depends combinationally on :py:`o.ready` (and on nothing from :py:`i`);
    :py:`o.valid` never depends on :py:`o.ready`, and :py:`o.payload` holds until transferred.

    Parameters
    ----------
    lanes : int
        Number of independent lanes (channels) per beat, at least 1.
    rounding : ``"double"`` or ``"single"``
        ``"double"`` (default): TFLite's default gemmlowp double rounding,
        ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, multiplier),
        right)``. ``"single"``: ``TFLITE_SINGLE_ROUNDING``,
        ``(x * multiplier + 2^(30 - shift)) >> (31 - shift)`` in 64 bits, saturated to int32.
    tag_width : int
        Width of an opaque field carried alongside each beat (e.g. a ``last`` flag), at least 0;
        default 1. With 0 the ``tag`` fields exist but are 0 bits wide.
    target : ``"generic"`` or ``"ecp5"``
        What the multipliers are written for (:data:`hdl.config.TARGETS`, see
        :class:`~hdl.multiplier.Multiplier`); default ``"generic"``.
    stalls : bool
        ``True`` (default): :py:`o.ready` low holds the pipeline (see above). ``False``: the
        user guarantees room for every result (the engine's output FIFO reserves a word for
        each before its beat enters the array), so :py:`o.ready` is not looked at,
        :py:`i.ready` is always high, and no register has a clock enable: a stalling enable
        fans out to every register of every lane.

    Members
    -------
    i : ``In(stream.Signature(data.StructLayout(...)))``
        Input beats. Payload fields, one element per lane in the arrays:

        ``acc`` : ``data.ArrayLayout(signed(32), lanes)``
            Accumulators.
        ``bias`` : ``data.ArrayLayout(signed(32), lanes)``
            Biases; added to ``acc`` with int32 wrap-around.
        ``multiplier`` : ``data.ArrayLayout(unsigned(31), lanes)``
            Q31 multipliers from ``golden_model.quantize_multiplier``, in ``[0, 2^31)``.
        ``shift`` : ``data.ArrayLayout(signed(6), lanes)``
            Power-of-two exponents, positive meaning a left shift; must be in ``[-31, 30]``
            (the encodings -32 and 31 give unspecified results).
        ``tag`` : ``unsigned(tag_width)``
            Passed through unchanged.
    o : ``Out(stream.Signature(data.StructLayout(...)))``
        Results, in input order. Payload fields:

        ``data`` : ``data.ArrayLayout(signed(8), lanes)``
            Requantized int8 codes.
        ``tag`` : ``unsigned(tag_width)``
            The ``tag`` of the input beat.
    out_zp : ``In(signed(9))``
        Output zero point, an int8 code in ``[-128, 127]``.
    act_min, act_max : ``In(signed(9))``
        Clamp bounds (fused activation), int8 codes in ``[-128, 127]`` with
        ``act_min <= act_max``; e.g. ReLU is ``act_min = out_zp``.

    The per-layer constants :py:`out_zp`, :py:`act_min` and :py:`act_max` are signed and one bit
    wider than an int8 code, so that each holds the code's value itself: 127 and -128 alike,
    with no question of whether a register file writes them as signed or unsigned bytes. They
    must hold values in ``[-128, 127]``; others give unspecified results. They are sampled with
    each input transfer and travel with the beat, so they may change on any cycle, e.g. from
    one layer to the next without draining the pipeline.

    Each lane uses four 18x18 multipliers (:class:`~hdl.multiplier.Multiplier`, one ECP5
    ``MULT18X18D`` each); every stage holds at most one carry chain, one multiplier, or a few
    levels of multiplexers. Each multiplier sits between an input and an output register: plain
    pipeline registers for the ``"generic"`` target, the primitive's own registers for
    ``"ecp5"`` (which Yosys would not absorb by itself). Same values on the same cycles either
    way.

    Raises
    ------
    TypeError
        If ``lanes`` or ``tag_width`` is not an integer, or ``rounding`` is not a string.
    ValueError
        If ``lanes`` is less than 1, ``tag_width`` is negative, ``rounding`` is neither
        ``"double"`` nor ``"single"``, or ``target`` is not one of :data:`hdl.config.TARGETS`.
    """

    def __init__(self, *, lanes, rounding="double", tag_width=1, target="generic",
                 stalls=True):
        self._lanes = check_int(lanes, "lanes", lo=1)
        self._stalls = check_bool(stalls, "stalls")
        self._rounding = check_choice(rounding, "rounding", REQUANT_ROUNDINGS)
        self._tag_width = check_int(tag_width, "tag_width", lo=0)
        self._target = check_choice(target, "target", TARGETS)

        in_layout = data.StructLayout({
            "acc": data.ArrayLayout(signed(32), self._lanes),
            "bias": data.ArrayLayout(signed(32), self._lanes),
            "multiplier": data.ArrayLayout(unsigned(31), self._lanes),
            "shift": data.ArrayLayout(signed(6), self._lanes),
            "tag": unsigned(self._tag_width),
        })
        out_layout = data.StructLayout({
            "data": data.ArrayLayout(signed(8), self._lanes),
            "tag": unsigned(self._tag_width),
        })
        super().__init__({
            "i": In(stream.Signature(in_layout)),
            "o": Out(stream.Signature(out_layout)),
            "out_zp": In(signed(9)),
            "act_min": In(signed(9)),
            "act_max": In(signed(9)),
        })

    @property
    def lanes(self):
        """Number of lanes per beat (``int``)."""
        return self._lanes

    @property
    def rounding(self):
        """Rounding mode, ``"double"`` or ``"single"``."""
        return self._rounding

    @property
    def tag_width(self):
        """Width of the pass-through ``tag`` field (``int``)."""
        return self._tag_width

    @property
    def target(self):
        """What the multipliers are written for, ``"generic"`` or ``"ecp5"``."""
        return self._target

    @property
    def stalls(self):
        """Whether :py:`o.ready` low holds the pipeline (``bool``)."""
        return self._stalls

    @property
    def latency(self):
        """Cycles from an input transfer to its result on :py:`o` when :py:`o` is not stalled.

        A beat transferred on clock edge ``n`` is presented with :py:`o.valid` high after edge
        ``n + latency - 1``, i.e. ``latency`` is the number of pipeline registers: 14 with
        double rounding, 10 with single rounding.
        """
        return LATENCY[self._rounding]

    def elaborate(self, platform):
        m = Module()

        # Every register moves together on `advance`: when the output register is empty or is
        # being transferred (always, without stalls). Bubbles are not squeezed out, which
        # keeps the control to one gate.
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready if self._stalls else 1),
            self.i.ready.eq(advance),
        ]
        updates = []
        regs = _Registers(updates, module=m, enable=advance)

        latency = self.latency
        m.d.comb += [
            self.o.valid.eq(regs.delay("valid", self.i.valid, latency, reset_less=False)),
            self.o.payload.tag.eq(regs.delay("tag", self.i.payload.tag, latency)),
        ]
        # The per-layer constants travel with the beat up to the last two stages, which use
        # them. So that the stage before the last compares the pre-zero-point value (in
        # parallel with the zero-point add) instead of the sum, the clamp bounds are moved by
        # the zero point on entry: y + out_zp < act_min <=> y < act_min - out_zp (single
        # rounding compares z = 2y or 2y - 1, see _single, against scaled bounds). The last
        # stage only selects: the bound or the sum.
        lo, hi = self.act_min - self.out_zp, self.act_max - self.out_zp     # [-255, 255]
        if self._rounding == "single":
            lo, hi = (lo << 1) - 1, hi << 1
        consts = [regs(f"{name}_s1", value, signed(width))
                  for name, value, width in (("out_zp", self.out_zp, 9),
                                             ("act_min", self.act_min, 9),
                                             ("act_max", self.act_max, 9),
                                             ("clamp_lo", lo, _SAT_WIDTH),
                                             ("clamp_hi", hi, _SAT_WIDTH))]
        # out_zp and the bounds reach the compare stage (latency - 1), act_min and act_max the
        # last one.
        arrive = {"out_zp": latency - 3, "act_min": latency - 2, "act_max": latency - 2,
                  "clamp_lo": latency - 3, "clamp_hi": latency - 3}
        if self._stalls:
            consts = tuple(regs.delay(name, value, arrive[name], first=2)
                           for name, value in zip(arrive, consts))
            lane_consts = [consts] * self._lanes
        else:
            # Never stalled: the last register of each constant is one per lane
            # (hdl.fanout.Fanout), so that each lane's compares start beside it instead of
            # from one register reaching every lane.
            consts = [regs.delay(name, value, arrive[name] - 1, first=2)
                      for name, value in zip(arrive, consts)]
            m.submodules.consts = fan = Fanout(
                data.StructLayout({name: value.shape() for name, value in zip(arrive, consts)}),
                copies=self._lanes, target=self._target)
            m.d.comb += [fan.d[name].eq(value) for name, value in zip(arrive, consts)]
            lane_consts = [tuple(fan.q[lane][name] for name in arrive)
                           for lane in range(self._lanes)]

        lane_fn = self._double if self._rounding == "double" else self._single
        payload = self.i.payload
        for lane in range(self._lanes):
            out = lane_fn(regs.lane(f"l{lane}_"), payload.acc[lane],
                          payload.bias[lane], payload.multiplier[lane], payload.shift[lane],
                          *lane_consts[lane])
            m.d.comb += self.o.payload.data[lane].eq(out)

        with m.If(advance):
            m.d.sync += updates
        return m

    # Each helper below builds one lane; its comments number the pipeline stages (registers).
    # A stage holds at most one carry chain, one multiplier, or about three levels of
    # multiplexers. On an ECP5 the multipliers are the critical path: Yosys does not pack fabric
    # registers into MULT18X18D (register, DSP, register: 9.9 ns at speed grade 6), so the
    # "ecp5" target instantiates the primitive with its own input and output registers.

    def _multiply(self, regs, x, multiplier, *, x_name, m_name):
        """Four stages towards ``x * multiplier`` (signed 32 by unsigned 31 bits), from the
        values (``x`` wrapped to 32 bits) that the caller's stage computes.

        ``x`` and ``multiplier`` are registered in the fabric (stage 1, ``x_name`` and
        ``m_name``), then split into four partial products that each fit one 18x18 signed DSP
        multiplier (:class:`~hdl.multiplier.Multiplier`), each between its input (stage 2) and
        output (stage 3) registers: for ``"ecp5"`` the ``MULT18X18D``'s own, so that the only
        path into a DSP block is the routing from a fabric register (the caller's logic into
        the DSP pins took 8.2 ns of a 4x4 array's clock). Stage 4 sums the two middle ones.
        Returns registers ``(ll, mid, hh)`` with
        ``x * multiplier == Cat(ll, hh).as_signed() + (mid << 16)``, the caller's next stage.
        """
        x = regs(x_name, x, signed(32))
        multiplier = regs(m_name, multiplier, unsigned(31))
        x_lo, x_hi = x[:16], x[16:].as_signed()
        m_lo, m_hi = multiplier[:16], multiplier[16:]

        def product(name, a, b):
            mult = Multiplier(target=self._target, a_shape=a.shape(), b_shape=b.shape(),
                              input_registers=True, output_register=True)
            regs.submodule(name, mult)
            regs.module.d.comb += [mult.a.eq(a), mult.b.eq(b), mult.en.eq(regs.enable)]
            return mult.p

        ll = product("ll", x_lo, m_lo)                   # unsigned(32)
        lh = product("lh", x_lo, m_hi)                   # unsigned(31)
        hl = product("hl", x_hi, m_lo)                   # signed(32)
        hh = product("hh", x_hi, m_hi)                   # signed(31)
        mid = regs("mid", lh + hl, signed(33))           # |lh + hl| < 2^32
        return regs("ll_d", ll), mid, regs("hh_d", hh)

    @staticmethod
    def _shift_right(regs, name, value, amount, shape):
        """Two stages: ``value >> amount`` (arithmetic if signed), by 8s then by the rest."""
        coarse = regs(f"{name}_coarse", value >> Cat(C(0, 3), amount[3:]), shape)
        return regs(name, coarse >> regs(f"{name}_fine", amount[:3]), shape)

    def _double(self, regs, acc, bias, multiplier, shift, out_zp, act_min, act_max, lo, hi):
        """Gemmlowp double rounding, 14 stages."""
        # 1: bias add with int32 wrap; split the shift.
        x = regs("x", acc + bias, signed(32))
        left = regs("left", Mux(shift > 0, shift, 0), unsigned(5))
        right = regs("right", Mux(shift < 0, -shift, 0), unsigned(5))
        mult = regs("mult_s1", multiplier)
        # 2: x shifted left by 8s (a 32-bit shifter of five levels in one stage was the
        # critical path of an 8x8 2:4 array, 7.71 ns at speed 6).
        x = regs("xl_coarse", x << Cat(C(0, 3), left[3:]), signed(32))
        left = regs("left_fine", left[:3])
        mult = regs("mult_s2", mult)
        # 3-7: the 63-bit product p = xl * multiplier of xl = x << left with int32 wrap (3: xl,
        # the rest of the shift, 4: the multipliers' inputs, 5: partial products, 6: middle sum).
        ll, mid, hh = self._multiply(regs, x << left, mult, x_name="xl", m_name="mult_s3")
        right = regs.delay("right", right, 6, first=2)
        # 7 keeps only p >> 30, all that SaturatingRoundingDoublingHighMul needs (below).
        p = Cat(ll, hh).as_signed() + (mid << 16)
        p_high = regs("p_high", p >> 30, signed(33))
        # 8: SaturatingRoundingDoublingHighMul(xl, multiplier). gemmlowp adds a nudge of 2^30
        # (p >= 0) or 1 - 2^30 (p < 0) and divides by 2^31 truncating toward zero. For p < 0 the
        # numerator is negative, and truncation is floor((num + 2^31 - 1) / 2^31); both cases
        # are then floor((p + 2^30) / 2^31) = (floor(p / 2^30) + 1) >> 1, an increment.
        # Saturation is never needed: it happens only for INT32_MIN * INT32_MIN, and the
        # multiplier is below 2^31, so the result always fits int32.
        q = regs("q", (p_high + 1) >> 1, signed(32))
        # RoundingDivideByPOT(q, right) rounds half away from zero: for right > 0 it is
        # (q + 2^(right-1) - (q < 0)) >> right, for right = 0 it is q. Decode both addends here.
        half = regs("half", Cat(*(right > i + 1 for i in range(30))))        # 2^(right-1) - 1
        half_up = regs("half_up", Cat(*(right == i + 1 for i in range(31))))  # 2^(right-1)
        right = regs("right_s8", right)
        # 9: the rounding add; 10-11: the shift.
        t = regs("t", q + Mux(q[-1], half, half_up), signed(33))
        y = self._shift_right(regs, "y", t, regs("right_s9", right), signed(32))
        # 12: saturate to a short width; 13-14: zero point and clamp, y compared with the moved
        # bounds while the zero point is added.
        y = regs("y_sat", _saturate(y, _SAT_WIDTH), signed(_SAT_WIDTH))
        return self._clamp(regs, y, lo, hi, act_min, act_max, y + out_zp)

    def _single(self, regs, acc, bias, multiplier, shift, out_zp, act_min, act_max, lo, hi):
        """``TFLITE_SINGLE_ROUNDING``, 10 stages."""
        # 1-5: the 63-bit product p = x * multiplier of x = acc + bias with int32 wrap (1: x,
        # 2: the multipliers' inputs, 3: partial products, 4: middle sum). The rounding is
        # (p + 2^(s - 1)) >> s with s = 31 - shift in [1, 62]; keep s - 1 = 30 - shift.
        ll, mid, hh = self._multiply(regs, acc + bias, multiplier, x_name="x", m_name="mult")
        s_minus_1 = regs("s_minus_1", 30 - shift, unsigned(6))
        p = regs("p", Cat(ll, hh).as_signed() + (mid << 16), signed(63))
        s_minus_1 = regs.delay("s_minus_1", s_minus_1, 4, first=2)
        # 6-7: floor((p + 2^(s-1)) / 2^s) = (z + 1) >> 1 with z = p >> (s - 1): shift first.
        z = self._shift_right(regs, "z", p, s_minus_1, signed(63))
        # 8: saturate z, which is 2y or 2y - 1: y in [-255, 255], the only results that can
        # escape the clamp, means z in [-511, 510], well inside _SAT_WIDTH bits.
        z = regs("z_sat", _saturate(z, _SAT_WIDTH), signed(_SAT_WIDTH))
        # 9-10: y + out_zp = (z + 2 * out_zp + 1) >> 1, one add; the clamp compares z itself:
        # y = (z + 1) >> 1 < act_min - out_zp <=> z < 2 (act_min - out_zp) - 1 = lo, and
        # y > act_max - out_zp <=> z > 2 (act_max - out_zp) = hi. (Saturating y to int32 is
        # subsumed by the clamp to int8.)
        y_zp = (z + Cat(C(1, 1), out_zp).as_signed()) >> 1
        return self._clamp(regs, z, lo, hi, act_min, act_max, y_zp)

    @staticmethod
    def _clamp(regs, value, lo, hi, low, high, result):
        """Two stages to the int8 code: ``low`` if ``value < lo``, ``high`` if ``value > hi``,
        else ``result``. The compares and the add that makes ``result`` are independent carry
        chains, registered side by side; the last stage only selects. ``result`` is kept to
        8 bits: it is used only inside the bounds, which are int8 codes."""
        # Each compare as the sign of a difference one bit wider than its operands (no
        # overflow): one carry chain, where `<` on signed values took two chains and a
        # correction (the critical path of an 8x8 2:4 array, 7.68 ns at speed 6).
        below = regs("below", (value - lo)[-1])
        above = regs("above", (hi - value)[-1])
        result = regs("y_zp", result, signed(8))
        return regs("out", Mux(below, low, Mux(above, high, result)), signed(8))


class _Registers:
    """Pipeline registers that all load together: ``updates`` collects their assignments,
    which the caller makes in ``module`` while ``enable``; submodules with registers of their
    own (the multipliers) load on ``enable`` too."""

    def __init__(self, updates, prefix="", *, module, enable):
        self._updates = updates
        self._prefix = prefix
        self.module = module
        self.enable = enable

    def lane(self, prefix):
        """The same registers, named with ``prefix``."""
        return _Registers(self._updates, prefix, module=self.module, enable=self.enable)

    def wire(self, name, value, shape):
        """A combinational signal named ``prefix + name`` (truncated or extended)."""
        sig = Signal(shape, name=self._prefix + name)
        self.module.d.comb += sig.eq(value)
        return sig

    def submodule(self, name, elaboratable):
        """Add ``elaboratable`` to ``module`` as ``prefix + name``."""
        self.module.submodules[self._prefix + name] = elaboratable

    def __call__(self, name, value, shape=None, *, reset_less=True):
        """A register named ``prefix + name`` loading ``value`` (truncated or extended).
        Data registers have no reset (``reset_less``): only the valid flags need one, and a
        reset that reaches every register of every lane is a high fan-out net."""
        shape = Value.cast(value).shape() if shape is None else shape
        reg = Signal(shape, name=self._prefix + name, reset_less=reset_less)
        self._updates.append(reg.eq(value))
        return reg

    def delay(self, name, value, cycles, *, first=1, reset_less=True):
        """``value`` through ``cycles`` registers named ``name_s{first}`` onwards."""
        for stage in range(first, first + cycles):
            value = self(f"{name}_s{stage}", value, reset_less=reset_less)
        return value
