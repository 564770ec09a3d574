"""Integer kernels against plain int64 references written with loops."""

import numpy as np
import pytest

import golden_model as gm


def ref_conv(x, w, stride, pads, dilation, groups, zx, zw):
    """Direct convolution with explicit loops, int64, padding taps skipped (they are zx)."""
    n, c, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    top, left, bottom, right = pads
    sh, sw = stride
    dh, dw = dilation
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, cout, oh, ow), dtype=np.int64)
    zw = np.broadcast_to(np.asarray(zw), (cout,))
    opg = cout // groups
    for b in range(n):
        for o in range(cout):
            g = o // opg
            for i in range(oh):
                for j in range(ow):
                    acc = 0
                    for ci in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                y = i * sh - top + u * dh
                                z = j * sw - left + v * dw
                                if 0 <= y < h and 0 <= z < wd:
                                    xv = int(x[b, g * cg + ci, y, z]) - zx
                                    acc += xv * (int(w[o, ci, u, v]) - int(zw[o]))
                    out[b, o, i, j] = acc
    return out


CONV_CASES = [
    # (N, C, H, W, Cout, KH, KW, stride, pads, dilation, groups)
    (1, 3, 7, 6, 4, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (2, 4, 8, 8, 6, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 2),
    (1, 2, 9, 7, 3, 2, 3, (1, 2), (0, 2, 1, 0), (2, 1), 1),
    (2, 5, 6, 6, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 5),      # depthwise
    (1, 4, 5, 5, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),      # pointwise
    (1, 2, 10, 10, 4, 3, 3, (3, 2), (2, 0, 1, 3), (2, 2), 2),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_qconv2d_matches_loop_reference(case):
    n, c, h, w_, cout, kh, kw, stride, pads, dil, groups = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.integers(-128, 128, (n, c, h, w_), dtype=np.int8)
    w = rng.integers(-128, 128, (cout, c // groups, kh, kw), dtype=np.int8)
    zx = int(rng.integers(-128, 128))
    zw = rng.integers(-128, 128, cout)
    got = gm.qconv2d(x, w, stride=stride, padding=pads, dilation=dil, groups=groups,
                     x_zero_point=zx, w_zero_point=zw)
    want = ref_conv(x, w, stride, pads, dil, groups, zx, zw)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_qconv2d_same_padding_and_requant():
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (1, 3, 7, 8), dtype=np.int8)
    w = rng.integers(-127, 128, (5, 3, 3, 3), dtype=np.int8)
    # TF SAME, stride 2: out 4x4; pad total rows = 3*2+3-7 = 2 -> (1, 1),
    # cols = 3*2+3-8 = 1 -> (0, 1)
    acc = gm.qconv2d(x, w, stride=2, padding="same")
    assert acc.shape == (1, 5, 4, 4)
    np.testing.assert_array_equal(acc, ref_conv(x, w, (2, 2), (1, 0, 1, 1), (1, 1), 1, 0, 0))
    bias = rng.integers(-5000, 5000, 5).astype(np.int32)
    m, s = gm.quantize_multiplier(np.array([1e-3, 2e-3, 5e-4, 1e-2, 3e-3]))
    out = gm.qconv2d(x, w, bias, stride=2, padding="same", multiplier=m, shift=s,
                     out_zero_point=-3)
    want = gm.requantize(acc + bias.reshape(1, 5, 1, 1), m, s, zero_point=-3, axis=1)
    np.testing.assert_array_equal(out, want)
    assert out.dtype == np.int8


def test_qlinear_and_matmul_integer():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (9, 33), dtype=np.uint8)
    w = rng.integers(-128, 128, (7, 33), dtype=np.int8)
    zw = rng.integers(-128, 128, 7)
    acc = gm.qlinear(x, w, x_zero_point=200, w_zero_point=zw)
    want = (x.astype(np.int64) - 200) @ (w.astype(np.int64) - zw[:, None]).T
    np.testing.assert_array_equal(acc, want)
    np.testing.assert_array_equal(
        gm.matmul_integer(x, w.T, a_zero_point=200, b_zero_point=zw), want)
    bias = rng.integers(-1000, 1000, 7).astype(np.int32)
    out = gm.qlinear(x, w, bias, x_zero_point=200, w_zero_point=zw, scale=np.float32(1e-3),
                     out_zero_point=10)
    np.testing.assert_array_equal(out, gm.requantize_float(want + bias, np.float32(1e-3),
                                                           zero_point=10))


def test_exact_chunked_gemm_beyond_float32_mantissa():
    # uint8 with zero point 0 and 255: products up to 65025, K = 5000 -> sums up to 3.3e8,
    # far beyond 2^24: chunking must keep it exact.
    rng = np.random.default_rng(6)
    a = rng.integers(200, 256, (4, 5000), dtype=np.uint8)
    b = rng.integers(200, 256, (5000, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gm.matmul_integer(a, b), a.astype(np.int64) @ b.astype(np.int64))
    # int16 operands need the float64 path
    a16 = rng.integers(-32768, 32768, (3, 3000), dtype=np.int16)
    b16 = rng.integers(-32768, 32768, (3000, 2), dtype=np.int16)
    want = gm.wrap_int32(a16.astype(np.int64) @ b16.astype(np.int64))
    np.testing.assert_array_equal(gm.matmul_integer(a16, b16), want)


def test_accumulator_wraps_modulo_2_32_at_the_extremes():
    k = (1 << 17) + 3                         # 2^17 * 2^14 = 2^31: past INT32_MAX
    a = np.full((2, k), -128, dtype=np.int8)
    b = np.full((k, 2), -128, dtype=np.int8)
    got = gm.matmul_integer(a, b)
    exact = k * 16384
    assert exact > gm.INT32_MAX
    assert got.dtype == np.int32
    assert (got == exact - (1 << 32)).all()   # wrapped, negative
    w = np.full((1, k), -128, dtype=np.int8)
    assert gm.qlinear(a[:1], w)[0, 0] == exact - (1 << 32)
    # bias addition wraps too
    acc = gm.qlinear(np.full((1, 1), 127, np.int8), np.full((1, 1), 127, np.int8),
                     np.array([gm.INT32_MAX], np.int32))
    assert acc[0, 0] == gm.INT32_MAX + 16129 - (1 << 32)


def test_im2col_layout_matches_weight_reshape():
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, (2, 3, 5, 6), dtype=np.int8)
    w = rng.integers(-128, 128, (4, 3, 2, 3), dtype=np.int8)
    cols = gm.im2col(x, (2, 3), stride=1, padding=(1, 0), pad_value=0)
    n, oh, ow = cols.shape[:3]
    mat = cols.reshape(n * oh * ow, -1).astype(np.int64) @ w.reshape(4, -1).T.astype(np.int64)
    np.testing.assert_array_equal(mat.reshape(n, oh, ow, 4).transpose(0, 3, 1, 2),
                                  gm.qconv2d(x, w, padding=(1, 0)))


def test_kernel_errors():
    x = np.zeros((2, 4), np.int8)
    with pytest.raises(ValueError, match=r"x has k = 4 columns but w \(n, k\) has 5"):
        gm.qlinear(x, np.zeros((3, 5), np.int8))
    with pytest.raises(TypeError, match=r"x must be an integer array, not dtype float32"):
        gm.qlinear(x.astype(np.float32), np.zeros((3, 4), np.int8))
    with pytest.raises(ValueError, match=r"x_zero_point must be in \[-128, 127\] for int8 data, "
                                         r"not 128"):
        gm.qlinear(x, np.zeros((3, 4), np.int8), x_zero_point=128)
    with pytest.raises(ValueError, match=r"w_zero_point must have 3 values"):
        gm.qlinear(x, np.zeros((3, 4), np.int8), w_zero_point=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\), not \(2,\)"):
        gm.qlinear(x, np.zeros((3, 4), np.int8), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match=r"multiplier and shift go together"):
        gm.qlinear(x, np.zeros((3, 4), np.int8), multiplier=1 << 30)
    with pytest.raises(ValueError, match=r"a is \(2, 4\) and b is \(3, 4\)"):
        gm.matmul_integer(x, np.zeros((3, 4), np.int8))
    xc = np.zeros((1, 4, 5, 5), np.int8)
    with pytest.raises(ValueError, match=r"groups = 3 must divide the input channels \(4\)"):
        gm.qconv2d(xc, np.zeros((3, 1, 3, 3), np.int8), groups=3)
    with pytest.raises(ValueError, match=r"w has 3 input channels per group but x has 4 channels"):
        gm.qconv2d(xc, np.zeros((2, 3, 3, 3), np.int8))
    with pytest.raises(ValueError, match=r"kernel 7x7 \(dilation 1x1\) does not fit the padded "
                                         r"input 5x5"):
        gm.qconv2d(xc, np.zeros((2, 4, 7, 7), np.int8))
    with pytest.raises(ValueError, match=r"stride must be at least 1, not 0"):
        gm.qconv2d(xc, np.zeros((2, 4, 3, 3), np.int8), stride=0)
    with pytest.raises(ValueError, match=r"padding must be an int, a pair, a 4-tuple, 'valid' or "
                                         r"'same', not 'full'"):
        gm.qconv2d(xc, np.zeros((2, 4, 3, 3), np.int8), padding="full")
    with pytest.raises(ValueError, match=r"x must be a 4-d array, not shape \(4, 5, 5\)"):
        gm.qconv2d(xc[0], np.zeros((2, 4, 3, 3), np.int8))


def test_narrow_accumulator_wraps_before_the_bias():
    # acc_bits = 16: the products wrap modulo 2^16, then the int32 bias is added.
    x = np.full((1, 4), -128, np.int8)
    w = np.full((2, 4), -128, np.int8)                      # sum = 4 * 16384 = 65536 -> 0
    bias = np.array([5, -7], np.int32)
    np.testing.assert_array_equal(gm.qlinear(x, w, bias, acc_bits=16), [[5, -7]])
    np.testing.assert_array_equal(gm.qlinear(x, w, bias), [[65541, 65529]])
    x2 = np.full((1, 3), 127, np.int8)
    w2 = np.full((1, 3), 127, np.int8)                       # 3 * 16129 = 48387 -> -17149
    assert gm.qlinear(x2, w2, acc_bits=16)[0, 0] == 48387 - 65536
    xc = np.full((1, 1, 2, 2), -128, np.int8)
    wc = np.full((1, 1, 2, 2), -128, np.int8)
    assert gm.qconv2d(xc, wc, acc_bits=16)[0, 0, 0, 0] == 0
    with pytest.raises(ValueError, match=r"acc_bits must be between 2 and 32, not 40"):
        gm.qlinear(x, w, acc_bits=40)
