"""Tests of golden_model.prune: hand-computed masks, tie rules, schedules and every error."""

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from golden_model.prune import (
    PruningSchedule,
    apply_mask,
    channel_prune_mask,
    check_n_m,
    cubic_sparsity,
    filter_norms,
    filter_prune_mask,
    filter_scores,
    fpgm_scores,
    global_magnitude_masks,
    is_n_m,
    magnitude_mask,
    neuron_prune_mask,
    neuron_scores,
    prune_count,
    prune_n_m,
    remove_neurons,
)


def raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


def ref_n_m(w, n, m):
    """Loop reference of N:M along the last axis of a 2-D array: sort by (-|w|, index)."""
    keep = np.zeros(w.shape, dtype=bool)
    for r in range(w.shape[0]):
        for g in range(0, w.shape[1], m):
            group = [int(x) if w.dtype.kind in "iu" else float(x) for x in w[r, g:g + m]]
            ranked = sorted(range(m), key=lambda i: (-abs(group[i]), i))
            for i in ranked[:n]:
                keep[r, g + i] = True
    return keep


# --- magnitude ---------------------------------------------------------------------------------

def test_magnitude_threshold_prunes_less_or_equal():
    w = np.array([0.5, -0.25, 0.25, -0.75, 0.0, 0.375], dtype=np.float32)
    np.testing.assert_array_equal(magnitude_mask(w, threshold=0.25),
                                  [True, False, False, True, False, True])
    np.testing.assert_array_equal(magnitude_mask(w, threshold=0.0),
                                  [True, True, True, True, False, True])


def test_magnitude_threshold_is_compared_exactly_not_in_weight_dtype():
    # float32(0.1) = 0.100000001... > 0.1 (float64): kept, although float32(0.1) == 0.1 in float32.
    w = np.array([0.1, -0.1, 0.05], dtype=np.float32)
    np.testing.assert_array_equal(magnitude_mask(w, threshold=0.1), [True, True, False])
    np.testing.assert_array_equal(magnitude_mask(w, threshold=np.float32(0.1)),
                                  [False, False, False])


def test_magnitude_amount_fraction_and_ties_keep_lower_index():
    w = np.array([[0.3, -0.1, 0.2], [0.1, -0.4, 0.2]])
    # 0.5 * 6 = 3 pruned: |0.1| at flat 1 and 3, then of the tied |0.2| the higher index
    # (flat 5) goes and flat 2 is kept.
    np.testing.assert_array_equal(magnitude_mask(w, amount=0.5),
                                  [[True, False, True], [False, True, False]])
    # one pruned: of the tied |0.1| (flat 1 and 3), flat 3 goes.
    np.testing.assert_array_equal(magnitude_mask(w, amount=1),
                                  [[True, True, True], [False, True, True]])
    assert magnitude_mask(w, amount=0).all()
    assert not magnitude_mask(w, amount=1.0).any()
    assert magnitude_mask(w, amount=0.5).dtype == np.bool_


@pytest.mark.parametrize(("amount", "size", "count"), [
    (0.375, 4, 2),   # 1.5 -> 2
    (0.625, 4, 2),   # 2.5 -> 2
    (0.125, 20, 2),  # 2.5 -> 2
    (0.875, 4, 4),   # 3.5 -> 4
    (0.5, 7, 4),     # 3.5 -> 4
    (np.float32(0.25), 8, 2),
    (0.0, 5, 0), (1.0, 5, 5), (3, 5, 3), (np.int64(5), 5, 5),
])
def test_prune_count_rounds_half_to_even(amount, size, count):
    assert prune_count(amount, size) == count


def test_global_magnitude_one_ranking_over_layers():
    layers = {"a": np.array([0.5, 0.1, 0.9], dtype=np.float32),
              "b": np.array([[0.2, 0.1], [0.05, 0.8]], dtype=np.float64)}
    masks = global_magnitude_masks(layers, 3)
    assert list(masks) == ["a", "b"]
    # Pruned: 0.05, then 0.1 of "b", then float32(0.1) = 0.1000000015 of "a": the ranking is
    # exact across dtypes (float64), so it is not a tie.
    np.testing.assert_array_equal(masks["a"], [True, False, True])
    np.testing.assert_array_equal(masks["b"], [[True, False], [False, True]])
    listed = global_magnitude_masks([layers["a"], layers["b"]], 0.5)  # round(3.5) = 4
    assert isinstance(listed, list)
    np.testing.assert_array_equal(listed[0], [True, False, True])
    np.testing.assert_array_equal(listed[1], [[False, False], [False, True]])


