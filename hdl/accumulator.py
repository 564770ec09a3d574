"""The accumulator: partial sums of an m-block summed across its K tiles in on-chip RAM.

The grid delivers the ``cols`` partial sums of one activation row of one pass per cycle. The
first pass of a block writes them to the block's row of the RAM, the next passes add to it;
during the last pass the sum goes, with the block's requantization parameters, to the
requantizer instead. Nothing stalls: the row's sideband (:func:`side_layout`), delayed with
the grid, says what to do with each beat.

A row's partial sum is read 2 cycles before it is added (and 3 before it is written back): the RAM
(:class:`~hdl.accram.AccRam`) delivers it registered, by a register after the memory
(``"generic"``) or by the block RAM's own output register (``"ecp5"``: ECP5 ``DP16KD``), since
a block RAM's clock-to-output is slow. The sum is registered, then written back and sent on.
A row of the next pass of the same block, arriving 1 to 3 beats later (tiny blocks), takes
the sum of the row in flight instead (forwarding). The sum and the block's parameters are
registered before the requantizer, so no logic follows the RAM's output and none precedes the
bias add.

The sideband comes a cycle ahead of its partial sums (:attr:`Accumulator.side_lead`): the RAM
addresses and write enable are registered once per RAM block (:class:`~hdl.fanout.Fanout`), from
the sideband a stage before they are used, so each block's copy sits beside it.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accram import AccRam
from .config import Config
from .fanout import Fanout
from .layout import QP_FIELDS, qparam_layout

__all__ = ["Accumulator", "side_layout"]

#: Width of the requantizer's accumulator input (int32 whatever ``acc_width``).
REQUANT_ACC_WIDTH = 32


def side_layout(config):
    """What the accumulator needs to know about an activation beat (its *sideband*).

    ``valid``: a beat, not a bubble; ``addr``: its row in the m-block; ``first``, ``last``:
    its pass is the first, the last K tile of the block; ``eol``: the layer's last beat;
    ``gbank``: the parameter bank of its block.
    """
    return data.StructLayout({
        "valid": 1, "addr": range(config.acc_depth), "first": 1, "last": 1, "eol": 1,
        "gbank": 1})


def requant_layout(lanes):
    """The payload of :class:`~hdl.requant.Requant`'s input with a 1-bit tag."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(REQUANT_ACC_WIDTH), lanes),
        **{name: data.ArrayLayout(shape, lanes) for name, shape in QP_FIELDS.items()},
        "tag": unsigned(1),
    })


