"""Where SparseMAC keeps what it can rebuild: the user's cache folder."""

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(name):
    """``$XDG_CACHE_HOME/sparsemac/<name>`` (default ``~/.cache/sparsemac/<name>``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sparsemac" / name
