"""Tests of the distillation losses of golden_model.train: logit standardization (the fix of
issue 18), attention transfer and FitNets hints, their values against direct formulas, their
gradients (alone and through the student's backward pass) against finite differences, their
use in train(), the teacher ensemble's logits, and every argument error."""

import numpy as np
import pytest
from training_helpers import central_difference, raises

from golden_model.datasets import as_images, load_digits_split
from golden_model.train import (
    CNN,
    MLP,
    AttentionTransfer,
    Distillation,
    Hint,
    attention_map,
    attention_transfer_loss,
    cross_entropy,
    distillation_loss,
    ensemble_logits,
    hint_loss,
    softmax,
    train,
)

# Small matrices: BLAS threads only cost, and the sums stay independent of the core count.
pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def digits():
    x, y, _, _ = load_digits_split()
    return as_images(x[:96]).astype(np.float64), y[:96]


def small_cnn(channels, hidden, seed):
    """A float64 CNN on 2x6x6 inputs with non-zero biases (no ReLU sits exactly at 0)."""
    rng = np.random.default_rng(seed)
    net = CNN.init(channels, hidden, classes=3, input_shape=(2, 6, 6), seed=seed)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [0.1 * rng.standard_normal(b.shape) for b in net.biases]
    return net


def direct_attention(a, p=2.0):
    q = (np.abs(a) ** p).sum(axis=1).reshape(len(a), -1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


# --- logit standardization -----------------------------------------------------------------

def zscore(z):
    return (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + 1e-6)


def test_standardized_distillation_loss_matches_its_formula_and_finite_differences():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((5, 4)) * 3
    t = rng.standard_normal((5, 4)) * 8
    labels = np.array([0, 3, 1, 1, 2])
    kw = {"temperature": 1.5, "alpha": 0.3, "beta": 0.7, "standardize": True}
    loss, grad = distillation_loss(s, t, labels, **kw)
    fd = central_difference(lambda: distillation_loss(s, t, labels, **kw)[0], s)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    ce, _ = cross_entropy(s, labels)
    pt, ps = softmax(zscore(t), 1.5), softmax(zscore(s), 1.5)
    kl = np.mean(np.sum(pt * np.log(pt / ps), axis=1))
    assert loss == pytest.approx(0.3 * ce + 0.7 * 1.5 ** 2 * kl, rel=1e-12)


def test_standardization_removes_the_logit_scale_from_the_soft_term():
    """The diagnosis of issue 18: without standardization the soft term asks the student for
    the teacher's logit scale; with it, only for their shape."""
    rng = np.random.default_rng(1)
    t = rng.standard_normal((6, 10)) * 8
    labels = np.zeros(6, np.int64)
    soft = {"alpha": 0.0, "beta": 1.0, "temperature": 4.0}
    # A student with the teacher's logits at half their scale (and shifted): the plain soft
    # term is far from 0, the standardized one is 0 (up to the variance floor) ...
    s = 0.5 * t + 3.0
    assert distillation_loss(s, t, labels, **soft)[0] > 0.1
    loss, grad = distillation_loss(s, t, labels, standardize=True, **soft)
    assert loss < 1e-9 and np.abs(grad).max() < 1e-9
    # ... and rescaling the teacher's logits does not change the standardized loss.
    s = rng.standard_normal((6, 10)) * 4
    ref = distillation_loss(s, t, labels, standardize=True, **soft)[0]
    for scale, shift in ((0.25, 0.0), (3.0, -7.0)):
        got = distillation_loss(s, scale * t + shift, labels, standardize=True, **soft)[0]
        assert got == pytest.approx(ref, rel=1e-6)


def test_equal_logits_standardize_to_a_uniform_distribution():
    s = np.zeros((2, 5))
    t = np.array([[1.0, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    loss, grad = distillation_loss(s, t, [0, 1], alpha=0.0, beta=1.0, temperature=1.0,
                                   standardize=True)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # Row 0: both uniform, nothing to learn; row 1 pulls the student's class 4 up.
    np.testing.assert_allclose(grad[0], 0, atol=1e-15)
    assert grad[1, 4] < 0


def test_distillation_defaults_are_the_measured_fix():
    # Issue 18: standardized logits, T = 1, mostly the soft term (Distillation's docstring);
    # the function keeps Hinton's plain form unless asked.
    d = Distillation()
    assert (d.temperature, d.alpha, d.beta, d.standardize) == (1.0, 0.1, 0.9, True)
    rng = np.random.default_rng(2)
    s, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    (got, g_got), (want, g_want) = (distillation_loss(s, t, [0, 1, 2]), distillation_loss(
        s, t, [0, 1, 2], temperature=4.0, alpha=0.5, beta=0.5, standardize=False))
    assert got == want
    np.testing.assert_array_equal(g_got, g_want)


# --- attention transfer --------------------------------------------------------------------

def test_attention_map_is_the_normalized_channel_sum_of_powers():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 5, 4, 2))
    for p in (1.0, 2.0, 3.0):
        q = attention_map(a, p=p)
        assert q.shape == (3, 8)
        np.testing.assert_allclose(q, direct_attention(a, p), rtol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-12)
    a[1] = 0
    q = attention_map(a)
    assert not q[1].any() and np.all(np.isfinite(q))


def test_attention_transfer_loss_matches_its_formula_and_finite_differences():
    rng = np.random.default_rng(4)
    # Two pairs of layers; the channel counts differ, the map sizes match within a pair.
    a_s = [rng.standard_normal((3, 2, 4, 4)), rng.standard_normal((3, 3, 2, 2))]
    a_t = [rng.standard_normal((3, 5, 4, 4)), rng.standard_normal((3, 7, 2, 2))]
    for p in (2.0, 3.0):
        loss, grads = attention_transfer_loss(a_s, a_t, beta=0.8, p=p)
        want = 0.8 / 2 * sum(
            np.mean(np.linalg.norm(direct_attention(s, p) - direct_attention(t, p), axis=1))
            for s, t in zip(a_s, a_t))
        assert loss == pytest.approx(want, rel=1e-12)
        assert [g.shape for g in grads] == [a.shape for a in a_s]
        for a, g in zip(a_s, grads):
            fd = central_difference(
                lambda p=p: attention_transfer_loss(a_s, a_t, beta=0.8, p=p)[0], a)
            np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)
    # Equal maps (the teacher's activations a positive multiple of the student's): zero loss,
    # zero gradient.
    loss, grads = attention_transfer_loss([a_s[0]], [2 * a_s[0]], beta=5.0)
    assert loss < 1e-12 and np.abs(grads[0]).max() == 0
    # float32 in, float32 gradients out.
    _, grads = attention_transfer_loss([a_s[0].astype(np.float32)], [a_t[0]])
    assert grads[0].dtype == np.float32


# --- hints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape_s, shape_t", [((4, 3), (4, 5)), ((2, 3, 2, 2), (2, 4, 2, 2))])
def test_hint_loss_matches_its_formula_and_finite_differences(shape_s, shape_t):
    rng = np.random.default_rng(5)
    h_s, h_t = rng.standard_normal(shape_s), rng.standard_normal(shape_t)
    w, b = rng.standard_normal((shape_t[1], shape_s[1])), rng.standard_normal(shape_t[1])
    loss, g_h, (g_w, g_b) = hint_loss(h_s, h_t, (w, b), weight=0.6)
    if h_s.ndim == 2:
        r = h_s @ w.T + b
    else:
        r = np.einsum("tc,nchw->nthw", w, h_s) + b[:, None, None]   # a 1x1 convolution
    assert loss == pytest.approx(0.6 / 2 * np.sum((r - h_t) ** 2) / len(h_s), rel=1e-12)
    for arr, got in ((h_s, g_h), (w, g_w), (b, g_b)):
        fd = central_difference(lambda: hint_loss(h_s, h_t, (w, b), weight=0.6)[0], arr)
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-9)


