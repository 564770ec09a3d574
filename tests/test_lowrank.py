"""Tests of golden_model.lowrank: exact reconstruction at full rank, the Eckart-Young error of
the truncation, the balanced factors, the energy rule, factorized Dense and Conv2d layers
against the reconstructed weights, the trainable Sequential network (its backward against
finite differences, fine-tuning by train()), the integer graph of a factorized network against
a derived int8 error bound, the digits accuracy, the cost accounting, and every argument
error."""

import numpy as np
import pytest
from training_helpers import raises

from golden_model.datasets import as_images, load_digits_split
from golden_model.graph import float_forward, quantize_graph
from golden_model.layers import Conv2d, Dense, Flatten, MaxPool2d
from golden_model.lowrank import (
    Sequential,
    break_even_rank,
    choose_rank,
    cost_report,
    factorize,
    factorize_graph,
    factorize_layer,
    network_cost,
    singular_values,
    svd_factors,
    truncation_error,
)
from golden_model.resnet import ResNet
from golden_model.train import CNN, MLP, accuracy, cross_entropy, prune_filters, train
from host.lowering import layer_gemm

# Small matrices: BLAS threads only cost, and the sums stay independent of the core count.
pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def small_cnn(seed=3):
    """conv0 2->3 3x3, pool, conv1 3->4 3x3, pool, flatten (4), fc0 4->5, fc1 5->3; float64,
    biases off zero."""
    net = CNN.init((3, 4), (5,), classes=3, input_shape=(2, 6, 6), seed=seed)
    rng = np.random.default_rng(seed)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [0.1 * rng.standard_normal(b.shape) for b in net.biases]
    return net


# --- the matrix -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (6, 3, 2, 2), (2, 3, 3, 3)])
def test_full_rank_reconstructs_exactly(shape):
    w = rand(shape)
    r = min(shape[0], int(np.prod(shape[1:])))
    a, b = svd_factors(w, r)
    assert a.shape == (r, w[0].size) and b.shape == (shape[0], r)
    assert a.dtype == b.dtype == np.float64
    np.testing.assert_allclose((b @ a).reshape(shape), w, rtol=0, atol=1e-10)
    assert truncation_error(w, r) == 0.0


def test_eckart_young_error_is_the_discarded_spectrum():
    w = rand((9, 6), seed=1)
    s = np.linalg.svd(w, compute_uv=False)
    np.testing.assert_array_equal(singular_values(w), s)
    rng = np.random.default_rng(2)
    for r in range(1, 6):
        a, b = svd_factors(w, r)
        err = w - b @ a
        expected = np.sqrt(np.sum(s[r:] ** 2))
        assert np.linalg.norm(err) == pytest.approx(expected, rel=1e-12)
        assert truncation_error(w, r) == pytest.approx(expected, rel=1e-15)
        assert np.linalg.norm(err, 2) == pytest.approx(s[r], rel=1e-12)
        # No other rank-r matrix is closer: random ones, and the exact truncation perturbed.
        for _ in range(20):
            other = rng.standard_normal((9, r)) @ rng.standard_normal((r, 6))
            assert np.linalg.norm(w - other) > expected
            near = (b + 1e-3 * rng.standard_normal(b.shape)) @ a
            assert np.linalg.norm(w - near) > expected


def test_factors_are_balanced():
    w = rand((8, 12), seed=4)
    s = np.linalg.svd(w, compute_uv=False)
    a, b = svd_factors(w, 5)
    np.testing.assert_allclose(a @ a.T, np.diag(s[:5]), atol=1e-12)
    np.testing.assert_allclose(b.T @ b, np.diag(s[:5]), atol=1e-12)


def test_factors_keep_the_weight_dtype():
    w = rand((6, 4)).astype(np.float32)
    a, b = svd_factors(w, 2)
    a64, b64 = svd_factors(w.astype(np.float64), 2)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(a, a64.astype(np.float32))
    np.testing.assert_array_equal(b, b64.astype(np.float32))


