"""tf.data input pipeline from the prepared pixel store (no JPEG decoding per epoch)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.config import Augment, Paths, Train
from tasks.preprocess import normalize


def load_splits(paths: Paths) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (uint8 images N x S x S, int labels N)} from `paths.pixels` and `paths.split`."""
    pixels = np.load(paths.pixels, mmap_mode="r")
    frame = pd.read_csv(paths.split)
    if len(frame) != len(pixels):
        raise ValueError(f"{paths.split} has {len(frame)} rows but {paths.pixels} {len(pixels)} images; rerun ingest")
    out = {}
    for name in ("train", "val", "test"):
        idx = np.flatnonzero(frame.split.to_numpy() == name)
        out[name] = (np.asarray(pixels[idx]), frame.label.to_numpy()[idx].astype(np.float32))
    return out


def augmenter(a: Augment, seed: int):
    """Keras preprocessing layers for X-rays: small affine, brightness, contrast; no vertical flip."""
    import keras
    from keras import layers

    steps = [
        layers.RandomRotation(a.rotation, fill_mode="constant", seed=seed),
        layers.RandomZoom(a.zoom, a.zoom, fill_mode="constant", seed=seed + 1),
        layers.RandomTranslation(a.shift, a.shift, fill_mode="constant", seed=seed + 2),
        layers.RandomBrightness(a.brightness, value_range=(0.0, 1.0), seed=seed + 3),
        layers.RandomContrast(a.contrast, value_range=(0.0, 1.0), seed=seed + 4),
    ]
    if a.horizontal_flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed + 5))
    return keras.Sequential(steps, name="augment")


def class_weights(labels: np.ndarray, mode: str) -> dict[int, float]:
    """`balanced`: n / (2 n_c), so each class carries half the loss; `none`: weight 1 for both."""
    if mode == "none":
        return {0: 1.0, 1: 1.0}
    counts = np.bincount(labels.astype(int), minlength=2)
    return {c: float(len(labels) / (2 * max(counts[c], 1))) for c in (0, 1)}


def datasets(train: tuple, val: tuple, p: Train, global_batch: int, replicas: int = 1):
    """(train_ds, val_ds): normalised, batched, prefetched; train shuffled and augmented.

    Train batches are (x, y, sample_weight): the class weight of `train.class_weight` per image.

    With several replicas the last partial train batch is dropped and validation is cut to a
    multiple of the replica count (at most replicas - 1 images): tf.distribute fails on
    per-replica batches of unequal size.
    """
    import tensorflow as tf

    x_train, y_train = normalize(train[0], p.normalize), train[1]
    weights = class_weights(y_train, p.class_weight)
    w_train = np.where(y_train >= 0.5, weights[1], weights[0]).astype(np.float32)
    keep = len(val[0]) - len(val[0]) % replicas
    x_val, y_val = normalize(val[0][:keep], p.normalize), val[1][:keep]
    aug = augmenter(p.augment, p.seed)

    def augment(x, y, w):
        return tf.clip_by_value(aug(x, training=True), 0.0, 1.0), y, w

    train_ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train, w_train))
                .shuffle(len(x_train), seed=p.seed, reshuffle_each_iteration=True)
                .batch(global_batch, drop_remainder=replicas > 1)
                .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(global_batch).cache().prefetch(tf.data.AUTOTUNE)
    return train_ds, val_ds
