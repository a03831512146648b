"""The per-user cache: where it is, info, clear, and the lock that serialises builds."""

import threading
import time
from pathlib import Path


from dcsim import cache


def test_root_order_dcsim_cache_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DCSIM_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "dcsim"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")     # the XDG spec's rule
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "dcsim"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "dcsim"
    monkeypatch.setenv("DCSIM_CACHE", str(tmp_path / "mine"))
    assert cache.cache_root() == tmp_path / "mine"


def _entry(root: Path, kind: str, name: str, size: int) -> Path:
    path = root / kind / name
    (path / "sub").mkdir(parents=True)
    (path / "sub" / "blob").write_bytes(b"x" * size)
    return path


def test_info_lists_entries_with_sizes_and_clear_skips_a_locked_one(tmp_path):
    assert cache.info(tmp_path / "none") == {"path": str(tmp_path / "none"), "bytes": 0,
                                             "entries": []}
    a = _entry(tmp_path, "verilator", "small_1", 1000)
    b = _entry(tmp_path, "verilator", "eie64_2", 300)
    (b / cache.LOCK_NAME).write_bytes(b"")
    shown = cache.info(tmp_path)
    assert shown["bytes"] == 1300
    assert [(e["kind"], e["name"], e["bytes"]) for e in shown["entries"]] == [
        ("verilator", "eie64_2", 300), ("verilator", "small_1", 1000)]

    with cache.locked(b / cache.LOCK_NAME):               # another build is using b
        result = cache.clear(tmp_path)
    assert result == {"path": str(tmp_path), "removed": 1, "bytes_freed": 1000,
                      "busy": [str(b)]}
    assert not a.exists() and (b / "sub" / "blob").exists()
    assert cache.clear(tmp_path)["removed"] == 1
    assert list(tmp_path.iterdir()) == []                 # empty kind folders go too


def test_lock_makes_a_second_holder_wait_and_says_so_once(tmp_path):
    lock = tmp_path / "entry" / cache.LOCK_NAME
    events, waits = [], []

    def second():
        with cache.locked(lock, on_wait=lambda: waits.append(time.perf_counter())):
            events.append("second in")

    with cache.locked(lock):
        events.append("first in")
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(0.3)
        events.append("first out")
    worker.join(timeout=10)
    assert events == ["first in", "first out", "second in"]
    assert len(waits) == 1


def test_one_time_markers(tmp_path):
    assert not cache.done_once("numba", "abc", tmp_path)
    cache.mark_done("numba", "abc", tmp_path)
    assert cache.done_once("numba", "abc", tmp_path)
    assert not cache.done_once("numba", "abd", tmp_path)