def test_choose_rank_by_energy():
    s = np.array([3.0, 2.0, 1.0, 0.0])          # energies 9, 4, 1, 0 of 14
    assert choose_rank(s, 0.5) == 1
    assert choose_rank(s, 9 / 14) == 1
    assert choose_rank(s, 0.65) == 2
    assert choose_rank(s, 13 / 14) == 2
    assert choose_rank(s, 0.93) == 3
    assert choose_rank(s, 1.0) == 3             # the numerical rank: the zero is dropped
    assert choose_rank(np.zeros(3), 0.9) == 1
    w = rand((10, 10), seed=5)
    sv = singular_values(w)
    for e in (0.3, 0.7, 0.95, 0.999):
        r = choose_rank(sv, e)
        kept = np.cumsum(sv ** 2) / np.sum(sv ** 2)
        assert kept[r - 1] >= e and (r == 1 or kept[r - 2] < e)
        assert svd_factors(w, energy=e)[0].shape[0] == r


def test_break_even_rank():
    assert break_even_rank((128, 64)) == 42      # 42 * 192 = 8064 < 8192 <= 43 * 192
    assert break_even_rank((16, 8, 3, 3)) == 13  # K = 72: 13 * 88 = 1144 < 1152 <= 14 * 88
    assert break_even_rank((1, 1)) == 0
    assert break_even_rank((2, 2)) == 0


# --- graph layers -----------------------------------------------------------------------------

def test_dense_factors_compute_the_factored_product():
    rng = np.random.default_rng(6)
    layer = Dense(rng.standard_normal((7, 9)), rng.standard_normal(7), relu=True, name="fc")
    first, second = factorize_layer(layer, 3)
    assert (first.name, second.name, first.relu, second.relu) == ("fc.v", "fc", False, True)
    np.testing.assert_array_equal(first.b, np.zeros(3))
    a, b = svd_factors(layer.w, 3)
    np.testing.assert_array_equal(first.w, a)
    np.testing.assert_array_equal(second.w, b)
    x = rng.standard_normal((11, 9))
    np.testing.assert_allclose(second(first(x)), np.maximum(x @ (b @ a).T + layer.b, 0),
                               rtol=0, atol=1e-12)
    full = factorize_layer(layer, 7)
    np.testing.assert_allclose(full[1](full[0](x)), layer(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, (0, 1, 1, 0))])
def test_conv_factors_equal_a_conv_with_the_reconstructed_kernel(stride, padding):
    rng = np.random.default_rng(7)
    layer = Conv2d(rng.standard_normal((6, 4, 3, 3)), rng.standard_normal(6), stride=stride,
                   padding=padding, relu=True, name="conv")
    x = rng.standard_normal((2, 4, 7, 7))
    for r in (1, 3, 6):
        first, second = factorize_layer(layer, r)
        assert first.w.shape == (r, 4, 3, 3) and second.w.shape == (6, r, 1, 1)
        assert (first.stride, first.padding, second.stride, second.padding) == \
            (stride, padding, 1, 0)
        a, b = svd_factors(layer.w, r)
        direct = Conv2d((b @ a).reshape(layer.w.shape), layer.b, stride=stride,
                        padding=padding, relu=True)
        np.testing.assert_allclose(second(first(x)), direct(x), rtol=0, atol=1e-12)
    full = factorize_layer(layer, 6)
    np.testing.assert_allclose(full[1](full[0](x)), layer(x), rtol=0, atol=1e-12)


