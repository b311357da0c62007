"""split: patient-grouped, stratified, seeded train/val/test assignment with a leakage check.

A source test split stays test; val is carved from train (a source val smaller than
`split.min_source_val`, like Kaggle's 16 images, folds into train first). Without a
source test split, test is carved the same way. Writes `paths.split` (the manifest's
rows in order, with a `split` column) and `paths.split_report`.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from tasks.cli import main
from tasks.core.config import Params, Split
from tasks.core.errors import StepError
from tasks.core.files import atomic, write_json

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class Leakage(StepError):
    """A patient or a byte-identical image is in two splits."""


def carve(pool: pd.DataFrame, fraction: float, seed: int) -> pd.Index:
    """Rows of whole patients making up about `fraction` of each class's images in `pool`."""
    rng = np.random.default_rng(seed)
    patients = pool.groupby("patient_id").agg(label=("label", "max"), n=("label", "size"))
    chosen = []
    for _, group in patients.groupby("label"):
        order = group.index.to_numpy()[rng.permutation(len(group))]
        sizes = group.n.loc[order].to_numpy()
        target = fraction * sizes.sum()
        take = np.cumsum(sizes) - sizes / 2 <= target  # a patient goes in if most of it fits
        chosen.extend(order[take])
    return pool.index[pool.patient_id.isin(chosen)]


def assign(manifest: pd.DataFrame, cfg: Split) -> pd.Series:
    """The split of each manifest row (index-aligned)."""
    split = pd.Series("train", index=manifest.index, dtype=object)
    src = manifest.source_split
    keep_val = (src == "val").sum() >= cfg.min_source_val
    split[src == "test"] = "test"
    if keep_val:
        split[src == "val"] = "val"
    test_patients = set(manifest.patient_id[src == "test"])
    pool = manifest[(split == "train") & ~manifest.patient_id.isin(test_patients)]
    split[(split == "train") & manifest.patient_id.isin(test_patients)] = "excluded"  # in the source test too
    if not (src == "test").any():
        test_idx = carve(pool, cfg.test, cfg.seed)
        split[test_idx] = "test"
        pool = pool.drop(test_idx)
    if not keep_val:
        # val is `cfg.val` of everything outside test, so the ratio means the same with or without a source test
        share = cfg.val / (1 - cfg.test) if not (src == "test").any() else cfg.val
        split[carve(pool, share, cfg.seed + 1)] = "val"
    return split


def check_leakage(frame: pd.DataFrame) -> None:
    """Raise `Leakage` if any patient_id or sha256 appears in more than one split."""
    used = frame[frame.split.isin(SPLITS)]
    for column in ("patient_id", "sha256"):
        spread = used.groupby(column).split.nunique()
        leaked = spread[spread > 1]
        if len(leaked):
            raise Leakage(f"{len(leaked)} {column} value(s) in two splits, e.g. {list(leaked.index[:3])}; "
                          "check the patient-id parsing of these files")


def summary(frame: pd.DataFrame) -> dict:
    """Per-split image and patient counts and pneumonia fraction."""
    out = {}
    for name in [*SPLITS, "excluded"]:
        part = frame[frame.split == name]
        if len(part):
            out[name] = {"images": len(part), "patients": int(part.patient_id.nunique()),
                         "normal": int((part.label == 0).sum()), "pneumonia": int((part.label == 1).sum()),
                         "pneumonia_fraction": round(float(part.label.mean()), 4)}
    return out


def run(p: Params) -> pd.DataFrame:
    manifest = pd.read_csv(p.paths.manifest)
    frame = manifest[["path", "patient_id", "sha256", "label"]].assign(split=assign(manifest, p.split))
    check_leakage(frame)
    for name in SPLITS:
        if not (frame.split == name).any():
            raise StepError(f"split `{name}` is empty ({len(manifest)} images); add data or change `split:` in params")
    with atomic(p.paths.split) as tmp:
        frame.to_csv(tmp, index=False)
    report = summary(frame)
    write_json(p.paths.split_report, report)
    for name, s in report.items():
        log.info(f"split: {name:>8}: {s['images']:5d} images, {s['patients']:5d} patients, "
              f"{s['normal']} normal / {s['pneumonia']} pneumonia ({s['pneumonia_fraction']:.1%})")
    return frame


if __name__ == "__main__":
    main("split", run)
