"""The N:M sparsity notation, parsed, checked and written in one place.

``N:M`` means: in every group of ``M`` consecutive weights along the GEMM reduction axis, at
most ``N`` are non-zero. ``M`` is a power of two up to 16. ``"dense"`` is ``1:1``: an array
with one multiplier per PE and no index multiplexers, a layer that is not pruned.
"""

import dataclasses

from .checks import check_int

__all__ = ["Sparsity", "GROUP_SIZES"]

#: Group sizes ``M`` of the notation (1: dense).
GROUP_SIZES = (1, 2, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class Sparsity:
    """An ``N:M`` pattern, ``1 <= N <= M``, ``M`` in :data:`GROUP_SIZES`."""

    n: int
    m: int

    def __post_init__(self):
        m = check_int(self.m, "M", lo=1)
        if m not in GROUP_SIZES:
            raise ValueError(f"M must be a power of two in {{1, 2, 4, 8, 16}}, not {m}")
        n = check_int(self.n, "N", lo=1)
        if n > m:
            raise ValueError(f"N must be at most M ({m}), not {n}")
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "n", n)

    @classmethod
    def parse(cls, text):
        """``"2:4"`` -> ``Sparsity(2, 4)``; ``"dense"`` -> ``Sparsity(1, 1)``; a
        :class:`Sparsity` is returned as it is."""
        if isinstance(text, Sparsity):
            return text
        if not isinstance(text, str):
            raise TypeError(f"sparsity must be a string like '2:4' or 'dense', not {text!r}")
        if text.strip().lower() == "dense":
            return cls(1, 1)
        parts = text.split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"sparsity must be 'N:M' (e.g. '2:4') or 'dense', not {text!r}")
        return cls(int(parts[0]), int(parts[1]))

    @property
    def dense(self):
        """Every weight kept: ``1:1`` (or ``M:M``)."""
        return self.n == self.m

    def pattern(self):
        """``(n, m)`` of a pruning pattern, ``None`` when dense: what a layer declares."""
        return None if self.dense else (self.n, self.m)

    def __str__(self):
        return "dense" if self.m == 1 else f"{self.n}:{self.m}"
