"""Progress on stderr: a bar on a terminal only, a few plain lines elsewhere."""

import io
import threading

from tqdm import tqdm

from dcsim.progress import PlainProgress, follow_count, progress_bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_off_a_terminal():
    stream = io.StringIO()
    bar = progress_bar(8, "baseline", unit="step", stream=stream)
    assert isinstance(bar, PlainProgress)
    for _ in range(8):
        bar.update()
    bar.set_postfix(loss="0.1")
    bar.close()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[:4] == ["baseline: 0/8 steps", "baseline: 2/8 steps", "baseline: 4/8 steps",
                         "baseline: 6/8 steps"]
    assert len(lines) == 5 and lines[4].startswith("baseline: 8/8 steps in ")
    assert lines[4].endswith(" s, loss 0.1") and "\r" not in stream.getvalue()


def test_a_bar_on_a_terminal_and_nothing_when_disabled():
    terminal = _Terminal()
    bar = progress_bar(4, "images", unit="image", stream=terminal)
    assert isinstance(bar, tqdm)
    bar.update(4)
    bar.close()
    assert "\r" in terminal.getvalue()
    quiet = io.StringIO()
    bar = progress_bar(4, "images", stream=quiet, enabled=False)
    bar.update(4)
    bar.close()
    assert quiet.getvalue() == ""


def test_follow_count_sees_bytes_appended_by_another_writer(tmp_path):
    path = tmp_path / "progress"
    seen = []
    with follow_count(path, seen.append, interval_s=0.01):
        for _ in range(3):
            with open(path, "ab") as f:
                f.write(b".")
            threading.Event().wait(0.1)
    assert seen == [1, 2, 3]
    with follow_count(tmp_path / "never", seen.append, interval_s=0.01):
        pass
    assert seen == [1, 2, 3]


def test_small_totals_and_big_steps_print_each_line_once():
    stream = io.StringIO()
    bar = progress_bar(2, "area", unit="config", stream=stream)
    bar.update()
    bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["area: 0/2 configs", "area: 1/2 configs"]
    assert len(lines) == 3 and lines[2].startswith("area: 2/2 configs in ")
    stream = io.StringIO()
    bar = progress_bar(100, "sweep", unit="point", stream=stream)
    bar.update(60)                       # past two marks at once: one line
    bar.update(40)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["sweep: 0/100 points", "sweep: 60/100 points"]
    assert len(lines) == 3 and lines[2].startswith("sweep: 100/100 points in ")
