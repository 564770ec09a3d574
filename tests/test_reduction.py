"""Tests of golden_model.reduction: dropping an identity layer and removing a block whose
residual branch is zero leave the network unchanged exactly; a merge is exact where the ReLU
passes everything and off by ``-W relu(-z)`` elsewhere; removals compose; the importance
measures rank a do-nothing layer or block last; parameter counts drop by what was removed;
reduced networks fine-tune (train() and resnet.train()); every argument error."""

import numpy as np
import pytest
from training_helpers import raises

from golden_model import resnet
from golden_model.datasets import load_digits_split
from golden_model.graph import float_forward
from golden_model.lowrank import network_cost
from golden_model.reduction import (
    block_importance,
    drop_layer,
    layer_importance,
    merge_layers,
    parameter_count,
    reduce_blocks,
    reduce_layers,
    remove_blocks,
    remove_layers,
)
from golden_model.resnet import ResNet
from golden_model.train import CNN, MLP, accuracy, cross_entropy, train

# Small matrices: BLAS threads only cost, and the sums stay independent of the core count.
pytestmark = pytest.mark.usefixtures("one_blas_thread")


def mlp(sizes, seed=0):
    """A float64 MLP with biases off zero."""
    net = MLP.init(sizes, seed=seed)
    rng = np.random.default_rng(seed)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [0.1 * rng.standard_normal(b.shape) for b in net.biases]
    return net


def with_identity(net, i):
    """``net`` with dense layer ``i`` (square) the identity: W = I, b = 0."""
    net.weights[i] = np.eye(net.weights[i].shape[0], dtype=net.weights[i].dtype)
    net.biases[i] = np.zeros_like(net.biases[i])
    return net


# --- dense layers ---------------------------------------------------------------------------

def test_dropping_an_identity_layer_leaves_the_output_unchanged():
    net = with_identity(mlp([6, 5, 5, 3]), 1)
    x = np.random.default_rng(1).standard_normal((20, 6))
    small = drop_layer(net, "fc1")
    assert small.layer_names() == ["fc0", "fc1"]
    assert [w.shape for w in small.weights] == [(5, 6), (3, 5)]
    np.testing.assert_array_equal(small.forward(x), net.forward(x))
    assert parameter_count(net) - parameter_count(small) == 5 * 5 + 5
    np.testing.assert_array_equal(net.weights[1], np.eye(5))          # the model is not changed


def test_merge_is_exact_where_the_relu_passes_everything():
    net = mlp([4, 6, 3, 2], seed=2)
    net.biases[0] = np.full(6, 10.0)                   # z0 > 0 for inputs in [0, 1)
    x = np.random.default_rng(2).random((15, 4))
    merged = merge_layers(net, "fc0")
    assert [w.shape for w in merged.weights] == [(3, 4), (2, 3)]
    np.testing.assert_allclose(merged.weights[0], net.weights[1] @ net.weights[0], rtol=1e-15)
    np.testing.assert_allclose(merged.forward(x), net.forward(x), rtol=0, atol=1e-12)


def test_merge_differs_by_the_relus_negative_part():
    net = mlp([4, 6, 3, 2], seed=3)
    x = np.random.default_rng(3).standard_normal((15, 4))
    w0, b0, w1, b1 = net.weights[0], net.biases[0], net.weights[1], net.biases[1]
    z0 = x @ w0.T + b0
    assert (z0 < 0).any() and (z0 > 0).any()
    merged = merge_layers(net, "fc0")
    z_merged = x @ merged.weights[0].T + merged.biases[0]
    z1 = np.maximum(z0, 0) @ w1.T + b1
    np.testing.assert_allclose(z_merged - z1, -np.maximum(-z0, 0) @ w1.T, rtol=0, atol=1e-12)
    # merging into the classifier: no ReLU after the merged layer
    last = merge_layers(net, "fc1")
    h0 = np.maximum(z0, 0)
    np.testing.assert_allclose(last.forward(x), h0 @ (net.weights[2] @ w1).T
                               + net.weights[2] @ net.biases[1] + net.biases[2], atol=1e-12)


