"""The engine's word layouts and register widths: the one definition both sides derive from.

The Amaranth layouts below are what the gateware's stream ports carry (:class:`hdl.engine.Engine`
uses them as its payloads); the host's encoder and decoder (:mod:`host.packing`), the
transaction-level model of the testbenches, the manifest and the README's packet tables all
read the widths and offsets from :func:`fields` instead of writing numbers of their own.

Words (bit 0 = LSB of ``tdata``; every input word also has ``tlast``):

``act`` (``rows * m * 8`` bits)
    int8 activation of group ``r``, lane ``j`` at bits ``8 * (r*m + j)``.
``wgt`` (``cols * n * (8 + ib)`` bits, ``ib = log2(m)``, at least 1)
    weight ``j`` of column ``c`` at bits ``8 * (c*n + j)``; its index (position in the group
    of ``m``) at bits ``8*cols*n + ib * (c*n + j)``.
``qp`` (:data:`QP_BITS` bits)
    one output channel's bias (int32), multiplier (31 bits, ``[0, 2^31)``) and shift (signed,
    6 bits, ``[-31, 30]``), in that order from bit 0.
``out`` (``cols * 8`` bits)
    int8 of column ``c`` at bits ``8 * c``.
"""

from amaranth.hdl import Shape, signed
from amaranth.lib import data

__all__ = ["M_ROWS_WIDTH", "M_BLOCK_WIDTH", "TILES_WIDTH", "M_ROWS_MAX", "QP_FIELDS", "QP_BITS",
           "LayerConfig", "StreamFlags", "qparam_layout", "act_layout", "wgt_layout", "out_layout",
           "payload_layouts", "word_bits", "fields", "index_bits", "packet_formats"]

#: Width of the layer's row count ``m`` (rows of the im2col matrix for a convolution).
M_ROWS_WIDTH = 24
#: Width of the rows per m-block (1 .. acc_depth; acc_depth is at most 2^16).
M_BLOCK_WIDTH = 17
#: Width of the K- and N-tile counts.
TILES_WIDTH = 16
#: Largest ``m`` of one engine run.
M_ROWS_MAX = (1 << M_ROWS_WIDTH) - 1

#: The requantization parameters of one output channel, in word order: name -> shape.
QP_FIELDS = {"bias": signed(32), "multiplier": 31, "shift": signed(6)}


class LayerConfig(data.Struct):
    """Per-layer settings, held stable while the engine is busy."""

    m_rows: M_ROWS_WIDTH          # rows of the layer (m)
    m_block: M_BLOCK_WIDTH        # rows per m-block, 1 .. acc_depth
    k_tiles: TILES_WIDTH          # passes per m-block
    n_tiles: TILES_WIDTH          # N tiles
    in_zp: signed(8)              # input zero point, subtracted from every activation
    out_zp: signed(8)             # output zero point
    act_min: signed(8)            # clamp bounds (fused ReLU / ReLU6)
    act_max: signed(8)


class StreamFlags(data.Struct):
    """One bit per input stream."""

    act: 1
    wgt: 1
    qp: 1


def qparam_layout():
    """One output channel's requantization parameters."""
    return data.StructLayout(QP_FIELDS)


#: Bits of a ``qp`` word's payload.
QP_BITS = qparam_layout().size


def index_bits(config):
    """Bits of a weight's index in its group of ``m`` (1 for a dense array, ``m = 1``)."""
    return max(config.index_bits, 1)


def act_layout(config):
    return data.StructLayout({
        "data": data.ArrayLayout(data.ArrayLayout(signed(8), config.m), config.rows),
        "last": 1,
    })


def wgt_layout(config):
    return data.StructLayout({
        "w": data.ArrayLayout(data.ArrayLayout(signed(8), config.n), config.cols),
        "idx": data.ArrayLayout(data.ArrayLayout(index_bits(config), config.n), config.cols),
        "last": 1,
    })


def qp_layout():
    return data.StructLayout({"data": qparam_layout(), "last": 1})


def out_layout(config):
    return data.StructLayout({"data": data.ArrayLayout(signed(8), config.cols), "last": 1})


def payload_layouts(config):
    """``{stream: layout}`` of the four streams (payload fields and ``last``)."""
    return {"act": act_layout(config), "wgt": wgt_layout(config), "qp": qp_layout(),
            "out": out_layout(config)}


def word_bits(config):
    """Bits of each stream's payload without ``last`` (before padding ``tdata`` to bytes)."""
    return {name: layout.size - 1 for name, layout in payload_layouts(config).items()}


def fields(config):
    """Offsets and widths of every payload field, for encoders and decoders:
    ``{"act": (lane_bits, lanes), "wgt": {"w": (offset, bits, count), "idx": (...)},
    "qp": {name: (offset, bits, signed)}, "out": (lane_bits, lanes)}``; lanes count from bit 0.
    """
    wgt = wgt_layout(config)
    qp = qparam_layout()

    def elem(field):                        # the element of an array of arrays
        return Shape.cast(field.shape.elem_shape.elem_shape).width

    return {
        "act": (8, config.rows * config.m),
        "wgt": {name: (wgt[name].offset, elem(wgt[name]), config.cols * config.n)
                for name in ("w", "idx")},
        "qp": {name: (qp[name].offset, Shape.cast(qp[name].shape).width,
                      Shape.cast(qp[name].shape).signed) for name in QP_FIELDS},
        "out": (8, config.cols),
    }


def packet_formats(config):
    """The field table of every stream word, for the manifest and the README."""
    f = fields(config)
    ib = index_bits(config)
    r, c, n, m = config.rows, config.cols, config.n, config.m
    w_off, idx_off = f["wgt"]["w"][0], f["wgt"]["idx"][0]
    qp = [{"field": name, "bits": f"{off} +: {bits}",
           "type": f"{'int' if is_signed else 'uint'}{bits}", "count": 1}
          for name, (off, bits, is_signed) in f["qp"].items()]
    return {
        "act": [{"field": "x[r][j]", "bits": f"8*(r*{m}+j) +: 8", "type": "int8",
                 "count": r * m}],
        "wgt": [{"field": "w[c][j]", "bits": f"{w_off}+8*(c*{n}+j) +: 8".removeprefix("0+"),
                 "type": "int8", "count": c * n},
                {"field": "idx[c][j]", "bits": f"{idx_off}+{ib}*(c*{n}+j) +: {ib}",
                 "type": f"uint{ib}", "count": c * n}],
        "qp": qp,
        "out": [{"field": "y[c]", "bits": "8*c +: 8", "type": "int8", "count": c}],
    }