def test_factorized_resnet_graph_keeps_its_wiring():
    net = ResNet.init(channels=(4, 8), strides=(1, 2), classes=3, input_shape=(1, 7, 7),
                      seed=1)
    layers = net.to_layers()
    full = factorize_graph(layers, rank={"layer1.0.conv2": 4, "layer2.0.downsample": 4})
    assert [ly.name for ly in full].count("layer1.0.conv2.v") == 1
    x = np.random.default_rng(1).random((5, 1, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(float_forward(full, x)[-1], float_forward(layers, x)[-1],
                               rtol=0, atol=1e-4)
    low = factorize_graph(layers, energy=0.8)
    assert len(low) == len(layers) + 7                 # every convolution and the classifier
    graph = quantize_graph(low, (1, 7, 7), x)
    assert graph.forward(x)[-1].shape == (5, 3)


# --- the trainable network ----------------------------------------------------------------------

def test_factorized_mlp_forward_is_the_factored_product():
    rng = np.random.default_rng(8)
    net = MLP.init([6, 5, 4, 3], seed=8)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [0.1 * rng.standard_normal(b.shape) for b in net.biases]
    low = factorize(net, rank={"fc0": 2, "fc2": 1})
    assert isinstance(low, Sequential)
    assert low.layer_names() == ["fc0.v", "fc0", "fc1", "fc2.v", "fc2"]
    assert [w.shape for w in low.weights] == [(2, 6), (5, 2), (4, 5), (1, 4), (3, 1)]
    assert [op.relu for op in low._arch()] == [False, True, True, False, False]
    x = rng.standard_normal((10, 6))
    (a0, b0), (a2, b2) = svd_factors(net.weights[0], 2), svd_factors(net.weights[2], 1)
    h = np.maximum(x @ a0.T @ b0.T + net.biases[0], 0)
    h = np.maximum(h @ net.weights[1].T + net.biases[1], 0)
    expected = h @ a2.T @ b2.T + net.biases[2]
    np.testing.assert_allclose(low.forward(x), expected, rtol=0, atol=1e-12)
    layers = low.to_layers()
    assert [type(ly) for ly in layers] == [Dense] * 5
    np.testing.assert_allclose(float_forward(layers, x)[-1], expected, atol=1e-5)
    np.testing.assert_allclose(factorize(net, rank=4, layers=["fc1"]).forward(x),
                               net.forward(x), rtol=0, atol=1e-12)   # full rank


def test_factorized_cnn_equals_the_cnn_with_reconstructed_weights():
    net = small_cnn()
    x = np.random.default_rng(9).standard_normal((4, 2, 6, 6))
    low = factorize(net, rank={"conv1": 2, "fc0": 2})
    assert low.layer_names() == ["conv0", "conv1.v", "conv1", "fc0.v", "fc0", "fc1"]
    assert [op.kind for op in low._arch()] == ["conv", "pool", "conv", "conv", "pool",
                                               "flatten", "dense", "dense", "dense"]
    recon = net.copy()
    for name, r in (("conv1", 2), ("fc0", 2)):
        i = net.layer_index(name)
        a, b = svd_factors(net.weights[i], r)
        recon.weights[i] = (b @ a).reshape(net.weights[i].shape)
    np.testing.assert_allclose(low.forward(x), recon.forward(x), rtol=0, atol=1e-12)
    types = [type(ly) for ly in low.to_layers()]
    assert types == [Conv2d, MaxPool2d, Conv2d, Conv2d, MaxPool2d, Flatten, Dense, Dense, Dense]


def test_sequential_backward_matches_finite_differences():
    net = factorize(small_cnn(), rank={"conv1": 2, "fc0": 2})
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 2, 6, 6))
    y = np.array([0, 2, 1])
    logits = net.forward(x)
    grads = net.gradients(x, cross_entropy(logits, y)[1])

    def loss():
        return cross_entropy(net.forward(x), y)[0]

    h = 1e-6
    for i, (dw, db) in enumerate(grads):
        for arr, g in ((net.weights[i], dw), (net.biases[i], db)):
            for k in list(np.ndindex(arr.shape))[:6]:
                old = arr[k]
                arr[k] = old + h
                hi = loss()
                arr[k] = old - h
                lo = loss()
                arr[k] = old
                assert g[k] == pytest.approx((hi - lo) / (2 * h), rel=1e-5, abs=1e-8)


def test_sequential_from_model_is_the_same_network():
    net = small_cnn()
    seq = Sequential.from_model(net)
    x = np.random.default_rng(11).standard_normal((2, 2, 6, 6))
    np.testing.assert_array_equal(seq.forward(x), net.forward(x))
    assert seq.layer_names() == net.layer_names() and seq.input_shape == (2, 6, 6)
    seq.weights[0][...] = 0                         # a copy
    assert np.any(net.weights[0] != 0)


