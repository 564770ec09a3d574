"""Tests of golden_model.train: backward passes against finite differences, the QAT
straight-through estimator against its formula, gradient quantization, distillation, pruning
schedules, filter removal, and every argument error."""

import numpy as np
import pytest
from training_helpers import central_difference, raises

from golden_model.datasets import as_images, load_digits_split
from golden_model.graph import float_forward, quantize_graph
from golden_model.prune import PruningSchedule, filter_scores, is_n_m
from golden_model.quant import fake_quantize, qparams, qparams_from_range, quantize, ste_mask
from golden_model.train import (
    CNN,
    MLP,
    Distillation,
    GradualPruning,
    NMPruning,
    accuracy,
    cross_entropy,
    distillation_loss,
    prune_filters,
    quantize_gradient,
    train,
)
from sparsemac.stats import at_least

# Tiny matrices: BLAS threads only cost, and the sums stay independent of the core count.
pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def small_cnn(dtype=np.float64, seed=3):
    rng = np.random.default_rng(seed)
    net = CNN.init((3, 4), (5,), classes=3, input_shape=(2, 6, 6), seed=seed)
    net.weights = [w.astype(dtype) for w in net.weights]
    net.biases = [(0.1 * rng.standard_normal(b.shape)).astype(dtype) for b in net.biases]
    return net


# --- passes -------------------------------------------------------------------------------

def test_cnn_backward_matches_finite_differences():
    net = small_cnn()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 6, 6))
    r = rng.standard_normal((4, 3))

    def loss():
        return float(np.sum(net.forward(x) * r))

    grads = net.gradients(x, r)
    assert [dw.shape for dw, _ in grads] == [w.shape for w in net.weights]
    for i, (dw, db) in enumerate(grads):
        for param, got in ((net.weights[i], dw), (net.biases[i], db)):
            want = central_difference(loss, param)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7 * np.abs(want).max())