# --- a teacher ensemble --------------------------------------------------------------------

def test_ensemble_logits_is_the_mean_of_its_members_logits():
    x = np.random.default_rng(1).standard_normal((7, 6)).astype(np.float32)
    nets = [MLP.init([6, 5, 4], seed=s) for s in (0, 1, 2)]
    want = np.mean([n.forward(x).astype(np.float64) for n in nets], axis=0)
    got = ensemble_logits(nets, x)
    assert got.dtype == np.float32 and got.shape == (7, 4)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    # One member: its own logits, unchanged; members of different seeds do differ.
    np.testing.assert_array_equal(ensemble_logits(nets[:1], x), nets[0].forward(x))
    assert not np.allclose(nets[0].forward(x), nets[1].forward(x))


def test_ensemble_logits_rejects_an_empty_or_mismatched_ensemble():
    x = np.zeros((3, 6), np.float32)
    with raises(ValueError, "an ensemble needs at least one model, not none"):
        ensemble_logits([], x)
    with raises(ValueError, "the ensemble's models give logits of different shapes: "
                            "[(3, 4), (3, 10)]"):
        ensemble_logits([MLP.init([6, 4], seed=0), MLP.init([6, 10], seed=0)], x)


# --- through the student's backward pass ---------------------------------------------------

