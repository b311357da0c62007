"""Adaptation to a deployment site without its labels: self-training on pseudo-labelled site images.

A model trained on one acquisition over-calls pneumonia on another (README "Generalization").
Given the site's unlabelled images (`site.images`, tasks/site.py), `fine_tune` scores them, takes
the highest-scoring share as pneumonia and the lowest-scoring share as normal
(`adapt.positive_share` / `negative_share`; the unsure middle is left out), and fine-tunes the
model for a few epochs on the train split plus those images (repeated `adapt.repeat` times) at a
low learning rate. No label of the site is ever read. With `site.images: test`, one model per
test fold is adapted on the other folds' images and scores its own fold; the served model is
adapted on all of them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks import site
from tasks.cli import StepError
from tasks.config import Adapt, Params, Train


def enabled(p: Params) -> bool:
    """Self-training is on; it needs a site."""
    if p.adapt.enabled and not site.enabled(p):
        raise StepError("adapt.enabled needs the site's images: set site.images to `test` or a folder")
    return p.adapt.enabled


def crossfit_dir(p: Params) -> Path:
    return Path(p.paths.model_dir) / "crossfit"


def pseudo_labels(scores: np.ndarray, positive_share: float, negative_share: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels): the lowest `negative_share` of scores as 0, the highest `positive_share` as 1."""
    order = np.argsort(np.asarray(scores), kind="stable")
    n = len(order)
    neg, pos = order[:int(negative_share * n)], order[n - int(positive_share * n):]
    return np.concatenate([neg, pos]), np.concatenate([np.zeros(len(neg)), np.ones(len(pos))]).astype(np.float32)


def fine_tune(model, train: tuple, val: tuple, images: np.ndarray, cfg: Adapt, t: Train, log=print):
    """Self-train `model` (in place) on train + the pseudo-labelled unlabelled site `images` (uint8); returns it."""
    import keras

    from tasks.data import datasets
    from tasks.inference import raw_scores

    idx, labels = pseudo_labels(raw_scores(model, images, t.normalize), cfg.positive_share, cfg.negative_share)
    x = np.concatenate([train[0]] + [images[idx]] * cfg.repeat)
    y = np.concatenate([train[1]] + [labels] * cfg.repeat)
    train_ds, _ = datasets((x, y), val, t, t.batch_size)
    # the model's own architecture and loss; a fresh optimizer at a low rate, so it moves, not restarts
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=t.label_smoothing))
    log(f"adapt: {len(images)} site images, {int(labels.sum())} taken as pneumonia and {int((labels == 0).sum())} "
        f"as normal; {cfg.epochs} epochs at {cfg.learning_rate}")
    model.fit(train_ds, epochs=cfg.epochs, verbose=2, shuffle=False)  # train_ds shuffles itself
    return model


def prepare(p: Params) -> None:
    """A fresh `crossfit_dir` holding `folds.npy`, the fold of each test image (a record for the user; empty
    when the site is not the test split), so the declared output exists whatever the params."""
    import shutil

    shutil.rmtree(crossfit_dir(p), ignore_errors=True)
    crossfit_dir(p).mkdir(parents=True)
    np.save(crossfit_dir(p) / "folds.npy", site.test_folds(p) if p.site.images == site.TEST else np.zeros(0, int))


def adapt(p: Params, model_file: Path, splits: dict, log=print) -> dict:
    """Adapt the model saved at `model_file` (overwritten with the model adapted on every site image).

    With `site.images: test` it first writes one model per test fold under `crossfit_dir`, each adapted on the
    other folds' images. Returns a report.
    """
    import keras

    images = site.images(p, splits)
    load = lambda: keras.saving.load_model(model_file, compile=False, safe_mode=True)  # noqa: E731
    report = {"site": p.site.images, "site_images": len(images)}
    if p.site.images == site.TEST:
        folds = site.test_folds(p)
        for k in range(p.site.folds):
            log(f"adapt: cross-fit model {k + 1}/{p.site.folds} (adapted without the test images of fold {k})")
            fine_tune(load(), splits["train"], splits["val"], images[folds != k], p.adapt, p.train, log).save(
                crossfit_dir(p) / f"fold{k}.keras")
        report["folds"] = p.site.folds
    fine_tune(load(), splits["train"], splits["val"], images, p.adapt, p.train, log).save(model_file)
    return report


def crossfit(p: Params) -> bool:
    """True when the test split itself was the site adapted on: test images need their fold's model."""
    return enabled(p) and p.site.images == site.TEST


def crossfit_scores(p: Params, images: np.ndarray, score) -> np.ndarray:
    """(folds, N): `score(model_k, images)` for each cross-fit model k. Row k decides fold k's images (it never
    saw them); its scores of the other folds set fold k's site threshold."""
    import keras

    rows = []
    for k in range(p.site.folds):
        fold_model = keras.saving.load_model(crossfit_dir(p) / f"fold{k}.keras", compile=False, safe_mode=True)
        rows.append(score(fold_model, images))
    return np.stack(rows)
