"""An 18x18 signed multiplier with optional pipeline registers, portable or ECP5.

:class:`Multiplier` is one DSP-sized product with the registers a pipeline puts around it. For
the ``"generic"`` target it is ``a * b`` between plain (reset-less) registers, which synthesis
maps as it likes. For ``"ecp5"`` it is one Lattice ``MULT18X18D`` with those registers inside
the primitive: Yosys's ECP5 flow maps ``*`` to a bare ``MULT18X18D`` and never packs fabric
registers into it, so a product between fabric registers costs a whole DSP delay plus
routing in one stage. Both targets give the same values on the same cycles.
"""

from amaranth.hdl import C, ClockSignal, Const, Instance, Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_bool, check_choice

from .config import TARGETS

__all__ = ["Multiplier", "OPERAND_WIDTH", "ECP5_PORTS"]

#: Operand width of the DSP multiplier (ECP5 ``MULT18X18D``: 18 x 18 bits, 36-bit product).
OPERAND_WIDTH = 18
_OPERAND = signed(OPERAND_WIDTH)

#: The ports of ECP5's ``MULT18X18D`` (Yosys's black box, ``share/ecp5/cells_bb.v``), as
#: ``(name, width, direction)``: a bus of width ``w`` is the 1-bit ports ``name0`` to
#: ``name{w-1}``, a 1-bit entry is the port ``name`` itself.
ECP5_PORTS = (
    ("A", 18, "i"), ("B", 18, "i"), ("C", 18, "i"), ("SIGNEDA", 1, "i"), ("SIGNEDB", 1, "i"),
    ("SOURCEA", 1, "i"), ("SOURCEB", 1, "i"), ("CLK", 4, "i"), ("CE", 4, "i"),
    ("RST", 4, "i"), ("SRIA", 18, "i"), ("SRIB", 18, "i"), ("SROA", 18, "o"),
    ("SROB", 18, "o"), ("ROA", 18, "o"), ("ROB", 18, "o"), ("ROC", 18, "o"), ("P", 36, "o"),
    ("SIGNEDP", 1, "o"),
)


def _check_operand_shape(shape, name):
    """``shape`` as a :class:`Shape` that an 18-bit signed operand holds: signed up to 18 bits,
    unsigned up to 17."""
    try:
        shape = Shape.cast(shape)
    except TypeError as error:
        raise TypeError(f"{name} must be a shape, not {shape!r}") from error
    limit = OPERAND_WIDTH if shape.signed else OPERAND_WIDTH - 1
    if not 1 <= shape.width <= limit:
        raise ValueError(f"{name} must fit an {OPERAND_WIDTH}-bit signed operand (signed(1) to "
                         f"signed({OPERAND_WIDTH}) or unsigned(1) to "
                         f"unsigned({OPERAND_WIDTH - 1})), not {shape!r}")
    return shape


