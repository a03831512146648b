"""The results CSV: a header of ``point.COLUMNS``, one row per point, appended as it ends.

Rows are written whole and flushed, so an interrupted sweep leaves a valid file; a
process killed in the middle of a write can leave one partial last line, which
:func:`open_results` drops on resume (that point then runs again).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dcsim.errors import ConfigError
from dcsim.sweep.point import COLUMNS


def read_rows(path) -> list:
    """Every complete row of a results file, as dicts of strings."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ConfigError(f"{path}: must be a results file of this dcsim version (its header "
                          f"must be the {len(COLUMNS)} sweep columns), not another file; "
                          f"remove it or choose another --out")
    return list(reader)


class ResultWriter:
    """Appends rows to ``path`` (a new file, or the complete rows of an old one)."""

    def __init__(self, path, resume: bool):
        self.path = Path(path)
        self.done = set()
        if resume and self.path.exists():
            rows = read_rows(self.path)
            self.done = {r["key"] for r in rows}
            with self.path.open("r+", encoding="utf-8") as f:
                text = f.read()
                keep = text[:text.rfind("\n") + 1] if not text.endswith("\n") else text
                f.seek(len(keep.encode("utf-8")))
                f.truncate()
            self._file = self.path.open("a", encoding="utf-8", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS,
                                          lineterminator="\n")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS,
                                          lineterminator="\n")
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict) -> bool:
        """Append ``row`` unless its key is already in the file; True if written."""
        if row["key"] in self.done:
            return False
        self._writer.writerow(row)
        self._file.flush()
        self.done.add(row["key"])
        return True

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
