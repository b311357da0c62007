"""validate: a Great Expectations suite over the image manifest; a failure stops the pipeline.

Writes `paths.validation` (results JSON), Data Docs under `paths.data_docs` and a picture
of the data at `paths.data_preview`. Each failed expectation prints one line and the
step exits 1, so nothing downstream runs.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.cli import main
from tasks.core import suite
from tasks.core.config import Params, Validate
from tasks.core.errors import StepError
from tasks.core.files import write_json
from tasks.imaging.preview import data_preview
from tasks.sources import CLASSES, COLUMNS

log = logging.getLogger(__name__)

REQUIRED = ["path", "label", "class", "patient_id", "source_split", "width", "height", "sha256"]


class SuiteFailed(StepError):
    """One or more expectations failed; the message has one line per failure."""


def derived(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest plus columns that turn cross-row rules into per-row ones."""
    df = manifest.copy()
    df["patients_per_sha256"] = df.groupby("sha256").patient_id.transform("nunique")
    df["labels_per_sha256"] = df.groupby("sha256").label.transform("nunique")
    df["classes_in_split"] = df.groupby("source_split").label.transform("nunique")
    df["class_count"] = df.groupby("class")["class"].transform("size")
    return df


DERIVED = ["patients_per_sha256", "labels_per_sha256", "classes_in_split", "class_count"]
# what a failure of a derived rule means, and the fix
HINTS = {"patients_per_sha256": "identical image bytes belong to two patients (the split would leak); remove the copy",
         "labels_per_sha256": "identical image bytes are filed under NORMAL and PNEUMONIA (a label conflict); "
                              "keep the file under its right class only",
         "classes_in_split": "a source split holds one class only (a NORMAL or PNEUMONIA folder is missing or "
                             "empty); add the missing class folder",
         "class_count": "too few images of a class; add images or lower validate.min_per_class"}


def expectations(cfg: Validate) -> list:
    """The suite: every rule the manifest must satisfy before it is split."""
    import great_expectations as gx

    e = gx.expectations
    rules = [e.ExpectTableColumnsToMatchSet(column_set=COLUMNS + DERIVED)]
    rules += [e.ExpectColumnValuesToNotBeNull(column=c) for c in REQUIRED]
    rules += [
        e.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        e.ExpectColumnValuesToBeInSet(column="class", value_set=list(CLASSES)),
        e.ExpectColumnValuesToBeInSet(column="source_split", value_set=["train", "val", "test"]),
        e.ExpectColumnValuesToBeBetween(column="width", min_value=cfg.width[0], max_value=cfg.width[1]),
        e.ExpectColumnValuesToBeBetween(column="height", min_value=cfg.height[0], max_value=cfg.height[1]),
        e.ExpectColumnValuesToBeUnique(column="path"),
        # byte-identical files must belong to one patient, or the split would leak
        e.ExpectColumnValuesToBeBetween(column="patients_per_sha256", min_value=1, max_value=1),
        e.ExpectColumnValuesToBeBetween(column="labels_per_sha256", min_value=1, max_value=1),
        e.ExpectColumnValuesToBeBetween(column="classes_in_split", min_value=2, max_value=2),
        e.ExpectColumnValuesToBeBetween(column="class_count", min_value=cfg.min_per_class),
        e.ExpectColumnMeanToBeBetween(column="label", min_value=cfg.pneumonia_fraction[0],
                                      max_value=cfg.pneumonia_fraction[1]),
        e.ExpectColumnDistinctValuesToContainSet(column="class", value_set=list(CLASSES)),
    ]
    return rules


def run_suite(manifest: pd.DataFrame, cfg: Validate, docs_dir: str) -> tuple[bool, list[str], dict]:
    """Validate `manifest`: (success, one line per failed expectation, results as JSON); Data Docs in `docs_dir`."""
    frame = derived(manifest)
    success, failed, results = suite.check(frame, expectations(cfg), "manifest", docs_dir)
    failures = []
    for f in failed:
        if f.column in HINTS:  # a cross-row rule: name the files, say what it means
            bad = frame[f.rows(frame)]
            failures.append(f"{HINTS[f.column]}: {len(bad)} file(s), e.g. {', '.join(bad.path.head(3))}")
            continue
        detail = f.result.get("partial_unexpected_list") or f.result.get("observed_value")
        count = f.result.get("unexpected_count")
        failures.append(f"{f.type} on `{f.column}` failed"
                        + (f": {count} unexpected, e.g. {detail[:3]}" if count else f": observed {detail}"))
    return success, failures, results


def run(p: Params) -> None:
    manifest = pd.read_csv(p.paths.manifest)
    data_preview(manifest, np.load(p.paths.pixels, mmap_mode="r"), p.paths.data_preview)
    success, failures, results = run_suite(manifest, p.validate, p.paths.data_docs)
    write_json(p.paths.validation, {"success": success, "failures": failures, "results": results})
    index = Path(p.paths.data_docs) / "index.html"
    log.info(f"validate: Data Docs at {index}; data preview at {p.paths.data_preview}")
    if not success:
        raise SuiteFailed(f"{len(failures)} expectation(s) failed on {p.paths.manifest}:\n  " + "\n  ".join(failures)
                          + f"\nsee {index} for details; fix the data or the bounds in params.yaml `validate:`")
    log.info(f"validate: {len(manifest)} rows passed all expectations")


if __name__ == "__main__":
    main("validate", run)
