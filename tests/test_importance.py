"""Tests of the importance scores: Taylor and OBD scores against hand-computed values, the
gradients behind them against finite differences, Hutchinson's Hessian diagonal against second
differences of the loss (within its variance, converging as the probes grow), gradient-based
neuron pruning, pruning by score (unstructured, filter, N:M), and every argument error."""

import numpy as np
import pytest
from training_helpers import central_difference, raises

from golden_model.prune import (
    apply_mask,
    magnitude_mask,
    obd_filter_scores,
    obd_scores,
    prune_n_m,
    score_mask,
    taylor_filter_scores,
    taylor_scores,
)
from golden_model.train import (
    CNN,
    MLP,
    cross_entropy,
    gradient_neuron_scores,
    hessian_diagonal,
    obd_importance,
    prune_neurons_by_gradient,
    taylor_importance,
    weight_gradients,
)

# Small matrices: BLAS threads only cost, and the sums stay independent of the core count.
pytestmark = pytest.mark.usefixtures("one_blas_thread")


def tiny_mlp(seed=2, sizes=(4, 5, 3)):
    rng = np.random.default_rng(seed)
    net = MLP.init(list(sizes), seed=seed)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [0.1 * rng.standard_normal(b.shape) for b in net.biases]
    return net


def tiny_cnn(seed=3):
    rng = np.random.default_rng(seed)
    net = CNN.init((3, 4), (5,), classes=3, input_shape=(2, 6, 6), seed=seed)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [0.1 * rng.standard_normal(b.shape) for b in net.biases]
    return net


def data(net, n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, *net.input_shape)),
            rng.integers(0, net.weights[-1].shape[0], n))


def loss_of(net, x, y):
    return cross_entropy(net.forward(x), y)[0]


# --- scores from (w, grad) and (w, hessian_diag) --------------------------------------------

def test_taylor_scores_by_hand():
    w = np.array([1.0, -2.0, 0.5])
    g = np.array([0.5, 0.25, -4.0])
    np.testing.assert_array_equal(taylor_scores(w, g), [0.5, 0.5, 2.0])
    np.testing.assert_array_equal(taylor_scores(w, g, squared=True), [0.25, 0.25, 4.0])
    assert taylor_scores(w.astype(np.float32), g.astype(np.float32)).dtype == np.float64


def test_taylor_filter_scores_by_hand():
    w = np.array([[1.0, -1.0], [2.0, 0.0]])
    g = np.array([[1.0, 1.0], [0.5, 3.0]])      # w * g = [[1, -1], [1, 0]]
    np.testing.assert_array_equal(taylor_filter_scores(w, g), [2.0, 1.0])
    # Molchanov 2019: the products of filter 0 cancel, (1 - 1)^2 = 0.
    np.testing.assert_array_equal(taylor_filter_scores(w, g, squared=True), [0.0, 1.0])
    np.testing.assert_array_equal(taylor_filter_scores(w, g, axis=1), [2.0, 1.0])
    np.testing.assert_array_equal(taylor_filter_scores(w, g, axis=1, squared=True), [4.0, 1.0])
    conv = np.arange(24.0).reshape(2, 3, 2, 2) - 11
    grad = np.full(conv.shape, -0.5)
    np.testing.assert_array_equal(taylor_filter_scores(conv, grad),
                                  0.5 * np.abs(conv).reshape(2, -1).sum(1))


def test_obd_scores_by_hand():
    w = np.array([[2.0, -1.0], [0.5, 3.0]])
    h = np.array([[0.5, 4.0], [-2.0, 0.0]])
    want = np.array([[1.0, 2.0], [-0.25, 0.0]])    # h w^2 / 2, the sign kept
    np.testing.assert_array_equal(obd_scores(w, h), want)
    np.testing.assert_array_equal(obd_filter_scores(w, h), [3.0, -0.25])
    np.testing.assert_array_equal(obd_filter_scores(w, h, axis=1), [0.75, 2.0])


