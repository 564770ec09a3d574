"""Reference networks of the regressions and demos, quantized into integer graphs.

:func:`digits_mlp` and :func:`digits_cnn` are small networks on the digits
(:mod:`.datasets`) whose N:M layers follow the one selection rule
(:func:`.graph.n_m_layers`): every weighted layer but the classifier whose GEMM reduction
length is a multiple of 4 is 2:4 pruned by magnitude and declared 2:4.
"""

import dataclasses

import numpy as np

from .datasets import load_digits_split
from .graph import Conv2d, Dense, Flatten, MaxPool2d, n_m_layers, quantize_graph
from .prune import prune_n_m
from .train import MLP

__all__ = ["digits_mlp", "digits_cnn"]


def _pruned(layer, n, m):
    wm = layer.w.reshape(layer.w.shape[0], -1)
    wm = np.where(prune_n_m(wm, n, m, axis=1), wm, np.float32(0))
    return dataclasses.replace(layer, w=wm.reshape(layer.w.shape).astype(np.float32))


def digits_mlp(*, epochs=8, finetune=4, seed=0, data=None):
    """The 64-64-10 MLP trained on the digits, ``fc0`` 2:4 pruned (masks kept applied while it
    is fine-tuned), quantized per channel: ``fc0`` runs N:M on a 2:4 array, ``fc1`` (the
    classifier) in the dense fallback. ``data``: :func:`load_digits_split`'s tuple."""
    x_train, y_train, _, _ = data or load_digits_split()
    net = MLP.init([64, 64, 10], seed=seed).fit(x_train, y_train, epochs=epochs, seed=seed)
    net.masks = [prune_n_m(net.weights[0], 2, 4, axis=1), None]
    net.fit(x_train, y_train, epochs=finetune, seed=seed + 1)
    layers = [Dense(net.weights[0], net.biases[0], relu=True, name="fc0"),
              Dense(net.weights[1], net.biases[1], name="fc1")]
    return quantize_graph(layers, (64,), x_train, sparsity={"fc0": (2, 4)})


def digits_cnn(layers=None, *, seed=0, data=None):
    """A small CNN on the 8x8 digits (input ``(1, 8, 8)``), quantized on the training split.

    By default conv0 1->8 3x3 pad 1 ReLU, pool0 (max 2x2), conv1 8->8 3x3 pad 1 ReLU, pool1,
    flatten, fc0 32->10, He-initialized and untrained (the classes it predicts mean nothing;
    the arithmetic is what is checked). ``layers`` replaces them with any float layers of
    :mod:`golden_model.graph` on that input (e.g. a trained ``CNN.to_layers()``). Every
    weighted layer but the classifier whose GEMM reduction length is a multiple of 4 (here
    conv1, C*KH*KW = 72) is 2:4 pruned by magnitude and declared 2:4.
    """
    x_train = (data or load_digits_split())[0].reshape(-1, 1, 8, 8)
    if layers is None:
        rng = np.random.default_rng(seed)

        def he(shape):
            fan_in = int(np.prod(shape[1:]))
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

        def bias(n):
            return (rng.standard_normal(n) * 0.05).astype(np.float32)

        layers = [Conv2d(he((8, 1, 3, 3)), bias(8), padding=1, relu=True, name="conv0"),
                  MaxPool2d(2, 2, name="pool0"),
                  Conv2d(he((8, 8, 3, 3)), bias(8), padding=1, relu=True, name="conv1"),
                  MaxPool2d(2, 2, name="pool1"), Flatten(name="flatten"),
                  Dense(he((10, 32)), bias(10), name="fc0")]
    names = n_m_layers(layers, 4, dense_last=True)[0]
    layers = [_pruned(ly, 2, 4) if ly.name in names else ly for ly in layers]
    return quantize_graph(layers, (1, 8, 8), x_train, sparsity={name: (2, 4) for name in names})
