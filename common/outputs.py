"""Writing outputs all or nothing: a failed run leaves nothing behind, and an existing output
folder exactly as it was; across filesystems too (``--out`` a symbolic link to, or a mount
point on, another one).

One writer for every command that writes a folder (``generate``, ``compress``, ``demo``) or a
file (``--json``, ``run --out``):

* :func:`check_out_folder` / :func:`check_out_file` say before any work whether the place can
  be written (an :class:`OutputError` naming the path and the reason);
* :func:`write_folder` has ``fill(tmp)`` write the files into a staging folder on the same
  filesystem as their destination (inside an existing output folder, its symbolic link
  followed; else beside the new one), then moves them in: a new folder is one rename; into an
  existing folder each file it replaces is first moved aside into the staging folder, and any
  failure moves every one of them back;
* :func:`write_file` writes a file through a temporary one in its folder.
"""

import os
import shutil
import uuid
from pathlib import Path

__all__ = ["OutputError", "check_out_folder", "check_out_file", "write_folder", "write_file"]


class OutputError(ValueError):
    """The output cannot be written where the user asked (one line: the path and why)."""


def _q(path):
    return repr(str(path))


def _writable(folder, what):
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {_q(folder)} is not writable")


def check_out_folder(out):
    """``out`` must be a writable folder, or not exist yet in a writable folder; a symbolic
    link to a folder is followed, a dangling one refused."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise OutputError(f"output {_q(out)} is a symbolic link to nothing "
                          f"({_q(os.readlink(out))})")
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"output {_q(out)} exists and is not a folder")
        _writable(out, "output folder")
        return
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"output folder {_q(parent)} does not exist")
    _writable(parent, "output folder")


def check_out_file(path):
    """``path`` must be a file or not exist yet, in an existing, writable folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output {_q(path)} is a folder, not a file")
    if not path.parent.is_dir():
        raise OutputError(f"output folder {_q(path.parent)} does not exist")
    _writable(path.parent, "output folder")


def _staging(base):
    tmp = base / f".sparsemac-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()                   # (not mkdtemp: the folder gets the umask's permissions)
    return tmp


def write_folder(out, fill):
    """Write the folder ``out`` all or nothing: ``fill(tmp)`` writes the files into a staging
    folder (module docstring). Returns the paths written.

    Raises
    ------
    OutputError
        ``out`` cannot be written (:func:`check_out_folder`), an entry it would replace is
        not a file, or the file system refused (the message carries its reason); ``out`` is
        then as it was.
    """
    out = Path(out)
    check_out_folder(out)
    existing = out.exists()
    target = out.resolve() if existing else out
    try:
        tmp = _staging(target if existing else target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {_q(out)}: {exc.strerror or exc}") from None
    try:
        fill(tmp)
        names = sorted(f.name for f in tmp.iterdir())
        if not existing:
            os.rename(tmp, target)
            return [out / name for name in names]
        _swap_in(tmp, target, names)
        return [out / name for name in names]
    except OSError as exc:
        raise OutputError(f"cannot write {_q(out)}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp, target, names):
    """Move ``names`` from ``tmp`` into ``target``, the files they replace moved aside into
    ``tmp`` first; on any failure every replaced file is moved back and the new ones
    removed."""
    for name in names:
        old = target / name
        if (old.exists() or old.is_symlink()) and (old.is_dir() or not
                                                   (old.is_file() or old.is_symlink())):
            raise OutputError(f"cannot write {_q(old)}: it exists and is not a file")
    aside = tmp / ".replaced"
    aside.mkdir()
    moved, placed = [], []
    try:
        for name in names:
            old = target / name
            if old.exists() or old.is_symlink():
                os.replace(old, aside / name)
                moved.append(name)
            os.replace(tmp / name, target / name)
            placed.append(name)
    except BaseException:
        for name in placed:
            (target / name).unlink(missing_ok=True)
        for name in moved:
            os.replace(aside / name, target / name)
        raise


def write_file(path, data):
    """Write ``data`` (str or bytes) to the file ``path`` through a temporary file in its
    folder, so a failure leaves nothing (and an existing file as it was)."""
    path = Path(path)
    check_out_file(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {_q(path)}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