def test_score_mask_prunes_the_lowest_scores_and_keeps_the_lower_index_of_a_tie():
    scores = np.array([[0.3, 0.1, 0.2], [0.1, 0.5, -1.0]])
    np.testing.assert_array_equal(score_mask(scores, 2), [[1, 1, 1], [0, 1, 0]])
    np.testing.assert_array_equal(score_mask(scores, 3), [[1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(score_mask(scores, 0.7), [[1, 0, 0], [0, 1, 0]])
    w = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    for amount in (0, 0.3, 17, 1.0):
        np.testing.assert_array_equal(score_mask(np.abs(w), amount),
                                      magnitude_mask(w, amount=amount))
    # A per-filter score gives a filter mask.
    keep = score_mask(np.array([0.2, 0.05, 0.9]), 1)
    np.testing.assert_array_equal(apply_mask(np.ones((3, 2)), keep, axis=0),
                                  [[1, 1], [0, 0], [1, 1]])


def test_prune_n_m_by_scores():
    w = np.array([[4.0, 3.0, 2.0, 1.0, -1.0, 1.0, 1.0, 1.0]])
    scores = np.array([[0.0, 0.1, 0.3, 0.2, 1.0, 1.0, 1.0, 0.5]])
    # The highest scores win (not the largest |w|); ties keep the lower index.
    np.testing.assert_array_equal(prune_n_m(w, 2, 4, scores=scores),
                                  [[0, 0, 1, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(prune_n_m(w, 2, 4), [[1, 1, 0, 0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(prune_n_m(w.T, 1, 4, axis=0, scores=scores.T).T,
                                  [[0, 0, 1, 0, 1, 0, 0, 0]])
    q = np.random.default_rng(1).integers(-128, 128, (4, 16)).astype(np.int8)
    np.testing.assert_array_equal(
        prune_n_m(q, 2, 8, scores=np.abs(q.astype(np.float64))), prune_n_m(q, 2, 8))


def test_score_function_errors():
    w = np.ones((2, 2))
    with raises(ValueError, "grad must have the shape of w (2, 2), not (2, 3)"):
        taylor_scores(w, np.ones((2, 3)))
    with raises(ValueError, "grad must be finite, but contains nan at index (1,)"):
        taylor_scores(np.ones(2), np.array([0.0, np.nan]))
    with raises(TypeError, "grad must be a floating-point array, not dtype int64"):
        taylor_scores(w, np.ones((2, 2), np.int64))
    with raises(TypeError, "squared must be a bool, not 1"):
        taylor_scores(w, w, squared=1)
    with raises(TypeError, "squared must be a bool, not 'yes'"):
        taylor_filter_scores(w, w, squared="yes")
    with raises(ValueError, "w must have at least 1 dimension, not 0"):
        taylor_filter_scores(1.0, 1.0)
    with raises(ValueError, "axis must be in [-2, 1] for a 2-d array, not 2"):
        taylor_filter_scores(w, w, axis=2)
    with raises(ValueError, "hessian_diag must have the shape of w (2, 2), not (4,)"):
        obd_scores(w, np.ones(4))
    with raises(ValueError, "hessian_diag must have the shape of w (2, 2), not (2,)"):
        obd_filter_scores(w, np.ones(2))
    with raises(TypeError, "scores must be a floating-point array, not dtype bool"):
        score_mask(np.ones(3, bool), 1)
    with raises(ValueError, "scores must be finite, but contains inf at index (0,)"):
        score_mask(np.array([np.inf]), 1)
    with raises(ValueError, "amount must be between 0 and 3, not 4"):
        score_mask(np.ones(3), 4)
    with raises(ValueError, "scores must have the shape of w (1, 8), not (8,)"):
        prune_n_m(np.ones((1, 8)), 2, 4, scores=np.ones(8))
    with raises(ValueError, "scores must be finite, but contains nan at index (0, 0)"):
        prune_n_m(np.ones((1, 4)), 2, 4, scores=np.full((1, 4), np.nan))


# --- gradients of a model -----------------------------------------------------------------

@pytest.mark.parametrize("make", [tiny_mlp, tiny_cnn])
def test_weight_gradients_match_finite_differences_of_the_loss(make):
    net = make()
    x, y = data(net, 5)
    loss, grads = weight_gradients(net, x, y)
    assert loss == loss_of(net, x, y)
    assert list(grads) == net.layer_names()
    for w, g in zip(net.weights, grads.values()):
        assert g.shape == w.shape and g.dtype == w.dtype
        want = central_difference(lambda: loss_of(net, x, y), w)
        np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8 * np.abs(want).max())


def test_taylor_importance_is_the_size_weighted_mean_of_per_batch_scores():
    net = tiny_mlp()
    x, y = data(net, 10)
    names = net.layer_names()
    # One batch: |w * g| with the finite-difference-checked gradient.
    _, g = weight_gradients(net, x, y)
    whole = taylor_importance(net, x, y, batch=10)
    for name, w in zip(names, net.weights):
        np.testing.assert_array_equal(whole[name], np.abs(w * g[name]))
    # Batches of 4, 4 and 2 samples weigh 0.4, 0.4 and 0.2.
    parts = [weight_gradients(net, x[s:s + 4], y[s:s + 4])[1] for s in (0, 4, 8)]
    for per, squared in (("weight", False), ("weight", True), ("filter", False),
                         ("filter", True)):
        got = taylor_importance(net, x, y, batch=4, per=per, squared=squared)
        score = taylor_scores if per == "weight" else taylor_filter_scores
        for name, w in zip(names, net.weights):
            want = sum(f * score(w, p[name], squared=squared)
                       for f, p in zip((0.4, 0.4, 0.2), parts))
            np.testing.assert_allclose(got[name], want, rtol=1e-13)
    # The mean of per-batch magnitudes is at least the magnitude of the mean gradient.
    assert all(np.all(got_w >= whole_w - 1e-15) for got_w, whole_w in zip(
        taylor_importance(net, x, y, batch=4).values(), whole.values()))


# --- Hutchinson's Hessian diagonal ------------------------------------------------------------

def second_difference_diagonal(net, x, y, h=1e-4):
    """``(L(w + h e_i) - 2 L(w) + L(w - h e_i)) / h^2`` for every weight (float64)."""
    base = loss_of(net, x, y)
    diag = []
    for w in net.weights:
        d = np.zeros_like(w)
        for k in np.ndindex(w.shape):
            old = w[k]
            w[k] = old + h
            hi = loss_of(net, x, y)
            w[k] = old - h
            lo = loss_of(net, x, y)
            w[k] = old
            d[k] = (hi - 2 * base + lo) / (h * h)
        diag.append(d)
    return np.concatenate([d.ravel() for d in diag])


def full_hessian(net, x, y, eps=1e-5):
    """Every column by central differences of the (finite-difference-checked) gradient."""
    def flat():
        return np.concatenate([g.ravel() for g in weight_gradients(net, x, y)[1].values()])
    cols = []
    for w in net.weights:
        for k in np.ndindex(w.shape):
            old = w[k]
            w[k] = old + eps
            hi = flat()
            w[k] = old - eps
            lo = flat()
            w[k] = old
            cols.append((hi - lo) / (2 * eps))
    return np.stack(cols, axis=1)


def test_hessian_diagonal_agrees_with_second_differences_within_its_variance():
    net = tiny_mlp()
    x, y = data(net, 24)
    ref = second_difference_diagonal(net, x, y)
    hess = full_hessian(net, x, y)
    # The two references agree (to their own truncation and rounding errors).
    np.testing.assert_allclose(np.diag(hess), ref, atol=1e-6)
    np.testing.assert_allclose(hess, hess.T, atol=1e-9)
    # Rademacher probes: the estimate of h_ii has variance sum_{j != i} H_ij^2 / S.
    sigma = np.sqrt(np.square(hess).sum(axis=1) - np.square(np.diag(hess)))
    assert sigma.min() > 0.01                    # the test is not vacuous: H is not diagonal
    rms = []
    for samples in (16, 256, 4096):
        est = hessian_diagonal(net, x, y, samples=samples, seed=0)
        assert list(est) == net.layer_names()
        err = np.concatenate([e.ravel() for e in est.values()]) - ref
        # Every entry within 4 standard errors (seed 0: at most 2.8), plus the differences'
        # error.
        bound = 4 * sigma / np.sqrt(samples) + 1e-6
        worst = int(np.argmax(np.abs(err) / bound))
        assert np.all(np.abs(err) <= bound), (samples, worst, err[worst], bound[worst])
        rms.append(float(np.sqrt(np.mean(np.square(err)))))
        # The RMS error is the predicted one: sqrt(mean sigma^2 / S) (ratio 0.8 to 1.0 here).
        predicted = float(np.sqrt(np.mean(np.square(sigma)) / samples))
        assert 0.5 * predicted < rms[-1] < 1.5 * predicted, (samples, rms[-1], predicted)
    # Converges as 1/sqrt(S): 256x more probes, about 16x smaller error.
    assert rms[2] < rms[1] / 2.5 < rms[0] / 6.25, rms


def test_hessian_diagonal_is_reproducible_skips_pruned_weights_and_ignores_batch():
    net = tiny_mlp()
    x, y = data(net, 24)
    a = hessian_diagonal(net, x, y, samples=8, seed=5)
    b = hessian_diagonal(net, x, y, samples=8, seed=5, batch=7)
    c = hessian_diagonal(net, x, y, samples=8, seed=6)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-7, atol=1e-9)
    assert not np.allclose(a["fc0"], c["fc0"])
    net.masks = [np.arange(20).reshape(5, 4) % 3 != 0]
    net.apply_masks()
    masked = hessian_diagonal(net, x, y, samples=8, seed=5)
    assert np.all(masked["fc0"][~net.masks[0]] == 0)
    assert np.all(masked["fc0"][net.masks[0]] != 0)
    # float32 models are differentiated in float64: the same estimate to float32's precision.
    net32 = tiny_mlp()
    net32.weights = [w.astype(np.float32) for w in net32.weights]
    d32 = hessian_diagonal(net32, x.astype(np.float32), y, samples=8, seed=5)
    np.testing.assert_allclose(d32["fc1"], a["fc1"], rtol=1e-4, atol=1e-6)


def test_obd_importance_is_half_h_w_squared():
    net = tiny_cnn()
    x, y = data(net, 6)
    h = hessian_diagonal(net, x, y, samples=4, seed=1)
    per_weight = obd_importance(net, x, y, samples=4, seed=1)
    per_filter = obd_importance(net, x, y, per="filter", samples=4, seed=1)
    for name, w in zip(net.layer_names(), net.weights):
        np.testing.assert_array_equal(per_weight[name], 0.5 * h[name] * np.square(w))
        np.testing.assert_allclose(per_filter[name],
                                   per_weight[name].reshape(len(w), -1).sum(1), rtol=1e-12)


# --- gradient-based neuron pruning ------------------------------------------------------------

def per_sample_bias_gradients(net, x, y, layer, eps=1e-6):
    """``d l_n / d b_j`` of every sample alone, by central differences: ``(n, units)``."""
    b = net.biases[layer]
    return np.stack([central_difference(lambda n=n: loss_of(net, x[n:n + 1], y[n:n + 1]), b,
                                        eps) for n in range(len(x))])


def test_gradient_neuron_scores_of_an_mlp_match_finite_differences():
    net = tiny_mlp(sizes=(4, 6, 5, 3))
    x, y = data(net, 7)
    scores = gradient_neuron_scores(net, x, y)
    assert list(scores) == net.layer_names()
    for i, name in enumerate(net.layer_names()):
        # For a dense unit d l_n / d z_j = d l_n / d b_j.
        want = np.abs(per_sample_bias_gradients(net, x, y, i)).mean(axis=0)
        np.testing.assert_allclose(scores[name], want, rtol=1e-6, atol=1e-10)
        for batch in (1, 3):                     # the same whatever the batch size
            np.testing.assert_allclose(gradient_neuron_scores(net, x, y, batch=batch)[name],
                                       scores[name], rtol=1e-12, atol=1e-15)


def test_gradient_neuron_scores_of_a_convolution_match_finite_differences():
    # An extra input channel, zero but for a 1 at pixel p, with zero weights but a centre tap
    # t: the forward is unchanged at t = 0, and d l / d t = d l / d z at pixel p.
    net = CNN.init((3,), (4,), classes=3, input_shape=(2, 4, 4), seed=1)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [0.1 * np.arange(len(b)) - 0.1 for b in net.biases]
    x, y = data(net, 3, seed=2)
    scores = gradient_neuron_scores(net, x, y)["conv0"]
    probe = net.copy()
    probe.weights[0] = np.concatenate([net.weights[0], np.zeros((3, 1, 3, 3))], axis=1)
    probe.input_shape = (3, 4, 4)
    taps = probe.weights[0][:, 2, 1, 1]          # a view: central_difference moves the taps
    total = np.zeros(3)
    for n in range(len(x)):
        for p in np.ndindex(4, 4):
            xp = np.concatenate([x[n:n + 1], np.zeros((1, 1, 4, 4))], axis=1)
            xp[0, 2][p] = 1.0
            total += np.abs(central_difference(
                lambda xp=xp, yp=y[n:n + 1]: loss_of(probe, xp, yp), taps))
    np.testing.assert_allclose(scores, total / (len(x) * 16), rtol=1e-6)
    np.testing.assert_allclose(gradient_neuron_scores(probe, np.concatenate(
        [x, np.zeros((3, 1, 4, 4))], axis=1), y)["conv0"], scores, rtol=1e-12)


def test_prune_neurons_by_gradient_removes_dead_and_unused_units():
    net = tiny_mlp(sizes=(4, 6, 5, 3))
    net.biases[0][2] = -100.0                    # dead: its ReLU is never on
    net.weights[2][:, 3] = 0.0                   # unused: fc2 ignores unit 3 of fc1
    x, y = data(net, 12)
    scores = gradient_neuron_scores(net, x, y)
    assert scores["fc0"][2] == 0 and scores["fc1"][3] == 0
    assert np.all(np.delete(scores["fc0"], 2) > 0) and np.all(np.delete(scores["fc1"], 3) > 0)
    new, keep = prune_neurons_by_gradient(net, x, y, 1)
    np.testing.assert_array_equal(keep["fc0"], np.arange(6) != 2)
    np.testing.assert_array_equal(keep["fc1"], np.arange(5) != 3)
    assert [w.shape for w in new.weights] == [(5, 4), (4, 5), (3, 4)]
    # Neither unit contributed: the smaller network computes the same function.
    np.testing.assert_allclose(new.forward(x), net.forward(x), rtol=1e-12, atol=1e-12)
    _, keep = prune_neurons_by_gradient(net, x, y, 0.5, layers=["fc1"])
    assert list(keep) == ["fc1"]
    np.testing.assert_array_equal(keep["fc1"], score_mask(scores["fc1"], 0.5))


def test_prune_neurons_by_gradient_through_a_flatten():
    net = CNN.init((4,), (6,), classes=3, input_shape=(1, 4, 4), seed=0)
    x, y = data(net, 5)
    x = np.abs(x).astype(np.float32)
    new, keep = prune_neurons_by_gradient(net, x, y, 2, layers=["conv0"])
    assert keep["conv0"].sum() == 2 and new.weights[1].shape == (6, 8)
    np.testing.assert_array_equal(new.weights[1], net.weights[1][:, np.repeat(keep["conv0"], 4)])


# --- argument errors ---------------------------------------------------------------------------

def test_argument_errors():
    net = tiny_mlp()
    x, y = data(net, 4)
    with raises(TypeError, "model must be an MLP or a CNN, not list"):
        weight_gradients([], x, y)
    with raises(ValueError, "x must have shape (N, 4), not (4, 5)"):
        weight_gradients(net, np.ones((4, 5)), y)
    with raises(ValueError, "y must have shape (4,), not (3,)"):
        taylor_importance(net, x, y[:3])
    with raises(ValueError, "y must be class indices in [0, 2], not 3"):
        weight_gradients(net, x, np.array([0, 1, 3, 2]))
    with raises(TypeError, "y must be an integer array, not dtype float64"):
        gradient_neuron_scores(net, x, y.astype(float))
    with raises(ValueError, "x must hold at least one sample, not 0"):
        hessian_diagonal(net, x[:0], y[:0])
    with raises(ValueError, "batch must be at least 1, not 0"):
        taylor_importance(net, x, y, batch=0)
    with raises(ValueError, "per must be one of 'weight', 'filter', not 'neuron'"):
        taylor_importance(net, x, y, per="neuron")
    with raises(ValueError, "per must be one of 'weight', 'filter', not 'unit'"):
        obd_importance(net, x, y, per="unit")
    with raises(TypeError, "squared must be a bool, not 0"):
        taylor_importance(net, x, y, squared=0)
    with raises(ValueError, "samples must be at least 1, not 0"):
        hessian_diagonal(net, x, y, samples=0)
    with raises(ValueError, "eps must be finite and greater than 0, not 0.0"):
        hessian_diagonal(net, x, y, eps=0.0)
    with raises(TypeError, "eps must be a real number, not '1e-5'"):
        obd_importance(net, x, y, eps="1e-5")
    with raises(ValueError, "seed must be at least 0, not -1"):
        hessian_diagonal(net, x, y, seed=-1)
    with raises(ValueError, "neuron pruning layers must not include the output layer 'fc1', "
                            "whose filters are the classes"):
        prune_neurons_by_gradient(net, x, y, 1, layers=["fc1"])
    with raises(ValueError, "neuron pruning layers must name layers among 'fc0', 'fc1', "
                            "not 'fc2'"):
        prune_neurons_by_gradient(net, x, y, 1, layers=["fc2"])
    with raises(ValueError, "amount must leave at least one filter of layer 'fc0', not 1.0"):
        prune_neurons_by_gradient(net, x, y, 1.0)
    with raises(ValueError, "amount must be between 0 and 5, not 6"):
        prune_neurons_by_gradient(net, x, y, 6)


def test_remove_filters_checks_its_masks():
    """The public removal: a smaller copy, and clear errors for a bad mask."""
    from golden_model.train import MLP, remove_filters
    net = MLP.init([6, 5, 4, 3], seed=0)
    keep = np.array([True, False, True, True, False])
    small = remove_filters(net, {"fc0": keep})
    assert small.weights[0].shape == (3, 6) and small.weights[1].shape == (4, 3)
    np.testing.assert_array_equal(small.weights[1], net.weights[1][:, keep])
    with pytest.raises(ValueError, match=r"keeps\['fc0'\] must be a bool array of shape \(5,\)"):
        remove_filters(net, {"fc0": np.ones(4, bool)})
    with pytest.raises(ValueError, match="must keep at least one channel"):
        remove_filters(net, {"fc0": np.zeros(5, bool)})
    with pytest.raises(TypeError, match="model must be an MLP or a CNN, not list"):
        remove_filters([], {})
