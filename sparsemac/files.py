"""Writing outputs all or nothing (:mod:`common.outputs`, the one writer), with its errors as
the command line's :class:`~.errors.UserError`: a failed run leaves nothing behind, and an
existing output folder as it was."""

import functools

from common import outputs

from .errors import UserError

__all__ = ["write_atomic", "write_folder", "check_out_folder", "check_out_file"]


def _as_user_error(fn):
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except outputs.OutputError as exc:
            raise UserError(str(exc)) from None
    return wrapped


write_atomic = _as_user_error(outputs.write_file)
write_folder = _as_user_error(outputs.write_folder)
check_out_folder = _as_user_error(outputs.check_out_folder)
check_out_file = _as_user_error(outputs.check_out_file)