def test_cnn_layers_and_graph_float_forward_agree():
    net = small_cnn(np.float32)
    x = np.random.default_rng(2).random((5, 2, 6, 6)).astype(np.float32)
    layers = net.to_layers()
    assert [type(layer).__name__ for layer in layers] == [
        "Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d", "Flatten", "Dense", "Dense"]
    assert [layer.name for layer in layers if hasattr(layer, "w")] == net.layer_names() == [
        "conv0", "conv1", "fc0", "fc1"]
    assert [layer.padding for layer in layers[:3:2]] == [1, 1]
    logits, outs = net.forward(x, keep=True)
    ref = float_forward(layers, x)
    assert len(outs) == len(ref) == len(layers) + 1
    for a, b in zip(outs, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(logits, outs[-1])
    assert net.feature_shape() == (4, 1, 1)


def test_default_cnn_reduction_lengths():
    net = CNN.init()
    assert [w[0].size for w in net.weights] == [9, 72, 64, 32]
    assert net.layer_names() == ["conv0", "conv1", "fc0", "fc1"]


def test_mlp_backward_equals_generic_gradients_and_finite_differences():
    net = MLP.init([5, 4, 3], seed=1)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [np.full(b.shape, 0.05) for b in net.biases]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    g = rng.standard_normal((6, 3))
    _, acts = net.forward(x, keep=True)
    old = net.backward(acts, g)
    new = net.gradients(x, g)
    for (a, b), (c, d) in zip(old, new):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    fd = central_difference(lambda: float(np.sum(net.forward(x) * g)), net.weights[0])
    np.testing.assert_allclose(new[0][0], fd, rtol=1e-6, atol=1e-9)


def test_maxpool_routes_a_tie_to_the_first_maximum():
    net = CNN([np.ones((1, 1, 1, 1)), np.ones((2, 1))], [np.zeros(1), np.zeros(2)],
              input_shape=(1, 2, 2))
    x = np.full((1, 1, 2, 2), 0.5)
    (dw0, _), (dw1, _) = net.gradients(x, np.array([[1.0, 0.0]]))
    # One tap of the tied window carries the gradient, not four: dW0 = 1 * 0.5, not 2.
    np.testing.assert_array_equal(dw0, [[[[0.5]]]])
    np.testing.assert_array_equal(dw1, [[0.5], [0.0]])


# --- QAT -----------------------------------------------------------------------------------

def test_qat_ste_gradients_equal_the_manual_formula():
    net = MLP.init([3, 4, 2], seed=5)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [np.array([0.1, -0.2, 0.3, 0.0]), np.array([0.05, -0.05])]
    rng = np.random.default_rng(7)
    x = rng.random((6, 3))
    g = rng.standard_normal((6, 2))
    # The output range is deliberately narrow so that some logits clip (STE gradient 0).
    ranges = [(0.0, 1.0), (0.0, 1.5), (-0.4, 0.4)]

    def fq(v, r):
        s, z = qparams_from_range(*r)
        return fake_quantize(v, s, z), ste_mask(v, s, z)

    def fq_w(w):
        s, _ = qparams(w, axis=0, symmetric=True, narrow=True)
        return (fake_quantize(w, s, 0, qmin=-127, qmax=127, axis=0),
                ste_mask(w, s, 0, qmin=-127, qmax=127, axis=0))

    x_q, _ = fq(x, ranges[0])
    w0, m0 = fq_w(net.weights[0])
    w1, m1 = fq_w(net.weights[1])
    y0 = x_q @ w0.T + net.biases[0]
    a1, s1 = fq(np.maximum(y0, 0), ranges[1])
    y1 = a1 @ w1.T + net.biases[1]
    a2, s2 = fq(y1, ranges[2])
    assert s2.any() and not s2.all()
    g2 = g * s2
    g1 = (g2 @ w1) * s1 * (y0 > 0)
    want = [(g1.T @ x_q * m0, g1.sum(0)), (g2.T @ a1 * m1, g2.sum(0))]

    got = net.gradients(x, g, act_ranges=ranges)
    for (gw, gb), (ww, wb) in zip(got, want):
        np.testing.assert_allclose(gw, ww, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gb, wb, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.forward(x, act_ranges=ranges), a2, rtol=1e-12)
    # Without ranges the same network is the float one.
    assert not np.allclose(net.gradients(x, g)[1][0], want[1][0])


def test_qat_learns_ranges_that_quantize_graph_reuses(digits):
    x_train, y_train, x_test, y_test = digits
    xi, xt = as_images(x_train), as_images(x_test)
    net = CNN.init(seed=0)
    train(net, xi, y_train, epochs=4, seed=0)
    log = train(net, xi, y_train, epochs=1, lr=2e-4, seed=1, qat=True, act_momentum=0.05)
    layers = net.to_layers()
    ranges = log.act_ranges
    assert len(ranges) == len(layers) + 1
    assert ranges[0] == (0.0, 1.0)              # the input's min and max in every batch
    # A pooling or flatten output repeats its input's range.
    for i, layer in enumerate(layers):
        if type(layer).__name__ in ("MaxPool2d", "Flatten"):
            assert ranges[i + 1] == ranges[i]
        elif layer.relu:
            assert ranges[i + 1][0] == 0.0 and ranges[i + 1][1] > 0
    graph = quantize_graph(layers, (1, 8, 8), xi[:256], act_ranges=ranges)
    codes = graph.forward(xt)
    _, fq_outs = net.forward(xt, keep=True, act_ranges=ranges)
    # The fake-quantized first convolution lands on the graph's grid; the integer pipeline
    # (int32 bias, fixed-point requantization) differs from it by at most one code.
    s, z = qparams_from_range(*ranges[1])
    diff = codes[1].astype(int) - quantize(fq_outs[1], s, z).astype(int)
    assert np.abs(diff).max() <= 1
    agree = np.mean(graph.predict(xt) == np.argmax(fq_outs[-1], axis=1))
    assert agree >= 0.98, agree              # 1.0 on each of 8 seeds tried
    # 4 + 1 epochs learn the digits (82 %; 84 to 92 % over 8 seeds), up to test-set noise.
    claim = at_least(accuracy(codes[-1], y_test), 0.82, len(y_test), what="QAT CNN graph")
    assert claim, claim


# --- gradient quantization -----------------------------------------------------------------

def test_quantize_gradient_codes_lie_on_the_int8_grid_and_are_reproducible():
    g = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    codes, scale = quantize_gradient(g, rng=3)
    assert codes.dtype == np.int8
    assert scale == pytest.approx(float(np.abs(g).max()) / 127, rel=1e-7)
    assert codes.min() >= -127 and codes.max() <= 127 and np.abs(codes).max() == 127
    # Stochastic rounding: every code is the floor or the ceiling of g / scale.
    ratio = g.astype(np.float64) / scale
    assert np.all((codes == np.floor(ratio)) | (codes == np.ceil(ratio)))
    again, _ = quantize_gradient(g, rng=3)
    np.testing.assert_array_equal(codes, again)
    other, _ = quantize_gradient(g, rng=4)
    assert not np.array_equal(codes, other)
    # Values already on the grid are kept exactly.
    on_grid = np.array([-127, -3, 0, 5, 127], np.float32) * np.float32(0.5)
    c, s = quantize_gradient(on_grid, rng=0)
    np.testing.assert_array_equal(c, [-127, -3, 0, 5, 127])
    assert s == 0.5
    c, s = quantize_gradient(np.zeros(4, np.float32), rng=0)
    np.testing.assert_array_equal(c, 0)
    c, _ = quantize_gradient(g, bits=4, rng=0)
    assert c.min() >= -7 and c.max() <= 7


def test_quantize_gradient_is_unbiased():
    g = np.array([0.3, -0.0123, 1.0, 0.5 + 1e-3, -0.777], np.float64)
    rng = np.random.default_rng(11)
    draws = 4000
    total = np.zeros_like(g)
    for _ in range(draws):
        codes, scale = quantize_gradient(g, rng=rng)
        total += codes * scale
    mean = total / draws
    # Per element the error is at most one step, variance <= scale^2 / 4.
    bound = 5 * (1.0 / 127) / 2 / np.sqrt(draws)
    assert np.abs(mean - g).max() < bound
    # Round-to-nearest would be biased on the same values.
    nearest = np.rint(g / (1.0 / 127)) / 127
    assert np.abs(nearest - g).max() > 5 * bound


def test_training_with_int8_gradients_is_reproducible_and_differs_from_float(digits):
    x, y = digits[0][:300], digits[1][:300]
    runs = []
    for bits in (8, 8, None):
        net = MLP.init([64, 16, 10], seed=0)
        train(net, x, y, epochs=2, seed=4, grad_bits=bits)
        runs.append(net.weights)
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(runs[0][0], runs[2][0])


# --- losses --------------------------------------------------------------------------------

def test_distillation_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((5, 4)) * 3
    t = rng.standard_normal((5, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2])
    kw = {"temperature": 2.5, "alpha": 0.3, "beta": 0.7}
    loss, grad = distillation_loss(s, t, labels, **kw)
    fd = central_difference(lambda: distillation_loss(s, t, labels, **kw)[0], s)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    # The terms: alpha * CE + beta * T^2 * KL(p_t || p_s).
    ce, _ = cross_entropy(s, labels)
    pt = np.exp(t / 2.5) / np.exp(t / 2.5).sum(1, keepdims=True)
    ps = np.exp(s / 2.5) / np.exp(s / 2.5).sum(1, keepdims=True)
    kl = np.mean(np.sum(pt * np.log(pt / ps), axis=1))
    assert loss == pytest.approx(0.3 * ce + 0.7 * 2.5 ** 2 * kl, rel=1e-12)
    # Identical logits: no distillation term, and the soft gradient vanishes.
    loss, grad = distillation_loss(s, s, labels, alpha=1.0, beta=5.0)
    assert loss == pytest.approx(ce, rel=1e-12)
    np.testing.assert_allclose(grad, cross_entropy(s, labels)[1], atol=1e-15)


def test_cross_entropy_matches_finite_differences():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 3))
    labels = np.array([2, 0, 1, 2])
    loss, grad = cross_entropy(z, labels)
    fd = central_difference(lambda: cross_entropy(z, labels)[0], z)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(4), labels])), rel=1e-12)


