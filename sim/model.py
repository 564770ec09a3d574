"""Transaction-level model of the accelerator, fed with the words seen on its input streams.

The scoreboard does not trust the stimulus generator: it rebuilds every pass from the
``act``, ``wgt`` and ``qp`` words the input monitors observed (decoding the words with the
offsets of :func:`hdl.layout.fields`, independently of the host's encoder) and the layer
registers, and computes the expected output words with the golden model's arithmetic
(wrapping accumulator, ``golden_model.requantize``).
"""

import numpy as np

import golden_model as gm
from hdl.config import Config
from hdl.layout import fields

__all__ = ["EngineModel", "decode_out"]


def _fields(word, width, count, signed=True):
    """``count`` fields of ``width`` bits from an integer word, LSB first."""
    raw = np.array([(word >> (width * i)) & ((1 << width) - 1) for i in range(count)],
                   dtype=np.int64)
    if signed:
        raw = np.where(raw >= 1 << (width - 1), raw - (1 << width), raw)
    return raw


def decode_out(config, word):
    """The ``cols`` int8 results of one output word."""
    return _fields(int(word), 8, config.cols)


def _bits(words, offset, width, count, signed):
    """``(len(words), count)`` int64: fields of ``width`` bits from bit ``offset`` of every
    word, LSB first (the words as little-endian bytes, unpacked to bits)."""
    nbytes = (offset + width * count + 7) // 8
    mask = (1 << 8 * nbytes) - 1
    raw = np.frombuffer(b"".join((int(w) & mask).to_bytes(nbytes, "little") for w in words),
                        dtype=np.uint8).reshape(len(words), nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, offset:offset + width * count]
    values = (bits.reshape(len(words), count, width).astype(np.int64)
              << np.arange(width, dtype=np.int64)).sum(axis=2)
    if signed:
        values = np.where(values >= 1 << (width - 1), values - (1 << width), values)
    return values


def _int8_lanes(words, count):
    """``(len(words), count)`` int64: the int8 lanes 0 .. count-1 of every word."""
    mask = (1 << 8 * count) - 1
    raw = np.frombuffer(b"".join((int(w) & mask).to_bytes(count, "little") for w in words),
                        dtype=np.int8).reshape(len(words), count)
    return raw.astype(np.int64)


class EngineModel:
    """Expected output words of a layer, from its registers and its input words."""

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a hdl.config.Config, not {config!r}")
        self.config = config
        self._fields = fields(config)

    def _tiles(self, words):
        """(tiles, rows, cols, m) int64: every weight tile of ``words`` (``rows`` words each)
        with its weights expanded to their positions."""
        cfg = self.config
        (w_off, w_bits, nw), (i_off, i_bits, _) = (self._fields["wgt"][f] for f in ("w", "idx"))
        if w_off % 8 or w_bits != 8:
            w = _bits(words, w_off, w_bits, nw, signed=True)
        else:
            w = _int8_lanes([int(x) >> w_off for x in words], nw)
        idx = _bits(words, i_off, i_bits, nw, signed=False) % cfg.m
        tiles = np.zeros((len(words), cfg.cols * cfg.n, cfg.m), dtype=np.int64)
        rows, lanes = np.indices(idx.shape)
        # The PE adds one product per slot, whatever the indices are.
        np.add.at(tiles, (rows, lanes, idx), w)
        return tiles.reshape(-1, cfg.rows, cfg.cols, cfg.n, cfg.m).sum(axis=3)

    def _acts(self, words):
        cfg = self.config
        return _int8_lanes(words, cfg.rows * cfg.m).reshape(len(words), cfg.rows, cfg.m)

    def expected(self, regs, act, wgt, qp):
        """Output words (ints) and their ``tlast`` flags for one layer.

        ``regs``: the layer registers (``m_rows``, ``m_block``, ``k_tiles``, ``n_tiles``,
        ``in_zp``, ``out_zp``, ``act_min``, ``act_max``, signed values as ints);
        ``act``/``wgt``/``qp``: the words of each stream in arrival order.
        Raises ``ValueError`` if the streams do not hold the words the registers imply.
        """
        cfg = self.config
        m, mb, kt_n, nt_n = (regs[k] for k in ("m_rows", "m_block", "k_tiles", "n_tiles"))
        blocks = [(b, min(mb, m - b)) for b in range(0, m, mb)]
        need_act = nt_n * kt_n * m
        need_wgt = nt_n * len(blocks) * kt_n * cfg.rows
        need_qp = nt_n * len(blocks) * cfg.cols
        for name, have, need in (("act", len(act), need_act), ("wgt", len(wgt), need_wgt),
                                 ("qp", len(qp), need_qp)):
            if have != need:
                raise ValueError(f"{name} stream carried {have} words, the layer needs {need}")
        acts = self._acts(act) - regs["in_zp"]
        tiles = self._tiles(wgt)
        ia = it = iq = 0
        words = []
        for _ in range(nt_n):
            for _, length in blocks:
                params = np.array([[_fields(int(q) >> off, bits, 1, signed=sig)[0]
                                    for off, bits, sig in self._fields["qp"].values()]
                                   for q in qp[iq:iq + cfg.cols]], dtype=np.int64)
                iq += cfg.cols
                acc = np.zeros((length, cfg.cols), dtype=np.int64)
                for _ in range(kt_n):
                    acc += np.einsum("irm,rcm->ic", acts[ia:ia + length], tiles[it])
                    it += 1
                    ia += length
                acc = gm.wrap_signed(acc, cfg.acc_width)
                acc = gm.wrap_int32(acc + params[:, 0])
                out = gm.requantize(acc, params[:, 1], params[:, 2],
                                    zero_point=regs["out_zp"], rounding=cfg.rounding)
                out = np.clip(out, regs["act_min"], regs["act_max"]).astype(np.int8)
                words += [int.from_bytes(row.tobytes(), "little") for row in out]
        lasts = [False] * (len(words) - 1) + [True]
        return words, lasts
