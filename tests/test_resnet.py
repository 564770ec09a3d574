"""Tests of golden_model.resnet and sparsemac.resnet_flows: the backward pass against finite
differences, batch normalization against the project's convolution, the BN-folded float graph
against the eval-mode network, N:M masks held through fine-tuning, the integer graphs and
their exact byte counts, the MNIST split, and the accuracy relations of the quick flows over
several seeds (:mod:`sparsemac.stats`)."""

import re

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from golden_model.datasets import load_mnist_split
from golden_model.graph import IntGraph, float_forward
from golden_model.layers import Add, Conv2d, Dense, Flatten, GlobalAvgPool
from golden_model.prune import is_n_m
from golden_model.reduction import block_importance
from golden_model.resnet import BN_EPS, ResNet, n_m_layers, train
from sparsemac.resnet_flows import FLOWS, FULL, QUICK, load_split, run_resnet_flows, summarize
from sparsemac.stats import at_least, within


def raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    # Small matrices: BLAS threads only cost, and the sums stay independent of the core count.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def tiny(dtype=np.float64, seed=3, channels=(2, 3)):
    """Stem 1->2, a stride-1 block 2->2 (identity shortcut), a stride-2 block 2->3 (1x1
    projection), GAP, Dense 3->3, on odd 7x7 inputs; every parameter and running statistic
    moved off its initial value. ``channels=(4, 8)``: reduction lengths 36, 72 and 4 for the
    N:M masks."""
    net = ResNet.init(channels=channels, strides=(1, 2), classes=3, input_shape=(1, 7, 7),
                      seed=seed).astype(dtype)
    rng = np.random.default_rng(seed)
    for v in net.params.values():
        v += (0.3 * rng.standard_normal(v.shape)).astype(dtype)
    for key, v in net.stats.items():
        v[...] = rng.random(v.shape) + (0.5 if key.endswith(".var") else -0.5)
    return net


def central_differences(loss, param, h=1e-6):
    """``(loss(p + h e_k) - loss(p - h e_k)) / 2h`` for every entry ``k`` of ``param``
    (changed in place and restored), error O(h^2)."""
    flat = param.reshape(-1)                     # a view: writes reach the network
    out = np.empty(flat.size)
    for k, old in enumerate(flat.tolist()):
        flat[k] = old + h
        up = loss()
        flat[k] = old - h
        out[k] = (up - loss()) / (2 * h)
        flat[k] = old
    return out.reshape(param.shape)


# --- passes ------------------------------------------------------------------------------------

def test_backward_matches_finite_differences():
    """Every parameter: the stem and block convolutions (3x3 stride 1 and 2, the 1x1 strided
    projection), every BN's gamma and beta (training mode), through both residual adds, the
    global average pooling and the classifier."""
    net = tiny()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1, 7, 7))
    r = rng.standard_normal((4, 3))

    def loss():
        return float(np.sum(net.forward(x, train=True) * r))

    grads = net.gradients(x, r)
    assert sorted(grads) == sorted(net.params)
    assert "layer2.0.downsample.w" in grads and "layer1.0.downsample.w" not in grads
    for key, param in net.params.items():
        want = central_differences(loss, param)
        np.testing.assert_allclose(grads[key], want, rtol=1e-6,
                                   atol=1e-7 * np.abs(want).max(), err_msg=key)