def test_global_magnitude_exact_ties_keep_earlier_layer():
    masks = global_magnitude_masks([np.array([1.0, 2.0]), np.array([1.0, 0.5])], 2)
    np.testing.assert_array_equal(masks[0], [True, True])
    np.testing.assert_array_equal(masks[1], [False, False])


def test_global_equals_layerwise_for_a_single_layer():
    w = np.random.default_rng(1).standard_normal((4, 6))
    np.testing.assert_array_equal(global_magnitude_masks([w], 0.3)[0],
                                  magnitude_mask(w, amount=0.3))


def test_magnitude_errors():
    w = np.ones(6)
    with raises(TypeError, "w must be a floating-point array, not dtype int8"):
        magnitude_mask(np.ones(3, dtype=np.int8), amount=1)
    with raises(ValueError, "exactly one of threshold and amount must be given, not both"):
        magnitude_mask(w, threshold=0.1, amount=0.5)
    with raises(ValueError, "exactly one of threshold and amount must be given, not neither"):
        magnitude_mask(w)
    with raises(ValueError, "threshold must be finite and non-negative, not -0.5"):
        magnitude_mask(w, threshold=-0.5)
    with raises(TypeError, "threshold must be a real number, not '0.1'"):
        magnitude_mask(w, threshold="0.1")
    with raises(ValueError, "amount must be between 0.0 and 1.0, not 1.5"):
        magnitude_mask(w, amount=1.5)
    with raises(ValueError, "amount must be between 0.0 and 1.0, not -0.1"):
        magnitude_mask(w, amount=-0.1)
    with raises(ValueError, "amount must be between 0 and 6, not 7"):
        magnitude_mask(w, amount=7)
    with raises(ValueError, "amount must be between 0 and 6, not -1"):
        magnitude_mask(w, amount=-1)
    with raises(TypeError, "amount must be a fraction in [0, 1] or an integer count, not True"):
        magnitude_mask(w, amount=True)
    with raises(TypeError, "amount must be a fraction in [0, 1] or an integer count, not str"):
        magnitude_mask(w, amount="half")
    with raises(ValueError, "w must be finite, but contains nan at index (1,)"):
        magnitude_mask(np.array([1.0, np.nan]), amount=1)
    with raises(TypeError, "weights must be a list or dict of arrays, not ndarray"):
        global_magnitude_masks(w, 0.5)
    with raises(TypeError, "weights['b'] must be a floating-point array, not dtype int32"):
        global_magnitude_masks({"a": w, "b": np.ones(2, dtype=np.int32)}, 0.5)
    with raises(ValueError, "amount must be between 0 and 8, not 9"):
        global_magnitude_masks([w, np.ones(2)], 9)


# --- N:M ---------------------------------------------------------------------------------------