# --- pruning --------------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["layer", "global"])
def test_gradual_pruning_reaches_its_final_sparsity_on_schedule(digits, scope):
    x, y = digits[0][:640], digits[1][:640]
    net = MLP.init([64, 32, 16, 10], seed=0)
    schedule = PruningSchedule(initial=0.0, final=0.8, begin_step=0, end_step=25, frequency=5)
    log = train(net, x, y, epochs=4, seed=0,
                pruning=GradualPruning(schedule, layers=("fc0", "fc1"), scope=scope))
    assert log.steps == 40
    assert [step for step, _ in log.pruning] == [0, 5, 10, 15, 20, 25]
    reached = [s for _, s in log.pruning]
    assert reached == sorted(reached)
    total = net.weights[0].size + net.weights[1].size
    for step, s in log.pruning:
        assert s == round(schedule.sparsity(step) * total) / total if scope == "global" else \
            abs(s - schedule.sparsity(step)) < 1 / 64
    zeros = [int(np.count_nonzero(w == 0)) for w in net.weights]
    if scope == "layer":
        assert zeros[:2] == [round(0.8 * 2048), round(0.8 * 512)]
    else:
        assert sum(zeros[:2]) == round(0.8 * total)
    assert zeros[2] == 0                      # fc2 is not in the pruned layers
    assert all(m is not None for m in net.masks[:2]) and net.masks[2] is None


