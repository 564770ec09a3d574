"""Small helpers shared by the training tests (importance, regularization, combined loss,
distillation, low rank, reduction, train): ``raises`` matches an exception's message literally,
and ``central_difference`` is the numeric gradient the analytic backward passes are checked
against. The one-BLAS-thread fixture they opt into lives in ``conftest.py``."""

import re

import numpy as np
import pytest


def raises(exc, message):
    """``pytest.raises(exc)`` whose message must contain ``message`` verbatim (not a regex)."""
    return pytest.raises(exc, match=re.escape(message))


def central_difference(f, arr, eps=1e-6):
    """The gradient of the scalar ``f()`` with respect to ``arr``, element by element:
    ``(f(a + eps) - f(a - eps)) / (2 eps)``, perturbing ``arr`` in place and restoring it."""
    out = np.zeros_like(arr)
    for k in np.ndindex(arr.shape):
        old = arr[k]
        arr[k] = old + eps
        hi = f()
        arr[k] = old - eps
        lo = f()
        arr[k] = old
        out[k] = (hi - lo) / (2 * eps)
    return out