def test_filter_pruning_reaches_through_the_flatten_of_a_sequential():
    net = factorize(small_cnn(), rank={"conv1": 2})
    assert net.feature_shape() == (4, 1, 1)
    x = np.random.default_rng(13).standard_normal((3, 2, 6, 6))
    smaller, keep = prune_filters(net, 0.5, layers=["conv1"])
    assert [w.shape for w in smaller.weights][2:4] == [(2, 2, 1, 1), (5, 2)]
    zeroed = net.copy()
    zeroed.weights[2][~keep["conv1"]] = 0
    zeroed.biases[2][~keep["conv1"]] = 0
    np.testing.assert_allclose(smaller.forward(x), zeroed.forward(x), rtol=0, atol=1e-12)


def test_factorization_drops_masks_of_factorized_layers_only():
    net = MLP.init([8, 6, 4], seed=1)
    keep = np.abs(net.weights[1]) > 0.3
    net.masks = [np.abs(net.weights[0]) > 0.3, keep]
    low = factorize(net, rank=2, layers=["fc0"])
    assert low.masks[0] is None and low.masks[1] is None
    np.testing.assert_array_equal(low.masks[2], keep)


def test_fine_tuning_and_int8_accuracy_on_digits(digits):
    """Baseline, rank-16 truncation, three epochs of fine-tuning, and the int8 graph: the
    truncation costs accuracy, fine-tuning recovers most of it, int8 keeps it."""
    x_train, y_train, x_test, y_test = digits
    net = MLP.init([64, 128, 64, 10], seed=0)
    train(net, x_train, y_train, epochs=15, lr_schedule="cosine")
    base = accuracy(net.forward(x_test), y_test)
    low = factorize(net, rank=16, layers=["fc0", "fc1"])
    cut = accuracy(low.forward(x_test), y_test)
    log = train(low, x_train, y_train, epochs=3, lr=1e-3, seed=1)
    tuned = accuracy(low.forward(x_test), y_test)
    graph = quantize_graph(low.to_layers(), low.input_shape, x_train[:512])
    int8 = float(np.mean(graph.predict(x_test) == y_test))
    assert base > 0.95 and cut < base - 0.03
    assert tuned > cut + 0.03 and tuned > base - 0.03
    assert abs(int8 - tuned) < 0.02
    assert log.losses[-1] < log.losses[0]
    assert [ly.name for ly in graph.weighted()] == ["fc0.v", "fc0", "fc1.v", "fc1", "fc2"]
    report = cost_report(net, low)
    assert report["params"] == (64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10,
                                16 * 64 + 16 + 128 * 16 + 128 + 16 * 128 + 16 + 64 * 16 + 64
                                + 64 * 10 + 10)
    assert report["macs"] == (64 * 128 + 128 * 64 + 640,
                              16 * (64 + 128) + 16 * (128 + 64) + 640)


def test_fine_tuning_a_factorized_cnn_with_qat(digits):
    x_train, y_train = as_images(digits[0][:256]), digits[1][:256]
    low = factorize(CNN.init((4, 8), (16,), seed=0), energy=0.9, layers=["conv1", "fc0"])
    log = train(low, x_train, y_train, epochs=2, qat=True)
    assert len(log.act_ranges) == len(low._arch()) + 1
    graph = quantize_graph(low.to_layers(), low.input_shape, x_train, act_ranges=log.act_ranges)
    assert [ly.name for ly in graph.weighted()] == ["conv0", "conv1.v", "conv1", "fc0.v",
                                                    "fc0", "fc1"]


