"""Pixel normalisation shared by training, evaluation and serving (numpy only, no TF).

`normalize(uint8 images, mode)` -> float32 (N, S, S, 1) in [0, 1]. `equalize` maps each
image through its own histogram CDF, which removes most exposure and contrast
differences between scanners before the network sees the image; `scale` is x / 255.
"""
from __future__ import annotations

import numpy as np

MODES = ("equalize", "scale")


def equalize(images: np.ndarray) -> np.ndarray:
    """Per-image histogram equalisation of uint8 (N, H, W) -> float32 in [0, 1]."""
    n = images.shape[0]
    flat = images.reshape(n, -1)
    offsets = (np.arange(n, dtype=np.int64) * 256)[:, None]
    counts = np.bincount((flat + offsets).ravel(), minlength=n * 256).reshape(n, 256)
    cdf = counts.cumsum(axis=1).astype(np.float32)
    lo = np.take_along_axis(cdf, flat.min(axis=1, keepdims=True).astype(np.int64), axis=1)
    span = np.maximum(cdf[:, -1:] - lo, 1.0)
    lut = np.clip((cdf - lo) / span, 0.0, 1.0)
    return np.take_along_axis(lut, flat.astype(np.int64), axis=1).reshape(images.shape)


def normalize(images: np.ndarray, mode: str = "equalize", batch: int = 512) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, H, W, 1) in [0, 1] by `mode` (equalize | scale)."""
    if mode not in MODES:
        raise ValueError(f"train.normalize must be one of {MODES}, got {mode!r}")
    images = np.asarray(images)
    if mode == "scale":
        return (images.astype(np.float32) / 255.0)[..., None]
    out = np.empty(images.shape, np.float32)
    for start in range(0, len(images), batch):  # bounded memory for the bincount scratch
        out[start:start + batch] = equalize(images[start:start + batch])
    return out[..., None]
