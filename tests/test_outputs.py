"""common/outputs.py, the one all-or-nothing writer: a failed write leaves an existing output
folder exactly as it was and nothing new behind; ``--out`` may be a symbolic link to, or a
mount point on, another filesystem (/dev/shm is a tmpfs here)."""

import os
from pathlib import Path

import pytest

from common import outputs
from common.outputs import OutputError, check_out_folder, write_file, write_folder
from sparsemac import cli

OTHER_FS = Path("/dev/shm")


def _snapshot(folder):
    return {p.name: (_snapshot(p) if p.is_dir() else p.read_bytes())
            for p in sorted(Path(folder).iterdir())}


def _fill(files):
    def fill(tmp):
        for name, data in files.items():
            (tmp / name).write_bytes(data)
    return fill


def test_new_and_existing_folders(tmp_path):
    out = tmp_path / "out"
    assert write_folder(out, _fill({"a": b"1", "b": b"2"})) == [out / "a", out / "b"]
    (out / "keep").write_bytes(b"mine")
    write_folder(out, _fill({"a": b"3"}))
    assert _snapshot(out) == {"a": b"3", "b": b"2", "keep": b"mine"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]          # no staging left


def test_failure_while_filling_leaves_the_folder(tmp_path):
    out = tmp_path / "out"
    write_folder(out, _fill({"a": b"1", "b": b"2"}))

    def fill(tmp):
        (tmp / "a").write_bytes(b"new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write '.*out': No space left on device"):
        write_folder(out, fill)
    assert _snapshot(out) == {"a": b"1", "b": b"2"}


def test_failure_while_moving_in_rolls_back(tmp_path, monkeypatch):
    """The third file cannot be moved in: the two already replaced come back."""
    out = tmp_path / "out"
    write_folder(out, _fill({"a": b"1", "b": b"2", "c": b"3"}))
    real = os.replace

    def flaky(src, dst):
        if Path(dst) == out / "c" and Path(src).parent.name != ".replaced":
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky)
    with pytest.raises(OutputError, match="Input/output error"):
        write_folder(out, _fill({"a": b"x", "b": b"y", "c": b"z"}))
    assert _snapshot(out) == {"a": b"1", "b": b"2", "c": b"3"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_entry_that_is_not_a_file_is_refused_first(tmp_path):
    out = tmp_path / "out"
    write_folder(out, _fill({"graph.json": b"old"}))
    (out / "summary.md").mkdir()
    (out / "summary.md" / "x").write_text("user's")
    with pytest.raises(OutputError, match=r"cannot write '.*summary.md': it exists and is not "
                                          r"a file"):
        write_folder(out, _fill({"graph.json": b"new", "summary.md": b"s"}))
    assert (out / "graph.json").read_bytes() == b"old"
    assert (out / "summary.md" / "x").read_text() == "user's"


@pytest.mark.skipif(not OTHER_FS.is_dir() or os.stat(OTHER_FS).st_dev == os.stat("/").st_dev,
                    reason="needs /dev/shm on a filesystem of its own")
def test_across_filesystems(tmp_path):
    """A symbolic link to a folder on another filesystem, and that filesystem's mount point's
    sub-folder: the files are staged beside their destination, so no rename crosses."""
    target = OTHER_FS / f"sparsemac-test-{os.getpid()}"
    target.mkdir()
    try:
        (target / "old").write_bytes(b"o")
        link = tmp_path / "link"
        link.symlink_to(target)
        write_folder(link, _fill({"a": b"1"}))
        write_folder(link, _fill({"a": b"2", "old": b"n"}))
        assert _snapshot(target) == {"a": b"2", "old": b"n"} and link.is_symlink()
        fresh = target / "new"
        write_folder(fresh, _fill({"b": b"3"}))
        assert _snapshot(fresh) == {"b": b"3"}
    finally:
        import shutil

        shutil.rmtree(target)


def test_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for out, message in ((tmp_path / "file", "exists and is not a folder"),
                         (tmp_path / "no" / "out", "does not exist"),
                         (tmp_path / "dangling", "is a symbolic link to nothing")):
        with pytest.raises(OutputError, match=message):
            check_out_folder(out)
    with pytest.raises(OutputError, match="is a folder, not a file"):
        write_file(tmp_path, "x")
    write_file(tmp_path / "f.json", "{}")
    assert (tmp_path / "f.json").read_text() == "{}"


def test_unwritable_folders(tmp_path, monkeypatch):
    """What a user without write permission sees (simulated: the tests may run as root)."""
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False)
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match=r"output folder '.*out' is not writable"):
        check_out_folder(tmp_path / "out")
    with pytest.raises(OutputError, match=r"output folder '.*' is not writable"):
        check_out_folder(tmp_path / "new")


@pytest.mark.parametrize("case", ["dangling", "long name", "not writable", "summary is a folder"])
def test_cli_generate_and_compress_outputs(case, tmp_path, capsys, monkeypatch):
    """issue 16, rows 5 and 7: one line, exit 2, the folder as it was."""
    out = tmp_path / "out"
    args = ["generate", "--rows", "2", "--cols", "2", "--sparsity", "2:4", "--out", str(out)]
    if case == "dangling":
        out.symlink_to(tmp_path / "nowhere")
        message = "is a symbolic link to nothing"
    elif case == "long name":
        args += ["--name", "a" * 300]
        message = "Name must be at most 128 characters, not 300"
    elif case == "not writable":
        out.mkdir()
        monkeypatch.setattr(outputs.os, "access", lambda path, mode: False)
        message = "is not writable"
    else:
        out.mkdir()
        (out / "sparsemac.v").write_text("old")
        (out / "sparsemac.json").mkdir()
        message = "sparsemac.json': it exists and is not a file"
    before = _snapshot(out) if out.is_dir() else None
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    if before is not None:
        assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if case == "long name" else ["out"])