def test_n_m_hand_computed():
    w = np.array([[0.1, -0.5, 0.3, 0.2, 1.0, 1.0, 1.0, 1.0],
                  [0.0, 0.0, 0.0, 0.0, 0.0, -3.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(prune_n_m(w, 2, 4), [
        [False, True, True, False, True, True, False, False],   # tie: lower indices kept
        [True, True, False, False, True, True, False, False],   # zeros: lowest indices kept
    ])
    np.testing.assert_array_equal(prune_n_m(w, 1, 4),
                                  [[0, 1, 0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 0, 1, 0, 0]])
    np.testing.assert_array_equal(prune_n_m(w, 1, 2),
                                  [[0, 1, 1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 0, 1, 1, 0]])
    assert prune_n_m(w, 4, 4).all()
    np.testing.assert_array_equal(prune_n_m(w, 3, 8),
                                  [[0, 0, 0, 0, 1, 1, 1, 0], [1, 1, 0, 0, 0, 1, 0, 0]])


def test_n_m_sign_does_not_matter_and_ties_keep_lower_index():
    np.testing.assert_array_equal(prune_n_m(np.array([2.0, -2.0, 2.0, -2.0]), 2, 4),
                                  [True, True, False, False])
    np.testing.assert_array_equal(prune_n_m(np.array([-2.0, 1.0, 2.0, -3.0]), 2, 4),
                                  [True, False, False, True])


def test_n_m_int8_extremes():
    w = np.array([[-128, 127, 3, -3, 0, 0, 5, 1, -1, 1, -1, 1]], dtype=np.int8)
    np.testing.assert_array_equal(prune_n_m(w, 2, 4),
                                  [[1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0]])
    wide = np.array([np.iinfo(np.int64).min, 5, np.iinfo(np.int64).max, 0], dtype=np.int64)
    np.testing.assert_array_equal(prune_n_m(wide, 2, 4), [True, False, True, False])
    unsigned = np.array([3, 2**64 - 1, 7, 7], dtype=np.uint64)
    np.testing.assert_array_equal(prune_n_m(unsigned, 2, 4), [False, True, True, False])


def test_n_m_axis_and_higher_rank():
    rng = np.random.default_rng(2)
    w = rng.integers(-3, 4, size=(8, 6)).astype(np.int8)  # many ties
    np.testing.assert_array_equal(prune_n_m(w, 2, 4, axis=0), ref_n_m(w.T, 2, 4).T)
    conv = rng.integers(-2, 3, size=(3, 8, 2, 2)).astype(np.float32)  # OIHW, groups along I
    mask = prune_n_m(conv, 1, 4, axis=1)
    flat = np.moveaxis(conv, 1, -1).reshape(-1, 8)
    np.testing.assert_array_equal(np.moveaxis(mask, 1, -1).reshape(-1, 8), ref_n_m(flat, 1, 4))
    assert mask.shape == conv.shape


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 4), (4, 8), (2, 8), (5, 16)]),
       st.sampled_from([np.int8, np.int16, np.float32]),
       st.integers(1, 3), st.integers(1, 3), st.data())
def test_n_m_matches_reference_and_is_n_m(nm, dtype, rows, groups, data):
    n, m = nm
    w = data.draw(hnp.arrays(dtype, (rows, groups * m),
                             elements=st.integers(-4, 4).map(dtype)))
    mask = prune_n_m(w, n, m)
    np.testing.assert_array_equal(mask, ref_n_m(w, n, m))
    assert (mask.reshape(rows, groups, m).sum(axis=-1) == n).all()
    pruned = apply_mask(w, mask)
    assert is_n_m(pruned, n, m)
    check_n_m(pruned, n, m)
    np.testing.assert_array_equal(prune_n_m(pruned, n, m), mask)  # pruning again is a no-op