# --- int8: the integer graph against a derived error bound -----------------------------------
#
# A weighted layer of the integer graph computes exactly ``s_in s_w acc = W~ x~ + b~``, with
# ``W~ = s_w q_w`` its dequantized weights, ``x~ = s_in (q_in - zp_in)`` its dequantized input
# (a padding tap is the code ``zp_in``, exactly 0 like the float padding) and
# ``b~ = s_in s_w q_b``; then requantizes (TFLite's double rounding: two half-steps, at most
# one output step ``s_out``, plus the fixed-point multiplier's relative error, ~1e-9, given
# 1e-6 here with the float32 graph's rounding) and clamps to ``[act_min, act_max]`` (a fused
# ReLU's lower bound is the code of 0). Against the float layer ``y = act(W x + b)``:
#
#     |W~ x~ + b~ - (W x + b)| <= |W~| |x~ - x| + |W~ - W| |x| + |b~ - b|
#
# (each ``|.|`` product evaluated by the layer's own linear map), the ReLU is 1-Lipschitz, and
# the clamp moves a value toward its interval ``I``, so it adds at most ``dist(y, I)``:
#
#     |y^ - y| <= |W~| |x~ - x| + |W~ - W| |x| + |b~ - b| + s_out + dist(y, I) + 1e-6 (|y| + s_out)
#
# Locally (``x = x~``, the float layer run on the integer graph's own input) the first term
# vanishes and the bound is tight: its rounding terms are reached. Propagated through the
# network from the input's rounding (``|x~ - x| <= s_in / 2``: round to nearest, the data
# inside the range they calibrated) it holds for every value but is a worst case, every
# error aligned: tens of output steps deep in the network where the observed error is one or
# two. Max pooling moves an output by at most the largest error of its window; a flatten
# moves nothing.

def _linear(layer, w, x):
    """``layer``'s linear map with weights ``w`` (no bias, no activation) on ``x``, float64."""
    if isinstance(layer, Dense):
        return x @ w.T
    return Conv2d(w, np.zeros(w.shape[0]), stride=layer.stride, padding=layer.padding)(x)


def _dequantized(q, scale, zp):
    return scale * (q.astype(np.float64) - zp)


def _own_error_bound(fl, ql, x, y):
    """``|W~ - W| |x| + |b~ - b| + s_out + dist(y, I) + 1e-6 (|y| + s_out)`` of a weighted
    layer (float ``fl``, integer ``ql``) on input ``x`` with float output ``y``."""
    s_w = ql.w_scale.astype(np.float64)
    per_channel = (slice(None),) + (None,) * (y.ndim - 2)
    wq = ql.w * s_w.reshape(-1, *([1] * (ql.w.ndim - 1)))
    dw = np.abs(wq - fl.w.astype(np.float64))
    db = np.abs(ql.bias * ql.in_scale * s_w - fl.b.astype(np.float64))[per_channel]
    lo, hi = (_dequantized(np.array(c), ql.out_scale, ql.out_zp) for c in (ql.act_min,
                                                                          ql.act_max))
    dist = np.maximum(0.0, np.maximum(lo - y, y - hi))
    return (_linear(fl, dw, np.abs(x)) + db + ql.out_scale + dist
            + 1e-6 * (np.abs(y) + ql.out_scale)), wq


def _check_local_bounds(layers, graph, x):
    """Every weighted layer's int8 output against the float layer run on its dequantized int8
    input; returns the largest ``error / bound`` of each."""
    qouts = graph.forward(x)
    params = graph.tensor_qparams()
    worst = {}
    for i, (fl, ql) in enumerate(zip(layers, graph.layers)):
        if not isinstance(fl, (Dense, Conv2d)):
            continue
        x_in = _dequantized(qouts[i], *params[i])
        y = fl(x_in)
        bound, _ = _own_error_bound(fl, ql, x_in, y)
        err = np.abs(_dequantized(qouts[i + 1], *params[i + 1]) - y)
        assert np.all(err <= bound), (fl.name, float(np.max(err - bound)))
        worst[fl.name] = float(np.max(err / bound))
    return worst


def _check_propagated_bound(layers, graph, x):
    """Every tensor's dequantized int8 value against the float network's, within the bound
    propagated from the input's rounding; returns the bounds and the float outputs."""
    acts = [a.astype(np.float64) for a in float_forward(layers, x)]
    bounds = [np.full(acts[0].shape, graph.input_scale / 2)]
    for i, (fl, ql) in enumerate(zip(layers, graph.layers)):
        if isinstance(fl, (Dense, Conv2d)):
            own, wq = _own_error_bound(fl, ql, acts[i], acts[i + 1])
            bounds.append(_linear(fl, np.abs(wq), bounds[-1]) + own)
        else:                                       # MaxPool2d, Flatten
            bounds.append(fl(bounds[-1]))
    for k, (q, a, e, p) in enumerate(zip(graph.forward(x), acts, bounds,
                                         graph.tensor_qparams())):
        err = np.abs(_dequantized(q, *p) - a)
        assert np.all(err <= e), (k, float(np.max(err - e)))
    return bounds, acts