def test_remove_layers_composes_from_the_last():
    net = mlp([5, 4, 4, 6, 3], seed=4)
    x = np.random.default_rng(4).standard_normal((8, 5))
    w, b = net.weights, net.biases
    every = remove_layers(net, ["fc0", "fc2", "fc1"], how="auto")   # merge, drop, merge
    assert [v.shape for v in every.weights] == [(3, 5)]
    w32 = w[3] @ w[2]
    np.testing.assert_allclose(every.weights[0], w32 @ w[0], atol=1e-12)
    np.testing.assert_allclose(every.biases[0], w32 @ b[0] + w[3] @ b[2] + b[3], atol=1e-12)
    merged = remove_layers(net, ["fc1", "fc2"])                      # merge both
    np.testing.assert_allclose(merged.weights[1], w[3] @ w[2] @ w[1], atol=1e-12)
    np.testing.assert_array_equal(remove_layers(net, []).forward(x), net.forward(x))
    dropped = remove_layers(net, ["fc1"], how="drop")
    assert [v.shape for v in dropped.weights] == [(4, 5), (6, 4), (3, 6)]


def test_masks_follow_the_removed_layers():
    net = mlp([5, 4, 4, 3], seed=5)
    net.masks = [np.abs(net.weights[0]) > 0.2, None, np.abs(net.weights[2]) > 0.2]
    dropped = drop_layer(net, "fc1")
    np.testing.assert_array_equal(dropped.masks[1], net.masks[2])
    merged = merge_layers(net, "fc1")
    np.testing.assert_array_equal(merged.masks[0], net.masks[0])
    assert merged.masks[1] is None


def test_cnn_dense_layers_reduce_too():
    net = CNN.init((4,), (6, 6), classes=3, input_shape=(1, 4, 4), seed=6)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [b.astype(np.float64) for b in net.biases]
    with_identity(net, 2)                              # fc1, 6 -> 6
    x = np.random.default_rng(6).standard_normal((5, 1, 4, 4))
    small = drop_layer(net, "fc1")
    assert small.layer_names() == ["conv0", "fc0", "fc1"]
    np.testing.assert_array_equal(small.forward(x), net.forward(x))
    merged = merge_layers(net, "fc0")
    assert [w.shape for w in merged.weights] == [(4, 1, 3, 3), (6, 16), (3, 6)]
    assert layer_importance(net, x, criterion="logits", how="auto")["fc1"] == 0.0


def test_importance_ranks_an_identity_layer_last():
    net = with_identity(mlp([6, 5, 5, 5, 3], seed=7), 2)
    rng = np.random.default_rng(7)
    x, y = rng.random((30, 6)), rng.integers(0, 3, 30)
    for criterion in ("logits", "loss"):
        scores = layer_importance(net, x, y, criterion=criterion, how="drop")
        assert list(scores) == ["fc1", "fc2"] and scores["fc2"] == 0.0
    scores = layer_importance(net, x, criterion="logits", how="drop")
    assert scores["fc1"] > 0
    small, removed = reduce_layers(net, 1, x, criterion="logits", how="drop")
    assert removed == ["fc2"]
    np.testing.assert_array_equal(small.forward(x), net.forward(x))
    loss = layer_importance(net, x, y)                 # merge, every hidden layer
    base = cross_entropy(net.forward(x), y)[0]
    for name, score in loss.items():
        reduced = remove_layers(net, [name])
        assert score == pytest.approx(cross_entropy(reduced.forward(x), y)[0] - base, abs=1e-15)


def test_merging_beats_dropping_on_digits():
    """The relation the module docstring reports, from its setup."""
    x_train, y_train, x_test, y_test = load_digits_split()
    x_fit, y_fit, x_val, y_val = x_train[:1000], y_train[:1000], x_train[1000:], y_train[1000:]
    net = MLP.init([64, 64, 64, 32, 10], seed=0)
    train(net, x_fit, y_fit, epochs=15, lr_schedule="cosine")
    base = accuracy(net.forward(x_test), y_test)
    drop = layer_importance(net, x_val, y_val, how="drop")["fc1"]
    merge = layer_importance(net, x_val, y_val)
    assert drop > 1.0 and merge["fc1"] < 0.2 and drop > 10 * merge["fc1"]
    small, removed = reduce_layers(net, 1, x_val, y_val)
    assert removed == [min(merge, key=merge.get)]
    log = train(small, x_fit, y_fit, epochs=3, lr=1e-3, seed=1)
    assert log.losses[-1] < log.losses[0]
    assert accuracy(small.forward(x_test), y_test) > base - 0.02
    assert parameter_count(small) < parameter_count(net)


