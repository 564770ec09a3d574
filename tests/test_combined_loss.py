"""Tests of QAT below 8 bits (``train(..., qat_bits=)``) and of seed 000's combined loss
``L_total = gamma L_finetune + alpha L_quant + beta L_prune`` (``train(..., combined=)``):
argument errors, 8-bit QAT unchanged, the 4-bit weight grid, the terms' gradients against
finite differences, the logged terms, the neutral setting, and the terms' effects."""

import numpy as np
import pytest
from training_helpers import central_difference, raises

from golden_model.datasets import load_digits_split
from golden_model.prune import PruningSchedule, prune_n_m
from golden_model.quant import fake_quantize, qparams
from golden_model.train import (
    MLP,
    CombinedLoss,
    GradualPruning,
    NMPruning,
    _fq_act,
    _fq_weight,
    pruning_error,
    quantization_error,
    train,
)

# Small matrices: BLAS threads only cost, and the sums stay independent of the core count.
pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def digits():
    x, y, _, _ = load_digits_split()
    return x[:600], y[:600]


def total_quant_error(model, bits):
    return sum(quantization_error(w, bits=bits)[0] for w in model.weights)


# --- QAT bit widths -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad, exc, message", [
    ((9, 8), ValueError, "qat_bits[0] (weight bits) must be between 2 and 8, not 9"),
    ((8, 1), ValueError, "qat_bits[1] (activation bits) must be between 2 and 8, not 1"),
    ((4.0, 8), TypeError, "qat_bits[0] (weight bits) must be an integer"),
    ((True, 8), TypeError, "qat_bits[0] (weight bits) must be an integer, not True"),
    (8, ValueError, "qat_bits must be a pair (weight bits, activation bits), not 8"),
    ((4, 4, 4), ValueError, "qat_bits must be a pair"),
])
def test_qat_bits_errors(digits, bad, exc, message):
    x, y = digits
    with raises(exc, message):
        train(MLP.init([64, 8, 10]), x[:10], y[:10], epochs=1, qat=True, qat_bits=bad)


def test_qat_bits_need_qat_or_combined(digits):
    x, y = digits
    with raises(ValueError, "qat_bits needs qat=True or combined, not (4, 8) with neither"):
        train(MLP.init([64, 8, 10]), x[:10], y[:10], epochs=1, qat_bits=(4, 8))
    train(MLP.init([64, 8, 10]), x[:10], y[:10], epochs=1, qat_bits=(4, 8),
          combined=CombinedLoss())


def test_fake_quantizers_at_8_bits_are_the_int8_ones():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    wm = w.reshape(6, -1)
    scale, _ = qparams(wm, axis=0, symmetric=True, narrow=True)
    want = fake_quantize(wm, scale, 0, qmin=-127, qmax=127, axis=0).reshape(w.shape)
    np.testing.assert_array_equal(_fq_weight(w)[0], want)
    np.testing.assert_array_equal(_fq_weight(w, 8)[0], want)
    h = rng.standard_normal((4, 5)).astype(np.float32)
    for a, b in zip(_fq_act(h, -1.0, 1.5), _fq_act(h, -1.0, 1.5, 8)):
        np.testing.assert_array_equal(a, b)


def test_8_bit_qat_trains_exactly_as_before(digits):
    x, y = digits
    a, b = MLP.init([64, 16, 10], seed=0), MLP.init([64, 16, 10], seed=0)
    la = train(a, x, y, epochs=2, seed=3, qat=True)
    lb = train(b, x, y, epochs=2, seed=3, qat=True, qat_bits=(8, 8))
    assert la.losses == lb.losses and la.act_ranges == lb.act_ranges
    for u, v in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(u, v)