def test_is_n_m_and_check_n_m_name_the_first_offending_group():
    w = np.array([[1, 0, 2, 0, 0, 0, 0, 0, 1, 1, 0, 0, 3, 4, 5, 0],
                  [1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=np.int8)
    assert not is_n_m(w, 2, 4)
    assert is_n_m(w, 3, 4)
    assert is_n_m(w[:, :12][:1], 2, 4)
    with raises(ValueError, "weights are not 2:4 along axis 1: group 3 of row (0,) has 3 "
                            "non-zeros"):
        check_n_m(w, 2, 4)
    with raises(ValueError, "weights are not 2:4 along axis 1: group 0 of row (1,) has 3 "
                            "non-zeros"):
        check_n_m(w[:, :12], 2, 4)
    # C order of (row, group): row (0,) (column 0 of w.T) comes before row (1,).
    with raises(ValueError, "weights are not 1:2 along axis 0: group 4 of row (0,) has 2 "
                            "non-zeros"):
        check_n_m(w.T, 1, 2, axis=0)
    with raises(ValueError, "weights are not 1:4 along axis 2: group 0 of row (0, 1) has 2 "
                            "non-zeros"):
        check_n_m(np.array([[[0.0, 0, 0, 1], [0, 0, -1.0, 1]]]), 1, 4)
    assert check_n_m(np.array([-0.0, 0.0, 1.0, 2.0]), 2, 4) is None  # -0.0 is zero


def test_n_m_errors():
    w = np.zeros((2, 8), dtype=np.int8)
    with raises(ValueError, "M must be a power of two in {2, 4, 8, 16}, not 6"):
        prune_n_m(w, 2, 6)
    with raises(ValueError, "M must be a power of two in {2, 4, 8, 16}, not 32"):
        is_n_m(w, 2, 32)
    with raises(ValueError, "N must be between 1 and M (4), not 5"):
        prune_n_m(w, 5, 4)
    with raises(ValueError, "N must be between 1 and M (4), not 0"):
        check_n_m(w, 0, 4)
    with raises(ValueError, "axis 1 has length 10, not divisible by M = 4"):
        prune_n_m(np.zeros((2, 10)), 2, 4)
    with raises(ValueError, "axis 0 has length 2, not divisible by M = 4"):
        prune_n_m(w, 2, 4, axis=0)
    with raises(ValueError, "axis must be in [-2, 1] for a 2-d array, not 2"):
        prune_n_m(w, 2, 4, axis=2)
    with raises(TypeError, "M must be an integer, not 4.0"):
        prune_n_m(w, 2, 4.0)
    with raises(TypeError, "w must be a real numeric array, not dtype bool"):
        prune_n_m(w != 0, 2, 4)
    with raises(TypeError, "w must be a real numeric array, not dtype complex128"):
        is_n_m(w.astype(complex), 2, 4)
    with raises(ValueError, "w must be finite, but contains inf at index (0, 1)"):
        prune_n_m(np.array([[0, np.inf, 0, 0]]), 2, 4)
    with raises(ValueError, "w must have at least 1 dimension, not 0"):
        prune_n_m(np.float32(1.0), 1, 2)


# --- filters and channels ----------------------------------------------------------------------

def test_filter_norms_l1_l2():
    w = np.array([[3.0, -4.0], [1.0, 1.0], [0.0, -2.0]], dtype=np.float32)
    np.testing.assert_array_equal(filter_norms(w, ord=1), [7.0, 2.0, 2.0])
    np.testing.assert_array_equal(filter_norms(w, ord=2), [5.0, np.sqrt(2.0), 2.0])
    np.testing.assert_array_equal(filter_norms(w, ord=1, axis=1), [4.0, 7.0])
    assert filter_norms(w).dtype == np.float64
    conv = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2) - 10  # OIHW
    np.testing.assert_array_equal(filter_norms(conv), np.abs(conv).reshape(2, -1).sum(axis=1))
    np.testing.assert_array_equal(filter_norms(conv, axis=1),
                                  np.abs(conv).transpose(1, 0, 2, 3).reshape(3, -1).sum(axis=1))


def test_filter_prune_mask_ties_keep_lower_index():
    w = np.array([[3.0, -4.0], [1.0, 1.0], [0.0, -2.0], [2.0, 0.0]])
    # L1: 7, 2, 2, 2 -> one pruned: index 3 (the highest of the tie); two: 3 and 2.
    np.testing.assert_array_equal(filter_prune_mask(w, 1), [True, True, True, False])
    np.testing.assert_array_equal(filter_prune_mask(w, 0.5), [True, True, False, False])
    # L2: 5, sqrt(2), 2, 2 -> index 1 first, then of the tie 2/3: index 3.
    np.testing.assert_array_equal(filter_prune_mask(w, 2, criterion="l2"),
                                  [True, False, True, False])
    np.testing.assert_array_equal(filter_prune_mask(w, 0.0), [True] * 4)
    np.testing.assert_array_equal(filter_prune_mask(w, 1.0), [False] * 4)


def test_fpgm_prunes_the_geometric_median_first():
    # Filters c * (3, 4) on a line, c = 0, 1, 2, 3, 10: distances 5 |c_i - c_j| (exact).
    c = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    w = (c[:, None] * np.array([3.0, 4.0])).reshape(5, 1, 1, 2)  # OIHW
    np.testing.assert_array_equal(fpgm_scores(w), 5 * np.array([16.0, 13.0, 12.0, 13.0, 34.0]))
    np.testing.assert_array_equal(filter_scores(w, criterion="fpgm"), fpgm_scores(w))
    # The median filter (c = 2) goes first, then of the tie 1 / 3 the lower index is kept.
    np.testing.assert_array_equal(filter_prune_mask(w, 1, criterion="fpgm"),
                                  [True, True, False, True, True])
    np.testing.assert_array_equal(filter_prune_mask(w, 2, criterion="fpgm"),
                                  [True, True, False, False, True])
    # A norm criterion prunes the smallest filter instead.
    np.testing.assert_array_equal(filter_prune_mask(w, 1, criterion="l1"),
                                  [False, True, True, True, True])


def test_fpgm_matches_pairwise_distance_matrix():
    w = np.random.default_rng(3).standard_normal((6, 3, 2, 2)).astype(np.float32)
    f = w.reshape(6, -1).astype(np.float64)
    dist = np.sqrt(((f[:, None, :] - f[None, :, :]) ** 2).sum(axis=-1))
    # Float64 sums of 12 squares then 6 distances, in whatever order NumPy takes: equal up to
    # the rounding of those sums (one ulp per term), not bit for bit.
    np.testing.assert_allclose(fpgm_scores(w), dist.sum(axis=1),
                               rtol=(12 + 6) * np.finfo(np.float64).eps, atol=0)


def test_channel_prune_mask_is_over_input_channels():
    w = np.array([[1.0, 0.0, -3.0], [1.0, 0.5, 0.0]])  # (out, in): column L1 = 2, 0.5, 3
    np.testing.assert_array_equal(channel_prune_mask(w, 1), [True, False, True])
    np.testing.assert_array_equal(channel_prune_mask(w, 2, criterion="l2"), [False, False, True])
    np.testing.assert_array_equal(channel_prune_mask(w, 1),
                                  filter_prune_mask(w, 1, axis=1))
    pruned = apply_mask(w, channel_prune_mask(w, 1), axis=1)
    np.testing.assert_array_equal(pruned, [[1.0, 0.0, -3.0], [1.0, 0.0, 0.0]])


def test_structured_errors():
    w = np.ones((4, 3))
    with raises(ValueError, "criterion must be one of 'l1', 'l2', 'fpgm', not 'l3'"):
        filter_prune_mask(w, 1, criterion="l3")
    with raises(ValueError, "criterion must be one of 'l1', 'l2', 'fpgm', not 'L1'"):
        channel_prune_mask(w, 1, criterion="L1")
    with raises(ValueError, "ord must be one of 1, 2, not 3"):
        filter_norms(w, ord=3)
    with raises(ValueError, "amount must be between 0 and 4, not 5"):
        filter_prune_mask(w, 5)
    with raises(ValueError, "amount must be between 0 and 3, not 4"):
        channel_prune_mask(w, 4)
    with raises(ValueError, "amount must be between 0.0 and 1.0, not 2.0"):
        filter_prune_mask(w, 2.0, criterion="fpgm")
    with raises(TypeError, "w must be a floating-point array, not dtype int8"):
        filter_prune_mask(w.astype(np.int8), 1)
    with raises(ValueError, "w must have at least 2 dimensions, not 1"):
        channel_prune_mask(np.ones(3), 1)
    with raises(ValueError, "axis must be in [-2, 1] for a 2-d array, not 2"):
        filter_norms(w, axis=2)


# --- neurons -----------------------------------------------------------------------------------

def test_neuron_scores_and_mask():
    a = np.array([[1.0, -2.0, 0.0, 0.5], [-3.0, 2.0, 0.0, -0.5]])
    np.testing.assert_array_equal(neuron_scores(a), [2.0, 2.0, 0.0, 0.5])
    np.testing.assert_array_equal(neuron_prune_mask(a, 2), [True, True, False, False])
    # third: of the tied 2.0 scores (units 0 and 1) the lower index is kept.
    np.testing.assert_array_equal(neuron_prune_mask(a, 3), [True, False, False, False])
    nchw = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(neuron_scores(nchw, axis=(0, 2, 3)),
                                  np.abs(nchw).mean(axis=(0, 2, 3), dtype=np.float64))
    np.testing.assert_array_equal(neuron_prune_mask(nchw, 1, axis=(0, 2, 3)), [False, True, True])


def _mlp(x, w1, b1, w2, b2):
    return np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2


def test_remove_dead_neurons_keeps_the_network_output():
    rng = np.random.default_rng(4)
    # Dyadic values with few bits: every sum is exact, whatever the summation order.
    w1 = rng.integers(-4, 5, size=(6, 5)) / 4.0
    b1 = rng.integers(-4, 5, size=6) / 4.0
    w1[[1, 4]] = 0.0
    b1[[1, 4]] = [-1.0, 0.0]                      # units 1 and 4 are dead: ReLU output 0
    w2 = rng.integers(-4, 5, size=(3, 6)) / 4.0
    b2 = rng.integers(-4, 5, size=3) / 4.0
    x = rng.integers(-8, 9, size=(32, 5)) / 8.0
    acts = np.maximum(x @ w1.T + b1, 0.0)
    keep = neuron_prune_mask(acts, 2)
    assert neuron_scores(acts)[[1, 4]].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(keep, [True, False, True, True, False, True])
    w1r, b1r, w2r = remove_neurons(w1, b1, w2, keep)
    assert (w1r.shape, b1r.shape, w2r.shape) == ((4, 5), (4,), (3, 4))
    np.testing.assert_array_equal(w1r, w1[[0, 2, 3, 5]])
    np.testing.assert_array_equal(w2r, w2[:, [0, 2, 3, 5]])
    np.testing.assert_array_equal(_mlp(x, w1r, b1r, w2r, b2), _mlp(x, w1, b1, w2, b2))
    w1r[0, 0] = 99.0  # new arrays, not views
    assert w1[0, 0] != 99.0


def test_remove_neurons_conv_layout_and_no_bias():
    w_this = np.zeros((4, 2, 3, 3), dtype=np.int8)
    w_next = np.zeros((5, 4, 1, 1), dtype=np.int8)
    keep = np.array([True, False, True, True])
    wt, b, wn = remove_neurons(w_this, None, w_next, keep)
    assert (wt.shape, b, wn.shape, wt.dtype) == ((3, 2, 3, 3), None, (5, 3, 1, 1), np.int8)


def test_neuron_errors():
    a = np.ones((4, 3))
    with raises(TypeError, "activations must be a floating-point array, not dtype int32"):
        neuron_scores(np.ones((2, 2), dtype=np.int32))
    with raises(ValueError, "activations must have at least one sample along axis 0, not 0"):
        neuron_scores(np.ones((0, 3)))
    with raises(ValueError, "axis must not repeat an axis, not (0, 0)"):
        neuron_scores(a, axis=(0, 0))
    with raises(ValueError, "activations must leave one unit axis after reducing axis 0, not 2"):
        neuron_prune_mask(np.ones((2, 3, 4)), 1)
    with raises(ValueError, "amount must be between 0 and 3, not 4"):
        neuron_prune_mask(a, 4)
    w1, b1, w2 = np.ones((3, 2)), np.ones(3), np.ones((2, 3))
    with raises(ValueError, "keep must have shape (3,), not (2,)"):
        remove_neurons(w1, b1, w2, np.array([True, False]))
    with raises(TypeError, "keep must be a boolean array, not dtype int64"):
        remove_neurons(w1, b1, w2, np.array([1, 0, 1]))
    with raises(ValueError, "b_this must have shape (3,), not (2,)"):
        remove_neurons(w1, np.ones(2), w2, np.ones(3, dtype=bool))
    with raises(ValueError, "w_next must have 3 input channels (axis 1) to match w_this, "
                            "not shape (3, 2)"):
        remove_neurons(w1, b1, w2.T, np.ones(3, dtype=bool))


# --- gradual schedule --------------------------------------------------------------------------

def test_cubic_sparsity_start_middle_end():
    kw = dict(initial=0.0, final=0.75, begin_step=0, end_step=100)
    assert cubic_sparsity(0, **kw) == 0.0
    assert cubic_sparsity(50, **kw) == 0.75 - 0.75 / 8  # (1 - 1/2)^3 = 1/8: 0.65625
    assert cubic_sparsity(100, **kw) == 0.75
    assert cubic_sparsity(75, **kw) == 0.75 - 0.75 / 64
    kw = dict(initial=0.25, final=0.75, begin_step=100, end_step=300)
    assert cubic_sparsity(0, **kw) == 0.25        # before begin: initial
    assert cubic_sparsity(100, **kw) == 0.25
    assert cubic_sparsity(200, **kw) == 0.75 - 0.5 / 8
    assert cubic_sparsity(10**6, **kw) == 0.75    # after end: final
    values = [cubic_sparsity(t, **kw) for t in range(100, 301)]
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_cubic_sparsity_frequency_holds_between_updates():
    kw = dict(initial=0.0, final=0.75, begin_step=0, end_step=100, frequency=30)
    assert [cubic_sparsity(t, **kw) for t in (0, 29)] == [0.0, 0.0]
    assert cubic_sparsity(59, **kw) == cubic_sparsity(30, initial=0.0, final=0.75, begin_step=0,
                                                      end_step=100)
    assert cubic_sparsity(99, **kw) == cubic_sparsity(90, **kw)
    assert cubic_sparsity(100, **kw) == 0.75


def test_pruning_schedule():
    s = PruningSchedule(initial=0.0, final=0.75, begin_step=10, end_step=110, frequency=25)
    assert s(60) == s.sparsity(60) == 0.75 - 0.75 / 8
    assert s.sparsity(84) == s.sparsity(60)
    assert [t for t in range(0, 200) if s.should_prune(t)] == [10, 35, 60, 85, 110]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.final = 0.5


def test_schedule_errors():
    kw = dict(initial=0.0, final=0.5, begin_step=0, end_step=10)
    with raises(ValueError, "final must be between 0.0 and 1.0, not 1.5"):
        cubic_sparsity(0, **{**kw, "final": 1.5})
    with raises(ValueError, "initial must be between 0.0 and 1.0, not -0.25"):
        PruningSchedule(**{**kw, "initial": -0.25})
    with raises(ValueError, "end_step must be greater than begin_step (10), not 5"):
        cubic_sparsity(0, **{**kw, "begin_step": 10, "end_step": 5})
    with raises(ValueError, "begin_step must be at least 0, not -1"):
        cubic_sparsity(0, **{**kw, "begin_step": -1})
    with raises(ValueError, "frequency must be at least 1, not 0"):
        cubic_sparsity(0, **kw, frequency=0)
    with raises(TypeError, "step must be an integer, not 2.5"):
        cubic_sparsity(2.5, **kw)
    with raises(TypeError, "final must be a real number, not '0.5'"):
        PruningSchedule(**{**kw, "final": "0.5"})


# --- masks -------------------------------------------------------------------------------------

def test_apply_mask_is_idempotent_and_reapplicable_after_update():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 8)).astype(np.float32)
    mask = prune_n_m(w, 2, 4)
    once = apply_mask(w, mask)
    assert once.dtype == np.float32 and once is not w
    np.testing.assert_array_equal(apply_mask(once, mask), once)
    np.testing.assert_array_equal(once[~mask], 0.0)
    np.testing.assert_array_equal(once[mask], w[mask])
    updated = once - np.float32(0.01) * rng.standard_normal(w.shape).astype(np.float32)
    assert not is_n_m(updated, 2, 4)           # a fake optimizer step revives pruned weights
    restored = apply_mask(updated, mask)
    assert is_n_m(restored, 2, 4)
    np.testing.assert_array_equal(restored[~mask], 0.0)
    np.testing.assert_array_equal(restored[mask], updated[mask])


