"""Grad-CAM heatmaps: where in the image the model's pneumonia score came from."""
from __future__ import annotations

import numpy as np

from tasks.training.model import LAST_CONV


def heatmaps(model, x: np.ndarray) -> np.ndarray:
    """Grad-CAM of `model`'s output w.r.t. its `last_conv` layer for inputs x (N, S, S, 1) -> (N, S, S) in [0, 1]."""
    import keras
    import tensorflow as tf

    grad_model = keras.Model(model.inputs, [model.get_layer(LAST_CONV).output, model.output])
    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        conv, out = grad_model(x, training=False)
        score = out[:, 0]
    grads = tape.gradient(score, conv)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(conv * weights, axis=-1))[..., None]
    side = x.shape[1]
    cam = tf.image.resize(cam, (side, side))[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return cam / np.maximum(peak, 1e-8)
