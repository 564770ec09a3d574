"""The datasets the reference networks train on, all shipped inside a package (no download).

``digits``: scikit-learn's 1797 8x8 handwritten digits, values 0..16, in a fixed split.
"""

import numpy as np

from common.checks import as_float_array

__all__ = ["load_digits_split", "as_images"]


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


def as_images(x):
    """Flat digits ``(n, 64)`` as NCHW images ``(n, 1, 8, 8)`` (row-major pixels)."""
    x = as_float_array(x)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"x must have shape (N, 64), not {x.shape}")
    return x.reshape(len(x), 1, 8, 8)
