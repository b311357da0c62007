"""A site's films: the image files under its folder, their patients, pixels and content hashes, and the
reviewer's labels file checked against them.

A film is named by its path relative to the site's images folder (what the worklist gives and labels.csv
repeats). Its patient is the `patient_id` column of labels.csv when the reviewer gives one, else the id in a
Kaggle-style file name (tasks.sources.folder.patient_id), else the film is its own patient.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.errors import StepError
from tasks.images import IMAGE_SUFFIXES, BadImage, load_gray
from tasks.sources import CLASSES
from tasks.sources.folder import patient_id

LABEL_COLUMNS = ("path", "label")


class LabelsError(StepError):
    """The labels file cannot be used; the message names the row and the fix."""


def listing(folder: str | Path) -> list[str]:
    """Every image file under `folder`, as sorted paths relative to it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StepError(f"{folder} is not a folder: give --images the folder of the site's films")
    files = sorted(str(f.relative_to(folder)) for f in folder.rglob("*")
                   if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and "__MACOSX" not in f.parts)
    if not files:
        raise StepError(f"{folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def patients(paths: list[str], given: pd.Series | None = None) -> np.ndarray:
    """The patient of each film: `given` where it is set, else the id in its file name."""
    out = np.array([patient_id(Path(p).name) for p in paths], dtype=object)
    if given is not None:
        given = given.astype("string").to_numpy()
        out = np.where(pd.isna(given), out, given)
    return out


def measurement_sample(paths: list[str], n: int, seed: int) -> list[str]:
    """About `n` films of `paths` drawn at random by whole patients (every film of a drawn patient), sorted: the
    site's measurement sample, labelled with the worklist and never trained on."""
    if n <= 0:
        return []
    ids = [str(pid) for pid in patients(paths)]
    sizes = Counter(ids)
    chosen, count = set(), 0
    for pid in np.random.default_rng(seed).permutation(sorted(sizes)):
        if count >= n:
            break
        chosen.add(pid)
        count += sizes[pid]
    return sorted(path for path, pid in zip(paths, ids) if pid in chosen)


def read_measure(file: Path) -> set[str]:
    """The site's measurement films (`measure.csv`), or none."""
    return set(pd.read_csv(file).path.astype(str)) if file.exists() else set()


def load(folder: str | Path, paths: list[str], size: int, progress: bool = False) -> np.ndarray:
    """uint8 (N, size, size) pixels of the films, with the decoder training used; StepError names a bad file."""
    from tqdm import tqdm

    out = np.empty((len(paths), size, size), np.uint8)
    for i, rel in enumerate(tqdm(paths, desc="site films", unit="film", disable=not progress, leave=False)):
        try:
            out[i] = load_gray((Path(folder) / rel).read_bytes(), size)
        except (BadImage, OSError) as err:
            raise StepError(f"{Path(folder) / rel}: {err}; remove it from the site's folder or replace it") from None
    return out


def sha256(folder: str | Path, paths: list[str]) -> list[str]:
    return [hashlib.sha256((Path(folder) / p).read_bytes()).hexdigest() for p in paths]


def relative(path: str, folder: Path) -> str:
    """A labels-file path as the worklist gives it: relative to the images folder (an absolute one is made so)."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return str(candidate.resolve().relative_to(folder.resolve()))
        except ValueError:
            return str(candidate)  # outside the folder: reported as missing below
    return str(candidate)


def read_labels(file: str | Path, folder: str | Path, held_out: set[str] = frozenset()) -> pd.DataFrame:
    """The reviewer's labels checked against the site's films: (path, label 0/1, patient_id) per film.

    Refused, naming the first bad row (rows count from 1 after the header): a missing column, a path that is
    not a film of `folder`, a label not in NORMAL/PNEUMONIA, the same film twice (by path or by content), and a
    patient with films in `held_out` (the films the site is measured on). Nothing is written here.
    """
    file, folder = Path(file), Path(folder)
    if not file.is_file():
        raise LabelsError(f"{file} does not exist: write it as path,label (one row per labelled film)")
    try:
        frame = pd.read_csv(file, dtype="string")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise LabelsError(f"{file} is not a CSV file ({str(err).splitlines()[0]}): write it as path,label") from None
    frame.columns = [c.strip().lower() for c in frame.columns]
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise LabelsError(f"{file}: no `{missing[0]}` column (columns: {', '.join(frame.columns)}); "
                          "the header must be path,label")
    if frame.empty:
        raise LabelsError(f"{file} has a header but no rows: label at least one film of the worklist")
    films = set(listing(folder))
    rel = [relative(str(p), folder) if not pd.isna(p) else "" for p in frame.path]
    seen: dict[str, int] = {}
    for row, (path, label) in enumerate(zip(rel, frame.label.str.strip().str.upper()), start=1):
        where = f"{file} row {row} ({path or 'empty path'})"
        if path not in films:
            raise LabelsError(f"{where}: not an image file under {folder}; copy the path from the worklist")
        if label not in CLASSES:
            raise LabelsError(f"{where}: label {label!r} is not NORMAL or PNEUMONIA; fix the label")
        if path in seen:
            raise LabelsError(f"{where}: the film is labelled twice (row {seen[path]}); keep one row")
        seen[path] = row
    out = pd.DataFrame({"path": rel, "label": (frame.label.str.strip().str.upper() == CLASSES[1]).astype(int)})
    out["patient_id"] = patients(rel, frame.get("patient_id"))
    digests = sha256(folder, rel)
    first: dict[str, int] = {}
    for row, digest in enumerate(digests, start=1):
        if digest in first:
            raise LabelsError(f"{file} row {row} ({rel[row - 1]}): the same image as row {first[digest]} "
                              f"({rel[first[digest] - 1]}); keep one of the two")
        first[digest] = row
    held_patients = set(patients(sorted(held_out)))
    for row, (path, pid) in enumerate(zip(rel, out.patient_id), start=1):
        if path in held_out or pid in held_patients:
            raise LabelsError(f"{file} row {row} ({path}): patient {pid} also has films the site is measured on; "
                              "drop the row (a patient is labelled or measured, never both)")
    out["sha256"] = digests
    return out