def test_n_m_pruning_holds_through_training(digits):
    x, y = as_images(digits[0][:320]), digits[1][:320]
    net = CNN.init(seed=1)
    train(net, x, y, epochs=2, seed=0, pruning=NMPruning(2, 4, ("conv1", "fc0")))
    assert is_n_m(net.weights[1].reshape(16, -1), 2, 4, axis=1)
    assert is_n_m(net.weights[2], 2, 4, axis=1)
    assert np.count_nonzero(net.weights[1]) == net.weights[1].size // 2
    assert np.count_nonzero(net.weights[0]) == net.weights[0].size
    assert np.count_nonzero(net.weights[3]) == net.weights[3].size


def test_kd_qat_gradual_pruning_and_int8_gradients_combine_in_one_run(digits):
    x_train, y_train, x_test, y_test = digits
    xi = as_images(x_train)
    teacher = MLP.init([64, 64, 10], seed=2)
    train(teacher, x_train, y_train, epochs=5, seed=2)
    logits = teacher.forward(x_train)
    net = CNN.init(seed=0)
    train(net, xi, y_train, epochs=3, seed=0)
    schedule = PruningSchedule(initial=0.0, final=0.5, begin_step=0, end_step=40, frequency=10)
    log = train(net, xi, y_train, epochs=3, lr=1e-3, seed=1, qat=True,
                pruning=GradualPruning(schedule, layers=("conv1", "fc0"), scope="layer"),
                teacher_logits=logits, distill=Distillation(), grad_bits=8)
    assert log.pruning[-1] == (40, 0.5)
    assert np.count_nonzero(net.weights[1] == 0) == net.weights[1].size // 2
    assert len(log.act_ranges) == len(net.to_layers()) + 1
    assert all(np.isfinite(v) for v in log.losses)
    graph = quantize_graph(net.to_layers(), (1, 8, 8), xi[:256], act_ranges=log.act_ranges)
    # Everything at once still learns the digits (78 %; 80 to 89 % over 8 seeds, with the
    # standardized distillation of the defaults as with the plain one), up to test-set noise.
    acc = accuracy(graph.forward(as_images(x_test))[-1], y_test)
    claim = at_least(acc, 0.78, len(y_test), what="KD + QAT + pruning + int8 gradients")
    assert claim, claim


def test_prune_filters_removes_the_lowest_scored_filters_and_keeps_the_function():
    for criterion in ("l1", "fpgm"):
        net = small_cnn()
        net.weights[0] = net.weights[0].copy()
        net.weights[0][1] *= 0.01                 # a weak filter, pruned by L1
        new, keep = prune_filters(net, 0.5, criterion=criterion)
        assert list(keep) == ["conv0", "conv1", "fc0"]
        masked = net.copy()
        for name, k in keep.items():
            i = net.layer_index(name)
            scores = filter_scores(net.weights[i], criterion=criterion)
            count = round(0.5 * len(scores))
            lowest = np.lexsort((-np.arange(len(scores)), scores))[:count]
            np.testing.assert_array_equal(np.flatnonzero(~k), np.sort(lowest))
            rows = net.weights[i][k]
            if i:                                 # its input channels went with the previous
                rows = rows[:, keep[net.layer_names()[i - 1]]]
            np.testing.assert_array_equal(new.weights[i], rows)
            np.testing.assert_array_equal(new.biases[i], net.biases[i][k])
            masked.weights[i][~k] = 0
            masked.biases[i][~k] = 0
        if criterion == "l1":
            assert not keep["conv0"][1]
        # 3 -> 1, 4 -> 2 and 5 -> 3 filters (round half even of 1.5, 2 and 2.5 pruned); the
        # next layers lose the matching inputs (fc0: one 1x1 pixel per conv1 channel).
        assert [w.shape for w in new.weights] == [(1, 2, 3, 3), (2, 1, 3, 3), (3, 2), (3, 3)]
        np.testing.assert_array_equal(new.weights[3], net.weights[3][:, keep["fc0"]])
        x = np.random.default_rng(0).standard_normal((7, 2, 6, 6))
        np.testing.assert_allclose(new.forward(x), masked.forward(x), rtol=1e-12, atol=1e-12)


