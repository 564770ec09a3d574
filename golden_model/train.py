"""Small float models trained in NumPy: the starting point of every compression flow.

A multi-layer perceptron with ReLU hidden layers, softmax cross-entropy and Adam, written
out by hand so that the training-side techniques (masks kept applied during fine-tuning,
fake quantization with the straight-through estimator, distillation losses) can hook into
the forward and backward passes. Deterministic for a given seed.

Also the data every demo and test uses: scikit-learn's bundled 8x8 digits (no download),
split once with a fixed seed.
"""

from dataclasses import dataclass, field

import numpy as np

from ._checks import check_int

__all__ = ["load_digits_split", "MLP", "accuracy"]


def load_digits_split(test_fraction=0.25, seed=0):
    """scikit-learn's digits (1797 images, 8x8, values 0..16) as float32, split with ``seed``.

    Returns ``(x_train, y_train, x_test, y_test)``; ``x`` is (n, 64) scaled to [0, 1].
    """
    from sklearn.datasets import load_digits  # noqa: PLC0415 (ships the data; no download)

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def accuracy(logits, labels):
    """Fraction of rows whose argmax equals the label."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


@dataclass
class MLP:
    """``x -> relu(x W0^T + b0) -> ... -> logits``; weights are (out, in) like PyTorch.

    ``masks[i]`` (optional, bool like ``weights[i]``) is re-applied after every update, so a
    pruned weight stays zero while the network is fine-tuned.
    """

    weights: list
    biases: list
    masks: list = field(default_factory=list)

    @classmethod
    def init(cls, sizes, seed=0):
        """He-initialized MLP with layer widths ``sizes`` (input first, classes last)."""
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output width, "
                             f"not {sizes!r}")
        sizes = [check_int(s, "layer width", lo=1) for s in sizes]
        rng = np.random.default_rng(seed)
        weights = [(rng.standard_normal((o, i)) * np.sqrt(2.0 / i)).astype(np.float32)
                   for i, o in zip(sizes[:-1], sizes[1:])]
        biases = [np.zeros(o, np.float32) for o in sizes[1:]]
        return cls(weights, biases)

    def copy(self):
        return MLP([w.copy() for w in self.weights], [b.copy() for b in self.biases],
                   [None if m is None else m.copy() for m in self.masks])

    def forward(self, x, *, keep=False):
        """Logits; with ``keep=True`` also the list of every layer's input (for backprop)."""
        acts = [x]
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if i < last:
                h = np.maximum(h, 0)
            acts.append(h)
        return (h, acts) if keep else h

    def backward(self, acts, grad_logits):
        """Gradients (dW, db) of each layer, given d loss / d logits."""
        grads = []
        g = grad_logits
        for i in range(len(self.weights) - 1, -1, -1):
            a_in = acts[i]
            grads.append((g.T @ a_in, g.sum(axis=0)))
            if i:
                g = (g @ self.weights[i]) * (acts[i] > 0)
        return grads[::-1]

    def apply_masks(self):
        for i, m in enumerate(self.masks):
            if m is not None:
                self.weights[i] *= m

    def fit(self, x, y, *, epochs=30, lr=3e-3, batch=64, seed=0, loss_grad=None):
        """Adam on softmax cross-entropy (or ``loss_grad(logits, idx) -> dL/dlogits``).

        Masks, if any, are applied before training and after every step.
        """
        epochs = check_int(epochs, "epochs", lo=0)
        rng = np.random.default_rng(seed)
        params = [p for wb in zip(self.weights, self.biases) for p in wb]
        m1 = [np.zeros_like(p) for p in params]
        m2 = [np.zeros_like(p) for p in params]
        b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
        self.apply_masks()
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for s in range(0, len(x), batch):
                idx = order[s:s + batch]
                logits, acts = self.forward(x[idx], keep=True)
                if loss_grad is None:
                    g = softmax(logits)
                    g[np.arange(len(idx)), y[idx]] -= 1.0
                    g /= len(idx)
                else:
                    g = loss_grad(logits, idx)
                grads = [gp for gw in self.backward(acts, g) for gp in gw]
                t += 1
                for p, gp, a, v in zip(params, grads, m1, m2):
                    a *= b1
                    a += (1 - b1) * gp
                    v *= b2
                    v += (1 - b2) * gp * gp
                    p -= (lr * (a / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
                          ).astype(p.dtype)
                self.apply_masks()
        return self


def softmax(z, temperature=1.0):
    """Row-wise softmax of ``z / temperature`` (numerically stable)."""
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