def test_feature_gradients_join_the_backward_pass_at_the_named_layers():
    """d/dW of  sum(logits * r) + attention(conv0, conv1) + hint(conv1 -> teacher conv1),
    the feature terms' gradients given to ``gradients(grad_outputs=)``, against finite
    differences of the whole loss."""
    net = small_cnn((3, 4), (5,), seed=6)
    teacher = small_cnn((5, 6), (7,), seed=7)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 2, 6, 6))
    r = rng.standard_normal((4, 3))
    w, b = rng.standard_normal((6, 4)), rng.standard_normal(6)
    # Outputs of the weighted layers in forward(keep=True): input first, then every op.
    convs = {"conv0": 1, "conv1": 3}
    t_outs = teacher.forward(x, keep=True)[1]
    t_maps = [t_outs[convs["conv0"]], t_outs[convs["conv1"]]]

    def loss():
        logits, outs = net.forward(x, keep=True)
        maps = [outs[convs["conv0"]], outs[convs["conv1"]]]
        at = attention_transfer_loss(maps, t_maps, beta=3.0)[0]
        hint = hint_loss(maps[1], t_maps[1], (w, b), weight=0.2)[0]
        return float(np.sum(logits * r)) + at + hint

    _, outs = net.forward(x, keep=True)
    maps = [outs[convs["conv0"]], outs[convs["conv1"]]]
    _, (g0, g1) = attention_transfer_loss(maps, t_maps, beta=3.0)
    _, g_hint, _ = hint_loss(maps[1], t_maps[1], (w, b), weight=0.2)
    grads = net.gradients(x, r, grad_outputs={"conv0": g0, "conv1": g1 + g_hint})
    for i, (dw, db) in enumerate(grads):
        for param, got in ((net.weights[i], dw), (net.biases[i], db)):
            want = central_difference(loss, param)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7 * np.abs(want).max())
    # The dense layers after the hint see only the logits' gradient.
    plain = net.gradients(x, r)
    for (dw, _), (pw, _) in zip(grads[2:], plain[2:]):
        np.testing.assert_array_equal(dw, pw)


