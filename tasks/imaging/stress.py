"""Simulated acquisition shifts for the stress test in evaluate (numpy + PIL, no TF).

Each perturbation maps uint8 images (N, H, W) to uint8 images of the same shape, by an
amount set in params.yaml `evaluate.stress`:
contrast (factor around the image mean), gamma (exponent on [0, 1] intensities), blur
(Gaussian sigma in pixels), noise (Gaussian std in grey levels, seeded) and resolution
(down-sampling factor, then back up).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def contrast(images: np.ndarray, factor: float) -> np.ndarray:
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return np.clip(np.round(mean + (x - mean) * factor), 0, 255).astype(np.uint8)


def gamma(images: np.ndarray, exponent: float) -> np.ndarray:
    return np.clip(np.round((images / 255.0) ** exponent * 255), 0, 255).astype(np.uint8)


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(sigma))) for i in images])


def noise(images: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(images + rng.normal(0, std, images.shape)), 0, 255).astype(np.uint8)


def resolution(images: np.ndarray, factor: float) -> np.ndarray:
    h, w = images.shape[1:]
    small = (max(int(w * factor), 1), max(int(h * factor), 1))
    return np.stack([np.asarray(Image.fromarray(i).resize(small, Image.Resampling.BILINEAR)
                                .resize((w, h), Image.Resampling.BILINEAR)) for i in images])


PERTURBATIONS = {"contrast": contrast, "gamma": gamma, "blur": blur, "noise": noise, "resolution": resolution}


def perturbed(images: np.ndarray, settings: dict) -> dict[str, np.ndarray]:
    """{name: perturbed images} for each configured perturbation."""
    unknown = set(settings) - set(PERTURBATIONS)
    if unknown:
        raise ValueError(f"evaluate.stress has unknown perturbation(s) {sorted(unknown)}; known: {list(PERTURBATIONS)}")
    return {name: PERTURBATIONS[name](images, amount) for name, amount in settings.items()}
