"""tf.data input pipeline from the prepared pixel store (no JPEG decoding per epoch)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks import markers
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


def mixup(x, y, w, alpha: float, seed: int):
    """Mix each image with another of its batch: x = l x_i + (1 - l) x_j, and y, w alike, l ~ Beta(alpha, alpha).

    Drawn per image; l is folded to [0.5, 1] so each mixed image stays closest to its own.
    """
    import tensorflow as tf

    n = tf.shape(x)[0]
    g1 = tf.random.gamma([n], alpha, seed=seed)
    g2 = tf.random.gamma([n], alpha, seed=seed + 1)
    lam = g1 / (g1 + g2)
    lam = tf.maximum(lam, 1.0 - lam)
    other = tf.random.shuffle(tf.range(n), seed=seed + 2)

    def mix(a):
        shape = tf.concat([[n], tf.ones([tf.rank(a) - 1], tf.int32)], axis=0)
        l_ = tf.reshape(lam, shape)
        return l_ * a + (1.0 - l_) * tf.gather(a, other)

    return mix(x), mix(y), mix(w)


def datasets(train: tuple, val: tuple, p: Train, global_batch: int, replicas: int = 1):
    """(train_ds, val_ds): normalised, batched, prefetched; train shuffled and augmented.

    Train batches are (x, y, sample_weight): the class weight of `train.class_weight` per image
    (mixed with the labels under `train.mixup`, which a per-class lookup could not follow).

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
    stamps = markers.bank(x_train.shape[1]) if p.augment.markers > 0 else None

    def low_resolution(image):
        # one draw per image: a batch-wide factor would leave whole batches sharp and teach nothing
        size = tf.shape(image)[0:2]
        factor = tf.random.uniform([], p.augment.low_resolution, 1.0)
        small = tf.maximum(tf.cast(tf.cast(size, tf.float32) * factor, tf.int32), 1)
        return tf.image.resize(tf.image.resize(image, small, "bilinear"), size, "bilinear")

    def blur_normals(x, y):
        # on train, normal films are sharper than pneumonia films (median Laplacian std 15.8 vs 12.1 at
        # 128 px) and the test site's normals are blurrier (14.6): blurring half of the normals, each by its
        # own sigma, takes sharpness away as a cue for "normal"
        n = tf.shape(x)[0]
        sigma = tf.random.uniform([n], 0.0, p.augment.normal_blur)
        chosen = tf.cast(y < 0.5, tf.float32) * tf.cast(tf.random.uniform([n]) < 0.5, tf.float32)
        radius = max(1, int(np.ceil(3 * p.augment.normal_blur)))
        taps = tf.range(-radius, radius + 1, dtype=tf.float32)
        kernel = tf.exp(-0.5 * (taps[None, :] / tf.maximum(sigma[:, None], 1e-3)) ** 2)
        kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # (n, taps); sigma ~0 -> identity

        def one(args):
            image, k = args  # separable Gaussian, edges padded by reflection
            padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
            rows = tf.nn.conv2d(padded, tf.reshape(k, [-1, 1, 1, 1]), 1, "VALID")
            return tf.nn.conv2d(rows, tf.reshape(k, [1, -1, 1, 1]), 1, "VALID")[0]

        blurred = tf.map_fn(one, (x, kernel), fn_output_signature=x.dtype)
        mask = tf.reshape(chosen, [-1, 1, 1, 1])
        return mask * blurred + (1.0 - mask) * x

    def augment(x, y, w):
        if stamps is not None:  # before the affine steps: a marker moves with its film
            x = markers.stamp(x, stamps, p.augment.markers, p.seed + 10)
        x = aug(x, training=True)
        if p.augment.normal_blur > 0:
            x = blur_normals(x, y)
        # optional acquisition shift (the stress test's worst cases), drawn per image
        if p.augment.low_resolution < 1.0:
            x = tf.map_fn(low_resolution, x)
        if p.augment.noise > 0:
            std = tf.random.uniform([tf.shape(x)[0], 1, 1, 1], 0.0, p.augment.noise)
            x = x + tf.random.normal(tf.shape(x)) * std
        x = tf.clip_by_value(x, 0.0, 1.0)
        if p.mixup > 0:
            x, y, w = mixup(x, y, w, p.mixup, p.seed)
        return x, y, w

    train_ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train, w_train))
                .shuffle(len(x_train), seed=p.seed, reshuffle_each_iteration=True)
                .batch(global_batch, drop_remainder=replicas > 1)
                .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(global_batch).cache().prefetch(tf.data.AUTOTUNE)
    return train_ds, val_ds
