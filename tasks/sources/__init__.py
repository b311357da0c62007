"""Data sources for ingest (tasks.core.plugins.SOURCES): each gives a folder of image files, or an npz of arrays."""
from __future__ import annotations

from dataclasses import dataclass

CLASSES = ("NORMAL", "PNEUMONIA")  # label = index
# the manifest's columns, one row per image: what ingest writes and validate checks
COLUMNS = ["path", "label", "class", "patient_id", "source_split", "width", "height", "mode",
           "bytes", "sha256", "mean", "std"]
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Candidate:
    """One file to ingest. `problem` is set when the file is bad before it is even read."""

    path: str
    class_name: str
    source_split: str
    patient_id: str
    problem: str | None = None
