"""Adaptation to a deployment site without its labels: self-training on pseudo-labelled site images.

A model trained on one acquisition over-calls pneumonia on another (README "Generalization").
Given unlabelled images of the site, `fine_tune` scores them, takes the highest-scoring share as
pneumonia and the lowest-scoring share as normal (`adapt.positive_share` / `negative_share`;
the middle, where the model is unsure, is left out), and fine-tunes the model for a few epochs
on the train split plus those images (repeated `adapt.repeat` times) at a low learning rate.
No label of the site is ever read.

`adapt.site`: `none` (off), `test` (the test split's own images: a site whose labelled test set
sits beside its unlabelled data) or a folder of image files. With `test`, every test image is
scored by a model adapted on the other folds only (patient-grouped, `adapt.folds`), so the test
metrics measure images the adaptation did not use; the served model is adapted on all of them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.config import Adapt, Params, Train

OFF = "none"
TEST = "test"


def enabled(cfg: Adapt) -> bool:
    return cfg.site != OFF


def crossfit_dir(p: Params) -> Path:
    return Path(p.paths.model_dir) / "crossfit"


def pseudo_labels(scores: np.ndarray, positive_share: float, negative_share: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels): the lowest `negative_share` of scores as 0, the highest `positive_share` as 1."""
    order = np.argsort(np.asarray(scores), kind="stable")
    n = len(order)
    neg, pos = order[:int(negative_share * n)], order[n - int(positive_share * n):]
    return np.concatenate([neg, pos]), np.concatenate([np.zeros(len(neg)), np.ones(len(pos))]).astype(np.float32)


def patient_folds(patients: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per image, whole patients per fold, drawn with `seed`."""
    unique = np.array(sorted(set(patients.tolist())))
    np.random.default_rng(seed).shuffle(unique)
    fold_of = {pid: i % folds for i, pid in enumerate(unique)}
    return np.array([fold_of[pid] for pid in patients])


def fine_tune(model, train: tuple, val: tuple, site: np.ndarray, cfg: Adapt, t: Train, log=print):
    """Self-train `model` (in place) on train + pseudo-labelled `site` uint8 images; returns it."""
    import keras

    from tasks.data import datasets
    from tasks.inference import raw_scores

    idx, labels = pseudo_labels(raw_scores(model, site, t.normalize), cfg.positive_share, cfg.negative_share)
    x = np.concatenate([train[0]] + [site[idx]] * cfg.repeat)
    y = np.concatenate([train[1]] + [labels] * cfg.repeat)
    train_ds, _ = datasets((x, y), val, t, t.batch_size)
    # the model's own architecture and loss; a fresh optimizer at a low rate, so it moves, not restarts
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=t.label_smoothing))
    log(f"adapt: {len(site)} site images, {int(labels.sum())} taken as pneumonia and {int((labels == 0).sum())} "
        f"as normal; {cfg.epochs} epochs at {cfg.learning_rate}")
    model.fit(train_ds, epochs=cfg.epochs, verbose=2)
    return model


def site_images(p: Params, splits: dict) -> np.ndarray:
    """The unlabelled site images as uint8 (N, S, S): the test split's pixels, or every image of a folder."""
    if p.adapt.site == TEST:
        return splits["test"][0]
    from tasks.cli import StepError
    from tasks.images import IMAGE_SUFFIXES, BadImage, load_gray

    folder = Path(p.adapt.site)
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise StepError(f"adapt.site: {folder} is not a folder of images; give a folder of the site's "
                        f"unlabelled images, `{TEST}` or `{OFF}`")
    images = []
    for f in files:
        try:
            images.append(load_gray(f.read_bytes(), p.data.image_size, min_side=p.ingest.min_side,
                                    max_pixels=p.ingest.max_pixels))
        except BadImage as err:
            raise StepError(f"adapt.site: {f}: {err}; remove it or fix it") from None
    return np.stack(images)


def prepare(p: Params) -> None:
    """An empty `crossfit_dir` (with an empty folds.npy): the declared output exists whatever `adapt.site` is."""
    import shutil

    shutil.rmtree(crossfit_dir(p), ignore_errors=True)
    crossfit_dir(p).mkdir(parents=True)
    np.save(crossfit_dir(p) / "folds.npy", np.zeros(0, np.int64))


def adapt(p: Params, model_file: Path, splits: dict, log=print) -> dict:
    """Adapt the model saved at `model_file` (overwritten with the model adapted on every site image).

    With `adapt.site: test` it first writes one model per fold under `crossfit_dir`, each adapted on the
    other folds' images, and `folds.npy` (the fold of each test image) for evaluate. Returns a report.
    """
    import keras

    if p.adapt.site == TEST and not 2 <= p.adapt.folds <= 10:
        from tasks.cli import StepError

        raise StepError(f"adapt.folds must be between 2 and 10, got {p.adapt.folds}")

    site = site_images(p, splits)
    load = lambda: keras.saving.load_model(model_file, compile=False, safe_mode=True)  # noqa: E731
    report = {"site": p.adapt.site, "site_images": len(site)}
    if p.adapt.site == TEST:
        import pandas as pd

        frame = pd.read_csv(p.paths.split)  # test rows in the order of splits["test"]
        folds = patient_folds(frame.patient_id[frame.split == "test"].to_numpy(), p.adapt.folds, p.train.seed)
        np.save(crossfit_dir(p) / "folds.npy", folds)
        for k in range(p.adapt.folds):
            log(f"adapt: cross-fit model {k + 1}/{p.adapt.folds} (adapted without the test images of fold {k})")
            fine_tune(load(), splits["train"], splits["val"], site[folds != k], p.adapt, p.train, log).save(
                crossfit_dir(p) / f"fold{k}.keras")
        report["folds"] = p.adapt.folds
    fine_tune(load(), splits["train"], splits["val"], site, p.adapt, p.train, log).save(model_file)
    return report


def test_scores(p: Params, model, images: np.ndarray, score) -> np.ndarray:
    """Scores of the test images: `score(model, images)`, or with `adapt.site: test` each image scored by the
    cross-fit model that never saw it."""
    if p.adapt.site != TEST:
        return score(model, images)
    import keras

    folds = np.load(crossfit_dir(p) / "folds.npy")
    if len(folds) != len(images):
        from tasks.cli import StepError

        raise StepError(f"{crossfit_dir(p)} holds folds for {len(folds)} test images, not {len(images)}: rerun train")
    out = np.empty(len(images))
    for k in np.unique(folds):
        fold_model = keras.saving.load_model(crossfit_dir(p) / f"fold{k}.keras", compile=False, safe_mode=True)
        out[folds == k] = score(fold_model, images[folds == k])
    return out
