"""Adapt the source model to a site from a few labelled films, and measure it on films it never used.

`fine_tune` continues training the source model for `sites.steps` batches at a low rate; each batch is
`sites.site_share` labelled site films (class-balanced, drawn with replacement, so a few dozen films weigh
as much as the thousands of source films) and the rest source training films (class-balanced, so the model
keeps what it knew), with the training augmentation. Every weight moves except batch-norm's.

`crossfit` gives every labelled film a score from a model adapted without its patient's films
(`sites.folds` patient-grouped folds); tasks.measure.metrics.operating_point fits calibration and threshold on those
out-of-fold scores, and `nested` decides each fold with the calibration and threshold of the other folds
only, so no film ever sets its own threshold. The served model is adapted on every labelled film and
served with the operating point `served_point` chooses: fitted on the measurement sample (random films it
never trained on) when it can be, else on the out-of-fold scores.
"""
from __future__ import annotations

import numpy as np

from tasks.core.config import Train
from tasks.measure import metrics as M


def balanced_draw(labels: np.ndarray, n: int, rng) -> np.ndarray:
    """n indices drawn with replacement, half from each class present (all from one if only one is)."""
    classes = [np.flatnonzero(labels == c) for c in (0, 1) if (labels == c).any()]
    per = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]
    return rng.permutation(np.concatenate([rng.choice(idx, size=k) for idx, k in zip(classes, per)]))


def freeze_batch_norm(model) -> None:
    """Batch-norm layers keep the source's statistics and scale (Keras runs a frozen one in inference mode), the
    usual practice when fine-tuning on little data: with a few dozen films repeated in half of every batch,
    batch statistics would follow those films rather than the site."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def fine_tune(model, site: tuple, source: tuple, cfg, t: Train, normalize_mode: str, seed: int):
    """Fine-tune `model` in place on labelled site films (uint8 images, 0/1 labels) mixed with source training
    films; returns it."""
    import keras
    import tensorflow as tf

    from tasks.imaging.preprocess import normalize
    from tasks.training.augment import augmenter

    rng = np.random.default_rng(seed)
    batch = t.batch_size
    n_site = max(1, round(cfg.site_share * batch))
    site_idx = balanced_draw(site[1], cfg.steps * n_site, rng).reshape(cfg.steps, n_site)
    src_idx = balanced_draw(source[1], cfg.steps * (batch - n_site), rng).reshape(cfg.steps, batch - n_site)
    used = np.unique(src_idx)  # normalise only the source films drawn
    src_x = normalize(np.asarray(source[0][used]), normalize_mode)
    where = np.searchsorted(used, src_idx)
    site_x = normalize(site[0], normalize_mode)
    x = np.concatenate([site_x[site_idx], src_x[where]], axis=1).reshape(-1, *site_x.shape[1:])
    y = np.concatenate([site[1][site_idx], source[1][src_idx]], axis=1).reshape(-1).astype(np.float32)
    aug = augmenter(t.augment, seed)
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
          .map(lambda a, b: (tf.clip_by_value(aug(a, training=True), 0.0, 1.0), b),
               num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    keras.utils.set_random_seed(seed)
    freeze_batch_norm(model)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=t.label_smoothing))
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    for layer in model.layers:
        layer.trainable = True  # saved as a whole model, as the source was
    return model


def patient_folds(patients: np.ndarray, folds: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """A fold per film, whole patients per fold, patients dealt at random (`seed`). With `labels`, the patients
    with a pneumonia film and those without are dealt one class after the other, so every fold holds both
    classes whenever each class has at least `folds` patients."""
    unique = np.array(sorted(set(map(str, patients))))
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    if labels is not None:
        sick = {str(pid) for pid, y in zip(patients, labels) if y == 1}
        unique = np.array([pid for pid in unique if pid not in sick] + [pid for pid in unique if pid in sick])
    fold_of = {pid: i % folds for i, pid in enumerate(unique)}
    return np.array([fold_of[str(pid)] for pid in patients], dtype=np.int64)


def class_patients(patients: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """(patients without a pneumonia film, patients with one): what the cross-fitting folds are dealt from."""
    sick = {str(pid) for pid, y in zip(patients, labels) if y == 1}
    return len(set(map(str, patients)) - sick), len(sick)


def crossfit(load_source, site: tuple, patients: np.ndarray, source: tuple, cfg, t: Train, serving,
             seed: int, log=print) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold raw scores, fold) of the labelled films: fold k scored by a model adapted without it."""
    from tasks.measure.inference import raw_scores

    folds = patient_folds(patients, min(cfg.folds, len(set(map(str, patients)))), seed, site[1])
    oof = np.empty(len(folds))
    for k in np.unique(folds):
        log(f"site: cross-fit model {k + 1}/{folds.max() + 1} (adapted without {int((folds == k).sum())} films)")
        keep = folds != k
        model = fine_tune(load_source(), (site[0][keep], site[1][keep]), source, cfg, t, serving.normalize,
                          seed + 1 + int(k))
        oof[folds == k] = raw_scores(model, site[0][folds == k], serving.normalize, serving.tta)
    return oof, folds


def site_point(p):
    """The evaluate section the site's operating point is fitted with (tasks.measure.metrics.operating_point): the
    pipeline's calibration and threshold method, at the site's `sites.target_sensitivity`."""
    return p.evaluate.model_copy(update={"target_sensitivity": p.sites.target_sensitivity})


def nested(y: np.ndarray, raw: np.ndarray, folds: np.ndarray, point):
    """(probability, threshold) per film, fold k calibrated and thresholded on the other folds only."""
    prob, threshold = np.empty(len(y)), np.empty(len(y))
    for k in np.unique(folds):
        others = folds != k
        if len(np.unique(y[others])) < 2:
            raise ValueError("each fold's complement needs both labels: label more films of the rarer class")
        op = M.operating_point(y[others], raw[others], point)
        prob[~others] = M.apply_temperature(raw[~others], op["temperature"], op["bias"])
        threshold[~others] = op["threshold"]
    return prob, threshold


def served_point(worklist: tuple, sample: tuple, patients: np.ndarray, folds: int, point, seed: int):
    """(operating point, what it was fitted on, the sample's probabilities, their thresholds).

    `worklist` is (labels, out-of-fold raw scores) of the films a query picked, `sample` (labels, the adapted
    model's raw scores) of the measurement sample, random films it never trained on. When the sample holds
    `folds` patients of each class, the operating point is fitted on it: a query picks films near the
    threshold, and an operating point fitted on them misses on the site's ordinary films (measured:
    specificity 58.6 % against 94.2 % on the other half, docs/lab/sites.md); the sample's numbers are then
    nested, each patient fold decided by the other folds. Otherwise the worklist's operating point is used
    and the sample measures it as it is."""
    y, raw = sample
    if min(class_patients(patients, y)) >= folds:
        prob, threshold = nested(y, raw, patient_folds(patients, folds, seed, y), point)
        return M.operating_point(y, raw, point), "measurement sample", prob, threshold
    op = M.operating_point(*worklist, point)
    return op, "worklist", M.apply_temperature(raw, op["temperature"], op["bias"]), np.full(len(y), op["threshold"])
