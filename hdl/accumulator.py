"""The accumulator: partial sums of an m-block summed across its K tiles in on-chip RAM.

The grid delivers the ``cols`` partial sums of one activation row of one pass per cycle. The
first pass of a block writes them to the block's row of the RAM, the next passes add to it;
during the last pass the sum goes, with the block's requantization parameters, to the
requantizer instead. Nothing stalls: the row's sideband (:func:`side_layout`), delayed with
the grid, says what to do with each beat.

A row's partial sum is read 3 cycles before it is added (and 4 before it is written back): the
RAM (:class:`~hdl.accram.AccRam`) delivers it through two registers, the block RAM's own output
register and one in the fabric for ``"ecp5"`` (ECP5 ``DP16KD``), since a block RAM's
clock-to-output is slow and its pins sit in a column away from the adders. The sum is
registered, then written back and sent on. A row of the next pass of the same block, arriving
1 to 4 beats later (tiny blocks), takes the sum of the row in flight instead (forwarding). The
sum and the block's parameters are registered before the requantizer, so no logic follows the
RAM's output and none precedes the bias add.

The sideband comes two cycles ahead of its partial sums (:attr:`Accumulator.side_lead`): the
RAM addresses and write enable are registered once per RAM block (:class:`~hdl.fanout.Fanout`),
from the sideband a stage before they are used, so each block's copy sits beside it.
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
        return 2

    @property
    def latency(self):
        """Cycles from a beat's partial sums on ``psum`` to its total on ``o``: the partial
        sums registered twice beside the RAM's read, the add, the registered sum."""
        return 3

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        acc_layout = data.ArrayLayout(signed(cfg.acc_width), cfg.cols)
        # The RAM's read data is registered twice (AccRam.read_latency == 3): `stored` is the
        # word `side` addressed 3 cycles before.
        m.submodules.ram = ram = AccRam(width=acc_layout.size, depth=cfg.acc_depth,
                                        target=cfg.target)
        assert ram.read_latency == 3
        # The beat's sideband by stage: `st[k]` is the sideband `k` cycles after it was on
        # `side` (`st[0]`). The read address is registered at stage 1 (a copy per block), the
        # partial sums arrive at stage 2 and are registered twice, the add is at stage
        # ADD = 4, the sum is registered at stage 5 and written back from there.
        # Data without reset, beside their valid flags, which have one.
        names = ("acc_side_rd", "acc_side_in", "acc_side", "add_side", "rq_side", "wr_side_d",
                 "wr_side_dd")
        st, valid = [self.side], [self.side.valid]
        for name in names:
            stage = Signal(self.side.shape(), name=name, reset_less=True)
            flag = Signal(name=f"{name}_valid")
            m.d.sync += [stage.eq(st[-1]), flag.eq(valid[-1])]
            st.append(stage)
            valid.append(flag)
        # A beat at stage k writes back (its block has passes to come).
        writes = [v & ~s.last for s, v in zip(st, valid)]
        m.submodules.read_addr = read_addr = Fanout(self.side.addr.shape(), copies=ram.blocks,
                                                    target=cfg.target)
        m.d.comb += read_addr.d.eq(self.side.addr)
        for k in range(ram.blocks):
            m.d.comb += ram.read.addr[k].eq(read_addr.q[k])
        psum = Signal(acc_layout, name="psum", reset_less=True)
        psum_add = Signal(acc_layout, name="psum_d", reset_less=True)
        stored = Signal(acc_layout, name="acc_read")
        total = Signal(acc_layout)
        # The sums of the beats one, two and three stages past the add.
        sums = [Signal(acc_layout, name=name, reset_less=True)
                for name in ("acc_sum", "acc_sum_d", "acc_sum_dd")]
        older = Signal(acc_layout, name="acc_older", reset_less=True)
        m.d.comb += stored.eq(ram.read.data)
        m.d.sync += [psum.eq(self.psum), psum_add.eq(psum), sums[0].eq(total),
                     sums[1].eq(sums[0]), sums[2].eq(sums[1])]
        # A sum is written back from its register (stage 5), a cycle after the add: the add
        # ends at a flip-flop, not at the block RAM's data pins across the chip. Its address
        # and enable are stage 5's, copied per block from stage 4.
        m.submodules.write_addr = write_addr = Fanout(
            data.StructLayout({"addr": self.side.addr.shape(), "en": 1}), copies=ram.blocks,
            target=cfg.target)
        m.d.comb += [write_addr.d.addr.eq(st[4].addr), write_addr.d.en.eq(writes[4]),
                     ram.write.data.eq(sums[0])]
        for k in range(ram.blocks):
            m.d.comb += [ram.write.addr[k].eq(write_addr.q[k].addr),
                         ram.write.en[k].eq(write_addr.q[k].en)]
        # Forwarding. A beat R's read (its address on the RAM at stage 1) misses the writes of
        # the four beats ahead of it (R-1 .. R-4 at stages 2 .. 5, the last writing in that very
        # cycle). When R adds (stage 4) their sums are at stages 5, 6, 7 and 8: R-1's in
        # `acc_sum`, and the newest of R-2 .. R-4 with R's address in `older`, chosen a cycle
        # before from `acc_sum` .. `acc_sum_dd`. So the add sees the RAM's word through one
        # register, registered selects, and one multiplexer more than the RAM's word.
        #
        # The read of R and the write of R-4 (at stage 5 in the same cycle) may be to the same
        # address; that read's word is then unspecified (ECP5's DP16KD does not define it). It
        # is never used: R-4 then has R's address, so R adds `older`, not `stored`. (Nor is a
        # read used whose beat is `first`, or not valid.) The writes of R-1 .. R-3 come after
        # the read, so they do not meet it.
        #
        # Each select drives a multiplexer per accumulator bit of every lane, so each lane
        # gets its own registered copy (hdl.fanout.Fanout). The copies load a register, not
        # the address comparison itself, so each select is decided two cycles ahead: the
        # beats k and `at` stages in are the ones k + 1 and `at + 1` stages in a cycle later
        # (nothing stalls).
        def hit(k, at):
            return writes[k] & (st[k].addr == st[at].addr)

        selects = {
            # used at stage 4, decided at stage 2: R-1 (stage 3), R-2 .. R-4 (stages 4 to 6)
            "fwd1": hit(3, 2), "fwd_old": hit(4, 2) | hit(5, 2) | hit(6, 2),
            # used at stage 3 to fill `older`, decided at stage 1: R-2 (stage 3), R-3 (stage 4)
            "old2": hit(3, 1), "old3": hit(4, 1),
            # `first` (a block's first pass: add to 0)
            "first": st[2].first,
        }
        copies = {}
        for name, value in selects.items():
            early = Signal(name=f"{name}_early", reset_less=True)
            m.d.sync += early.eq(value)
            m.submodules[f"{name}_copies"] = fan = Fanout(1, copies=cfg.cols, target=cfg.target)
            m.d.comb += fan.d.eq(early)
            copies[name] = fan.q
        for c in range(cfg.cols):
            m.d.sync += older[c].eq(Mux(copies["old2"][c], sums[0][c],
                                        Mux(copies["old3"][c], sums[1][c], sums[2][c])))
            before = Mux(copies["fwd1"][c], sums[0][c],
                         Mux(copies["fwd_old"][c], older[c], stored[c]))
            m.d.comb += total[c].eq(Mux(copies["first"][c], 0, before) + psum_add[c])

        params = Signal(data.ArrayLayout(qparam_layout(), cfg.cols), name="rq_params",
                        reset_less=True)
        # The bank is named a cycle ahead: the parameter banks register the select per lane.
        m.d.comb += self.param_bank.eq(st[3].gbank)
        m.d.sync += params.eq(self.params)
        m.d.comb += [self.o.valid.eq(valid[5] & st[5].last), self.o.payload.tag.eq(st[5].eol)]
        for c in range(cfg.cols):
            m.d.comb += self.o.payload.acc[c].eq(sums[0][c])
            for name in QP_FIELDS:
                m.d.comb += self.o.payload[name][c].eq(params[c][name])
        return m
