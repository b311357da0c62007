"""The model's reference for monitoring: what held-out films of its own acquisition look like to it.

evaluate fits it on a seeded sample of validation films (patients the weights never saw) and the packaged
model carries it (`reference.npz`, plain arrays): their penultimate features, calibrated probabilities and
out-of-distribution scores, computed by the served model's own functions (tasks.scoring.serving.predict_frame), and
the served threshold. tasks.monitoring.drift compares a site's batch with it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

KEYS = ("features", "probability", "ood_score")


def sample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of at most `size` of n films (all when there are fewer)."""
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)) if n > size else np.arange(n)


def build(features: np.ndarray, probability: np.ndarray, ood_score: np.ndarray, threshold: float) -> dict:
    return {"features": np.asarray(features, np.float32), "probability": np.asarray(probability, np.float64),
            "ood_score": np.asarray(ood_score, np.float64), "threshold": float(threshold)}


def save(path: str | Path, ref: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # a file object: np.savez would append .npz to a name without it
        np.savez(fh, threshold=np.float64(ref["threshold"]), **{k: ref[k] for k in KEYS})
    return path


def load(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {**{k: z[k] for k in KEYS}, "threshold": float(z["threshold"])}
