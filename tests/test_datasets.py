"""golden_model.datasets: MNIST-1D generated locally (its split, its determinism, no side effect
on the global random state) and the image pooling of the MNIST CNN."""

import random
import re

import numpy as np
import pytest

from golden_model.datasets import MNIST1D_SEED, load_mnist1d_split, pool_images


def raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


def test_mnist1d_is_generated_with_the_packages_recipe():
    x_train, y_train, x_test, y_test = load_mnist1d_split()
    assert MNIST1D_SEED == 42
    assert x_train.shape == (4000, 40) and x_test.shape == (1000, 40)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert sorted(set(y_train.tolist())) == list(range(10))
    counts = np.bincount(np.concatenate([y_train, y_test]))
    assert counts.tolist() == [500] * 10                     # 500 of each class, shuffled
    assert np.bincount(y_test).tolist() == [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]
    # Standardized over the whole set.
    both = np.concatenate([x_train, x_test])
    assert abs(float(both.mean())) < 1e-5 and float(both.std()) == pytest.approx(1.0, abs=1e-5)


def test_mnist1d_is_deterministic_fresh_and_free_of_side_effects():
    np.random.seed(123)
    random.seed(123)
    expect_np, expect_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    a = load_mnist1d_split(seed=7)           # generated now: seeds the global generators
    assert (np.random.rand(), random.random()) == (expect_np, expect_py)
    b = load_mnist1d_split(seed=7)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
        assert u is not v and u.flags.writeable
    a[0][:] = 0                                  # the caller's copy; the cache keeps its own
    assert np.abs(load_mnist1d_split(seed=7)[0]).sum() > 0
    assert not np.array_equal(load_mnist1d_split()[0], b[0])     # another seed, another draw


@pytest.mark.parametrize("seed, exc, message", [
    (-1, ValueError, "seed must be between 0 and 4294967295, not -1"),
    (2**32, ValueError, "seed must be between 0 and 4294967295, not 4294967296"),
    ("42", TypeError, "seed must be an integer, not '42'"),
    (True, TypeError, "seed must be an integer, not True"),
])
def test_mnist1d_seed_errors(seed, exc, message):
    with raises(exc, message):
        load_mnist1d_split(seed=seed)


def test_pool_images_averages_blocks():
    x = np.arange(2 * 1 * 5 * 4, dtype=np.float32).reshape(2, 1, 5, 4)
    got = pool_images(x, 2)
    assert got.shape == (2, 1, 2, 2) and got.dtype == np.float32
    assert got[0, 0, 0, 0] == np.mean([0, 1, 4, 5])
    assert got[1, 0, 1, 1] == np.mean(x[1, 0, 2:4, 2:4])       # the fifth row is dropped
    np.testing.assert_array_equal(pool_images(x, 1), x)
    with raises(ValueError, "x must have shape (N, C, H, W), not (3, 4)"):
        pool_images(np.zeros((3, 4), np.float32), 2)
    with raises(ValueError, "factor must be between 1 and 4, not 5"):
        pool_images(x, 5)
    with raises(TypeError, "x must be a floating-point array, not dtype int64"):
        pool_images(np.zeros((1, 1, 2, 2), np.int64), 2)