class Accumulator(wiring.Component):
    """Sums partial sums across the K tiles of an m-block; sends the totals to requantization.

    Parameters
    ----------
    config : Config

    Members
    -------
    side : In(side_layout(config))
        The sideband of the beat whose sums are on ``psum`` :attr:`side_lead` cycles later.
    psum : In(data.ArrayLayout(signed(acc_width), cols))
        The beat's partial sums (the grid's ``p_out``).
    param_bank : Out(1)
        The parameter bank the accumulator reads on ``params`` in the next cycle (the
        parameter banks register it, :attr:`~hdl.parambank.ParamBank.select_latency`).
    params : In(data.ArrayLayout(qparam_layout(), cols))
        The parameters in bank ``param_bank``.
    o : Out(stream.Signature(...))
        For :class:`~hdl.requant.Requant` (``tag``: the layer's last result), :attr:`latency`
        cycles after the beat of a block's last pass was on ``side``. ``o.ready`` is not
        looked at: nothing stalls, the engine admits a beat only when the output has room.

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
            "side": In(side_layout(config)),
            "psum": In(data.ArrayLayout(signed(config.acc_width), config.cols)),
            "param_bank": Out(1),
            "params": In(data.ArrayLayout(qparam_layout(), config.cols)),
            "o": Out(stream.Signature(requant_layout(config.cols))),
        })

    @property
    def config(self):
        return self._config

    @property
    def side_lead(self):
        """Cycles by which a beat's ``side`` comes before its ``psum``."""
        return 1

    @property
    def latency(self):
        """Cycles from a beat on ``side`` and ``psum`` to its total on ``o``: the RAM read,
        the registered read, the add, the registered sum."""
        return 3

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        acc_layout = data.ArrayLayout(signed(cfg.acc_width), cfg.cols)
        # The RAM's read data is registered (AccRam.read_latency == 2): `stored` is the
        # registered word, as `side` addressed it 2 cycles before.
        m.submodules.ram = ram = AccRam(width=acc_layout.size, depth=cfg.acc_depth,
                                        target=cfg.target)
        assert ram.read_latency == 2
        # `side` is the sideband of the beat whose partial sums are on `psum` (registered
        # here from the input a cycle ahead); the RAM's read address is registered beside it,
        # a copy per block.
        # The sideband's stages: data without reset, beside their valid flags, which have one.
        stages = [Signal(self.side.shape(), name=name, reset_less=True)
                  for name in ("acc_side_in", "acc_side", "add_side", "rq_side", "wr_side_d")]
        valids = [Signal(name=f"{name}_valid") for name in ("acc_side_in", "acc_side",
                                                           "add_side", "rq_side", "wr_side_d")]
        prev, prev_valid = self.side, self.side.valid
        for stage, valid in zip(stages, valids):
            m.d.sync += [stage.eq(prev), valid.eq(prev_valid)]
            prev, prev_valid = stage, valid
        side, s2, s3, s4, s5 = stages
        _, _, v3, v4, v5 = valids
        m.submodules.read_addr = read_addr = Fanout(self.side.addr.shape(), copies=ram.blocks,
                                                    target=cfg.target)
        m.d.comb += read_addr.d.eq(self.side.addr)
        for k in range(ram.blocks):
            m.d.comb += ram.read.addr[k].eq(read_addr.q[k])
        psum = Signal(acc_layout, name="psum", reset_less=True)
        psum3 = Signal(acc_layout, name="psum_d", reset_less=True)
        stored = Signal(acc_layout, name="acc_read")
        total = Signal(acc_layout)
        total4 = Signal(acc_layout, name="acc_sum", reset_less=True)
        total5 = Signal(acc_layout, name="acc_sum_d", reset_less=True)
        older = Signal(acc_layout, name="acc_older", reset_less=True)
        writes3 = v3 & ~s3.last
        writes4 = v4 & ~s4.last
        writes5 = v5 & ~s5.last
        m.d.comb += stored.eq(ram.read.data)
        m.d.sync += [psum.eq(self.psum), psum3.eq(psum), total4.eq(total), total5.eq(total4)]
        # A sum is written back from its register (total4, at s4), a cycle after the add: the
        # add ends at a flip-flop, not at the block RAM's data pins across the chip.
        # Its address and enable are s4's, copied per block from s3.
        m.submodules.write_addr = write_addr = Fanout(
            data.StructLayout({"addr": side.addr.shape(), "en": 1}), copies=ram.blocks,
            target=cfg.target)
        m.d.comb += [write_addr.d.addr.eq(s3.addr), write_addr.d.en.eq(writes3),
                     ram.write.data.eq(total4)]
        for k in range(ram.blocks):
            m.d.comb += [ram.write.addr[k].eq(write_addr.q[k].addr),
                         ram.write.en[k].eq(write_addr.q[k].en)]
        # The RAM read (issued at `side`) missed the writes of the three rows ahead: by the
        # time this row adds (at s3), they are at s4, s5 and s6, their sums in total4, total5
        # and the one before. Which one holds this row's sum is decided a stage early, and the
        # two older candidates are selected a stage early too (`older`), so the add sees
        # registered selects and one more multiplexer than the RAM's word.
        #
        # The read of a row R (at `side` in cycle t) and the write of the row three ahead (at
        # s4 in the same cycle t) may be to the same address; that read's word is then
        # unspecified (ECP5's DP16KD does not define it). It is never used: in cycle t + 1
        # that row is at s5 and R at s2, so fwd6 is set, and in cycle t + 2 R adds total4 or
        # `older`, not `stored`. (Nor is a read used whose row is `first`, or not valid.) The
        # writes of the rows one and two ahead come after the read, so they do not meet it.
        #
        # Each select drives a multiplexer per accumulator bit of every lane, so each lane
        # gets its own registered copy (hdl.fanout.Fanout), decided a cycle ahead: `fwd4`
        # (the row one ahead), `fwd_old` (two or three ahead: their sum is in `older`) and
        # `fwd5`, which picks `older`'s candidate (the row two ahead, compared when it was at
        # s3 and this row at `side`).
        fwd5 = writes4 & (s4.addr == s2.addr)
        fwd6 = writes5 & (s5.addr == s2.addr)
        # `first` (a block's first pass: add to 0) is copied per lane the same way.
        selects = {"fwd4": writes3 & (s3.addr == s2.addr), "fwd_old": fwd5 | fwd6,
                   "fwd5": writes3 & (s3.addr == side.addr), "first": s2.first}
        copies = {}
        for name, value in selects.items():
            m.submodules[f"{name}_copies"] = fan = Fanout(1, copies=cfg.cols, target=cfg.target)
            m.d.comb += fan.d.eq(value)
            copies[name] = fan.q
        for c in range(cfg.cols):
            m.d.sync += older[c].eq(Mux(copies["fwd5"][c], total4[c], total5[c]))
            before = Mux(copies["fwd4"][c], total4[c],
                         Mux(copies["fwd_old"][c], older[c], stored[c]))
            m.d.comb += total[c].eq(Mux(copies["first"][c], 0, before) + psum3[c])

        params = Signal(data.ArrayLayout(qparam_layout(), cfg.cols), name="rq_params",
                        reset_less=True)
        # The bank is named a cycle ahead: the parameter banks register the select per lane.
        m.d.comb += self.param_bank.eq(s2.gbank)
        m.d.sync += params.eq(self.params)
        m.d.comb += [self.o.valid.eq(v4 & s4.last), self.o.payload.tag.eq(s4.eol)]
        for c in range(cfg.cols):
            m.d.comb += self.o.payload.acc[c].eq(total4[c])
            for name in QP_FIELDS:
                m.d.comb += self.o.payload[name][c].eq(params[c][name])
        return m