def test_train_steps_with_the_feature_gradients(digits):
    """One full-batch step of train() with attention and a hint is Adam's first step on the
    gradients computed by the public functions: ``p - lr * g / (|g| + 1e-8)``."""
    x, y = digits
    student = CNN.init((3, 4), (8,), seed=1)
    teacher = CNN.init((5, 6), (12,), seed=2)
    for net in (student, teacher):
        net.weights = [w.astype(np.float64) for w in net.weights]
        net.biases = [b.astype(np.float64) for b in net.biases]
    attention = AttentionTransfer(layers=("conv0", ("conv1", "conv1")), beta=2.0)
    hint = Hint("conv1", "conv1", weight=0.05)
    before = student.copy()
    log = train(student, x, y, epochs=1, batch=len(x), lr=1e-3, seed=4, teacher=teacher,
                attention=attention, hint=hint)
    # The regressor train() starts from: W ~ N(0, 1 / C_s) from the generator [seed, 2].
    w0 = np.random.default_rng([4, 2]).standard_normal((6, 4)) / 2.0
    b0 = np.zeros(6)
    logits, outs = before.forward(x, keep=True)
    t_outs = teacher.forward(x, keep=True)[1]
    maps, t_maps = [outs[1], outs[3]], [t_outs[1], t_outs[3]]
    ce, g_logits = cross_entropy(logits, y)
    at, (g0, g1) = attention_transfer_loss(maps, t_maps, beta=2.0)
    hl, g_hint, (g_w, g_b) = hint_loss(maps[1], t_maps[1], (w0, b0), weight=0.05)
    assert log.losses == [pytest.approx(ce + at + hl, rel=1e-12)]
    grads = before.gradients(x, g_logits, grad_outputs={"conv0": g0, "conv1": g1 + g_hint})

    def adam(p, g):
        return p - 1e-3 * g / (np.abs(g) + 1e-8)

    for i, (dw, db) in enumerate(grads):
        np.testing.assert_allclose(student.weights[i], adam(before.weights[i], dw),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(student.biases[i], adam(before.biases[i], db),
                                   rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(log.hint_regressor[0], adam(w0, g_w), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(log.hint_regressor[1], adam(b0, g_b), rtol=1e-9, atol=1e-12)


def test_zero_weighted_feature_terms_leave_training_unchanged(digits):
    x, y = digits
    x, y = x.astype(np.float32), y
    teacher = CNN.init((6, 8), (16,), seed=3)
    runs = []
    for extra in ({}, {"teacher": teacher, "attention": AttentionTransfer(beta=0.0),
                       "hint": Hint("conv1", "conv1", weight=0.0)}):
        net = CNN.init((3, 4), (8,), seed=0)
        log = train(net, x, y, epochs=2, batch=32, seed=1, **extra)
        runs.append((net, log))
    (a, log_a), (b, log_b) = runs
    for wa, wb in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(wa, wb)
    assert log_a.losses == log_b.losses
    assert log_a.hint_regressor is None and log_b.hint_regressor[0].shape == (8, 4)


def test_a_hint_alone_is_learned(digits):
    """FitNets' first stage: the hint loss alone (the logits' gradient zeroed) falls."""
    x, y = digits
    teacher = CNN.init((6, 8), (16,), seed=5)
    train(teacher, x, y, epochs=3, seed=5)
    net = CNN.init((3, 4), (8,), seed=6)
    before = [w.copy() for w in net.weights]
    log = train(net, x, y, epochs=8, batch=32, seed=6, lr=1e-2, teacher=teacher,
                hint=Hint("conv1", "conv1"), loss_grad=lambda z, idx: np.zeros_like(z))
    assert np.isnan(log.losses[0])            # the custom loss_grad has no value
    t_feat = teacher.forward(x, keep=True)[1][3]
    s_feat = net.forward(x, keep=True)[1][3]
    start = hint_loss(CNN.init((3, 4), (8,), seed=6).forward(x, keep=True)[1][3], t_feat,
                      (np.random.default_rng([6, 2]).standard_normal((8, 4)) / 2.0,
                       np.zeros(8)))[0]
    end = hint_loss(s_feat, t_feat, log.hint_regressor)[0]
    assert end < 0.5 * start
    # The layers after the guided one are not trained by the hint.
    np.testing.assert_array_equal(net.weights[2], before[2])
    np.testing.assert_array_equal(net.weights[3], before[3])


def test_an_mlp_hint_uses_a_dense_regressor():
    rng = np.random.default_rng(7)
    x = rng.random((40, 16))
    y = rng.integers(0, 4, 40)
    teacher = MLP.init([16, 24, 4], seed=1)
    net = MLP.init([16, 6, 4], seed=2)
    log = train(net, x, y, epochs=3, seed=0, teacher=teacher, hint=Hint("fc0", "fc0", 0.1))
    assert [p.shape for p in log.hint_regressor] == [(24, 6), (24,)]
    assert all(np.isfinite(v) for v in log.losses)


# --- argument errors -------------------------------------------------------------------------

def test_argument_errors(digits):
    x, y = digits
    x = x[:8].astype(np.float32)
    y = y[:8]
    cnn, teacher = CNN.init((3, 4), (8,)), CNN.init((5, 6), (8,))
    mlp = MLP.init([64, 8, 10])
    flat = x.reshape(8, 64)
    with raises(TypeError, "standardize must be a bool, not 1"):
        Distillation(standardize=1)
    with raises(TypeError, "standardize must be a bool, not 'yes'"):
        distillation_loss(np.zeros((2, 3)), np.zeros((2, 3)), [0, 1], standardize="yes")
    with raises(ValueError, "beta must be finite and at least 0, not -1.0"):
        AttentionTransfer(beta=-1)
    with raises(ValueError, "p must be finite and at least 1, not 0.5"):
        AttentionTransfer(p=0.5)
    with raises(TypeError, "attention layers must be a list of layer names or (student, "
                           "teacher) pairs, not 'conv0'"):
        AttentionTransfer(layers="conv0")
    with raises(TypeError, "attention layers must be layer names or (student, teacher) pairs, "
                           "not ('conv0',)"):
        AttentionTransfer(layers=[("conv0",)])
    with raises(TypeError, "attention teacher layer must be a layer name, not 1"):
        AttentionTransfer(layers=[("conv0", 1)])
    with raises(TypeError, "hint student_layer must be a layer name, not 0"):
        Hint(0, "conv0")
    with raises(ValueError, "weight must be finite and at least 0, not -0.5"):
        Hint("conv0", "conv0", weight=-0.5)
    with raises(TypeError, "attention must be an AttentionTransfer, not dict"):
        train(cnn, x, y, teacher=teacher, attention={})
    with raises(TypeError, "hint must be a Hint, not tuple"):
        train(cnn, x, y, teacher=teacher, hint=("conv0", "conv0"))
    with raises(ValueError, "attention needs teacher, not None"):
        train(cnn, x, y, attention=AttentionTransfer())
    with raises(ValueError, "hint needs teacher, not None"):
        train(cnn, x, y, hint=Hint("conv0", "conv0"))
    with raises(TypeError, "teacher must be an MLP or a CNN, not list"):
        train(cnn, x, y, teacher=[], attention=AttentionTransfer())
    with raises(ValueError, "teacher needs attention or hint, not None for both"):
        train(cnn, x, y, teacher=teacher)
    with raises(ValueError, "teacher must take the student's input shape (1, 8, 8), "
                            "not (64,)"):
        train(cnn, x, y, teacher=mlp, attention=AttentionTransfer())
    with raises(ValueError, "attention transfer needs convolution layers (spatial attention "
                            "maps), and the student has none"):
        train(mlp, flat, y, teacher=MLP.init([64, 16, 10]), attention=AttentionTransfer())
    with raises(ValueError, "attention layers must be convolutions (attention maps are "
                            "spatial), not the student's dense layer 'fc0'"):
        train(cnn, x, y, teacher=teacher, attention=AttentionTransfer([("fc0", "conv0")]))
    with raises(ValueError, "attention student layer must be one of 'conv0', 'conv1', 'fc0', "
                            "'fc1', not 'conv7'"):
        train(cnn, x, y, teacher=teacher, attention=AttentionTransfer(["conv7"]))
    with raises(ValueError, "attention layers ('conv0', 'conv1') must have maps of one size, "
                            "not (8, 8) for the student and (4, 4) for the teacher"):
        train(cnn, x, y, teacher=teacher, attention=AttentionTransfer([("conv0", "conv1")]))
    with raises(ValueError, "hint teacher_layer must be one of 'conv0', 'conv1', 'fc0', 'fc1', "
                            "not 'fc5'"):
        train(cnn, x, y, teacher=teacher, hint=Hint("conv0", "fc5"))
    with raises(ValueError, "hint layers must both be dense or both convolutions with maps of "
                            "one size, not student 'conv1' (4, 4, 4) and teacher 'fc0' (8,)"):
        train(cnn, x, y, teacher=teacher, hint=Hint("conv1", "fc0"))
    with raises(ValueError, "hint layers must both be dense or both convolutions with maps of "
                            "one size, not student 'conv0' (3, 8, 8) and teacher 'conv1' "
                            "(6, 4, 4)"):
        train(cnn, x, y, teacher=teacher, hint=Hint("conv0", "conv1"))
    with raises(ValueError, "a must be a 4-d array (N, C, H, W) with at least one sample, "
                            "not shape (3, 4)"):
        attention_map(np.zeros((3, 4)))
    with raises(ValueError, "p must be finite and at least 1, not 0.0"):
        attention_map(np.zeros((1, 1, 2, 2)), p=0)
    maps = [np.ones((2, 3, 4, 4))]
    with raises(TypeError, "student_maps must be a list of arrays (N, C, H, W), not ndarray"):
        attention_transfer_loss(maps[0], maps)
    with raises(ValueError, "teacher_maps must hold at least one array, not 0"):
        attention_transfer_loss(maps, [])
    with raises(ValueError, "teacher_maps must pair the 1 student maps, not 2"):
        attention_transfer_loss(maps, maps * 2)
    with raises(ValueError, "teacher_maps[0] must have the student's samples and map size "
                            "(2, 4, 4), not (2, 2, 2)"):
        attention_transfer_loss(maps, [np.ones((2, 5, 2, 2))])
    with raises(ValueError, "beta must be finite and at least 0, not -2.0"):
        attention_transfer_loss(maps, maps, beta=-2)
    h = np.ones((2, 3))
    reg = (np.ones((4, 3)), np.ones(4))
    with raises(ValueError, "teacher_features must have shape (2, C_t), not (3, 4)"):
        hint_loss(h, np.ones((3, 4)), reg)
    with raises(ValueError, "teacher_features must have shape (2, C_t, 4, 4), not (2, 5, 2, 2)"):
        hint_loss(np.ones((2, 3, 4, 4)), np.ones((2, 5, 2, 2)), reg)
    with raises(ValueError, "student_features must be a 2-d (N, C) or 4-d (N, C, H, W) array "
                            "with at least one sample, not shape (3,)"):
        hint_loss(np.ones(3), np.ones(3), reg)
    with raises(TypeError, "regressor must be a pair (W, b), not ndarray"):
        hint_loss(h, np.ones((2, 4)), np.ones((4, 3)))
    with raises(ValueError, "regressor W must have shape (4, 3), not (3, 4)"):
        hint_loss(h, np.ones((2, 4)), (np.ones((3, 4)), np.ones(4)))
    with raises(ValueError, "regressor b must have shape (4,), not (3,)"):
        hint_loss(h, np.ones((2, 4)), (np.ones((4, 3)), np.ones(3)))
    with raises(ValueError, "weight must be finite and at least 0, not -1.0"):
        hint_loss(h, np.ones((2, 4)), reg, weight=-1)
    with raises(TypeError, "grad_outputs must be a dict of layer name -> array, not list"):
        cnn.gradients(x, np.zeros((8, 10)), grad_outputs=[])
    with raises(ValueError, "layer must be one of 'conv0', 'conv1', 'fc0', 'fc1', not 'pool0'"):
        cnn.gradients(x, np.zeros((8, 10)), grad_outputs={"pool0": np.zeros((8, 3, 4, 4))})
    with raises(ValueError, "grad_outputs['conv1'] must have the layer output's shape "
                            "(8, 4, 4, 4), not (8, 4, 2, 2)"):
        cnn.gradients(x, np.zeros((8, 10)), grad_outputs={"conv1": np.zeros((8, 4, 2, 2))})