# --- residual blocks ------------------------------------------------------------------------

def tiny_resnet(dtype=np.float64, seed=3):
    """Stem 1->4; layer1.0, layer1.1 (identity shortcuts, 4->4), layer2.0 (4->8, stride 2,
    projection), layer2.1 (identity, 8->8); GAP, Dense 8->3; 7x7 inputs. Every parameter and
    running statistic moved off its initial value; layer1.1's residual branch zeroed (its
    last BN's gamma = beta = 0)."""
    net = ResNet.init(channels=(4, 8), strides=(1, 2), blocks=2, classes=3,
                      input_shape=(1, 7, 7), seed=seed).astype(dtype)
    rng = np.random.default_rng(seed)
    for v in net.params.values():
        v += (0.3 * rng.standard_normal(v.shape)).astype(dtype)
    for key, v in net.stats.items():
        v[...] = rng.random(v.shape) + (0.5 if key.endswith(".var") else -0.5)
    net.params["layer1.1.conv2.gamma"][...] = 0
    net.params["layer1.1.conv2.beta"][...] = 0
    return net


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_removing_a_zero_branch_block_leaves_the_output_unchanged(dtype):
    net = tiny_resnet(dtype)
    x = np.random.default_rng(8).random((6, 1, 7, 7)).astype(dtype)
    small = remove_blocks(net, ["layer1.1"])
    assert [blk.name for blk in small.blocks] == ["layer1.0", "layer2.0", "layer2.1"]
    np.testing.assert_array_equal(small.forward(x), net.forward(x))
    np.testing.assert_array_equal(float_forward(small.to_layers(), x)[-1],
                                  float_forward(net.to_layers(), x)[-1])
    assert not any(k.startswith("layer1.1.") for k in [*small.params, *small.stats])
    assert len(net.blocks) == 4 and "layer1.1.conv1.w" in net.params   # not changed


def test_removing_a_live_block_changes_the_output():
    net = tiny_resnet()
    x = np.random.default_rng(9).random((6, 1, 7, 7))
    assert not np.allclose(remove_blocks(net, ["layer1.0"]).forward(x), net.forward(x))


def test_block_parameters_and_costs_drop_by_the_block():
    net = tiny_resnet()
    net.set_n_m_masks(2, 4, ["layer1.1.conv1", "layer2.1.conv1"])
    small = remove_blocks(net, ["layer1.1", "layer2.1"])
    conv = 4 * 4 * 9
    assert parameter_count(net) - parameter_count(small) == 2 * (conv + 8) + 2 * (8 * 72 + 16)
    before, after = network_cost(net), network_cost(small)
    assert before["params"] - after["params"] == 2 * (conv + 4) + 2 * (8 * 72 + 8)
    assert before["macs"] - after["macs"] == 2 * 49 * conv + 2 * 16 * 8 * 72
    assert list(small.masks) == []
    assert set(net.masks) == {"layer1.1.conv1", "layer2.1.conv1"}


def test_importance_ranks_a_zero_branch_block_last():
    net = tiny_resnet()
    rng = np.random.default_rng(10)
    x, y = rng.random((12, 1, 7, 7)), rng.integers(0, 3, 12)
    for criterion in ("branch", "logits", "loss"):
        scores = block_importance(net, x, y, criterion=criterion)
        assert list(scores) == ["layer1.0", "layer1.1", "layer2.1"]
        assert scores["layer1.1"] == 0.0
    for criterion in ("branch", "logits"):
        scores = block_importance(net, x, criterion=criterion)
        assert min(scores, key=scores.get) == "layer1.1"
        assert all(v > 0 for k, v in scores.items() if k != "layer1.1")
    small, removed = reduce_blocks(net, 1, x)
    assert removed == ["layer1.1"]
    np.testing.assert_array_equal(small.forward(x), net.forward(x))
    two, removed = reduce_blocks(net, 2, x, criterion="logits")
    assert removed[0] == "layer1.1" and len(two.blocks) == 2


