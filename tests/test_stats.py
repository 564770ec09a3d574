"""sparsemac.stats: binomial standard errors, the verdict on accuracy claims, and the paired
comparison over seeds (mean ± std, Student's t, the paired binomial error of the test set)."""

import math
import re

import numpy as np
import pytest

from sparsemac.stats import (
    LEVEL,
    Z,
    at_least,
    binomial_se,
    compare,
    mean_std,
    paired_se,
    t_quantile,
    within,
)


def test_binomial_se_by_hand():
    assert binomial_se(0.97, 449) == pytest.approx(math.sqrt(0.97 * 0.03 / 449), rel=1e-15)
    assert round(binomial_se(0.97, 449), 5) == 0.00805
    assert binomial_se(1.0, 10) == binomial_se(0.0, 10) == 0.0
    assert binomial_se(0.5, 1) == 0.5


def test_within_holds_up_to_exactly_the_margin():
    n, ref, allowed = 2245, 0.97, 0.015
    se = math.hypot(binomial_se(ref - allowed, n), binomial_se(ref, n))
    edge = ref - allowed - Z * se
    assert within(edge + 1e-9, ref, n, allowed).holds
    assert not within(edge - 1e-6, ref, n, allowed).holds
    claim = within(0.95, ref, n, allowed, what="2:4")
    assert claim.shortfall == pytest.approx(0.02) and claim.margin == pytest.approx(Z * se)
    assert claim.se == se and claim.z == Z and claim.n == n
    # A better measured value always holds; a collapse does not widen its own margin.
    assert within(1.0, ref, n, allowed)
    assert within(0.0, ref, n, allowed).margin == claim.margin
    assert not within(0.5, ref, 449, 0.01)


def test_at_least_takes_the_error_at_the_floor():
    claim = at_least(0.0, 0.9, 449)
    assert claim.se == binomial_se(0.9, 449) and not claim.holds
    assert at_least(0.9 - 2.9 * binomial_se(0.9, 449), 0.9, 449).holds
    assert not at_least(0.9 - 3.1 * binomial_se(0.9, 449), 0.9, 449).holds
    assert at_least(0.5, 0.9, 449, z=30).holds and not at_least(0.5, 0.9, 449, z=25).holds


def test_messages_say_everything():
    text = str(within(0.9555, 0.9710, 449, 0.015, what="cnn kd_qat_2_4"))
    assert re.fullmatch(
        r"cnn kd_qat_2_4: 95\.55 % against 97\.10 % \(-1\.55 points\), allowed -1\.50 points, "
        r"noise margin 3\.\d\d points \(3 x 1\.\d\d, n = 449\): holds", text), text
    assert str(at_least(0.5, 0.9, 449, what="x")).endswith("CONTRADICTED")


