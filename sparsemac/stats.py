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

Several seeds (:func:`compare`): is a flow's accuracy different from a reference's (the float
baseline, or the technique it refines) beyond noise? Both were measured on the same test
images for every seed ``s`` of ``S`` (each seed its own initialization and shuffles), so the
comparison is paired twice over:

- over seeds: the per-seed differences ``d_s = acc_a,s - acc_b,s``, their mean ``d`` and
  sample standard deviation ``sd``; ``sd / sqrt(S)`` is the standard error from training
  randomness (Student's paired t);
- over test images: the test set is one draw of the data, the same for every seed, so its
  noise does not average out over seeds. Per seed it is the binomial standard error of a
  paired difference of proportions (McNemar's, the Wald form): with ``p10`` (``p01``) the
  fraction of test images only ``a`` (only ``b``) gets right,
  ``se_s^2 = (p10 + p01 - (p10 - p01)^2) / n``; images both get right or both get wrong add no
  noise, which is why it is much smaller than two independent binomial errors (0.2 to 0.5
  points for a pruned network against its baseline on 449 digits, against 1.1).
  ``se_test^2`` is the mean of the ``se_s^2``, taken whole (not divided by ``S``): the
  conservative limit of seeds whose test-set errors are fully correlated.

The interval is ``d +- t * sqrt(sd^2 / S + se_test^2)``, ``t`` the two-sided 95 % quantile of
Student's t with ``S - 1`` degrees of freedom (12.71 for 2 seeds, 2.78 for 5: few seeds give
wide intervals, as they should); with one seed there is no spread to measure and the
interval is ``d +- 1.96 se_test``, test-set noise alone. A difference is **within noise**
when the interval includes 0.
"""

import dataclasses
import math
import numbers

import numpy as np

from common.checks import check_int

__all__ = ["Z", "LEVEL", "binomial_se", "Claim", "within", "at_least", "mean_std",
           "t_quantile", "paired_se", "Comparison", "compare"]

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


# --- several seeds: paired comparisons -----------------------------------------------------------

#: Two-sided confidence level of :func:`compare`'s interval.
LEVEL = 0.95

# Two-sided 95 % quantiles of Student's t, 1 to 30 degrees of freedom.
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
_Z975 = 1.959964


def t_quantile(df):
    """Two-sided 95 % quantile of Student's t with ``df`` degrees of freedom (the 0.975
    quantile): tabulated to 4 decimals up to 30, beyond by the Cornish-Fisher expansion around
    the normal quantile (within 1e-5 there).

    >>> t_quantile(4)
    2.7764
    """
    df = check_int(df, "df", lo=1)
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_std(values):
    """``(mean, sample standard deviation)`` of a non-empty sequence of numbers; the standard
    deviation of a single value is 0 (no spread measured).

    >>> [round(v, 6) for v in mean_std([0.96, 0.98])]
    [0.97, 0.014142]
    """
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"values must be a sequence of numbers, not {values!r}")
    if len(values) == 0:
        raise ValueError("values must hold at least one number, not 0")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"values must be finite numbers, not {v!r}")
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _correctness(x, name):
    if not isinstance(x, np.ndarray) or x.dtype != np.bool_ or x.ndim != 1 or x.size == 0:
        what = (f"dtype {x.dtype} and shape {x.shape}" if isinstance(x, np.ndarray)
                else type(x).__name__)
        raise TypeError(f"{name} must be a non-empty 1-d bool array (one entry per test "
                        f"image), not {what}")
    return x


def _pair(a, b, name="a"):
    a = _correctness(a, name)
    b = _correctness(b, "b" if name == "a" else name.replace("a", "b", 1))
    if a.shape != b.shape:
        raise ValueError(f"a and b must cover the same test images, not {a.size} and "
                         f"{b.size}")
    return a, b


def paired_se(a, b):
    """Binomial standard error of the accuracy difference ``mean(a) - mean(b)`` of two
    predictors on the same test images (module docstring): ``sqrt((p10 + p01 -
    (p10 - p01)^2) / n)``. ``a``, ``b``: bool arrays, ``True`` where each predictor is right.

    >>> round(paired_se(np.array([True, True, False]), np.array([True, False, True])), 6)
    0.471405
    """
    a, b = _pair(a, b)
    p10 = float(np.mean(a & ~b))
    p01 = float(np.mean(b & ~a))
    return math.sqrt(max(p10 + p01 - (p10 - p01) ** 2, 0.0) / a.size)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The paired comparison of two accuracies over seeds (:func:`compare`).

    Members
    -------
    what : str
        What is compared (for messages and reports).
    diffs : tuple of float
        ``acc_a - acc_b`` of every seed.
    mean, std : float
        Their mean and sample standard deviation (0 for one seed).
    seed_se, test_se, se : float
        ``std / sqrt(S)``, the test-set standard error, and ``hypot`` of both.
    quantile : float
        ``t_quantile(S - 1)``, or 1.96 for one seed.
    """

    what: str
    diffs: tuple
    mean: float
    std: float
    seed_se: float
    test_se: float
    se: float
    quantile: float

    @property
    def seeds(self):
        return len(self.diffs)

    @property
    def low(self):
        return self.mean - self.quantile * self.se

    @property
    def high(self):
        return self.mean + self.quantile * self.se

    @property
    def within_noise(self):
        """The interval includes 0 (up to rounding)."""
        return self.low <= 1e-12 and self.high >= -1e-12

    def __str__(self):
        verdict = "within noise" if self.within_noise else "beyond noise"
        return (f"{self.what}: {100 * self.mean:+.2f} points [{100 * self.low:+.2f}, "
                f"{100 * self.high:+.2f}] ({self.seeds} seed{'s' * (self.seeds > 1)}, "
                f"{100 * LEVEL:g} %): {verdict}")


def compare(a, b, *, what="difference"):
    """Paired comparison of predictor ``a`` against reference ``b`` over seeds (module
    docstring).

    Parameters
    ----------
    a, b : sequences of bool arrays
        One array per seed, in the same seed order: ``True`` for every test image the
        predictor gets right (the same images, in the same order, for both).
    what : str
        Label of the comparison.

    Returns
    -------
    Comparison

    Raises
    ------
    TypeError, ValueError
        Not sequences of non-empty 1-d bool arrays, no seed, a different number of seeds, or
        arrays of different lengths.
    """
    for seq, name in ((a, "a"), (b, "b")):
        if isinstance(seq, np.ndarray) or not isinstance(seq, (list, tuple)):
            raise TypeError(f"{name} must be a list of bool arrays, one per seed, not "
                            f"{type(seq).__name__}")
    if len(a) == 0:
        raise ValueError("a must hold at least one seed, not 0")
    if len(a) != len(b):
        raise ValueError(f"a and b must hold the same number of seeds, not {len(a)} and "
                         f"{len(b)}")
    pairs = [_pair(x, y, f"a[{i}]") for i, (x, y) in enumerate(zip(a, b))]
    diffs = tuple(float(np.mean(x)) - float(np.mean(y)) for x, y in pairs)
    mean, std = mean_std(diffs)
    seeds = len(diffs)
    seed_se = std / math.sqrt(seeds)
    test_se = math.sqrt(sum(paired_se(x, y) ** 2 for x, y in pairs) / seeds)
    quantile = t_quantile(seeds - 1) if seeds > 1 else _Z975
    return Comparison(str(what), diffs, mean, std, seed_se, test_se,
                      math.hypot(seed_se, test_se), quantile)