def test_factorized_mlp_int8_output_is_within_the_derived_bounds(digits):
    x_train, y_train = digits[0][:400], digits[1][:400]
    net = MLP.init([64, 48, 10], seed=2)
    train(net, x_train, y_train, epochs=5)
    low = factorize(net, rank={"fc0": 12, "fc1": 6})
    layers = low.to_layers()
    graph = quantize_graph(layers, low.input_shape, x_train)
    worst = _check_local_bounds(layers, graph, x_train)
    assert list(worst) == ["fc0.v", "fc0", "fc1.v", "fc1"]
    assert min(worst.values()) > 0.4                  # tight: the rounding terms are reached
    bounds, acts = _check_propagated_bound(layers, graph, x_train)
    first = graph.layers[0].out_scale
    assert bounds[1].max() < 5 * first                # one layer deep: a few output steps


def test_factorized_cnn_int8_output_is_within_the_derived_bounds(digits):
    x = as_images(digits[0][:200])
    low = factorize(CNN.init((4, 8), (16,), seed=3), rank={"conv1": 3, "fc0": 5})
    layers = low.to_layers()
    graph = quantize_graph(layers, low.input_shape, x)
    worst = _check_local_bounds(layers, graph, x)
    assert list(worst) == ["conv0", "conv1.v", "conv1", "fc0.v", "fc0", "fc1"]
    assert min(worst.values()) > 0.4
    _check_propagated_bound(layers, graph, x)


def test_each_factor_is_one_gemm_with_the_counted_macs():
    low = factorize(CNN.init((4, 8), (16,), seed=3), rank={"conv1": 3, "fc0": 5})
    x = np.random.default_rng(12).random((8, 1, 8, 8)).astype(np.float32)
    graph = quantize_graph(low.to_layers(), low.input_shape, x)
    shapes = graph.shapes()
    gemms = {ly.name: layer_gemm(ly, shapes[w[0]]) for ly, w in zip(graph.layers,
                                                                     graph.wiring())
             if ly.name in low.layer_names()}
    assert gemms["conv1.v"] == (16, 4 * 9, 3) and gemms["conv1"] == (16, 3, 8)
    assert gemms["fc0.v"] == (1, 32, 5) and gemms["fc0"] == (1, 5, 16)
    cost = network_cost(low)["layers"]
    for name, (m, k, n) in gemms.items():
        assert cost[name]["macs"] == m * k * n


def test_network_cost_counts():
    net = CNN.init((4, 8), (16,), seed=0)
    cost = network_cost(net)
    assert cost["layers"] == {
        "conv0": {"params": 4 * 9 + 4, "macs": 64 * 4 * 9},
        "conv1": {"params": 8 * 36 + 8, "macs": 16 * 8 * 36},
        "fc0": {"params": 32 * 16 + 16, "macs": 32 * 16},
        "fc1": {"params": 16 * 10 + 10, "macs": 160}}
    assert cost["params"] == 40 + 296 + 528 + 170
    assert network_cost(net.to_layers(), (1, 8, 8)) == cost
    net2 = ResNet.init(channels=(4,), strides=(1,), classes=3, input_shape=(1, 5, 5))
    assert network_cost(net2)["layers"]["layer1.0.conv1"] == {"params": 4 * 36 + 4,
                                                              "macs": 25 * 4 * 36}


# --- errors -----------------------------------------------------------------------------------