@pytest.mark.parametrize("call, message", [
    (lambda: binomial_se(1.5, 10), "p must be a fraction in [0, 1], not 1.5"),
    (lambda: binomial_se(0.5, 0), "n must be at least 1, not 0"),
    (lambda: within(0.9, True, 10, 0.01), "reference must be a fraction in [0, 1], not True"),
    (lambda: within(0.9, 0.9, 10, -0.01), "allowed must be a fraction in [0, 1], not -0.01"),
    (lambda: at_least(float("nan"), 0.9, 10), "measured must be a fraction in [0, 1], not nan"),
    (lambda: at_least(0.9, 0.9, 10, z=-1), "z must be a non-negative number of standard errors, "
                                           "not -1"),
])
def test_errors(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_counts_must_be_integers():
    with pytest.raises(TypeError, match=re.escape("n must be an integer, not 2.0")):
        binomial_se(0.5, 2.0)


# --- several seeds -------------------------------------------------------------------------------

def bools(*rows):
    return [np.array(r, bool) for r in rows]


def test_mean_std_by_hand():
    assert mean_std([0.9]) == (0.9, 0.0)
    mean, std = mean_std([0.96, 0.98, 0.97])
    assert mean == pytest.approx(0.97) and std == pytest.approx(0.01)
    assert mean_std((1, 2, 3, 4)) == (2.5, pytest.approx(math.sqrt(5 / 3)))


def test_t_quantiles():
    # Two-sided 95 %: the tabulated values and the expansion beyond 30 degrees of freedom.
    assert [t_quantile(d) for d in (1, 2, 4, 30)] == [12.7062, 4.3027, 2.7764, 2.0423]
    assert t_quantile(31) == pytest.approx(2.0395, abs=1e-4)
    assert t_quantile(120) == pytest.approx(1.9799, abs=1e-4)
    assert t_quantile(10**6) == pytest.approx(1.96, abs=1e-4)
    assert LEVEL == 0.95


def test_paired_se_counts_the_discordant_images_only():
    a, b = bools([1, 1, 0, 0, 1, 1], [1, 0, 1, 0, 1, 1])
    p10, p01 = 1 / 6, 1 / 6
    assert paired_se(a, b) == pytest.approx(math.sqrt((p10 + p01 - (p10 - p01) ** 2) / 6))
    same = np.array([True, False, True])
    assert paired_se(same, same) == 0.0
    # Far below two independent binomial errors when the predictors mostly agree.
    a = np.ones(449, bool)
    a[:10] = False
    b = a.copy()
    b[10:12] = False
    independent = math.hypot(binomial_se(439 / 449, 449), binomial_se(437 / 449, 449))
    assert paired_se(a, b) < 0.35 * independent


def test_compare_over_seeds():
    a = bools([1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1])
    b = bools([1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0])
    c = compare(a, b, what="x vs y")
    assert c.diffs == (0.25, 0.0, 0.25) and c.seeds == 3
    assert c.mean == pytest.approx(1 / 6) and c.std == pytest.approx(np.std(c.diffs, ddof=1))
    assert c.seed_se == pytest.approx(c.std / math.sqrt(3))
    test_var = np.mean([paired_se(x, y) ** 2 for x, y in zip(a, b)])
    assert c.test_se == pytest.approx(math.sqrt(test_var))
    assert c.se == pytest.approx(math.hypot(c.seed_se, c.test_se))
    assert c.quantile == t_quantile(2)
    assert (c.low, c.high) == pytest.approx((c.mean - 4.3027 * c.se, c.mean + 4.3027 * c.se))
    assert c.within_noise
    assert str(c).startswith("x vs y: +16.67 points [") and str(c).endswith(
        "(3 seeds, 95 %): within noise")


def test_compare_edge_cases():
    same = bools([1, 0, 1], [0, 0, 1])
    c = compare(same, same)
    assert (c.mean, c.se, c.low, c.high) == (0.0, 0.0, 0.0, 0.0) and c.within_noise
    # One seed: no spread to measure, the test set's noise alone with the normal quantile.
    one = compare(bools([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]), bools([1, 0, 1, 1, 1, 1, 1, 1, 1, 0]))
    assert one.std == 0.0 and one.quantile == pytest.approx(1.96, abs=1e-4)
    assert one.se == one.test_se == paired_se(*bools([1] * 9 + [0], [1, 0] + [1] * 7 + [0]))
    # A consistent difference beyond both noises.
    right = [np.ones(200, bool)] * 5
    wrong = [np.r_[np.ones(150, bool), np.zeros(50, bool)]] * 5
    big = compare(wrong, right)
    assert big.mean == -0.25 and big.high < 0 and not big.within_noise
    assert str(big).endswith("beyond noise")


@pytest.mark.parametrize("call, exc, message", [
    (lambda: mean_std([]), ValueError, "values must hold at least one number, not 0"),
    (lambda: mean_std([0.5, float("nan")]), ValueError, "values must be finite numbers, not nan"),
    (lambda: mean_std("ab"), TypeError, "values must be a sequence of numbers, not 'ab'"),
    (lambda: t_quantile(0), ValueError, "df must be at least 1, not 0"),
    (lambda: compare([], []), ValueError, "a must hold at least one seed, not 0"),
    (lambda: compare(bools([1]), bools([1], [0])), ValueError,
     "a and b must hold the same number of seeds, not 1 and 2"),
    (lambda: compare(np.ones((2, 3), bool), []), TypeError,
     "a must be a list of bool arrays, one per seed, not ndarray"),
    (lambda: compare([np.ones(3)], bools([1, 1, 1])), TypeError,
     "a[0] must be a non-empty 1-d bool array (one entry per test image), not dtype float64 "
     "and shape (3,)"),
    (lambda: compare(bools([1, 1]), bools([1, 1, 1])), ValueError,
     "a and b must cover the same test images, not 2 and 3"),
    (lambda: paired_se(np.array([], bool), np.array([], bool)), TypeError,
     "a must be a non-empty 1-d bool array"),
])
def test_comparison_errors(call, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        call()
