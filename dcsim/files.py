"""Writing files: atomically (a temporary file beside the target, then a rename), and
only when the text changed. The one place dcsim writes a file it must not leave half
written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomic(path, write: Callable, mode: int | None = None) -> Path:
    """Write ``path`` through ``write(f)`` (``f`` a binary file object) all or nothing.

    The data goes to a temporary file in the same folder, is flushed to disk and renamed
    over ``path``, so a failure (an exception, Ctrl-C) leaves ``path`` as it was and no
    temporary file behind. The file gets ``mode`` (default: what ``open()`` would give,
    ``0o666`` less the umask). OSError propagates for the caller to name the file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is None:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes_atomic(path, blob: bytes) -> Path:
    """:func:`write_atomic` of a byte string."""
    return write_atomic(path, lambda f: f.write(blob))


def write_text_if_changed(path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that (so build tools
    keyed on file times see no change); True if it wrote."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    write_bytes_atomic(path, text.encode())
    return True
