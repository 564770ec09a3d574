"""sparsemac.stats: binomial standard errors and the verdict on accuracy claims."""

import math
import re

import pytest

from sparsemac.stats import Z, at_least, binomial_se, within


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
