"""A site's films: their patients, the measurement sample, and the reviewer's labels file checked against them
(listing, content hashes and pixels are tasks.imaging.films', as for every folder of films).

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

from tasks.core.errors import StepError
from tasks.imaging.films import listing
from tasks.imaging.images import BadImage, load_gray
from tasks.sources import CLASSES
from tasks.sources.folder import patient_id

LABEL_COLUMNS = ("path", "label")


class LabelsError(StepError):
    """The labels file cannot be used; the message names the row and the fix."""


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
    """The reviewer's labels checked against the site's films: (path, label 0/1, patient_id, sha256) per film.

    The file must parse as CSV with `path,label` columns; then a Great Expectations suite (`label_rules`) checks
    every row: the path is a film of `folder` and decodes, the label is NORMAL or PNEUMONIA, no film twice (by
    path or by content), no patient with films in `held_out` (the films the site is measured on). A failure is
    refused with one line naming the first bad row (rows count from 1 after the header) and the fix. Nothing is
    written here.
    """
    from tasks.core import suite

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
    rows = label_rows(frame, folder, held_out)
    ok, failed, _ = suite.check(rows, label_rules(), "labels")
    if not ok:
        f = failed[0]
        row = rows[f.rows(rows)].iloc[0]
        where = f"{file} row {row.row} ({row.path or 'empty path'})"
        raise LabelsError(f"{where}: " + LABEL_FIXES[f.column].format(folder=folder, **row.to_dict()))
    return rows[["path", "label", "patient_id", "sha256"]].reset_index(drop=True)


# the fix for each rule of `label_rules`, by the column it checks; filled from the first bad row
LABEL_FIXES = {
    "is_film": "not an image file under {folder}; copy the path from the worklist",
    "decodes": "the file does not decode as an image; replace it or drop the row",
    "label_name": "label {label_name!r} is not NORMAL or PNEUMONIA; fix the label",
    "path_row": "the film is labelled twice (row {path_row}); keep one row",
    "sha256_row": "the same image as row {sha256_row} ({sha256_path}); keep one of the two",
    "measured": "patient {patient_id} also has films the site is measured on; drop the row (a patient is "
                "labelled or measured, never both)",
}


def label_rules() -> list:
    """The labels suite; each rule bounds one per-row column of `label_rows`."""
    import great_expectations as gx

    e = gx.expectations
    return [e.ExpectColumnValuesToBeInSet(column="is_film", value_set=[1]),
            e.ExpectColumnValuesToBeInSet(column="decodes", value_set=[1]),
            e.ExpectColumnValuesToBeInSet(column="label_name", value_set=list(CLASSES)),
            # a repeated path or content points back at its first row; the first row points at itself
            e.ExpectColumnPairValuesToBeEqual(column_A="path_row", column_B="row"),
            e.ExpectColumnPairValuesToBeEqual(column_A="sha256_row", column_B="row"),
            e.ExpectColumnValuesToBeInSet(column="measured", value_set=[0])]


def label_rows(frame: pd.DataFrame, folder: Path, held_out: set[str]) -> pd.DataFrame:
    """One row per labels-file row with the columns the suite checks (cross-row facts made per-row)."""
    films = set(listing(folder))
    out = pd.DataFrame({"row": range(1, len(frame) + 1),
                        "path": [relative(str(p), folder) if not pd.isna(p) else "" for p in frame.path],
                        "label_name": frame.label.fillna("").str.strip().str.upper().to_numpy()})
    out["is_film"] = out.path.isin(films).astype(int)
    out["decodes"], out["sha256"] = 1, ""
    for i in np.flatnonzero(out.is_film):
        data = (folder / out.path[i]).read_bytes()
        out.loc[i, "sha256"] = hashlib.sha256(data).hexdigest()
        try:
            load_gray(data, 8)
        except BadImage:
            out.loc[i, "decodes"] = 0
    out["label"] = (out.label_name == CLASSES[1]).astype(int)
    out["patient_id"] = patients(out.path.tolist(), frame.get("patient_id"))
    out["path_row"] = out.groupby("path").row.transform("min")
    known = out.sha256 != ""
    out["sha256_row"] = out.row.where(~known, out.groupby("sha256").row.transform("min"))
    out["sha256_path"] = out.path.to_numpy()[out.sha256_row.to_numpy() - 1]
    held_patients = set(patients(sorted(held_out)))
    out["measured"] = (out.path.isin(held_out) | out.patient_id.isin(held_patients)).astype(int)
    return out
