"""The deployment site: its unlabelled images, and the test folds that keep them honest.

`site.images`: `none`, `test` (the test split's own images: a site whose labelled test set sits
beside its unlabelled data) or a folder of image files. Two options use them, never their labels:
self-training (`adapt.enabled`, tasks/adapt.py) and the `site_prevalence` threshold (tasks/evaluate.py),
which calls the top `evaluate.prevalence` share of the site's images pneumonia. With `test`, every
test image is decided by a model and a threshold fitted on the other folds only (whole patients per
fold, `site.folds`), so the test metrics measure images that nothing was fitted on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.cli import StepError
from tasks.config import Params

OFF = "none"
TEST = "test"


def enabled(p: Params) -> bool:
    return p.site.images != OFF


def patient_folds(patients: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per image, whole patients per fold, drawn with `seed`."""
    unique = np.array(sorted(set(patients.tolist())))
    np.random.default_rng(seed).shuffle(unique)
    fold_of = {pid: i % folds for i, pid in enumerate(unique)}
    return np.array([fold_of[pid] for pid in patients], dtype=np.int64)


def test_folds(p: Params) -> np.ndarray:
    """The fold of each test image, in the order of the test split (`site.folds` patient-grouped folds)."""
    import pandas as pd

    frame = pd.read_csv(p.paths.split)
    return patient_folds(frame.patient_id[frame.split == "test"].to_numpy(), p.site.folds, p.split.seed)


def images(p: Params, splits: dict) -> np.ndarray:
    """The site's unlabelled images as uint8 (N, S, S): the test split's pixels, or every image of a folder."""
    if p.site.images == TEST:
        return splits["test"][0]
    from tasks.images import IMAGE_SUFFIXES, BadImage, load_gray

    folder = Path(p.site.images)
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise StepError(f"site.images: {folder} is not a folder of images; give a folder of the site's "
                        f"unlabelled images, `{TEST}` or `{OFF}`")
    out = []
    for f in files:
        try:
            out.append(load_gray(f.read_bytes(), p.data.image_size, min_side=p.ingest.min_side,
                                 max_pixels=p.ingest.max_pixels))
        except BadImage as err:
            raise StepError(f"site.images: {f}: {err}; remove it or fix it") from None
    return np.stack(out)


def prevalence_threshold(scores: np.ndarray, prevalence: float) -> float:
    """The score above which a share `prevalence` of these (unlabelled) images lies."""
    return float(np.quantile(np.asarray(scores, float), 1.0 - prevalence))


def crossfit_thresholds(scores: np.ndarray, folds: np.ndarray, prevalence: float) -> np.ndarray:
    """Per image, the prevalence threshold of the other folds' scores (never its own fold's).

    `scores` is (N,) when one model scored every image, or (folds, N) when fold k's images are decided by
    their own model (adapted without them): row k, that model's scores of every image, sets fold k's threshold.
    """
    scores = np.asarray(scores, float)
    out = np.empty(len(folds))
    for k in np.unique(folds):
        reference = scores if scores.ndim == 1 else scores[k]
        out[folds == k] = prevalence_threshold(reference[folds != k], prevalence)
    return out