def test_apply_mask_channel_axis_and_int8():
    w = np.arange(1, 25, dtype=np.int8).reshape(2, 3, 2, 2)  # OIHW
    out = apply_mask(w, np.array([True, False]), axis=0)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out[0], w[0])
    np.testing.assert_array_equal(out[1], 0)
    out = apply_mask(w, np.array([False, True, True]), axis=1)
    np.testing.assert_array_equal(out[:, 0], 0)
    np.testing.assert_array_equal(out[:, 1:], w[:, 1:])
    keep = filter_prune_mask(w.astype(np.float32), 1)
    np.testing.assert_array_equal(apply_mask(w, keep, axis=0)[keep], w[keep])


def test_apply_mask_errors():
    w = np.ones((3, 4))
    with raises(ValueError, "mask must have shape (3, 4), not (4, 3)"):
        apply_mask(w, np.ones((4, 3), dtype=bool))
    with raises(ValueError, "mask must have shape (3, 4), not (3,)"):
        apply_mask(w, np.ones(3, dtype=bool))
    with raises(ValueError, "mask must have shape (4,) for axis 1, not (3,)"):
        apply_mask(w, np.ones(3, dtype=bool), axis=1)
    with raises(TypeError, "mask must be a boolean array, not dtype float64"):
        apply_mask(w, np.ones((3, 4)))
    with raises(TypeError, "w must be a real numeric array, not str"):
        apply_mask("w", np.ones((3, 4), dtype=bool))


def test_sparsify_n_m_pads_a_ragged_group_with_zeros():
    from golden_model import sparsify_n_m

    w = np.array([[1, 5, -3, 2, 7, 1, -9]], dtype=np.int8)
    out = sparsify_n_m(w, 2, 4, axis=1)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, [[0, 5, -3, 0, 7, 0, -9]])
    full = np.random.default_rng(0).normal(size=(3, 8))
    np.testing.assert_array_equal(sparsify_n_m(full, 2, 4, axis=1),
                                  apply_mask(full, prune_n_m(full, 2, 4, axis=1)))
    col = sparsify_n_m(w.T, 1, 4, axis=0)                    # along axis 0 as well
    np.testing.assert_array_equal(col.T, [[0, 5, 0, 0, 0, 0, -9]])
