"""A generated, offline demo set of chest-X-ray-like images.

Each image has lung fields, ribs, a mediastinum and a spine; pneumonia adds patchy
opacities inside the lungs. Brightness, contrast, gamma, position and noise vary per
image independently of the class, so no single global intensity gives the label away.
Patients (`DEMO-0001`) have 1 to `max_images_per_patient` images of one class.
Deterministic for a given `Demo` config.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from tasks.core.sections import Positive, Section, Share
from tasks.sources import CLASSES


class Demo(Section):
    """`ingest.demo`: the generated patients."""

    patients: Positive
    max_images_per_patient: Positive
    pneumonia_fraction: Share
    size: Positive
    seed: int


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field in [0, 1]: low-res noise upsampled bilinearly."""
    low = (rng.random((cells, cells)) * 255).astype(np.uint8)
    img = Image.fromarray(low, mode="L").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def chest_image(rng: np.random.Generator, size: int, pneumonia: bool) -> np.ndarray:
    """One synthetic chest X-ray, uint8 (size, size)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx = 0.5 + rng.normal(0, 0.02)
    body = 0.55 + 0.15 * _smooth_noise(rng, size, 4)
    lungs = np.zeros_like(xx)
    for side in (-1, 1):
        lx, ly = cx + side * rng.uniform(0.17, 0.21), rng.uniform(0.45, 0.52)
        rx, ry = rng.uniform(0.12, 0.15), rng.uniform(0.25, 0.3)
        lungs = np.maximum(lungs, ((xx - lx) / rx) ** 2 + ((yy - ly) / ry) ** 2 <= 1.0)
    lungs = np.asarray(Image.fromarray((lungs * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(size / 40)),
                       dtype=np.float32) / 255.0
    img = body - 0.4 * lungs
    ribs = 0.5 + 0.5 * np.sin((yy + 0.12 * np.abs(xx - cx) ** 1.5 * 4) * rng.uniform(55, 65) + rng.uniform(0, 6.3))
    img += 0.08 * lungs * ribs ** 3
    img += 0.25 * np.exp(-(((xx - cx) / 0.06) ** 2)) * (yy > 0.2)  # mediastinum and spine
    img += 0.06 * lungs * _smooth_noise(rng, size, 24)  # vessels: texture shared by both classes
    if pneumonia:
        for _ in range(rng.integers(1, 4)):
            side = rng.choice([-1, 1])
            ox, oy = cx + side * rng.uniform(0.12, 0.25), rng.uniform(0.35, 0.68)
            r = rng.uniform(0.05, 0.11)
            blob = np.exp(-(((xx - ox) ** 2 + (yy - oy) ** 2) / (2 * r * r)))
            img += rng.uniform(0.18, 0.3) * lungs * blob * (0.5 + _smooth_noise(rng, size, 12))
    gamma, gain, offset = rng.uniform(0.8, 1.25), rng.uniform(0.75, 1.15), rng.uniform(-0.08, 0.08)
    img = np.clip(img, 0, 1) ** gamma * gain + offset + rng.normal(0, 0.02, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def generate(cfg: Demo, dest: Path) -> Path:
    """Write the demo set as `dest/chest_xray/train/{NORMAL,PNEUMONIA}/DEMO-PPPP-II.png`; return its root."""
    root = dest / "chest_xray"
    rng = np.random.default_rng(cfg.seed)
    for folder in CLASSES:
        (root / "train" / folder).mkdir(parents=True, exist_ok=True)
    for patient in range(1, cfg.patients + 1):
        pneumonia = rng.random() < cfg.pneumonia_fraction
        for image in range(1, int(rng.integers(1, cfg.max_images_per_patient + 1)) + 1):
            pixels = chest_image(rng, cfg.size, pneumonia)
            path = root / "train" / CLASSES[pneumonia] / f"DEMO-{patient:04d}-{image:02d}.png"
            Image.fromarray(pixels, mode="L").save(path)
    return root


def source(cfg: Demo, ingest, workdir: Path) -> Path:
    """The `demo` source (tasks.core.plugins.SOURCES): the generated folder under `workdir`."""
    return generate(cfg, workdir / "demo")
