"""Writing outputs all or nothing: a failed run leaves nothing behind, and an existing output
folder as it was."""

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from .errors import UserError

__all__ = ["write_atomic", "write_folder", "check_out_folder", "check_out_file"]


def write_atomic(path, text):
    """Write ``text`` (str, or bytes) to ``path`` through a temporary file, so a failure
    leaves nothing."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"output folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_out_file(path):
    """``path`` must be a file or not exist yet, in an existing, writable folder."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {str(path)!r} is a folder, not a file")
    if not path.parent.is_dir():
        raise UserError(f"output folder {str(path.parent)!r} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserError(f"output folder {str(path.parent)!r} is not writable")


def check_out_folder(out):
    """``out`` must be a folder or not exist yet, in an existing folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {str(out)!r} exists and is not a folder")
    if not out.parent.is_dir():
        raise UserError(f"output folder {str(out.parent)!r} does not exist")


def write_folder(out, fill):
    """Write a folder all or nothing: ``fill(tmp)`` writes the files into a temporary folder
    next to ``out`` (whose parent must exist), which is then renamed to ``out`` (a new folder)
    or whose files are moved into it (an existing one). Returns the paths written."""
    out = Path(out)
    tmp = out.parent / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.mkdir()               # (not mkdtemp: the folder gets the umask's permissions)
    except OSError as exc:
        raise UserError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    try:
        fill(tmp)
        names = sorted(f.name for f in tmp.iterdir())
        if out.exists():
            for name in names:
                os.replace(tmp / name, out / name)
            tmp.rmdir()
        else:
            os.rename(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
        raise
    return [out / name for name in names]