def test_4_bit_qat_weights_take_at_most_15_values_per_channel(digits):
    x, y = digits
    net = MLP.init([64, 16, 10], seed=0)
    log = train(net, x, y, epochs=2, seed=1, qat=True, qat_bits=(4, 4))
    assert all(np.isfinite(log.losses))
    for w in net.weights:
        wq = _fq_weight(w, 4)[0].reshape(w.shape[0], -1)
        counts = [len(np.unique(row)) for row in wq]
        assert max(counts) <= 15 and max(counts) > 8     # the grid is used, not collapsed
    # 4-bit activations: at most 16 levels at every quantized point of the QAT forward pass.
    _, outs = net.forward(x, keep=True, act_ranges=log.act_ranges, qat_bits=(4, 4))
    assert all(len(np.unique(o)) <= 16 for o in outs)
    _, outs8 = net.forward(x, keep=True, act_ranges=log.act_ranges)
    assert max(len(np.unique(o)) for o in outs8) > 16
    # And the training differs from 8-bit QAT.
    ref = MLP.init([64, 16, 10], seed=0)
    train(ref, x, y, epochs=2, seed=1, qat=True)
    assert not np.array_equal(ref.weights[0], net.weights[0])


# --- the terms -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, bits", [((5, 12), 4), ((4, 2, 3, 3), 3), ((3, 7), 8)])
def test_quantization_error_gradient_matches_finite_differences(shape, bits):
    rng = np.random.default_rng(bits)
    w = rng.standard_normal(shape)
    value, grad = quantization_error(w, bits=bits)
    d = w - _fq_weight(w, bits)[0]
    assert value == pytest.approx(np.mean(d * d), rel=1e-15)
    np.testing.assert_allclose(grad, 2 * d / w.size, rtol=1e-15)
    fd = central_difference(lambda: quantization_error(w, bits=bits)[0], w, eps=1e-7)
    # The STE gradient holds fq(w) constant: exact except at each channel's largest magnitude,
    # through which the channel's scale depends on w (documented).
    rows = np.abs(w.reshape(len(w), -1))
    off_max = (rows < rows.max(axis=1, keepdims=True)).reshape(w.shape)
    np.testing.assert_allclose(grad[off_max], fd[off_max], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(grad[~off_max], 0, atol=1e-15)    # the max is on the grid


def test_pruning_error_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 8))
    keep = prune_n_m(w, 2, 4, axis=1)
    value, grad = pruning_error(w, keep)
    assert value == pytest.approx(np.sum(w[~keep] ** 2) / w.size, rel=1e-14)
    fd = central_difference(lambda: pruning_error(w, keep)[0], w, eps=1e-7)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-10)
    assert np.all(grad[keep] == 0)
    assert pruning_error(w, None)[0] == 0.0
    v32, g32 = pruning_error(w.astype(np.float32), keep)
    assert g32.dtype == np.float32 and v32 == pytest.approx(value, rel=1e-6)
    with raises(ValueError, "keep must be None or a bool array of shape (6, 8), not float64"):
        pruning_error(w, keep.astype(float))
    with raises(ValueError, "bits must be between 2 and 8, not 9"):
        quantization_error(w, bits=9)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"alpha": -1}, ValueError, "alpha must be finite and at least 0, not -1.0"),
    ({"beta": float("nan")}, ValueError, "beta must be finite and at least 0, not nan"),
    ({"gamma": 0}, ValueError, "gamma must be finite and greater than 0, not 0.0"),
    ({"gamma": float("inf")}, ValueError, "gamma must be finite and greater than 0, not inf"),
    ({"alpha": "1"}, TypeError, "alpha must be a real number, not '1'"),
])
def test_combined_loss_errors(kwargs, exc, message):
    with raises(exc, message):
        CombinedLoss(**kwargs)


def test_combined_must_be_a_combined_loss(digits):
    x, y = digits
    with raises(TypeError, "combined must be a CombinedLoss, not dict"):
        train(MLP.init([64, 8, 10]), x[:10], y[:10], epochs=1, combined={"alpha": 1})


def test_start_step_errors(digits):
    x, y = digits
    with raises(ValueError, "start_step must be at least 0, not -1"):
        NMPruning(2, 4, ("fc0",), start_step=-1)
    with raises(ValueError, "pruning start_step must be less than the number of training "
                            "steps (2), not 2"):
        train(MLP.init([64, 8, 10]), x[:20], y[:20], epochs=2, batch=20,
              pruning=NMPruning(2, 4, ("fc0",), start_step=2))