def test_argument_errors():
    w = rand((4, 6))
    with raises(ValueError, "rank must be between 1 and 4, not 5"):
        svd_factors(w, 5)
    with raises(ValueError, "rank must be between 1 and 4, not 0"):
        svd_factors(w, 0)
    with raises(TypeError, "rank must be an integer, not 2.0"):
        svd_factors(w, 2.0)
    with raises(ValueError, "energy must be in (0, 1], not 1.5"):
        svd_factors(w, energy=1.5)
    with raises(ValueError, "energy must be in (0, 1], not 0"):
        svd_factors(w, energy=0)
    with raises(TypeError, "energy must be a real number, not True"):
        choose_rank(np.ones(3), True)
    with raises(ValueError, "give exactly one of rank and energy, not rank=2 and energy=0.5"):
        svd_factors(w, 2, energy=0.5)
    with raises(ValueError, "give exactly one of rank and energy, not rank=None and "
                "energy=None"):
        svd_factors(w)
    with raises(ValueError, "w must be a non-empty (out, in) or OIHW weight, not shape (4,)"):
        svd_factors(np.ones(4))
    with raises(TypeError, "w must be a floating-point array, not dtype int64"):
        singular_values(np.ones((2, 2), np.int64))
    with raises(ValueError, "w must be finite"):
        singular_values(np.array([[1.0, np.nan]]))
    with raises(ValueError, "s must be a non-empty 1-d array of non-negative singular "
                "values, not shape (2, 2)"):
        choose_rank(np.ones((2, 2)), 0.5)
    with raises(ValueError, "rank must be between 1 and 4, not 7"):
        truncation_error(w, 7)
    with raises(ValueError, "shape must be (out, in) or OIHW, not (3,)"):
        break_even_rank((3,))


def test_layer_and_model_errors():
    net = MLP.init([8, 6, 4], seed=0)
    with raises(ValueError, "rank of layer 'fc1' must be between 1 and 4, not 5"):
        factorize(net, rank=5)
    with raises(ValueError, "layers must name layers among 'fc0', 'fc1', not 'fc9'"):
        factorize(net, rank=2, layers=["fc9"])
    with raises(TypeError, "layers must be a list of layer names, not 'fc0'"):
        factorize(net, rank=2, layers="fc0")
    with raises(ValueError, "layers must not repeat a name, not ['fc0', 'fc0']"):
        factorize(net, rank=2, layers=["fc0", "fc0"])
    with raises(ValueError, "rank keys must name layers among 'fc0', 'fc1', not 'x'"):
        factorize(net, rank={"x": 1})
    with raises(ValueError, "layers must be None when rank is a dict (its keys name the "
                "layers), not ['fc0']"):
        factorize(net, rank={"fc0": 1}, layers=["fc0"])
    with raises(ValueError, "energy must be in (0, 1], not -0.1"):
        factorize(net, energy=-0.1)
    with raises(TypeError, "model must be an MLP, a CNN or a Sequential, not ResNet"):
        factorize(ResNet.init(channels=(2,), strides=(1,)), rank=1)
    with raises(ValueError, "layer names must be unique, not 'fc0.v' twice"):
        factorize(factorize(net, rank=2, layers=["fc0"]), rank=1, layers=["fc0"])
    grouped = Conv2d(rand((4, 1, 3, 3)), np.zeros(4), groups=4, name="dw")
    with raises(ValueError, "Conv2d 'dw': groups must be 1 to factorize, not 4"):
        factorize_layer(grouped, 1)
    with raises(TypeError, "layer must be a float Dense or Conv2d, not Flatten"):
        factorize_layer(Flatten(name="f"), 1)
    with raises(ValueError, "rank of Dense 'fc' must be between 1 and 2, not 3"):
        factorize_layer(Dense(rand((2, 5)), np.zeros(2), name="fc"), 3)
    with raises(ValueError, "layer must have a name to factorize"):
        factorize_layer(Dense(rand((2, 5)), np.zeros(2)), 1)
    with raises(ValueError, "names must name layers among 'fc0', 'fc1', not 'dw'"):
        factorize_graph(net.to_layers(), rank=1, names=["dw"])
    with raises(ValueError, "input_shape must be given with a list of layers, not None"):
        network_cost(net.to_layers())
    with raises(TypeError, "model must be a network or a list of graph layers, not int"):
        network_cost(3)
    with raises(ValueError, "feature_shape needs a network with a flatten, not one without"):
        factorize(net, rank=1).feature_shape()
    with raises(ValueError, "ops must number their weighted layers 0 to 1 in order"):
        Sequential(net.weights, net.biases, [], tuple(reversed(net._arch())), (8,))
