"""Progress on stderr: a bar on a terminal, a few plain lines anywhere else.

A bar redraws itself many times a second; written to a log file or a pipe, that is tens
of kilobytes of carriage returns. So :func:`progress_bar` draws a ``tqdm`` bar only when
its stream is a terminal, and otherwise prints one line at the start, one at each
quarter and one at the end.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm

#: Fractions of the total at which a plain (non-terminal) progress line is printed.
PLAIN_MARKS = (0.25, 0.5, 0.75)


class PlainProgress:
    """The non-terminal stand-in for a ``tqdm`` bar (same ``update``, ``set_postfix``,
    ``close`` calls): ``desc: 0/total units`` at the start, a line at each of
    PLAIN_MARKS, and ``desc: total/total units in S s`` at the end."""

    def __init__(self, total: int, desc: str, unit: str, stream):
        self.total, self.desc, self.unit, self.stream = int(total), desc, unit, stream
        self.n = 0
        self.postfix = ""
        # distinct counts strictly between the start and the end: a small total (2, 3)
        # gets fewer lines, never the same line twice
        self._marks = sorted({int(f * self.total) for f in PLAIN_MARKS} - {0, self.total})
        self._start = time.perf_counter()
        self._closed = False
        self._line(f"0/{self.total} {self.unit}s")

    def _line(self, text: str) -> None:
        print(f"{self.desc}: {text}{self.postfix}", file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        passed = False
        while self._marks and self.n >= self._marks[0]:
            self._marks.pop(0)
            passed = True
        if passed and self.n < self.total:
            self._line(f"{self.n}/{self.total} {self.unit}s")

    def set_postfix(self, **values) -> None:
        self.postfix = "".join(f", {k} {v}" for k, v in values.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._line(f"{self.n}/{self.total} {self.unit}s in "
                       f"{time.perf_counter() - self._start:.0f} s")


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True,
                 stream=None):
    """A progress reporter with ``update(n)``, ``set_postfix(**values)`` and ``close()``.

    total : int -- units of work; desc : str -- what is being done; unit : str -- one
    unit's name (``"step"``, ``"image"``). stream : where to write (default
    ``sys.stderr``). A ``tqdm`` bar if ``stream`` is a terminal, a :class:`PlainProgress`
    otherwise, nothing at all when ``enabled`` is false.
    """
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return _Silent()
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False)
    return PlainProgress(total, desc, unit, stream)


@contextlib.contextmanager
def follow_count(path: Path, on_count, interval_s: float = 0.2):
    """While the block runs, call ``on_count(n)`` whenever the size in bytes of the file
    at ``path`` (written by another process, one byte per finished unit) changes; once
    more at the end. The file need not exist yet."""
    path = Path(path)
    stop = threading.Event()
    seen = [0]

    def poll():
        try:
            n = path.stat().st_size
        except FileNotFoundError:
            return
        if n != seen[0]:
            seen[0] = n
            on_count(n)

    def loop():
        while not stop.wait(interval_s):
            poll()

    thread = threading.Thread(target=loop, name="dcsim-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        poll()
