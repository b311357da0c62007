"""Is an input a chest X-ray like the training images? A Mahalanobis distance on the network's own features.

`fit` takes the penultimate features (the input of the model's last Dense layer, from
tasks.measure.inference.scores_and_features) of the training images: one mean per class and one shared
covariance (Ledoit-Wolf shrinkage, so a small training set still gives a well-conditioned
matrix), as in Lee et al. 2018. `distance` is an image's squared Mahalanobis distance to the
nearer class mean. The threshold is the `pass_rate` quantile of the validation distances, so
that share of held-out X-rays passes; `ood_score` = distance / threshold, and an input with a score
above 1 is flagged `in_distribution: false`. `generated` draws the inputs a user may send by
mistake (noise, flat fields, natural-image-like textures, text pages, rotated and inverted X-rays),
on which evaluate reports the share flagged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

KINDS = ("noise", "flat", "texture", "text", "rotated_90", "upside_down", "inverted")


def fit(features: np.ndarray, labels: np.ndarray) -> dict:
    """{means (2, D), precision (D, D)} from training features (N, D) and their 0/1 labels."""
    from sklearn.covariance import LedoitWolf

    features = np.asarray(features, np.float64)
    labels = np.asarray(labels).astype(int)
    means = np.stack([features[labels == c].mean(axis=0) for c in (0, 1)])
    centred = features - means[labels]
    return {"means": means, "precision": LedoitWolf(assume_centered=True).fit(centred).precision_}


def distance(features: np.ndarray, fitted: dict) -> np.ndarray:
    """(N,) squared Mahalanobis distance of each feature row to the nearer class mean."""
    features = np.asarray(features, np.float64)
    per_class = [np.einsum("ij,jk,ik->i", features - mu, fitted["precision"], features - mu)
                 for mu in fitted["means"]]
    return np.min(per_class, axis=0)


def threshold(val_distances: np.ndarray, pass_rate: float) -> float:
    """The distance under which `pass_rate` of the validation images fall."""
    return float(np.quantile(val_distances, pass_rate))


def scores(features: np.ndarray, fitted: dict) -> np.ndarray:
    """(N,) `ood_score`: distance / threshold; above 1 means not like the training X-rays."""
    return distance(features, fitted) / fitted["threshold"]


def save(path: str | Path, fitted: dict) -> Path:
    """An .npz of plain arrays (read back with allow_pickle=False: nothing is unpickled when serving)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # a file object: np.savez would append .npz to a name without it
        np.savez(fh, means=fitted["means"], precision=fitted["precision"], threshold=np.float64(fitted["threshold"]))
    return path


def load(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {"means": z["means"], "precision": z["precision"], "threshold": float(z["threshold"])}


def _texture(rng, size: int) -> np.ndarray:
    """1/f ("pink") noise: the power spectrum of natural images, without their content."""
    f = np.fft.fftfreq(size)
    radius = np.hypot(f[:, None], f[None, :])
    radius[0, 0] = 1.0
    field = np.real(np.fft.ifft2((rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / radius))
    return np.round(255 * (field - field.min()) / max(np.ptp(field), 1e-9)).astype(np.uint8)


def _text_page(rng, size: int) -> np.ndarray:
    """Dark lines of random characters on a light page: a scanned document or report."""
    from PIL import Image, ImageDraw

    page = Image.new("L", (size, size), int(rng.integers(200, 256)))
    draw = ImageDraw.Draw(page)
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789 ")
    for row in range(4, size - 8, max(10, size // 12)):
        draw.text((4, row), "".join(rng.choice(letters, size // 6)), fill=int(rng.integers(0, 60)))
    return np.asarray(page, np.uint8)


def generated(xrays: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """{kind: uint8 (n, S, S)} inputs that are not frontal chest X-rays; `xrays` (>= 1 image, S x S) are
    turned by 90 and 180 degrees and inverted for the last three kinds."""
    rng = np.random.default_rng(seed)
    size = xrays.shape[1]
    base = np.asarray(xrays[np.arange(n) % len(xrays)], np.uint8)
    return {
        "noise": rng.integers(0, 256, (n, size, size), dtype=np.uint8),
        "flat": np.broadcast_to(rng.integers(0, 256, n, dtype=np.uint8)[:, None, None], (n, size, size)).copy(),
        "texture": np.stack([_texture(rng, size) for _ in range(n)]),
        "text": np.stack([_text_page(rng, size) for _ in range(n)]),
        "rotated_90": np.rot90(base, 1, axes=(1, 2)).copy(),
        "upside_down": np.rot90(base, 2, axes=(1, 2)).copy(),
        "inverted": 255 - base,
    }


def measure(model, splits: dict, mode: str, pass_rate: float, n: int, seed: int) -> tuple[dict, dict, dict]:
    """Fit on the train split, set the threshold on validation, score test and the generated inputs.

    Returns (fitted, {set name: ood scores} for val, test and each generated kind, metrics): the
    threshold, the share of val and test images that pass, and the share of each generated kind flagged.
    """
    from tasks.measure.inference import scores_and_features

    def features(images):
        return scores_and_features(model, images, mode)[1]

    fitted = fit(features(splits["train"][0]), splits["train"][1])
    val = distance(features(splits["val"][0]), fitted)
    fitted["threshold"] = threshold(val, pass_rate)
    named = {"val": val / fitted["threshold"], "test": scores(features(splits["test"][0]), fitted)}
    named.update({kind: scores(features(images), fitted)
                  for kind, images in generated(splits["val"][0], n, seed).items()})
    metrics = {"threshold": fitted["threshold"], "val_pass": float(np.mean(named["val"] <= 1)),
               "test_pass": float(np.mean(named["test"] <= 1)) if len(named["test"]) else float("nan")}
    metrics.update({f"flagged_{kind}": float(np.mean(named[kind] > 1)) for kind in KINDS})
    return fitted, named, metrics
