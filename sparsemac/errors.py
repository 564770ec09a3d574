"""The one user-error type of the command line, and where other errors become one.

:class:`UserError` is what the ``sparsemac`` command prints as one line (exit status 2).
Everything else keeps its traceback: an internal bug must look like one. The layers below
(``golden_model``, ``hdl``, ``host``, ``explore``) validate their parameters with
``ValueError`` / ``TypeError`` (and ``golden_model.GraphError`` for graph and model files);
the command line turns those into a :class:`UserError` only around the calls that validate
what the user gave (:func:`user_input`), never around the work itself.
"""

import contextlib

__all__ = ["UserError", "user_input"]


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


@contextlib.contextmanager
def user_input(what=None):
    """Inside this block, a ``ValueError`` or ``TypeError`` is a verdict on the user's input:
    it becomes a :class:`UserError` (prefixed with ``what``, when given)."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise UserError(f"{what}: {exc}" if what else str(exc)) from None