def test_neutral_combined_loss_trains_exactly_as_none(digits):
    x, y = digits
    for options in ({}, {"qat": True, "pruning": NMPruning(2, 4, ("fc0", "fc1"))}):
        a, b = MLP.init([64, 16, 10], seed=0), MLP.init([64, 16, 10], seed=0)
        la = train(a, x, y, epochs=2, seed=3, **options)
        lb = train(b, x, y, epochs=2, seed=3, combined=CombinedLoss(0, 0, 1), **options)
        assert la.terms == {} and sorted(lb.terms) == ["finetune", "prune", "quant"]
        assert la.losses == lb.losses == lb.terms["finetune"]
        assert lb.terms["prune"] == [0.0, 0.0]      # masks applied from the start
        for u, v in zip(a.weights + a.biases, b.weights + b.biases):
            np.testing.assert_array_equal(u, v)


def test_logged_terms_and_total(digits):
    x, y = digits
    x, y = x[:64], y[:64]
    net = MLP.init([64, 16, 10], seed=0)
    w0 = [w.copy() for w in net.weights]
    pruning = NMPruning(2, 4, ("fc0", "fc1"), start_step=1)
    c = CombinedLoss(alpha=2.0, beta=3.0, gamma=0.5)
    log = train(net, x, y, epochs=2, batch=64, seed=0, qat=True, qat_bits=(4, 8),
                combined=c, pruning=pruning)
    # One step per epoch: epoch 0 sees the initial weights and the N:M masks of them.
    quant = sum(quantization_error(w, bits=4)[0] for w in w0)
    prune = sum(pruning_error(w, prune_n_m(w, 2, 4, axis=1))[0] for w in w0)
    assert log.terms["quant"][0] == pytest.approx(quant, rel=1e-6)
    assert log.terms["prune"][0] == pytest.approx(prune, rel=1e-6)
    assert log.terms["prune"][1] == 0.0               # masks set at step 1
    for e in range(2):
        total = (0.5 * log.terms["finetune"][e] + 2.0 * log.terms["quant"][e]
                 + 3.0 * log.terms["prune"][e])
        assert log.losses[e] == pytest.approx(total, rel=1e-12)
    assert all((m.reshape(len(m), -1, 4).sum(axis=2) == 2).all() for m in net.masks)


def test_prune_term_shrinks_the_weights_to_be_pruned(digits):
    x, y = digits
    pruning = NMPruning(2, 4, ("fc0", "fc1"), start_step=30)      # 40 steps
    runs = {}
    for beta in (0.0, 10.0):
        net = MLP.init([64, 16, 10], seed=0)
        runs[beta] = train(net, x, y, epochs=4, seed=1, pruning=pruning,
                           combined=CombinedLoss(beta=beta)).terms["prune"]
    # Same start, then the prune term falls only with beta > 0.
    assert runs[10.0][0] < runs[0.0][0]
    assert runs[10.0][2] < 0.7 * runs[0.0][2]
    assert runs[0.0][2] > 0.95 * runs[0.0][0]
    assert runs[0.0][3] == runs[10.0][3] == 0.0


def test_prune_term_with_gradual_pruning(digits):
    x, y = digits
    schedule = PruningSchedule(0.0, 0.75, begin_step=20, end_step=30, frequency=5)
    logs = {}
    for beta in (0.0, 10.0):
        net = MLP.init([64, 16, 10], seed=0)
        logs[beta] = train(net, x, y, epochs=4, seed=1, combined=CombinedLoss(beta=beta),
                           pruning=GradualPruning(schedule))
    assert logs[10.0].terms["prune"][1] < 0.8 * logs[0.0].terms["prune"][1]
    assert logs[0.0].terms["prune"][3] == logs[10.0].terms["prune"][3] == 0.0


def test_quant_term_pulls_the_weights_onto_the_grid(digits):
    x, y = digits
    errors = {}
    for alpha in (0.0, 100.0):
        net = MLP.init([64, 16, 10], seed=0)
        train(net, x, y, epochs=4, seed=1, qat=True, qat_bits=(4, 8),
              combined=CombinedLoss(alpha=alpha))
        errors[alpha] = total_quant_error(net, 4)
    assert errors[100.0] < 0.5 * errors[0.0]
