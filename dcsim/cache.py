"""The per-user cache: rebuildable files (Verilator builds) kept out of the working folder.

Where (the first that is set): ``$DCSIM_CACHE``; ``$XDG_CACHE_HOME/dcsim`` (an absolute
``XDG_CACHE_HOME`` only, as the XDG base-directory specification says);
``~/.cache/dcsim``. Every folder a user works in shares it. Inside, one folder per kind
(``verilator/``, ...) holds one *entry* per key (e.g. an engine configuration's hash);
an entry being built is guarded by the lock file ``.lock`` inside it (:func:`locked`),
so two processes building the same entry at once build it once, and ``dcsim cache
clear`` leaves an entry alone while another process holds its lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path

CACHE_ENV = "DCSIM_CACHE"
LOCK_NAME = ".lock"


def cache_root() -> Path:
    """The cache folder (not created here); see the module docstring for the order."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "dcsim"
    return Path.home() / ".cache" / "dcsim"


@contextlib.contextmanager
def locked(lock_path: Path, on_wait=None):
    """Hold an exclusive ``flock`` on ``lock_path`` (created with its folders) for the
    block. If another process holds it, call ``on_wait()`` once, then wait.

    The lock file may be removed by :func:`clear` while a process waits on it; so after
    acquiring, the lock is retried until the file locked is the one at ``lock_path``.
    """
    lock_path = Path(lock_path)
    while True:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                return
        finally:
            os.close(fd)


def _bytes(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def entries(root: Path | None = None) -> list:
    """Every entry of the cache: ``{"kind", "name", "path", "bytes"}`` dicts, sorted."""
    root = cache_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    out = []
    for kind in sorted(root.iterdir()):
        children = sorted(kind.iterdir()) if kind.is_dir() else [kind]
        for entry in children:
            out.append({"kind": kind.name, "name": entry.name, "path": str(entry),
                        "bytes": _bytes(entry)})
    return out


def info(root: Path | None = None) -> dict:
    """``{"path", "bytes", "entries"}``: the cache folder, its total size in bytes and
    :func:`entries`."""
    root = cache_root() if root is None else Path(root)
    found = entries(root)
    return {"path": str(root), "bytes": sum(e["bytes"] for e in found), "entries": found}


def clear(root: Path | None = None) -> dict:
    """Remove every entry no process holds the lock of; ``{"path", "removed",
    "bytes_freed", "busy"}`` (``busy``: the paths of entries left because in use)."""
    root = cache_root() if root is None else Path(root)
    removed, freed, busy = 0, 0, []
    for entry in entries(root):
        path = Path(entry["path"])
        try:
            fd = os.open(path / LOCK_NAME, os.O_RDWR)
        except (FileNotFoundError, NotADirectoryError):
            _remove(path)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                busy.append(str(path))
                os.close(fd)
                continue
            try:
                _remove(path)
            finally:
                os.close(fd)
        removed += 1
        freed += entry["bytes"]
    for kind in root.iterdir() if root.is_dir() else ():
        if kind.is_dir() and not any(kind.iterdir()):
            kind.rmdir()
    return {"path": str(root), "removed": removed, "bytes_freed": freed, "busy": busy}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def done_once(name: str, key: str, root: Path | None = None) -> bool:
    """Whether the one-time job ``name`` (e.g. numba's first compilation of the kernels)
    has been recorded as done for ``key`` (:func:`mark_done`)."""
    root = cache_root() if root is None else Path(root)
    return (root / "stamps" / f"{name}-{key}").exists()


def mark_done(name: str, key: str, root: Path | None = None) -> None:
    """Record the one-time job ``name`` as done for ``key`` (an empty marker file in
    ``stamps/``); a cache that cannot be written is left as it is."""
    root = cache_root() if root is None else Path(root)
    try:
        (root / "stamps").mkdir(parents=True, exist_ok=True)
        (root / "stamps" / f"{name}-{key}").touch()
    except OSError:
        pass
