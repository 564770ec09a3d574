"""The zero-point stage: the input zero point subtracted from every admitted activation.

The one register stage between the activation stream and the grid's ``a_in``: int8 codes
become the 9-bit signed ``x - in_zp`` that the PEs multiply (:data:`hdl.pe.ACT_WIDTH`).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .array import Array
from .config import Config
from .layout import LayerConfig, act_layout

__all__ = ["ZeroPoint"]


class ZeroPoint(wiring.Component):
    """Subtracts the input zero point; one cycle, never stalls.

    Parameters
    ----------
    config : Config

    Members
    -------
    i : In(data.StructLayout)
        ``valid``, ``bank`` (the weight bank of the beat's pass) and ``data``: ``rows`` groups
        of ``m`` int8 activations. A beat that is not ``valid`` is a bubble.
    zp : In(signed(8))
        The input zero point (:class:`~hdl.layout.LayerConfig`'s ``in_zp``); held while a
        layer runs.
    o : Out(Array.activation_layout(config))
        The beat of :attr:`latency` cycles before, ``zp`` subtracted, for the grid's ``a_in``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`~hdl.config.Config`.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        self._config = config
        super().__init__({
            "i": In(data.StructLayout({"valid": 1, "bank": 1,
                                       "data": act_layout(config)["data"].shape})),
            "zp": In(data.Layout.cast(LayerConfig)["in_zp"].shape),
            "o": Out(Array.activation_layout(config)),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from a beat on ``i`` to the same beat on ``o``."""
        return 1

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.d.sync += [self.o.valid.eq(self.i.valid), self.o.bank.eq(self.i.bank)]
        # One copy of the zero point per row, next to that row's subtractors (one register
        # would fan out to rows * m of them across the array). The copies form a chain (row r
        # holds it r + 1 cycles after `zp` changes; identical copies would be merged by
        # synthesis): a layer's first activation comes at least rows + 2 cycles after its
        # start, since its weight tile must be loaded first.
        # The copies follow `zp` and the differences are data: no reset (their valid flag
        # beside them has one).
        zp_row = [Signal.like(self.zp, name=f"zp_row{r}", reset_less=True)
                  for r in range(cfg.rows)]
        data = Signal.like(self.o.data, name="data", reset_less=True)
        m.d.comb += self.o.data.eq(data)
        for r in range(cfg.rows):
            m.d.sync += zp_row[r].eq(self.zp if r == 0 else zp_row[r - 1])
            for j in range(cfg.m):
                m.d.sync += data[r][j].eq(self.i.data[r][j] - zp_row[r])
        return m