def test_prune_filters_through_a_flatten_of_several_pixels():
    rng = np.random.default_rng(4)
    net = CNN.init((4,), (6,), classes=3, input_shape=(1, 4, 4), seed=0)
    net.biases = [rng.standard_normal(b.shape) * 0.1 for b in net.biases]
    new, keep = prune_filters(net, 2, criterion="l2", layers=["conv0"])
    assert new.weights[1].shape == (6, 8)      # 2 channels x 2x2 pixels
    cols = np.repeat(keep["conv0"], 4)
    np.testing.assert_array_equal(new.weights[1], net.weights[1][:, cols])
    masked = net.copy()
    masked.weights[0][~keep["conv0"]] = 0
    masked.biases[0][~keep["conv0"]] = 0
    x = rng.random((3, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(new.forward(x), masked.forward(x), rtol=1e-5, atol=1e-6)


def test_prune_filters_of_an_mlp_removes_neurons_and_slices_masks():
    net = MLP.init([8, 6, 4, 3], seed=0)
    net.masks = [np.ones((6, 8), bool), None, np.ones((3, 4), bool)]
    net.masks[0][:, 0] = False
    net.apply_masks()
    new, keep = prune_filters(net, 0.5)
    assert [w.shape for w in new.weights] == [(3, 8), (2, 3), (3, 2)]
    assert new.masks[0].shape == (3, 8) and not new.masks[0][:, 0].any()
    assert new.masks[1] is None and new.masks[2].shape == (3, 2)
    assert [m.sum() for m in keep.values()] == [3, 2]


# --- determinism and compatibility -----------------------------------------------------------

def test_training_is_deterministic_for_a_seed(digits):
    x, y = as_images(digits[0][:200]), digits[1][:200]
    a, b = CNN.init(seed=0), CNN.init(seed=0)
    la = train(a, x, y, epochs=2, seed=9, lr_schedule="cosine")
    lb = train(b, x, y, epochs=2, seed=9, lr_schedule="cosine")
    assert la.losses == lb.losses and la.losses[1] < la.losses[0]
    for u, v in zip(a.weights, b.weights):
        np.testing.assert_array_equal(u, v)


def test_fit_returns_the_model_and_masks_stay_applied(digits):
    x, y = digits[0][:200], digits[1][:200]
    net = MLP.init([64, 16, 10], seed=0)
    net.masks = [np.arange(1024).reshape(16, 64) % 2 == 0]
    assert net.fit(x, y, epochs=1) is net
    assert np.all(net.weights[0][:, 1::2] == 0) and np.all(net.weights[0][:, ::2] != 0)
    assert net.sparsity() == pytest.approx(512 / (1024 + 160))


# --- argument errors -------------------------------------------------------------------------

def test_argument_errors(digits):
    x, y = digits[0][:10], digits[1][:10]
    net = MLP.init([64, 8, 10])
    cnn = CNN.init()
    with raises(ValueError, "x must have shape (N, 64), not (10, 8, 8)"):
        train(net, x.reshape(10, 8, 8), y)
    with raises(ValueError, "x must have shape (N, 1, 8, 8), not (10, 64)"):
        cnn.forward(x)
    with raises(TypeError, "model must be an MLP or a CNN, not list"):
        train([], x, y)
    with raises(ValueError, "y must have shape (10,), not (9,)"):
        train(net, x, y[:9])
    with raises(ValueError, "epochs must be at least 0, not -1"):
        train(net, x, y, epochs=-1)
    with raises(ValueError, "lr must be finite and greater than 0, not 0.0"):
        train(net, x, y, lr=0.0)
    with raises(ValueError, "lr_schedule must be one of 'constant', 'cosine', not 'step'"):
        train(net, x, y, lr_schedule="step")
    with raises(TypeError, "qat must be a bool, not 1"):
        train(net, x, y, qat=1)
    with raises(ValueError, "act_momentum must be at most 1, not 2.0"):
        train(net, x, y, act_momentum=2.0)
    with raises(ValueError, "grad_bits must be between 2 and 16, not 1"):
        train(net, x, y, grad_bits=1)
    with raises(TypeError, "pruning must be a GradualPruning or an NMPruning, not dict"):
        train(net, x, y, pruning={})
    bad = MLP.init([64, 8, 10])
    bad.masks = [np.ones((8, 3), bool)]
    with raises(ValueError, "masks[0] must be None or a bool array of shape (8, 64), "
                            "not bool (8, 3)"):
        train(bad, x, y)
    with raises(ValueError, "distill needs teacher_logits, not None"):
        train(net, x, y, distill=Distillation())
    with raises(ValueError, "teacher_logits must have shape (10, 10), not (10, 3)"):
        train(net, x, y, teacher_logits=np.zeros((10, 3), np.float32))
    with raises(ValueError, "loss_grad must be None when distilling, not a callable"):
        train(net, x, y, teacher_logits=np.zeros((10, 10), np.float32),
              loss_grad=lambda z, i: z)
    schedule = PruningSchedule(initial=0.0, final=0.5, begin_step=0, end_step=3)
    with raises(ValueError, "pruning end_step must be less than the number of training steps "
                            "(2), not 3"):
        train(net, x, y, epochs=2, batch=64, pruning=GradualPruning(schedule))
    with raises(ValueError, "pruning layers must name layers among 'fc0', 'fc1', not 'fc9'"):
        train(net, x, y, pruning=GradualPruning(schedule, layers=("fc9",)))
    with raises(TypeError, "pruning layers must be a list of layer names, not 'fc0'"):
        train(net, x, y, pruning=NMPruning(2, 4, "fc0"))
    with raises(ValueError, "layer conv0's reduction length must be a multiple of M = 4, "
                            "not 9"):
        train(cnn, as_images(x), y, pruning=NMPruning(2, 4, ("conv0",)))
    with raises(ValueError, "M must be a power of two in {2, 4, 8, 16}, not 3"):
        NMPruning(1, 3, ("fc0",))
    with raises(TypeError, "schedule must be a PruningSchedule, not float"):
        GradualPruning(0.5)
    with raises(ValueError, "scope must be one of 'layer', 'global', not 'net'"):
        GradualPruning(schedule, scope="net")
    with raises(ValueError, "temperature must be finite and greater than 0, not 0.0"):
        Distillation(temperature=0.0)
    with raises(ValueError, "beta must be finite and at least 0, not -1.0"):
        Distillation(beta=-1)
    with raises(TypeError, "alpha must be a real number, not '1'"):
        distillation_loss(np.zeros((2, 3)), np.zeros((2, 3)), [0, 1], alpha="1")
    with raises(ValueError, "teacher_logits must have the student's shape (2, 3), not (2, 4)"):
        distillation_loss(np.zeros((2, 3)), np.zeros((2, 4)), [0, 1])
    with raises(ValueError, "labels must be class indices in [0, 2], not 3"):
        cross_entropy(np.zeros((2, 3)), [0, 3])
    with raises(ValueError, "rng must be a seed or a numpy Generator, not None"):
        quantize_gradient(np.ones(3))
    with raises(TypeError, "rng must be a seed or a numpy Generator, not 'a'"):
        quantize_gradient(np.ones(3), rng="a")
    with raises(TypeError, "g must be a floating-point array, not dtype int64"):
        quantize_gradient(np.ones(3, np.int64), rng=0)
    with raises(ValueError, "x must have shape (N, 64), not (3, 8)"):
        as_images(np.zeros((3, 8)))
    with raises(ValueError, "filter pruning layers must not include the output layer 'fc1', "
                            "whose filters are the classes"):
        prune_filters(net, 0.5, layers=["fc1"])
    with raises(ValueError, "amount must leave at least one filter of layer 'fc0', not 1.0"):
        prune_filters(net, 1.0)
    with raises(ValueError, "criterion must be one of 'l1', 'l2', 'fpgm', not 'l3'"):
        prune_filters(net, 0.5, criterion="l3")
    with raises(ValueError, "input_shape (1, 2, 2) is too small for 2 pooling stages of 2"):
        CNN.init(input_shape=(1, 2, 2))
    with raises(ValueError, "layer must be one of 'fc0', 'fc1', not 'conv0'"):
        net.layer_index("conv0")
    with raises(ValueError, "act_ranges must be a list of 3 (lo, hi) pairs (input and every "
                            "layer), not 2"):
        net.forward(x, act_ranges=[(0, 1), (0, 1)])
    with raises(ValueError, "grad_logits must have the logits' shape (10, 10), not (10, 3)"):
        net.gradients(x, np.zeros((10, 3)))
