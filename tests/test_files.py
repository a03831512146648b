"""dcsim.files: the one atomic writer and the one write-if-changed."""

import os
import stat

import pytest

from dcsim.files import write_atomic, write_bytes_atomic, write_text_if_changed


def test_atomic_write_gives_open_mode_and_replaces(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "a.bin", b"one")
        write_bytes_atomic(path, b"two")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644       # readable by others, not 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "keep.npz"
    path.write_bytes(b"old")

    def half(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, half)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz"]
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(tmp_path / "missing" / "x", b"")


def test_write_text_if_changed_leaves_an_equal_file_alone(tmp_path):
    path = tmp_path / "rtl.v"
    assert write_text_if_changed(path, "module a;\n") is True
    os.utime(path, (1_000_000, 1_000_000))
    assert write_text_if_changed(path, "module a;\n") is False
    assert path.stat().st_mtime == 1_000_000
    assert write_text_if_changed(path, "module b;\n") is True
    assert path.read_text() == "module b;\n"