def test_training_mode_normalizes_each_convolution_with_its_batch_statistics():
    net = tiny()
    x = np.random.default_rng(2).standard_normal((5, 1, 7, 7))
    _, _, stats = net._run(x, True)
    assert list(stats) == [cv.name for cv in net.convs()]
    # The stem's statistics are those of the project's convolution of x, per channel.
    conv = Conv2d(net.params["stem.w"], np.zeros(2), padding=1)(x)
    mean, var, m = stats["stem"]
    np.testing.assert_allclose(mean, conv.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(var, conv.var(axis=(0, 2, 3)), rtol=1e-12)
    assert m == 5 * 7 * 7
    # Running statistics: r <- 0.9 r + 0.1 batch, the variance unbiased.
    before = {k: v.copy() for k, v in net.stats.items()}
    net.update_running_stats(stats)
    np.testing.assert_allclose(net.stats["stem.mean"], 0.9 * before["stem.mean"] + 0.1 * mean)
    np.testing.assert_allclose(net.stats["stem.var"],
                               0.9 * before["stem.var"] + 0.1 * var * m / (m - 1))


def test_eval_mode_uses_the_running_statistics():
    net = tiny()
    x = np.random.default_rng(4).standard_normal((3, 1, 7, 7))
    a = net.forward(x)
    net.stats["stem.mean"] += 1.0
    assert not np.allclose(net.forward(x), a)
    # A training-mode forward normalizes with the batch's statistics and updates nothing.
    stats = {k: v.copy() for k, v in net.stats.items()}
    net.forward(x, train=True)
    for key, v in stats.items():
        np.testing.assert_array_equal(net.stats[key], v, err_msg=key)
    assert net.forward(x[:0]).shape == (0, 3)


# --- the float graph ---------------------------------------------------------------------------

def test_bn_folded_graph_equals_the_eval_mode_network():
    net = tiny(np.float32)
    x = np.random.default_rng(5).random((6, 1, 7, 7)).astype(np.float32)
    layers = net.to_layers()
    assert [(type(ly).__name__, ly.name, tuple(ly.inputs)) for ly in layers] == [
        ("Conv2d", "stem", ()),
        ("Conv2d", "layer1.0.conv1", ("stem",)), ("Conv2d", "layer1.0.conv2", ()),
        ("Add", "layer1.0", ("layer1.0.conv2", "stem")),
        ("Conv2d", "layer2.0.conv1", ("layer1.0",)), ("Conv2d", "layer2.0.conv2", ()),
        ("Conv2d", "layer2.0.downsample", ("layer1.0",)),
        ("Add", "layer2.0", ("layer2.0.conv2", "layer2.0.downsample")),
        ("GlobalAvgPool", "gap", ()), ("Flatten", "flatten", ()), ("Dense", "fc", ())]
    assert [ly.relu for ly in layers if isinstance(ly, (Conv2d, Add, Dense))] == [
        True, True, False, True, True, False, False, True, False]
    logits = float_forward(layers, x)[-1]
    want = net.forward(x)
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    # The fold itself: w' = s w, b' = beta - s mean, s = gamma / sqrt(var + eps).
    g, b = net.params["stem.gamma"], net.params["stem.beta"]
    mu, var = net.stats["stem.mean"], net.stats["stem.var"]
    s = g / np.sqrt(var + BN_EPS)
    np.testing.assert_allclose(layers[0].w, net.params["stem.w"] * s[:, None, None, None],
                               rtol=1e-6)
    np.testing.assert_allclose(layers[0].b, b - s * mu, rtol=1e-5, atol=1e-6)


def test_default_network_and_its_n_m_layers():
    net = ResNet.init()
    layers = net.to_layers()
    weighted = [ly for ly in layers if isinstance(ly, (Conv2d, Dense))]
    assert [ly.w[0].size for ly in weighted] == [9, 72, 72, 72, 144, 8, 144, 288, 16, 32]
    assert net.layer_names() == [ly.name for ly in weighted]
    assert sum(isinstance(ly, Add) for ly in layers) == 3
    assert isinstance(layers[-3], GlobalAvgPool) and isinstance(layers[-2], Flatten)
    # Every layer but the stem (reduction 9) and, by default, the classifier.
    assert n_m_layers(net, 4) == net.layer_names()[1:-1]
    assert n_m_layers(net, 4, dense_last=False) == net.layer_names()[1:]
    assert n_m_layers(net, 8) == ["layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1",
                                  "layer2.0.conv2", "layer2.0.downsample", "layer3.0.conv1",
                                  "layer3.0.conv2", "layer3.0.downsample"]


# --- training and masks ------------------------------------------------------------------------

def test_training_holds_the_masks_and_is_deterministic():
    rng = np.random.default_rng(6)
    x = rng.random((40, 1, 7, 7)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    nets = []
    for _ in range(2):
        net = tiny(np.float32, channels=(4, 8))
        net.set_n_m_masks(1, 4, ["layer2.0.conv2", "layer2.0.downsample"])
        before = {k: v.copy() for k, v in net.params.items()}
        log = train(net, x, y, epochs=2, lr=0.05, batch=16, seed=7)
        assert log.steps == 6 and len(log.losses) == 2
        nets.append(net)
    net = nets[0]
    for name in ("layer2.0.conv2", "layer2.0.downsample"):
        w = net.weight(name)
        assert is_n_m(w.reshape(w.shape[0], -1), 1, 4, axis=1)
        np.testing.assert_array_equal(w != 0, net.masks[name])
        assert not np.array_equal(w, before[f"{name}.w"])          # the kept ones trained
    assert np.count_nonzero(net.weight("layer2.0.conv1") == 0) == 0
    for key in net.params:
        np.testing.assert_array_equal(nets[0].params[key], nets[1].params[key], err_msg=key)


def test_masks_join_and_follow_magnitude():
    net = tiny(np.float32, channels=(4, 8))
    w = net.weight("layer2.0.conv1")                      # (8, 4, 3, 3): 36 per row
    signs = np.where(np.arange(w.size) % 3, 1.0, -1.0).astype(np.float32)
    w[...] = (signs * np.arange(w.size, dtype=np.float32)).reshape(w.shape)
    net.set_n_m_masks(2, 4, ["layer2.0.conv1"])
    # Magnitudes grow along each group: the last 2 of every 4 are kept, whatever their sign.
    want = np.tile([False, False, True, True], w.size // 4).reshape(w.shape)
    np.testing.assert_array_equal(net.masks["layer2.0.conv1"], want)
    np.testing.assert_array_equal(w != 0, want)
    net.set_n_m_masks(1, 4, ["layer2.0.conv1"])           # joined: 1 of the 2 kept
    assert is_n_m(w.reshape(8, -1), 1, 4, axis=1)
    assert net.masks["layer2.0.conv1"].sum() == w.size // 4


# --- the flows ---------------------------------------------------------------------------------

#: Seeds of the accuracy relations (seed 0's rows also serve the structural tests).
SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def seeds():
    # Seed 0 also reduces a block (one more epoch of fine-tuning, its baseline shared).
    return [{r["key"]: r for r in run_resnet_flows(
        quick=True, seed=s, flows=[*QUICK.flows, "block_reduction"] if s == 0 else None)}
        for s in SEEDS]


@pytest.fixture(scope="module")
def mnist():
    return load_mnist_split()


def dense_bytes(shapes):
    """int8 weights + int32 bias + 5 bytes of requantization per output channel."""
    return sum(int(np.prod(s)) + 9 * s[0] for s in shapes)


def test_rows_graphs_and_exact_byte_counts(seeds, mnist):
    rows = seeds[0]
    assert list(QUICK.flows) == ["float", "ptq_minmax", "nm_2_4"]
    assert list(rows) == [*QUICK.flows, "block_reduction"]
    x_test, y_test = mnist[2], mnist[3]
    # 19,464 weights over 10 layers, 178 output channels.
    assert rows["float"]["bytes"] == 4 * (19464 + 178)
    assert rows["float"]["graph"] is None and rows["float"]["int8_acc"] is None
    assert rows["ptq_minmax"]["bytes"] == dense_bytes(
        [q.w.shape for q in rows["ptq_minmax"]["graph"].weighted()]) == 19464 + 9 * 178
    # 2:4 on the 19,072 weights of the 8 middle layers: half kept, plus a 2-bit index each.
    assert rows["nm_2_4"]["bytes"] == 19464 + 9 * 178 - (19072 - 9536 - 9536 // 4) == 13914
    for key in ("ptq_minmax", "nm_2_4"):
        r = rows[key]
        graph = r["graph"]
        assert isinstance(graph, IntGraph) and graph.validate() is graph
        assert r["bytes"] == graph.total_bytes()
        assert r["int8_acc"] == float(np.mean(graph.predict(x_test) == y_test))
        assert r["correct"].tolist() == (graph.predict(x_test) == y_test).tolist()
        assert [q.name for q in graph.weighted()] == r["net"].layer_names()
        assert r["flow"] == FLOWS[key]
    for r in rows.values():
        assert (r["dataset"], r["seed"], r["model"]) == ("mnist", 0, "resnet")
        net = r["net"]
        assert r["nonzero"] == sum(np.count_nonzero(net.weight(n)) for n in net.layer_names())
    assert rows["float"]["correct"].mean() == rows["float"]["float_acc"]
    assert rows["ptq_minmax"]["net"] is rows["float"]["net"]
    table = summarize([list(r.values()) for r in seeds]).splitlines()
    assert len(table) == 2 + 4 and table[0].startswith(f"| flow ({len(SEEDS)} seeds) |")
    assert table[2].startswith("| float32 baseline (BN folded) | ")
    assert " | - | 78568 | " in table[2] and " | 13914 | " in table[4]


def test_trained_networks_equal_their_float_graphs(seeds, mnist):
    """The export the int8 rows are made from, on trained networks (BN statistics of real
    data, 28x28 images, the default architecture) and real test images."""
    x = mnist[2][:200]
    for key in ("float", "nm_2_4"):
        net = seeds[0][key]["net"]
        want = net.forward(x)
        got = float_forward(net.to_layers(), x)[-1]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max(),
                                   err_msg=key)


def test_n_m_flow_holds_its_masks_through_fine_tuning(seeds):
    r = seeds[0]["nm_2_4"]
    net, graph = r["net"], r["graph"]
    names = net.layer_names()[1:-1]
    assert r["n_m"] == {name: (2, 4) for name in names}
    for q in graph.weighted():
        w = net.weight(q.name)
        if q.name in names:
            assert q.sparsity == (2, 4)
            assert is_n_m(q.gemm_weights(), 2, 4, axis=1)
            assert is_n_m(w.reshape(w.shape[0], -1), 2, 4, axis=1)
            assert np.count_nonzero(w) == w.size // 2          # exactly 2 of every 4 kept
        else:
            assert q.sparsity is None and np.count_nonzero(w) == w.size
    assert r["sparsity"] == 9536 / 19464
    # The fine-tuning moved the kept weights away from the baseline's.
    base = seeds[0]["float"]["net"]
    kept = net.masks["layer3.0.conv2"]
    assert not np.array_equal(net.weight("layer3.0.conv2")[kept],
                              base.weight("layer3.0.conv2")[kept])


def test_block_reduction_removes_the_weakest_identity_block(seeds):
    r, base = seeds[0]["block_reduction"], seeds[0]["float"]["net"]
    _, _, x_score, y_score, _, _ = load_split(QUICK)
    with threadpool_limits(limits=1, user_api="blas"):
        scores = block_importance(base, x_score, y_score)
    # The default network has one block with an identity shortcut: the first stage's.
    assert list(scores) == ["layer1.0"] and r["removed"] == ["layer1.0"]
    net = r["net"]
    assert [b.name for b in net.blocks] == ["layer2.0", "layer3.0"]
    assert net.layer_names() == [n for n in base.layer_names() if not n.startswith("layer1.")]
    assert [q.name for q in r["graph"].weighted()] == net.layer_names()
    assert r["bytes"] == r["graph"].total_bytes() < seeds[0]["ptq_minmax"]["bytes"]
    assert r["int8_acc"] > 0.8                       # one epoch of fine-tuning recovers it


def test_quick_flows_meet_the_accuracy_relations(seeds, mnist):
    """The relations on the mean over :data:`SEEDS`, each contradicted only beyond 3 binomial
    standard errors (:mod:`sparsemac.stats`) of ``len(SEEDS) x 1000`` predictions: 1.6
    points for a difference near 94 %, 1.1 points below the floor.

    The floor was set from 8 seeds (0-7) of the quick recipe (2 epochs, no more: the float
    baseline is still climbing): float 93.0 to 94.9 %, mean 93.9 %; min-max PTQ +0.0 points
    on the mean, 2:4 after one epoch of fine-tuning +0.8 (the undertrained baseline gains from
    the extra epoch more than the pruning costs). The full recipe's figures are in
    :mod:`sparsemac.resnet_flows`.
    """
    n = len(SEEDS) * len(mnist[3])

    def mean(key, field="int8_acc"):
        return float(np.mean([rows[key][field] for rows in seeds]))

    base = mean("float", "float_acc")
    claims = [
        at_least(base, 0.92, n, what="resnet float32 baseline >= 92 %"),
        within(mean("ptq_minmax"), base, n, 0.01, what="resnet int8 PTQ within 1 point"),
        within(mean("nm_2_4"), base, n, 0.015, what="resnet 2:4 + fine-tune within 1.5 points"),
    ]
    broken = [str(c) for c in claims if not c.holds]
    assert not broken, "\n".join(broken)


# --- data and arguments ------------------------------------------------------------------------

def test_mnist_split_is_fixed_stratified_and_scaled(mnist):
    x_train, y_train, x_test, y_test = mnist
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == np.int64
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    np.testing.assert_array_equal(np.round(x_test * 255) / np.float32(255), x_test)
    # Disjoint images; not sorted by class; the same split again; another for another seed.
    train_rows = {row.tobytes() for row in x_train.reshape(4000, -1)}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(1000, -1))
    assert len(set(y_train[:20].tolist())) > 3
    again = load_mnist_split()
    np.testing.assert_array_equal(again[0], x_train)
    np.testing.assert_array_equal(again[3], y_test)
    other = load_mnist_split(test_per_class=50, seed=1)
    assert len(other[2]) == 500 and not np.array_equal(other[3], y_test[:500])


def test_the_flows_hold_out_the_end_of_the_training_split(mnist):
    x_fit, y_fit, x_score, y_score, x_test, y_test = load_split()
    assert (len(x_fit), len(x_score), len(x_test)) == (3600, 400, 1000)
    np.testing.assert_array_equal(np.concatenate([x_fit, x_score]), mnist[0])
    np.testing.assert_array_equal(np.concatenate([y_fit, y_score]), mnist[1])
    np.testing.assert_array_equal(y_test, mnist[3])
    assert load_split(FULL)[0].shape == x_fit.shape


def test_argument_errors():
    net = tiny(np.float32)
    x = np.zeros((4, 1, 7, 7), np.float32)
    with raises(ValueError, "x must have shape (N, 1, 7, 7), not (4, 1, 6, 6)"):
        net.forward(np.zeros((4, 1, 6, 6), np.float32))
    with raises(ValueError, "y must hold 4 class indices in [0, 2], not shape (4,)"):
        train(net, x, np.array([0, 1, 2, 3]))
    with raises(TypeError, "net must be a ResNet, not str"):
        train("net", x, np.zeros(4, int))
    with raises(ValueError, "lr must be finite and greater than 0, not 0.0"):
        train(net, x, np.zeros(4, int), lr=0.0)
    with raises(ValueError, "momentum must be in [0, 1], not 1.5"):
        train(net, x, np.zeros(4, int), momentum=1.5)
    with raises(TypeError, "weight_decay must be a real number, not '0'"):
        train(net, x, np.zeros(4, int), weight_decay="0")
    with raises(ValueError, "batch must be at least 2, not 1"):
        train(net, x, np.zeros(4, int), batch=1)
    with raises(ValueError, "layer must be one of 'stem',"):
        net.set_n_m_masks(2, 4, ["nope"])
    with raises(ValueError, "layer stem's reduction length must be a multiple of M = 4, "
                            "not 9"):
        net.set_n_m_masks(2, 4, ["stem"])
    with raises(TypeError, "layers must be a list of layer names, not 'stem'"):
        net.set_n_m_masks(2, 4, "stem")
    with raises(ValueError, "channels and strides must be non-empty and of equal lengths, "
                            "not 2 and 1"):
        ResNet.init(channels=(8, 16), strides=(1,))
    with raises(ValueError, "test_per_class must be between 1 and 499, not 500"):
        load_mnist_split(test_per_class=500)
    with raises(ValueError, "flow must be one of"):
        run_resnet_flows(flows=["nope"])
    with raises(TypeError, "recipe must be a Recipe, not dict"):
        run_resnet_flows(recipe={})