class Multiplier(wiring.Component):
    """``p = a * b``, exact, with optional input registers and output register.

    ``a`` and ``b`` are any shapes that fit an 18-bit signed operand (one DSP multiplier);
    ``p`` has the shape Amaranth gives ``a * b`` (``width(a) + width(b)`` bits, signed if either
    operand is), which always holds the exact product.

    With :py:`input_registers`, ``a`` and ``b`` are registered before the product; with
    :py:`output_register`, the product is registered. Every register loads on a rising edge
    of ``sync`` while :py:`en` is high and holds otherwise. They are data registers without
    reset (they start at 0 and a domain reset leaves them as they are): whatever marks the data
    valid travels beside them, in the caller's logic.

    Parameters
    ----------
    target : ``"generic"`` or ``"ecp5"``
        ``"generic"`` (default): ``a * b`` and Amaranth registers. ``"ecp5"``: one
        ``MULT18X18D`` instance (operands sign- or zero-extended to 18 bits, both signed)
        whose input registers (``REG_INPUTA_CLK``/``REG_INPUTB_CLK``) and output register
        (``REG_OUTPUT_CLK``) are the ones asked for, clocked by ``sync`` (``CLK0``) and enabled
        by :py:`en` (``CE0``), never reset (``RST0`` is 0); its pipeline register is not used.
        Simulating the Verilog needs the primitive's model (``hdl/vendor/ecp5/MULT18X18D.v``).
    a_shape, b_shape : shape-castable
        Shapes of the operands: ``signed(1)`` to ``signed(18)`` or ``unsigned(1)`` to
        ``unsigned(17)``; default ``signed(18)``.
    input_registers : bool
        Register the operands (default False).
    output_register : bool
        Register the product (default False).

    Members
    -------
    a : ``In(a_shape)``
    b : ``In(b_shape)``
        Operands.
    en : ``In(1, init=1)``
        Clock enable of the registers (ignored without registers).
    p : ``Out(shape of a * b)``
        The product of the operands of :attr:`latency` loading edges before.

    Raises
    ------
    TypeError
        If ``a_shape`` or ``b_shape`` is not shape-castable, or a register flag is not a bool.
    ValueError
        If ``target`` is not in :data:`hdl.config.TARGETS`, or an operand shape does not fit an
        18-bit signed operand.
    """

    def __init__(self, *, target="generic", a_shape=_OPERAND, b_shape=_OPERAND,
                 input_registers=False, output_register=False):
        self._target = check_choice(target, "target", TARGETS)
        self._a_shape = _check_operand_shape(a_shape, "a_shape")
        self._b_shape = _check_operand_shape(b_shape, "b_shape")
        self._input_registers = check_bool(input_registers, "input_registers")
        self._output_register = check_bool(output_register, "output_register")
        p_shape = Shape(self._a_shape.width + self._b_shape.width,
                        self._a_shape.signed or self._b_shape.signed)
        super().__init__({
            "a": In(self._a_shape),
            "b": In(self._b_shape),
            "en": In(1, init=1),
            "p": Out(p_shape),
        })

    @property
    def target(self):
        """``"generic"`` or ``"ecp5"``."""
        return self._target

    @property
    def input_registers(self):
        """Whether the operands are registered (``bool``)."""
        return self._input_registers

    @property
    def output_register(self):
        """Whether the product is registered (``bool``)."""
        return self._output_register

    @property
    def latency(self):
        """Registers between the operands and the product: 0, 1 or 2 (``int``)."""
        return int(self._input_registers) + int(self._output_register)

    def elaborate(self, platform):
        if self._target == "ecp5":
            return self._elaborate_ecp5()
        m = Module()
        a, b = self.a, self.b
        if self._input_registers:
            a = Signal(self._a_shape, name="a_r", reset_less=True)
            b = Signal(self._b_shape, name="b_r", reset_less=True)
            with m.If(self.en):
                m.d.sync += [a.eq(self.a), b.eq(self.b)]
        if self._output_register:
            p = Signal(self.p.shape(), name="p_r", reset_less=True)
            with m.If(self.en):
                m.d.sync += p.eq(a * b)
            m.d.comb += self.p.eq(p)
        else:
            m.d.comb += self.p.eq(a * b)
        return m

    def _elaborate_ecp5(self):
        m = Module()
        # The operands as 18-bit two's complement (sign- or zero-extended by their shapes).
        a = Signal(signed(OPERAND_WIDTH), name="a_ext")
        b = Signal(signed(OPERAND_WIDTH), name="b_ext")
        product = Signal(2 * OPERAND_WIDTH, name="product")
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(product[:len(self.p)])]
        registered = self.latency > 0
        reg = lambda on: "CLK0" if on else "NONE"  # noqa: E731
        params = {
            "REG_INPUTA_CLK": reg(self._input_registers),
            "REG_INPUTB_CLK": reg(self._input_registers),
            "REG_PIPELINE_CLK": "NONE",
            "REG_OUTPUT_CLK": reg(self._output_register),
        }
        # The data and mode pins are driven (unused ones tied to 0) and every output pin is
        # connected; the clock, enable and reset pins and the shift-chain inputs are left open
        # unless used, as Yosys's own DSP mapping leaves them: nextpnr cannot route a constant
        # to a DSP block's clock pins (it fails with "Failed to find a route ... $PACKER_GND_NET")
        # and gives open control pins their inactive value. (hdl/sparsemac.vlt waives the
        # missing pins.)
        inputs = {
            "A": a, "B": b, "C": Const(0, 18), "SIGNEDA": C(1, 1), "SIGNEDB": C(1, 1),
            "SOURCEA": C(0, 1), "SOURCEB": C(0, 1),
        }
        if registered:
            inputs.update({"CLK0": ClockSignal("sync"), "CE0": self.en})
        outputs = {"P": product}
        kwargs = {f"p_{name}": value for name, value in params.items()}
        for name, width, direction in ECP5_PORTS:
            pins = [name] if width == 1 else [f"{name}{i}" for i in range(width)]
            if direction == "i":
                value = inputs.get(name)
                for i, pin in enumerate(pins):
                    if value is not None:
                        kwargs[f"i_{pin}"] = value if width == 1 else value[i]
                    elif pin in inputs:
                        kwargs[f"i_{pin}"] = inputs[pin]
            else:
                value = outputs.get(name)
                if value is None:
                    value = Signal(width, name=f"unused_{name.lower()}")
                kwargs.update((f"o_{pin}", value if width == 1 else value[i])
                              for i, pin in enumerate(pins))
        m.submodules.mult = Instance("MULT18X18D", **kwargs)
        return m
