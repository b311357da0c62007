"""What a site's passes decided and stored, per film and model version, so each film gets one result per version
however often a pass is killed and rerun.

A result is written to the outbox (`<paths.pacs>/<site>/outbox/<film>-v<version>.dcm`, atomically) before the
ledger says "decided", and leaves the outbox only after the archive took it and the ledger says "stored". A
pass first stores what the outbox holds (left by a killed pass or a refused store), so nothing scored is lost;
a result stored twice is the same object (its UIDs derive from the source and version: tasks.pacs.report), so
the archive keeps one. Films are keyed by the salted hash of their instance UID (tasks.imaging.dicom.keyed). The
outbox holds the results until stored, patient module included (files readable by their owner only).
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from tasks.core.files import exclusive

SCHEMA = "CREATE TABLE IF NOT EXISTS results (film TEXT, version TEXT, state TEXT, at REAL, PRIMARY KEY(film, version))"


class Ledger:
    def __init__(self, folder: Path):
        self.folder, self.outbox = folder, folder / "outbox"
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(folder / "ledger.sqlite", isolation_level=None)
        self.db.execute(SCHEMA)

    def done(self, version: str) -> set[str]:
        """The films this version has decided (stored or waiting in the outbox)."""
        return {r[0] for r in self.db.execute("SELECT film FROM results WHERE version=?", (version,))}

    def mark(self, film: str, version: str, state: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", (film, version, state, time.time()))

    def keep(self, film: str, version: str, sr) -> Path:
        """Write the result `sr` to the outbox (owner-only; renamed into place, so a killed pass leaves the whole
        file or none), then mark it decided."""
        path = self.outbox / f"{film}-v{version}.dcm"
        tmp = path.with_name(f".{path.name}.partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            sr.save_as(fh, enforce_file_format=True)
        os.replace(tmp, path)
        self.mark(film, version, "decided")
        return path

    def waiting(self) -> list[tuple[str, str, Path]]:
        """(film, version, file) of every result in the outbox, oldest first."""
        files = sorted(self.outbox.glob("*.dcm"), key=lambda f: f.stat().st_mtime)
        return [(*f.stem.rsplit("-v", 1), f) for f in files]

    def stored(self, film: str, version: str, file: Path) -> None:
        self.mark(film, version, "stored")
        file.unlink(missing_ok=True)


def one_pass(folder: Path, site: str):
    """The site's pass lock, for a `with` block; StepError when another pass of the site holds it."""
    return exclusive(folder / "pass.lock", f"another pneumonia-pacs pass of site {site} is running; this one did "
                                           "nothing (the next pass takes what it leaves)")