def test_branch_ratio_is_the_branch_norm_over_the_input_norm():
    net = tiny_resnet()
    x = np.random.default_rng(11).random((4, 1, 7, 7))
    layers = net.to_layers()
    outs = float_forward(layers, x)
    at = {ly.name: outs[i + 1].astype(np.float64) for i, ly in enumerate(layers)}
    scores = block_importance(net, x)
    assert scores["layer1.0"] == pytest.approx(
        np.linalg.norm(at["layer1.0.conv2"]) / np.linalg.norm(at["stem"]), rel=1e-12)
    assert scores["layer2.1"] == pytest.approx(
        np.linalg.norm(at["layer2.1.conv2"]) / np.linalg.norm(at["layer2.0"]), rel=1e-12)


def test_a_reduced_resnet_fine_tunes():
    net = tiny_resnet(np.float32)
    rng = np.random.default_rng(12)
    x, y = rng.random((32, 1, 7, 7)).astype(np.float32), rng.integers(0, 3, 32)
    small, _ = reduce_blocks(net, 2, x)
    log = resnet.train(small, x, y, epochs=3, lr=0.05, batch=16)
    assert log.steps == 6 and log.losses[-1] < log.losses[0]
    assert small.forward(x).shape == (32, 3)


# --- errors ---------------------------------------------------------------------------------

def test_layer_errors():
    net = mlp([6, 5, 4, 3])
    x = np.zeros((2, 6))
    with raises(ValueError, "layer must be a hidden dense layer among 'fc0', 'fc1', not 'fc2'"):
        merge_layers(net, "fc2")
    with raises(ValueError, "layer 'fc0' must have as many outputs as inputs to be dropped, "
                "not 5 and 6 (merge it instead)"):
        drop_layer(net, "fc0")
    with raises(ValueError, "layer must be a hidden dense layer (this model has none), not "
                "'fc0'"):
        drop_layer(mlp([4, 3]), "fc0")
    with raises(TypeError, "model must be an MLP or a CNN, not ResNet"):
        drop_layer(tiny_resnet(), "fc0")
    with raises(ValueError, "layers must be among 'fc0', 'fc1', not 'fc7'"):
        remove_layers(net, ["fc7"])
    with raises(TypeError, "layers must be a list of names, not 'fc0'"):
        remove_layers(net, "fc0")
    with raises(ValueError, "layers must not repeat a name, not ['fc0', 'fc0']"):
        remove_layers(net, ["fc0", "fc0"])
    with raises(ValueError, "how must be one of 'merge', 'drop', 'auto', not 'cut'"):
        remove_layers(net, ["fc0"], how="cut")
    with raises(ValueError, "criterion must be one of 'loss', 'logits', not 'branch'"):
        layer_importance(net, x, criterion="branch")
    with raises(ValueError, "y must be given for criterion 'loss', not None"):
        layer_importance(net, x)
    with raises(ValueError, "y must be class indices in [0, 2], not 3"):
        layer_importance(net, x, np.array([0, 3]))
    with raises(ValueError, "y must have shape (2,), not (3,)"):
        layer_importance(net, x, np.array([0, 1, 2]), criterion="logits")
    with raises(ValueError, "k must be between 0 and 2, not 3"):
        reduce_layers(net, 3, x, criterion="logits")
    with raises(ValueError, "x must have shape (N, 6), not (2, 5)"):
        layer_importance(net, np.zeros((2, 5)), criterion="logits")


def test_block_errors():
    net = tiny_resnet()
    x = np.zeros((2, 1, 7, 7))
    with raises(ValueError, "blocks must have an identity shortcut to be removed, not "
                "'layer2.0' (a projection shortcut changes the shape)"):
        remove_blocks(net, ["layer2.0"])
    with raises(ValueError, "blocks must be among 'layer1.0', 'layer1.1', 'layer2.1', not "
                "'layer9'"):
        remove_blocks(net, ["layer9"])
    with raises(TypeError, "blocks must be a list of names, not 'layer1.0'"):
        remove_blocks(net, "layer1.0")
    with raises(TypeError, "net must be a ResNet, not MLP"):
        remove_blocks(mlp([4, 3]), [])
    with raises(ValueError, "criterion must be one of 'loss', 'logits', 'branch', not 'l1'"):
        block_importance(net, x, criterion="l1")
    with raises(ValueError, "y must be given for criterion 'loss', not None"):
        block_importance(net, x, criterion="loss")
    with raises(ValueError, "k must be between 0 and 3, not -1"):
        reduce_blocks(net, -1, x)
    with raises(TypeError, "k must be an integer, not 1.5"):
        reduce_blocks(net, 1.5, x)
