"""The training input pipeline: tf.data batches of the prepared splits, class-weighted, shuffled, augmented
(tasks.training.augment) and prefetched."""
from __future__ import annotations

import numpy as np

from tasks.core.config import Train
from tasks.imaging.preprocess import normalize
from tasks.training.augment import augmenter


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
