"""The prepared splits: pixels from the pixel store (no JPEG decoding) and labels from the split file."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.config import Paths


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
