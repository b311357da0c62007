"""Laterality-marker augmentation: burn-in letters ("R", "L", "AP") stamped on training films at random.

Radiographers put a lead letter on the film, and its style follows the room and the equipment, not
the disease: in the Kermany train split a large bold "R" is common on pneumonia films and a small
thin one on normal films, and most of the normal test films the default model calls pneumonia carry
a large bold "R" (README, Generalization). A network learns such a marker as a shortcut (Zech et al.,
PLOS Medicine 2018). Stamping markers of every style on a random share of the training images of
both classes makes the marker carry no class information. `bank` renders the stamps once (numpy);
`stamp` applies them inside the tf.data graph.
"""
from __future__ import annotations

import numpy as np

TEXTS = ("R", "R", "R", "L", "AP")  # "R" as often as the films show it
HEIGHTS = (0.05, 0.08, 0.11, 0.14, 0.17)  # letter height as a share of the image side
BOX = 0.3  # side of a stamp's box, as a share of the image side
REGION = 0.35  # stamps land in the top corners, within this share of the side from the edges


def bank(size: int) -> np.ndarray:
    """float32 (K, B, B) antialiased stamps in [0, 1], B = round(BOX * size): each text at each height,
    regular and bold, leaving out those that would not fit their box."""
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    side = max(round(BOX * size), 4)
    out = []
    for weight in ("normal", "bold"):
        path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight=weight))
        for height in HEIGHTS:
            font = ImageFont.truetype(path, max(int(height * size / 0.72), 4))  # cap height ~0.72 em
            for text in dict.fromkeys(TEXTS):
                canvas = Image.new("L", (side, side), 0)
                draw = ImageDraw.Draw(canvas)
                if max(draw.textbbox((1, 1), text, font=font)[2:]) < side:
                    draw.text((1, 1), text, fill=255, font=font)
                    out.append(np.asarray(canvas, np.float32) / 255.0)
    return np.stack(out)


def stamp(x, stamps: np.ndarray, rate: float, seed: int):
    """Batch (N, S, S, 1) in [0, 1] with a random stamp of `stamps` burned (brightness 0.8 to 1, as a
    lead marker after histogram equalisation) into a top corner of each image with probability `rate`."""
    import tensorflow as tf

    n, size = tf.shape(x)[0], tf.shape(x)[1]
    side = stamps.shape[1]
    bank_t = tf.constant(stamps)
    span = tf.maximum(tf.cast(REGION * tf.cast(size, tf.float32), tf.int32) - side, 1)
    which = tf.random.uniform([n], 0, len(stamps), tf.int32, seed=seed)
    dy = tf.random.uniform([n], 0, span, tf.int32, seed=seed + 1)
    dx = tf.random.uniform([n], 0, span, tf.int32, seed=seed + 2)
    right = tf.random.uniform([n], seed=seed + 3) < 0.3  # most markers sit top left, some top right
    dx = tf.where(right, size - side - dx, dx)
    on = tf.cast(tf.random.uniform([n], seed=seed + 4) < rate, tf.float32)
    level = tf.random.uniform([n], 0.8, 1.0, seed=seed + 5) * on

    def place(args):
        k, oy, ox = args
        return tf.image.pad_to_bounding_box(tf.gather(bank_t, k)[..., None], oy, ox, size, size)

    canvases = tf.map_fn(place, (which, dy, dx), fn_output_signature=tf.TensorSpec([None, None, 1], tf.float32))
    return tf.maximum(x, canvases * level[:, None, None, None])
