"""The audit trail of a site's reading room: one JSON line per decision and per result stored, appended to
`<paths.pacs>/<site>/audit.jsonl` (opened for appending only, each chunk's lines flushed to disk), never rewritten.

A line holds the time, salted hashes of the study and instance UIDs (tasks.imaging.dicom.keyed: the same film has the
same hash in every line, and nobody without the checkout's salt can turn it back), the model and version, the
gate's decision and reason, the probability, label and out-of-distribution flag, and where the result went.
Never a name, an id or a UID in clear. `pneumonia-pacs audit --site NAME` prints it as a table.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

FILE = "audit.jsonl"


def append(folder: Path, rows: list[dict]) -> None:
    """Append `rows` (one line each, stamped with the time) in one write, then flush them to disk."""
    if not rows:
        return
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    text = "".join(json.dumps({"time": now, **row}, default=str) + "\n" for row in rows)
    fd = os.open(folder / FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(folder: Path):
    """The trail as a DataFrame (empty when the site has none); a torn last line (a killed pass) is skipped."""
    import pandas as pd

    file = folder / FILE
    rows = []
    if file.exists():
        for line in file.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return pd.DataFrame(rows)
