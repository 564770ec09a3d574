"""The two banks of requantization parameters: one per output channel of an N tile.

The parameter counterpart of the PEs' two weight banks: the parameter
:class:`~hdl.loader.Loader` writes the packet of the next m-block into one bank while the
accumulator reads the present block's parameters from the other. The bank select reaches each
lane through a register of its own (:class:`~hdl.fanout.Fanout`): one select register would
drive every lane's multiplexers (552 of them on an 8x8 array).
"""


from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_choice, check_int

from .config import TARGETS
from .fanout import Fanout
from .layout import QP_FIELDS, qparam_layout
from .loader import index_shape

__all__ = ["ParamBank"]


class ParamBank(wiring.Component):
    """Two banks of ``lanes`` registers of requantization parameters.

    Parameters
    ----------
    lanes : int
        Output channels (the array's columns).
    target : {"generic", "ecp5"}
        How the per-lane select registers are written (:class:`~hdl.fanout.Fanout`).

    Members
    -------
    w : In(data.StructLayout)
        A write: ``valid``, ``bank``, ``index`` (the lane) and ``data``
        (:func:`~hdl.layout.qparam_layout`). It is registered as it comes (so that the
        loader's handshake reaches no decode), then decoded into a registered one-gate write
        enable; it shows on ``data`` :attr:`write_latency` cycles later.
    bank : In(1)
        The bank to read in the next cycle (:attr:`select_latency`).
    data : Out(data.ArrayLayout(qparam_layout(), lanes))
        The parameters of every lane in the bank that ``bank`` named a cycle before.

    Raises
    ------
    TypeError
        If ``lanes`` is not an integer.
    ValueError
        If ``lanes`` is less than 1, or ``target`` is not one of :data:`hdl.config.TARGETS`.
    """

    def __init__(self, *, lanes, target="generic"):
        self._lanes = lanes = check_int(lanes, "lanes", lo=1)
        self._target = check_choice(target, "target", TARGETS)
        super().__init__({
            "w": In(self.write_layout(lanes)),
            "bank": In(1),
            "data": Out(data.ArrayLayout(qparam_layout(), lanes)),
        })

    @staticmethod
    def write_layout(lanes):
        """The layout of ``w``: what a :class:`~hdl.loader.Loader` of ``qp`` beats writes."""
        return data.StructLayout({"valid": 1, "bank": 1, "index": index_shape(lanes),
                                  "data": qparam_layout()})

    @property
    def lanes(self):
        return self._lanes

    @property
    def select_latency(self):
        """Cycles from ``bank`` to the data of that bank on ``data``."""
        return 1

    @property
    def write_latency(self):
        """Cycles from a write on ``w`` to its value on ``data``."""
        return 3

    def elaborate(self, platform):
        m = Module()
        regs = [Signal(data.ArrayLayout(qparam_layout(), self._lanes), name=f"qparams{b}",
                       reset_less=True) for b in range(2)]
        # The write is registered as it comes (the loader's `valid` is its stream handshake:
        # decoded at once, it was an 8x8 2:4 array's critical path, 7.4 ns at speed 6), then
        # once more: the enable of each (bank, lane) decoded from that register, one copy per
        # parameter field (hdl.fanout.Fanout: up to 32 registers each rather than all of the
        # lane's), and the word copied per lane, so that each copy drives one lane's registers.
        w = Signal(self.w.shape(), name="w_reg", reset_less=True)     # valid: `w_valid`
        w_valid = Signal(name="w_valid")
        m.d.sync += [w_valid.eq(self.w.valid), w.bank.eq(self.w.bank),
                     w.index.eq(self.w.index), w.data.eq(self.w.data)]
        fields = list(QP_FIELDS)
        m.submodules.wr_data = wr_data = Fanout(qparam_layout(), copies=self._lanes,
                                                target=self._target)
        m.d.comb += wr_data.d.eq(w.data)
        for b in range(2):
            for c in range(self._lanes):
                m.submodules[f"wr_en_{b}_{c}"] = en = Fanout(1, copies=len(fields),
                                                             target=self._target)
                m.d.comb += en.d.eq(w_valid & (w.bank == b) & (w.index == c))
                for f, name in enumerate(fields):
                    with m.If(en.q[f]):
                        m.d.sync += regs[b][c][name].eq(wr_data.q[c][name])
        m.submodules.select = select = Fanout(1, copies=self._lanes, target=self._target)
        m.d.comb += select.d.eq(self.bank)
        for c in range(self._lanes):
            m.d.comb += self.data[c].eq(Mux(select.q[c], regs[1][c], regs[0][c]))
        return m
