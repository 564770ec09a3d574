"""How far a measured test accuracy may fall from a claim by chance alone.

A test accuracy ``p`` measured on ``n`` predictions (test images, or test images times
seeds when accuracies are averaged over seeds) is a binomial proportion: its standard error
is ``sqrt(p (1 - p) / n)``. On the 449 digits test images one image is 0.22 points and the
standard error of a 97 % accuracy is 0.80 points, so a claim such as "int8 within 1 point of
float" cannot be checked by comparing two single numbers: a new NumPy or BLAS release that
moves training by a few images would flip the verdict without anything being wrong.

A claim is therefore checked as a one-sided test: it is contradicted only when the measured
shortfall exceeds the claimed one by more than ``z`` standard errors of the difference. With
the default :data:`Z` = 3 a true claim is reported broken with probability at most 0.13 %,
while a real loss of a few points (a bug) still shows. The two accuracies of a comparison are
treated as independent draws, which overstates the noise of a paired comparison on one test
set (measured over 12 seeds of the quick flows: the float baseline's spread between seeds is
0.40 points where one seed's binomial standard error is 0.80): the margin is conservative.
"""

import dataclasses
import math

from common.checks import check_int

__all__ = ["Z", "binomial_se", "Claim", "within", "at_least"]

#: Standard errors of margin before a claim counts as contradicted (one-sided, 0.13 %).
Z = 3.0


def _check_fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], not {value!r}")
    return float(value)


def _check_count(value, name):
    return check_int(value, name, lo=1)


def _check_z(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.0 <= value < math.inf:
        raise ValueError(f"z must be a non-negative number of standard errors, not {value!r}")
    return float(value)


def binomial_se(p, n):
    """Standard error ``sqrt(p (1 - p) / n)`` of a proportion ``p`` measured on ``n`` draws.

    >>> round(binomial_se(0.97, 449), 5)
    0.00805
    """
    p = _check_fraction(p, "p")
    n = _check_count(n, "n")
    return math.sqrt(p * (1.0 - p) / n)


@dataclasses.dataclass(frozen=True)
class Claim:
    """The verdict on one claim ``measured >= reference - allowed``, up to noise.

    ``se`` is the standard error of ``measured - reference`` (of ``measured`` alone when the
    reference is a constant), ``margin = z * se``; the claim ``holds`` unless
    ``reference - measured > allowed + margin``. ``str()`` says all of it in one line, for
    assertion messages and reports.
    """

    what: str
    measured: float
    reference: float
    allowed: float
    n: int
    se: float
    z: float

    @property
    def shortfall(self):
        """``reference - measured`` (negative when the measured value is the larger)."""
        return self.reference - self.measured

    @property
    def margin(self):
        return self.z * self.se

    @property
    def holds(self):
        return self.shortfall <= self.allowed + self.margin + 1e-12

    def __bool__(self):
        return self.holds

    def __str__(self):
        verdict = "holds" if self.holds else "CONTRADICTED"
        return (f"{self.what}: {100 * self.measured:.2f} % against {100 * self.reference:.2f} %"
                f" ({-100 * self.shortfall:+.2f} points), allowed -{100 * self.allowed:.2f}"
                f" points, noise margin {100 * self.margin:.2f} points ({self.z:g} x "
                f"{100 * self.se:.2f}, n = {self.n}): {verdict}")


def within(measured, reference, n, allowed, *, what="accuracy", z=Z):
    """The claim that accuracy ``measured`` is at most ``allowed`` below accuracy ``reference``,
    both measured on ``n`` predictions. The standard error of their difference is taken where
    the claim is tight, ``sqrt(se(reference - allowed)^2 + se(reference)^2)`` (so that a
    collapse of ``measured`` does not widen its own margin)."""
    measured = _check_fraction(measured, "measured")
    reference = _check_fraction(reference, "reference")
    allowed = _check_fraction(allowed, "allowed")
    se = math.hypot(binomial_se(max(reference - allowed, 0.0), n), binomial_se(reference, n))
    return Claim(what, measured, reference, allowed, n, se, _check_z(z))


def at_least(measured, floor, n, *, what="accuracy", z=Z):
    """The claim that the true accuracy behind ``measured`` (on ``n`` predictions) is at least
    the constant ``floor``; the standard error is taken at ``floor``, the claim's own value
    (so that a collapse to 0 % is not excused by a standard error of 0)."""
    measured = _check_fraction(measured, "measured")
    floor = _check_fraction(floor, "floor")
    se = binomial_se(floor, n)
    return Claim(what, measured, floor, 0.0, n, se, _check_z(z))
